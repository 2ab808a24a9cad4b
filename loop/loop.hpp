// The event loop: one per thread. It owns the ring, the ready queue of coroutines and the
// operations waiting for room in the completion queue. One iteration runs what is ready, hands
// every queued SQE to the kernel in one io_uring_enter (waiting there when nothing is ready),
// and moves the CQEs that came back onto the ready queue. A CQE never resumes a coroutine from
// inside the reaping loop; it only schedules one.
//
// Timers keep asyncio's order (BaseEventLoop._run_once): I/O completions first, then the timers
// found due, in deadline order (equal deadlines in the order they were armed), whatever order
// the kernel posted their CQEs in; and a timer's expiry takes effect only after the steps that
// were already in the ready queue when it was reaped (its callback is queued behind them).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <ringloop/loop/detail/intrusive_list.hpp>
#include <ringloop/loop/detail/time_marks.hpp>
#include <ringloop/loop/operation.hpp>
#include <ringloop/loop/ready_queue.hpp>
#include <ringloop/loop/ring.hpp>
#include <ringloop/loop/thread_inbox.hpp>

namespace ringloop {

// asyncio's exception handler: what Loop::set_exception_handler takes. The context is defined
// with the exception types (coro/exception_handler.hpp).
struct ExceptionContext;
using ExceptionHandler = std::function<void(Loop&, const ExceptionContext&)>;

// How a Loop is set up.
struct LoopOptions {
  // The ring's sizes and set-up flags.
  RingOptions ring{};
  // How many CQEs may be owed at once (the admission budget); further operations wait in a FIFO
  // until completions free room. 0 means kDefaultOwedPerCqEntry times the CQ: the kernel keeps
  // the CQEs that do not fit in the CQ on its overflow list (IORING_FEAT_NODROP, ~32 bytes each)
  // and the loop drains it, so owing more than the CQ costs memory only when that many
  // operations complete between two reaps (the arithmetic for 100k connections is in loop.cpp
  // and the README). The last eighth of the budget is kept for priority operations (accepts,
  // timers, the loop's own; Operation::priority) and cancel requests bypass it: idle reads
  // cannot starve them. Reaching the budget is counted (LoopStats::operations_deferred) and
  // reported once through the exception handler.
  unsigned max_in_flight = 0;
  // For run() (coro/task/run.hpp): SIGINT cancels the main task, as asyncio.run does, when run() is
  // called in the main thread and SIGINT still has its default action.
  bool cancel_main_on_sigint = true;
  // Virtual time (tokio's paused clock, Seastar's manual_clock): timeouts (sleeps, wait_for
  // and timeout() deadlines, call_later, link timeouts of I/O) are kept by the loop on a
  // virtual clock instead of going to the kernel, and when no coroutine is ready and no
  // completion is waiting, the clock jumps to the next deadline at once. Real I/O still goes
  // through the ring; I/O that has not completed yet does not hold the clock back (as with
  // tokio), but work on other threads (to_thread) does. For tests of code full of timeouts.
  bool virtual_time = false;
  // Debug mode (asyncio's debug mode), also on when the environment has RINGLOOP_DEBUG=1:
  // reports on stderr a step of the loop (one coroutine resumed until it suspends) that ran
  // longer than slow_step, and operations and tasks still pending when the loop closes.
  // Always on, debug or not: an operation record destroyed while the kernel owes it a CQE
  // aborts with a message, and a task exception never retrieved is reported with the place
  // the task was created. Off, it costs one branch per loop iteration.
  bool debug = false;
  std::chrono::nanoseconds slow_step = std::chrono::milliseconds(100);
  // The loop's name in error messages ("awaiting a task of loop-2 from loop-1"); empty means
  // "loop-N", N counting the loops of the process. A LoopGroup names its loops "group-loop-I".
  std::string name{};
  // Other loops wake this one, and it wakes them, with an IORING_OP_MSG_RING doorbell from the
  // sender's ring (Linux 5.18; probed) rather than an eventfd write. Off, or where the kernel
  // lacks MSG_RING, the eventfd path serves (as it always does for threads that are not loops).
  bool msg_ring_doorbells = true;
};

// Counters of a loop's work since it was made (Loop::stats()).
struct LoopStats {
  std::uint64_t operations_submitted = 0;  // handed to the kernel (or to the virtual clock)
  std::uint64_t operations_deferred = 0;   // waited in the FIFO for CQ room
  std::uint64_t operations_restarted = 0;  // interrupted in the kernel (EINTR), submitted again
  std::uint64_t cqes_reaped = 0;           // completions taken from the CQ
  std::uint64_t iterations = 0;            // run_once() calls
  std::uint64_t peak_in_flight = 0;        // the most CQEs owed at once
  std::uint64_t cq_overflows = 0;          // reaps that found CQEs on the kernel's overflow list
  std::uint64_t cqes_dropped = 0;          // CQEs the kernel lost (its overflow list failed)
  std::uint64_t doorbells_rung = 0;        // MSG_RING doorbells this loop sent to other loops
  std::uint64_t doorbells_answered = 0;    // MSG_RING doorbells from other loops reaped here
  std::uint64_t eventfd_wakes_sent = 0;    // other loops woken through their eventfd instead
  std::uint64_t zero_copy_sends = 0;       // IORING_OP_SEND_ZC submitted (send_zc, Stream writes)
};

namespace detail {
// What the loop knows of a task: its place in the loop's list of tasks. coro/'s task record
// (TaskCore) is the only kind there is, and coro/task/task.cpp defines what the loop does to one
// (the three functions below): a pointer to a table of them cost every task 8 bytes.
struct TaskHook : ListNode {
  // The loop's own machinery (Operation::daemon): not reported as pending. Set through
  // Loop::set_daemon.
  bool daemon = false;
};
// asyncio's Task.cancel(), for a loop cancelling its tasks as it closes.
void cancel_task(TaskHook& task) noexcept;
// For a task still suspended when the loop closes with nothing left that could resume it.
void abandon_task(TaskHook& task) noexcept;
// A task's first step, scheduled by Loop::schedule_first_step: it may end the task without
// resuming it (one cancelled before it started).
void run_first_step(TaskHook& task) noexcept;

// Something the loop ends when it closes, whoever holds it (asyncio's loop closes its
// transports, tokio's runtime drops its registrations): an operation that re-arms itself, a
// multishot stream held outside any task, would otherwise keep the kernel owing the loop CQEs
// and the loop's close would wait for ever. fn asks it to end; it need not have ended by then
// (close() goes on reaping until nothing is owed). Unlinked by the loop before fn runs.
struct CloseHook : ListNode {
  using Fn = void (*)(CloseHook&) noexcept;
  CloseHook(Fn on_close, void* of) noexcept : fn(on_close), owner(of) {}
  Fn fn;
  void* owner;
};
}  // namespace detail

// The event loop (asyncio's event loop): one per thread, driven by run_forever(),
// run_until_complete() or run() (coro/task/run.hpp).
class Loop {
 public:
  // Sets up the ring; throws std::system_error naming the cause when io_uring is refused.
  explicit Loop(const LoopOptions& options = {});
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  // Closes the loop (see close()) if that was not done.
  ~Loop();

  // The loop running on this thread, or null. Inline: every await checks it (detail::loop_for).
  static Loop* current() noexcept { return current_loop_; }
  // The loop running on this thread; throws std::logic_error naming the caller when none is.
  static Loop& running(const char* caller);

  // Runs a coroutine on a later step of this loop's current iteration (or the next one).
  // Loop thread only; other threads go through a LoopHandle (coro/thread/loop_handle.hpp).
  void schedule(std::coroutine_handle<> handle) { ready_.push(handle); }

  // co_await loop.schedule(): the awaiting coroutine (of any coroutine type) continues on a
  // later step of this loop. From the loop's thread only; another thread uses
  // LoopHandle::schedule(), which wakes the loop through its ring.
  class ScheduleAwaiter {
   public:
    explicit ScheduleAwaiter(Loop& loop) noexcept : loop_(loop) {}
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> awaiting) {
      loop_.check_thread("schedule() awaited");
      loop_.schedule(awaiting);
    }
    void await_resume() const noexcept {}

   private:
    Loop& loop_;
  };
  [[nodiscard]] ScheduleAwaiter schedule() noexcept { return ScheduleAwaiter(*this); }
  // Hands an operation to the kernel: its SQE goes into the SQ at once, or, when the CQ is at
  // its limit, the operation waits in a FIFO. Either way it completes exactly once. A timer on
  // its own (an operation with is_timeout and a deadline) gets its SQE at the loop's submit
  // point instead, one iteration later unless the loop is about to block: cancelled before
  // that, it completes with -ECANCELED without an SQE or a CQE. With a
  // link_timeout record, the two SQEs go in together and each record completes exactly once.
  void submit(Operation& operation);
  // Asks for an operation to end early, whatever its state: one still in the FIFO completes
  // with -ECANCELED at once (its link timeout record too); one in the SQ or the kernel gets a
  // TIMEOUT_REMOVE or ASYNC_CANCEL SQE, and its own CQE tells how it ended. A finished
  // operation is left alone (its link timeout, if still owed, ends by itself).
  void cancel(Operation& operation);
  // Closes fd through the ring, with nobody awaiting the result (for an owning type's
  // destructor, which cannot await). Returns false, doing nothing, when the loop is closed or
  // the CQ budget is full; the caller then closes the fd itself.
  bool try_close_detached(int fd);

  // Before work goes to another thread (loop thread only): the loop keeps a read of its eventfd
  // in flight until that work's completion has come back through post_from_thread, so it
  // neither exits nor reports a deadlock meanwhile.
  void expect_thread_completion();
  // Takes back one expect_thread_completion whose work never left (its post was refused).
  void unexpect_thread_completion() noexcept;
  // From any thread: hands completion to the loop's thread and wakes the loop through the ring
  // (an eventfd write that completes the loop's read SQE; no other thread touches the ring).
  void post_from_thread(ThreadCompletion& completion) noexcept;
  // Loop thread only: the inbox through which other threads post to this loop, with one
  // keep-alive taken for the caller (a LoopHandle): while any is held, the loop keeps an eventfd
  // read in flight and waits for posts. Closing the loop closes the inbox to new posts.
  std::shared_ptr<ThreadInbox> open_to_threads();
  // Loop thread only: the inbox, without a keep-alive (for replies from other loops, which the
  // loop expects through expect_thread_completion).
  std::shared_ptr<ThreadInbox> thread_inbox();
  // Loop thread only: posts completion to another loop's inbox and wakes that loop, with a
  // MSG_RING doorbell from this loop's ring (sent with this loop's next batch of SQEs) where
  // both loops take them, or else with an eventfd write. Returns false, posting nothing, when
  // the target has closed its door (and completion can be discarded).
  bool post_to(const std::shared_ptr<ThreadInbox>& target, ThreadCompletion& completion);
  // Whether this loop rings other loops with MSG_RING (LoopOptions::msg_ring_doorbells and the
  // kernel's support).
  bool rings_doorbells() const noexcept { return msg_ring_doorbells_; }
  // The loop's name (LoopOptions::name), for messages.
  const std::string& name() const noexcept { return name_; }
  // Whether the calling thread is the one that made the loop.
  bool on_owner_thread() const noexcept { return std::this_thread::get_id() == owner_; }

  // Runs coro (a Coro<T>) as a task until it finishes; returns its result or rethrows. Defined
  // with the coroutine types (coro/task/run.hpp), found by argument-dependent lookup.
  template <class Coroutine>
  auto run_until_complete(Coroutine coro) {
    return loop_run_until_complete(*this, std::move(coro));
  }

  // Runs iterations until stop() is called. Throws if nothing could ever wake the loop.
  void run_forever();
  // Ends run_forever() (or run_until_complete()) after the current iteration: that
  // iteration does not block in the kernel. Cleared when the run ends.
  void stop() noexcept { stop_requested_ = true; }
  // One iteration. Returns false, doing nothing, when there is nothing to run or wait for.
  bool run_once();
  // Cancels every task still pending, runs until they and every operation have finished, then
  // releases the ring. Idempotent. The loop must not be running.
  void close();

  // The loop's clock, on CLOCK_MONOTONIC's scale: the real clock, or the virtual one. Each read
  // of the virtual clock is 1 ns later than the one before, so deadlines computed one after
  // another keep the order they would have in real time. Inline: a call into the library and
  // its PLT cost ~3 ns, on paths (a sleep, a deadline) of a few tens.
  std::int64_t now_ns() noexcept { return virtual_time_ ? ++virtual_now_ : monotonic_now_ns(); }
  std::chrono::steady_clock::time_point now() noexcept {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(now_ns()));
  }
  // A mark of the present that costs less than now_ns() (a TSC read where the kernel keeps time
  // with the TSC), for a deadline needed only if the work it times suspends (wait_for's);
  // ns_at() puts it on now_ns()'s scale later (detail/time_marks.hpp). On the virtual clock a
  // mark is a read of it.
  detail::TimeMark mark_now() noexcept {
    return virtual_time_ ? detail::TimeMark{++virtual_now_} : marks_.mark();
  }
  std::int64_t ns_at(detail::TimeMark mark) noexcept {
    return virtual_time_ ? mark.value : marks_.ns_at(mark);
  }
  bool has_virtual_time() const noexcept { return virtual_time_; }
  bool debug() const noexcept { return debug_; }
  // Debug mode: coro/ says which task the running step belongs to (where it was created) as the
  // task resumes, so a slow step is reported by its task rather than a frame address.
  void note_step_task(const char* file, unsigned line, const char* function) noexcept {
    step_file_ = file;
    step_line_ = line;
    step_function_ = function;
  }
  // Virtual time only: moves the clock forward by `by` and ends the timeouts now due (their
  // coroutines run on the loop's next steps). Throws std::logic_error on a real-time loop.
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> by) {
    advance_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(by).count());
  }
  void advance_ns(std::int64_t by);

  // asyncio's loop.set_exception_handler, get_exception_handler, call_exception_handler and
  // default_exception_handler: errors nobody can await (coro/exception_handler.hpp) go to the
  // handler, or to the default one (a line on stderr) when none is set. An empty handler
  // restores the default. The last two are defined with the exception types, in coro/.
  void set_exception_handler(ExceptionHandler handler) { exception_handler_ = std::move(handler); }
  const ExceptionHandler& get_exception_handler() const noexcept { return exception_handler_; }
  void call_exception_handler(const ExceptionContext& context) noexcept;
  static void default_exception_handler(const ExceptionContext& context) noexcept;
  // Whether loop is a Loop that exists now on this thread: a report about a task made after its
  // loop was destroyed goes to the default handler.
  static bool exists_on_this_thread(const Loop* loop) noexcept;

  bool is_running() const noexcept { return running_; }
  bool is_closed() const noexcept { return !ring_.has_value(); }
  // CQEs the kernel still owes (operations and cancel requests), and operations in the FIFO.
  // With virtual time, the timeouts on the virtual clock count too.
  std::size_t in_flight() const noexcept {
    return in_flight_ + unqueued_.size() + unqueued_priority_.size() + lazy_timers_.size() +
           virtual_timers_.size();
  }
  // What of in_flight() and task_count() is the user's: the loop's own machinery (daemon
  // operations and tasks, such as run()'s SIGINT watch) left out.
  std::size_t user_in_flight() const noexcept { return in_flight() - daemon_in_flight_; }
  std::size_t user_task_count() const noexcept { return tasks_.size() - daemon_tasks_; }
  std::size_t ready_count() const noexcept { return ready_.size(); }
  std::size_t task_count() const noexcept { return tasks_.size(); }
  const LoopStats& stats() const noexcept { return stats_; }
  // Counted by send_zc when its SQE is a SEND_ZC (LoopStats::zero_copy_sends).
  void count_zero_copy_send() noexcept { ++stats_.zero_copy_sends; }
  Ring& ring();

  // Task bookkeeping for coro/: the loop owns every task until it finishes.
  void adopt_task(detail::TaskHook& task) noexcept { tasks_.push_back(task); }
  // A task's first step: the task's ops run it (a step that needs no frame of its own, so a
  // task costs no stand-in coroutine record).
  void schedule_first_step(detail::TaskHook& task) {
    ready_.push(detail::ReadyStep::first_step_of(task));
  }
  void release_task(detail::TaskHook& task) noexcept {
    tasks_.erase(task);
    if (task.daemon) --daemon_tasks_;
  }
  // Marks an operation (in flight or not) or a pending task as the loop's own machinery, or
  // as the user's again.
  void set_daemon(Operation& operation, bool daemon) noexcept;
  void set_daemon(detail::TaskHook& task, bool daemon) noexcept;
  void cancel_all_tasks() noexcept;
  // Calls fn(hook) for each unfinished task, in the order they were created (all_tasks()).
  template <class F>
  void for_each_task(F&& fn) {
    tasks_.for_each(fn);
  }
  void abandon_stuck_tasks() noexcept;
  // What close() ends besides the tasks (detail::CloseHook). A hook leaves by remove_close_hook
  // when what holds it goes first.
  void add_close_hook(detail::CloseHook& hook) noexcept { close_hooks_.push_back(hook); }
  void remove_close_hook(detail::CloseHook& hook) noexcept {
    if (hook.linked()) close_hooks_.erase(hook);
  }

  // Makes this loop the thread's running loop for a scope; nests are refused (asyncio's rule).
  class RunningScope {
   public:
    explicit RunningScope(Loop& loop);
    RunningScope(const RunningScope&) = delete;
    RunningScope& operator=(const RunningScope&) = delete;
    ~RunningScope();

   private:
    Loop& loop_;
  };

 private:
  void make_sq_room(unsigned count);
  io_uring_sqe& take_sqe() noexcept;
  io_uring_sqe& acquire_sqe();
  bool has_room_for(const Operation& operation) const noexcept;
  detail::IntrusiveList<Operation>& fifo_of(const Operation& operation) noexcept;
  void defer(Operation& operation);
  void check_dropped_cqes() noexcept;
  void report_limit(const std::string& message) noexcept;  // in coro/exception_handler.cpp
  void prepare_now(Operation& operation);
  void submit_deferred();
  // The real clock, whatever the loop's: CLOCK_MONOTONIC, which io_uring timeouts are measured on.
  static std::int64_t monotonic_now_ns() noexcept { return detail::TimeMarks::clock_ns(); }
  void reap_completions();
  // Whether the CQE (its result as visible_result reads it, and its flags) says the kernel
  // interrupted operation, which nobody cancelled: it is then submitted again (PEP 475), and
  // counted in operations_restarted.
  bool restarts(Operation& operation, std::int32_t result, std::uint32_t flags) noexcept;
  void wait_and_reap(bool may_block = true);
  bool waits_for_threads() const noexcept;
  void flush_lazy_timers(bool all);
  void add_virtual_timer(Operation& timer, Operation* linked);
  void erase_virtual_timer(Operation& timer) noexcept;
  void fire_due_virtual_timers() noexcept;
  void queue_due_timer(Operation& timer);
  void hand_on_due_timers();
  static void complete_due_timers(Loop& loop) noexcept;
  void run_ready_timed();
  static void run_step(detail::ReadyStep step) {
    if (step.is_first_step()) {
      detail::run_first_step(step.task());
    } else {
      step.handle().resume();
    }
  }
  void check_thread(const char* what) const;

  class Wakeup;
  class DoorbellSend;
  Wakeup& wakeup();
  inline static constinit thread_local Loop* current_loop_ = nullptr;
  std::unique_ptr<Wakeup> wakeup_;  // made when work first goes to another thread
  std::optional<Ring> ring_;
  detail::ReadyQueue ready_;
  // Operations waiting for room in the budget, each class in its own FIFO: priority ones
  // (Operation::priority, timeouts) go first and may use the reserve.
  detail::IntrusiveList<Operation> unqueued_;
  detail::IntrusiveList<Operation> unqueued_priority_;
  detail::IntrusiveList<detail::TaskHook> tasks_;
  detail::IntrusiveList<detail::CloseHook> close_hooks_;
  // A timeout on the virtual clock, and the operation it is linked to (for a link timeout).
  struct VirtualTimer {
    Operation* timer;
    Operation* linked;
  };
  std::multimap<std::int64_t, VirtualTimer> virtual_timers_;  // equal deadlines: FIFO
  std::int64_t virtual_now_ = 0;
  detail::TimeMarks marks_;
  // Timers whose expiry was reaped, and the loop's own coroutine that completes them when the
  // ready queue reaches it (made on first use; only when steps were queued before them).
  std::vector<Operation*> due_timers_;
  // Timers (sleep, wait_for's and timeout()'s deadlines) submitted and not yet given an SQE: one
  // cancelled before the loop's next submit point is dropped here, without reaching the kernel.
  // Those armed before the iteration began (arm_seq <= lazy_aged_seq_; the list is in arm
  // order) go at its submit point; the newer ones wait one iteration more, unless the loop is
  // about to block. A sequence, not a count: a timer removed in user space can be any of them.
  detail::IntrusiveList<Operation> lazy_timers_;
  std::uint64_t lazy_aged_seq_ = 0;
  std::coroutine_handle<> timer_dispatch_;
  bool timer_dispatch_queued_ = false;
  std::uint64_t timers_armed_ = 0;
  bool virtual_time_ = false;
  bool debug_ = false;
  std::int64_t slow_step_ns_ = 0;
  const char* step_file_ = nullptr;  // the running step's task, when coro/ said (debug mode)
  unsigned step_line_ = 0;
  const char* step_function_ = nullptr;
  std::size_t in_flight_ = 0;
  std::size_t daemon_in_flight_ = 0;  // CQEs of daemon operations, within in_flight_
  std::size_t daemon_tasks_ = 0;      // daemon tasks, within tasks_
  bool closing_ = false;              // close() drains daemon operations too
  std::size_t max_in_flight_ = 0;
  std::size_t reserve_ = 0;  // of max_in_flight_, for priority operations only
  bool limit_reported_ = false;
  bool drop_reported_ = false;
  LoopStats stats_{};
  ExceptionHandler exception_handler_;
  std::thread::id owner_;
  std::string name_;
  bool msg_ring_doorbells_ = false;
  bool running_ = false;
  bool stop_requested_ = false;
};

}  // namespace ringloop
