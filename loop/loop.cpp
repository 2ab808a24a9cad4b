#include <ringloop/loop/detail/env_flag.hpp>
#include <ringloop/loop/loop.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace ringloop {
namespace {

thread_local std::vector<const Loop*> loops_of_this_thread;

// Timers waiting for their SQE (Loop::submit) beyond this many go to the SQ at once, oldest
// first, as before laziness: a step that arms thousands of timers (gather starting 100k sleeping
// tasks) keeps handing them to the kernel in SQ-sized batches while it runs. Held back, all of
// them would be armed in one burst at the submit point, late, while the first ones expire (on
// this VM that took 3x the CPU time for 100k sleeps). What laziness is for, a wait_for's timer
// removed within the iteration, needs a handful.
constexpr std::size_t kMaxLazyTimers = 256;

// Reaping is bounded per call so one iteration cannot starve the ready queue; the CQ size
// is the natural bound (a full CQ is reaped in one go).
constexpr unsigned kMaxReapBatch = 65536;

// The admission budget, by default, in CQEs owed per CQ entry; and the share of it kept for
// priority operations. The arithmetic for 100,000 idle connections, each owing two CQEs (its
// recv and the link timeout of its idle deadline): 200,000 owed. The CQ cannot hold them: the
// kernel caps it at 65,536 entries (IORING_MAX_CQ_ENTRIES), which RingOptions asks for. The
// rest need no room until they complete: an idle read occupies no CQ slot. Only if more than
// 65,536 complete between two reaps do the extra ones go to the kernel's overflow list
// (IORING_FEAT_NODROP), at 32 bytes each (struct io_overflow_cqe, charged to the process's
// memory cgroup): at worst (200,000 - 65,536) x 32 B = 4.3 MB, once, against the ~4 KB of
// kernel socket memory each of the 100,000 connections holds anyway (~400 MB). The reaper then
// drains the list (Ring::reap). So the default budget is 4 x 65,536 = 262,144 CQEs: 100k
// connections with deadlines fit, with 62,144 to spare, and the bound keeps a runaway (a
// million sleeps) from turning into an unbounded kernel list.
constexpr unsigned kDefaultOwedPerCqEntry = 4;
constexpr unsigned kReserveDivisor = 8;  // 1/8 of the budget is for priority operations
static_assert(kDefaultOwedPerCqEntry >= 1 && kReserveDivisor >= 2);

// A coroutine that calls fn each time it is resumed: the loop's entry in its own ready queue
// for the due timers (the queue holds coroutine handles only).
struct CallOnResume {
  struct promise_type {
    CallOnResume get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

CallOnResume call_on_each_resume(Loop& loop, void (*fn)(Loop&) noexcept) {
  for (;;) {
    fn(loop);
    co_await std::suspend_always{};
  }
}

}  // namespace

Loop::Loop(const LoopOptions& options) : owner_(std::this_thread::get_id()) {
  ring_.emplace(options.ring);
  unsigned cq = ring_->cq_entries();
  max_in_flight_ = options.max_in_flight != 0 ? options.max_in_flight : cq * kDefaultOwedPerCqEntry;
  reserve_ = max_in_flight_ / kReserveDivisor;
  RINGLOOP_ASSERT(max_in_flight_ > 0, "a loop needs room for at least one operation");
  virtual_time_ = options.virtual_time;
  debug_ = options.debug || detail::env_flag("RINGLOOP_DEBUG");
  slow_step_ns_ = options.slow_step.count();
  virtual_now_ = monotonic_now_ns();  // on the real clock's scale, so absolute times mix
  static std::atomic<std::uint64_t> loops_made{0};
  name_ = options.name.empty()
              ? "loop-" + std::to_string(loops_made.fetch_add(1, std::memory_order_relaxed) + 1)
              : options.name;
  msg_ring_doorbells_ = options.msg_ring_doorbells && ring_->probe().has(IORING_OP_MSG_RING);
  loops_of_this_thread.push_back(this);
}

bool Loop::exists_on_this_thread(const Loop* loop) noexcept {
  return std::find(loops_of_this_thread.begin(), loops_of_this_thread.end(), loop) !=
         loops_of_this_thread.end();
}

void Loop::advance_ns(std::int64_t by) {
  if (!virtual_time_) throw std::logic_error("Loop::advance: the loop does not use virtual time");
  if (by < 0) throw std::invalid_argument("Loop::advance: time cannot go backwards");
  virtual_now_ += by;
  fire_due_virtual_timers();
}

void Loop::add_virtual_timer(Operation& timer, Operation* linked) {
  virtual_timers_.emplace(timer.deadline_ns, VirtualTimer{&timer, linked});  // may throw
  timer.state = OpState::timer;  // only once it is on the clock: a bad_alloc leaves it idle
  ++stats_.operations_submitted;
}

void Loop::erase_virtual_timer(Operation& timer) noexcept {
  auto [first, last] = virtual_timers_.equal_range(timer.deadline_ns);
  for (auto it = first; it != last; ++it) {
    if (it->second.timer == &timer) {
      virtual_timers_.erase(it);
      timer.state = OpState::idle;
      return;
    }
  }
  RINGLOOP_ASSERT(false, "a virtual timer was not on the loop's clock");
}

void Loop::fire_due_virtual_timers() noexcept {
  while (!virtual_timers_.empty() && virtual_timers_.begin()->first <= virtual_now_) {
    VirtualTimer due = virtual_timers_.begin()->second;
    virtual_timers_.erase(virtual_timers_.begin());
    due.timer->state = OpState::idle;
    due.timer->complete(*due.timer, -ETIME, 0);
    // A link timeout that fires cancels its operation, as the kernel would.
    if (due.linked != nullptr) cancel(*due.linked);
  }
}

// The record of this loop's MSG_RING doorbells to one other loop: one per target, kept as long
// as this loop's Wakeup, so it outlives every CQE of its SQEs. The SQE names the other ring
// through the duplicate fd its inbox holds, and the record holds that inbox (so that fd). Sent
// with IOSQE_CQE_SKIP_SUCCESS: a doorbell that rang posts nothing here, so the sender is not
// woken by its own CQE (in a ping-pong that CQE came first, and cost each side an extra enter
// and iteration per message). Only a failure (-EOVERFLOW: the target's CQ and overflow list
// full) comes back, unsolicited like another loop's doorbell, and falls back to the eventfd so
// the target still wakes. With no CQE to count, these SQEs are not in flight: the loop submits
// what is in its SQ before it stops or closes (run_once, close), so no doorbell is left unsent.
class Loop::DoorbellSend : public Operation {
 public:
  explicit DoorbellSend(std::shared_ptr<ThreadInbox> target)
      : Operation(&never_submitted, &failed, false), target_(std::move(target)) {
    unsolicited = true;
  }
  const ThreadInbox* target() const noexcept { return target_.get(); }

  void prepare_sqe(io_uring_sqe& sqe) noexcept {
    io_uring_prep_msg_ring(&sqe, target_->ring_fd(), 0, target_->doorbell_user_data(), 0);
    sqe.flags |= IOSQE_CQE_SKIP_SUCCESS;  // after prep: liburing's prep functions clear flags
    io_uring_sqe_set_data(&sqe, this);
  }

 private:
  static void never_submitted(Operation&, io_uring_sqe&) noexcept {
    RINGLOOP_ASSERT(false, "a doorbell record went through Loop::submit");
  }
  static void failed(Operation& operation, std::int32_t result, std::uint32_t) noexcept {
    RINGLOOP_ASSERT(result < 0, "a doorbell sent with CQE_SKIP_SUCCESS posted a success");
    static_cast<DoorbellSend&>(operation).target_->wake();
  }

  std::shared_ptr<ThreadInbox> target_;
};

// The read of the inbox's eventfd that other threads complete to wake the loop. It is in flight
// while work the loop waits for is on another thread (expected), or while a LoopHandle keeps
// the loop open to posts; its CQE runs what was posted.
class Loop::Wakeup : public Operation {
 public:
  explicit Wakeup(Loop& loop)
      : Operation(&prepare, &complete, false),
        loop_(loop),
        inbox_(std::make_shared<ThreadInbox>()),
        doorbell_(*this) {
    priority = true;  // other threads' completions must not wait behind idle reads
    if (!loop.msg_ring_doorbells_) return;
    // A duplicate, not the fd itself: a sender's MSG_RING SQE names it until the sender's
    // enter, and the duplicate (closed with the inbox, which senders hold) keeps that fd
    // meaning this ring even after the loop has closed and another file took its number.
    int copy = ::fcntl(loop.ring().native().ring_fd, F_DUPFD_CLOEXEC, 0);
    if (copy >= 0) inbox_->set_doorbell(copy, reinterpret_cast<std::uint64_t>(&doorbell_));
  }

  void expect() {
    ++expected_;
    arm();
  }
  void unexpect() noexcept {
    RINGLOOP_ASSERT(expected_ > 0, "a thread completion taken back that nobody expected");
    --expected_;
    if (state != OpState::idle && !wanted()) loop_.cancel(*this);
  }
  void arm() {
    if (state == OpState::idle && wanted()) loop_.submit(*this);
  }
  const std::shared_ptr<ThreadInbox>& inbox() const noexcept { return inbox_; }
  bool expects_work() const noexcept { return expected_ > 0; }
  // This loop's doorbell record for target (made on first use; a group has a few loops).
  DoorbellSend& doorbell_to(const std::shared_ptr<ThreadInbox>& target) {
    for (auto& known : doorbell_sends_)
      if (known->target() == target.get()) return *known;
    return *doorbell_sends_.emplace_back(std::make_unique<DoorbellSend>(target));
  }

  // The loop is closing: no new posts; what was posted and not run is discarded (or run, for
  // a completion the loop expects); the read stays only for expected completions.
  void close_door() {
    door_closed_ = true;
    drain(inbox_->close_door());
    if (state != OpState::idle && !wanted()) loop_.cancel(*this);
  }

 private:
  bool wanted() const noexcept { return expected_ > 0 || (!door_closed_ && inbox_->kept_alive()); }

  void drain(ThreadCompletion* completion) noexcept {
    while (completion != nullptr) {
      ThreadCompletion* next = completion->next;  // on_loop may end its life
      if (completion->on_discard == nullptr) {
        RINGLOOP_ASSERT(expected_ > 0, "a thread completion came that nobody expected");
        --expected_;
        completion->on_loop(*completion);
      } else if (door_closed_) {
        completion->on_discard(*completion);
      } else {
        completion->on_loop(*completion);
      }
      completion = next;
    }
  }

  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<Wakeup&>(operation);
    io_uring_prep_read(&sqe, self.inbox_->fd(), &self.counter_, sizeof(self.counter_), 0);
  }

  static void complete(Operation& operation, std::int32_t, std::uint32_t) noexcept {
    auto& self = static_cast<Wakeup&>(operation);
    self.drain(self.inbox_->take_all());
    self.arm();
  }

  // The record other loops' MSG_RING doorbells name: each of its CQEs drains the inbox. The
  // eventfd read stays in flight beside it (threads that are not loops still write the eventfd),
  // and is what keeps the loop waiting in the kernel while it is open to posts.
  struct Doorbell : Operation {
    explicit Doorbell(Wakeup& owner) noexcept
        : Operation(&never_prepared, &rung, false), wakeup(owner) {
      unsolicited = true;
    }
    static void never_prepared(Operation&, io_uring_sqe&) noexcept {
      RINGLOOP_ASSERT(false, "the doorbell record was submitted; only other rings post its CQEs");
    }
    static void rung(Operation& operation, std::int32_t, std::uint32_t) noexcept {
      Wakeup& self = static_cast<Doorbell&>(operation).wakeup;
      ++self.loop_.stats_.doorbells_answered;
      self.drain(self.inbox_->take_all());
      // The read is not what completed: cancel it if the drain took the last reason for it (a
      // closing loop waits for every CQE owed).
      if (self.state == OpState::idle)
        self.arm();
      else if (!self.wanted())
        self.loop_.cancel(self);
    }
    Wakeup& wakeup;
  };

  Loop& loop_;
  std::shared_ptr<ThreadInbox> inbox_;
  Doorbell doorbell_;
  std::vector<std::unique_ptr<DoorbellSend>> doorbell_sends_;  // one per loop this one rang
  std::uint64_t counter_ = 0;  // the kernel writes the eventfd's count here
  std::size_t expected_ = 0;   // loop thread only
  bool door_closed_ = false;
};

Loop::~Loop() {
  close();
  if (timer_dispatch_) timer_dispatch_.destroy();
  std::erase(loops_of_this_thread, this);
}

void Loop::queue_due_timer(Operation& timer) {
  timer.state = OpState::due;
  due_timers_.push_back(&timer);
}

// The steps already in the ready queue run before the due timers complete (asyncio appends
// the due timers' callbacks behind them): a task created and awaited under a timeout that is
// already due starts before that timeout cancels it. With nothing queued, they complete now.
void Loop::hand_on_due_timers() {
  if (due_timers_.empty() || timer_dispatch_queued_) return;
  if (ready_.empty()) {
    complete_due_timers(*this);
    return;
  }
  if (!timer_dispatch_) timer_dispatch_ = call_on_each_resume(*this, &complete_due_timers).handle;
  timer_dispatch_queued_ = true;
  ready_.push(timer_dispatch_);
}

void Loop::complete_due_timers(Loop& loop) noexcept {
  loop.timer_dispatch_queued_ = false;
  std::vector<Operation*> batch;
  batch.swap(loop.due_timers_);  // a completion may reap, and queue more, meanwhile
  // Deadline order, then arm order: the kernel posts one reap's expired timeouts in an order of
  // its own (Linux 6.1 reversed two 5 ms timers that fired in the same tick).
  std::sort(batch.begin(), batch.end(), [](const Operation* a, const Operation* b) {
    if (a->deadline_ns != b->deadline_ns) return a->deadline_ns < b->deadline_ns;
    return a->arm_seq < b->arm_seq;
  });
  for (Operation* timer : batch) {
    RINGLOOP_ASSERT(timer->state == OpState::due, "a due timer changed state before completing");
    timer->state = OpState::idle;
    timer->complete(*timer, -ETIME, 0);
  }
  if (loop.due_timers_.empty()) {
    batch.clear();
    loop.due_timers_.swap(batch);  // keeps the capacity for the next batch
  } else {
    loop.hand_on_due_timers();
  }
}

Loop::Wakeup& Loop::wakeup() {
  if (!wakeup_) wakeup_ = std::make_unique<Wakeup>(*this);
  return *wakeup_;
}

std::shared_ptr<ThreadInbox> Loop::thread_inbox() {
  check_thread("thread_inbox");
  if (is_closed()) throw std::logic_error("the event loop " + name_ + " is closed");
  return wakeup().inbox();
}

bool Loop::post_to(const std::shared_ptr<ThreadInbox>& target_ref, ThreadCompletion& completion) {
  // A copy first: target_ref often lives in the state being posted, which the other loop may
  // free as soon as it sees the post (ThreadSanitizer caught the read after it).
  std::shared_ptr<ThreadInbox> target = target_ref;
  switch (target->post_quietly(completion)) {
    case ThreadInbox::Posted::refused:
      return false;
    case ThreadInbox::Posted::queued:
      return true;
    case ThreadInbox::Posted::needs_wake:
      break;
  }
  if (msg_ring_doorbells_ && target->ring_fd() >= 0 && !is_closed() && on_owner_thread()) {
    try {
      wakeup().doorbell_to(target).prepare_sqe(acquire_sqe());
      ++stats_.doorbells_rung;
      return true;
    } catch (...) {  // out of memory: the post is queued already, and must not go unrung
    }
  }
  target->wake();
  ++stats_.eventfd_wakes_sent;
  return true;
}

bool Loop::waits_for_threads() const noexcept { return wakeup_ && wakeup_->expects_work(); }

void Loop::expect_thread_completion() {
  check_thread("expect_thread_completion");
  wakeup().expect();
}

void Loop::unexpect_thread_completion() noexcept {
  RINGLOOP_ASSERT(wakeup_ != nullptr, "unexpect_thread_completion without expect");
  wakeup_->unexpect();
}

void Loop::post_from_thread(ThreadCompletion& completion) noexcept {
  RINGLOOP_ASSERT(wakeup_ != nullptr, "post_from_thread without expect_thread_completion");
  RINGLOOP_ASSERT(completion.on_discard == nullptr, "an expected completion cannot be discarded");
  (void)wakeup_->inbox()->post(completion);  // an expected completion is always taken
}

std::shared_ptr<ThreadInbox> Loop::open_to_threads() {
  check_thread("open_to_threads");
  if (is_closed()) throw std::logic_error("LoopHandle: the event loop is closed");
  wakeup().inbox()->add_keep_alive();
  wakeup_->arm();
  return wakeup_->inbox();
}

Loop& Loop::running(const char* caller) {
  if (current_loop_ == nullptr)
    throw std::logic_error(std::string(caller) +
                           ": no running event loop on this thread; call it from a coroutine "
                           "run by ringloop::run() or Loop::run_until_complete()");
  return *current_loop_;
}

Loop::RunningScope::RunningScope(Loop& loop) : loop_(loop) {
  if (current_loop_ != nullptr)
    throw std::logic_error(
        "a ringloop event loop is already running on this thread: run() and "
        "run_until_complete() cannot be nested; await the coroutine instead");
  loop.check_thread("running");
  if (loop.is_closed()) throw std::logic_error("the event loop is closed");
  current_loop_ = &loop;
  loop.running_ = true;
}

Loop::RunningScope::~RunningScope() {
  loop_.running_ = false;
  loop_.stop_requested_ = false;
  current_loop_ = nullptr;
}

Ring& Loop::ring() {
  if (!ring_) throw std::logic_error("the event loop is closed");
  return *ring_;
}

void Loop::check_thread(const char* what) const {
  // With IORING_SETUP_SINGLE_ISSUER the kernel refuses any other thread (-EEXIST); say so.
  if (std::this_thread::get_id() != owner_)
    throw std::logic_error(std::string("Loop ") + what +
                           " from a thread other than the one that created it; each thread "
                           "needs its own loop");
}

void Loop::make_sq_room(unsigned count) {
  Ring& r = ring();
  RINGLOOP_ASSERT(count <= r.sq_entries(), "more SQEs asked for at once than the SQ holds");
  while (r.sq_space_left() < count) {
    // The SQ is full: hand the batch to the kernel, never fail the operation. If the kernel
    // refuses more (EBUSY: completions pending), reap them first; reaping only schedules.
    if (r.submit() == 0) reap_completions();
  }
}

io_uring_sqe& Loop::take_sqe() noexcept {
  io_uring_sqe* sqe = ring_->try_get_sqe();
  RINGLOOP_ASSERT(sqe != nullptr, "no SQE left after making room for it");
  return *sqe;
}

io_uring_sqe& Loop::acquire_sqe() {
  make_sq_room(1);
  return take_sqe();
}

void Loop::prepare_now(Operation& operation) {
  // A linked pair must sit in adjacent SQEs of one submission: room for both is made first, as
  // a flush between them would send the operation with IOSQE_IO_LINK and no timeout after it.
  make_sq_room(operation.cqe_cost());
  io_uring_sqe& sqe = take_sqe();
  operation.prepare(operation, sqe);
  io_uring_sqe_set_data(&sqe, &operation);
  operation.state = OpState::submitted;
  if (Operation* timeout = operation.link_timeout; timeout != nullptr && virtual_time_) {
    // The deadline is on the virtual clock: the operation goes alone, its timeout stays here.
    add_virtual_timer(*timeout, &operation);
    ++in_flight_;
    return;
  }
  if (Operation* timeout = operation.link_timeout) {
    RINGLOOP_ASSERT(timeout->state == OpState::idle && timeout->link_timeout == nullptr,
                    "a link timeout record was in use, or itself linked");
    sqe.flags |= IOSQE_IO_LINK;  // after prepare: liburing's prep functions clear the flags
    io_uring_sqe& timeout_sqe = take_sqe();
    timeout->prepare(*timeout, timeout_sqe);
    io_uring_sqe_set_data(&timeout_sqe, timeout);
    timeout->state = OpState::submitted;
  }
  in_flight_ += operation.cqe_cost();
  if (operation.daemon) ++daemon_in_flight_;
  ++stats_.operations_submitted;
  stats_.peak_in_flight = std::max<std::uint64_t>(stats_.peak_in_flight, in_flight_);
}

void Loop::set_daemon(Operation& operation, bool daemon) noexcept {
  RINGLOOP_ASSERT(operation.link_timeout == nullptr, "a daemon operation with a link timeout");
  if (operation.daemon == daemon) return;
  operation.daemon = daemon;
  if (operation.state == OpState::submitted) daemon ? ++daemon_in_flight_ : --daemon_in_flight_;
}

void Loop::set_daemon(detail::TaskHook& task, bool daemon) noexcept {
  if (task.daemon == daemon) return;
  task.daemon = daemon;
  if (task.linked()) daemon ? ++daemon_tasks_ : --daemon_tasks_;
}

// Admission (issue #18): ordinary operations get the budget minus the reserve, priority ones
// (accepts, timers, the loop's own) all of it, so a server whose idle reads fill the budget
// still accepts and its timers still fire. An operation that costs more than the whole budget
// (a linked pair with max_in_flight 1) goes alone rather than never.
bool Loop::has_room_for(const Operation& operation) const noexcept {
  std::size_t limit =
      operation.priority || operation.is_timeout ? max_in_flight_ : max_in_flight_ - reserve_;
  return in_flight_ + operation.cqe_cost() <= limit || in_flight_ == 0;
}

detail::IntrusiveList<Operation>& Loop::fifo_of(const Operation& operation) noexcept {
  return operation.priority || operation.is_timeout ? unqueued_priority_ : unqueued_;
}

void Loop::submit(Operation& operation) {
  RINGLOOP_ASSERT(operation.state == OpState::idle, "an operation was submitted twice");
  operation.cancel_sent = false;
  if (operation.deadline_ns != 0 && operation.link_timeout == nullptr)
    operation.arm_seq = ++timers_armed_;
  if (virtual_time_ && operation.is_timeout && operation.deadline_ns != 0 &&
      operation.link_timeout == nullptr) {
    add_virtual_timer(operation, nullptr);
    return;
  }
  Operation* admitted = &operation;
  if (operation.is_timeout && operation.deadline_ns != 0 && operation.link_timeout == nullptr) {
    operation.state = OpState::lazy;  // wait_for's timer is often removed within the iteration
    lazy_timers_.push_back(operation);
    if (lazy_timers_.size() <= kMaxLazyTimers) return;
    admitted = &lazy_timers_.pop_front();  // past the bound: the oldest goes now
    admitted->state = OpState::idle;
  }
  if (fifo_of(*admitted).empty() && has_room_for(*admitted)) {
    prepare_now(*admitted);
    return;
  }
  defer(*admitted);
}

// The budget is full for this operation's class: it waits its turn. The first time, the limit
// is reported (once per loop): a server that meets it needs a larger budget or fewer
// connections, and must not find out by its clients timing out.
void Loop::defer(Operation& operation) {
  operation.state = OpState::unqueued;
  fifo_of(operation).push_back(operation);
  ++stats_.operations_deferred;
  if (limit_reported_) return;
  limit_reported_ = true;
  report_limit("the loop's admission budget is full (" + std::to_string(in_flight_) +
               " CQEs owed, LoopOptions::max_in_flight " + std::to_string(max_in_flight_) +
               "): operations now wait in a FIFO until others complete; raise max_in_flight "
               "(the kernel's overflow list holds what the CQ cannot) or shed connections. "
               "Reported once; LoopStats::operations_deferred counts them");
}

void Loop::submit_deferred() {
  std::int64_t now_ns = 0;  // read once per batch, and only if a timeout is waiting
  // Priority first: a timer or an accept never waits behind a read that could go in.
  for (auto* fifo : {&unqueued_priority_, &unqueued_}) {
    while (!fifo->empty() && has_room_for(fifo->front())) {
      Operation& operation = fifo->pop_front();
      operation.state = OpState::idle;
      if (operation.deadline_ns != 0 && operation.link_timeout == nullptr) {
        if (now_ns == 0) now_ns = monotonic_now_ns();
        if (operation.deadline_ns <= now_ns) {
          // Due already: it ends as its CQE would have ended it, without visiting the kernel.
          queue_due_timer(operation);
          continue;
        }
      }
      prepare_now(operation);
    }
  }
  hand_on_due_timers();
}

// The loop's submit point: the lazy timers armed before this iteration (all of them, when the
// loop is about to block) get their SQEs, or wait in the FIFO like any operation, or end as due
// when their deadline has passed already.
void Loop::flush_lazy_timers(bool all) {
  std::int64_t now_ns = 0;
  while (!lazy_timers_.empty() && (all || lazy_timers_.front().arm_seq <= lazy_aged_seq_)) {
    Operation& timer = lazy_timers_.pop_front();
    timer.state = OpState::idle;
    if (now_ns == 0) now_ns = monotonic_now_ns();
    if (timer.deadline_ns <= now_ns) {
      queue_due_timer(timer);
    } else if (fifo_of(timer).empty() && has_room_for(timer)) {
      prepare_now(timer);
    } else {
      defer(timer);
    }
  }
  // Timers found due here complete after this iteration's reap, behind its I/O completions
  // (reap_completions hands them on), as one reaped with -ETIME would.
}

void Loop::cancel(Operation& operation) {
  switch (operation.state) {
    case OpState::idle:
    case OpState::due:
      return;  // completed already: its result is on its way to the awaiter
    case OpState::lazy:
      // Never given an SQE: it ends here, and the kernel never hears of it.
      lazy_timers_.erase(operation);
      operation.state = OpState::idle;
      operation.complete(operation, -ECANCELED, 0);
      return;
    case OpState::timer:
      erase_virtual_timer(operation);
      operation.complete(operation, -ECANCELED, 0);
      return;
    case OpState::unqueued:
      fifo_of(operation).erase(operation);
      operation.state = OpState::idle;
      // Never submitted: both records of a linked pair end here, as the kernel would end them.
      if (Operation* timeout = operation.link_timeout) timeout->complete(*timeout, -ECANCELED, 0);
      operation.complete(operation, -ECANCELED, 0);
      return;
    case OpState::submitted: {
      // A linked pair is cancelled through its operation: once that ends, the kernel ends the
      // link timeout with -ECANCELED by itself.
      if (operation.cancel_sent) return;
      operation.cancel_sent = true;
      // Bypasses max_in_flight: a cancel must never wait behind what it would free, and there
      // is at most one per operation, so what is owed stays within twice the budget (the
      // overflow list holds what the CQ does not). Its own CQE carries user_data 0 and is
      // only counted.
      io_uring_sqe& sqe = acquire_sqe();
      auto target = reinterpret_cast<std::uint64_t>(&operation);
      if (operation.is_timeout)
        io_uring_prep_timeout_remove(&sqe, target, 0);
      else
        io_uring_prep_cancel64(&sqe, target, 0);
      io_uring_sqe_set_data64(&sqe, 0);
      ++in_flight_;
      return;
    }
  }
}

bool Loop::try_close_detached(int fd) {
  check_thread("try_close_detached");
  if (is_closed() || !unqueued_.empty() || in_flight_ >= max_in_flight_ - reserve_) return false;
  io_uring_sqe& sqe = acquire_sqe();
  io_uring_prep_close(&sqe, fd);
  io_uring_sqe_set_data64(&sqe, 0);  // nobody awaits it: its CQE is only counted
  ++in_flight_;
  return true;
}

namespace {

// The kernel's own "interrupted, restart the call" codes (include/linux/errno.h), which never
// reach a system call's caller but do reach a CQE: io_uring's splice and tee hand on what
// do_splice returned, -ERESTARTSYS included ("Unknown error 512").
constexpr std::int32_t kRestartSys = 512;
constexpr std::int32_t kRestartBlock = 516;  // ERESTART_RESTARTBLOCK, the last of them

// An operation interrupted this many times in a row ends with EINTR (a stop and continue
// interrupts once; only something that keeps interrupting the worker gets this far).
constexpr std::uint8_t kMaxRestartsInARow = 100;

// A CQE's result as a program may see it: the restart codes become -EINTR.
std::int32_t visible_result(std::int32_t result) noexcept {
  return result <= -kRestartSys && result >= -kRestartBlock ? -EINTR : result;
}

}  // namespace

// PEP 475 for the ring. An operation that blocks in one of the kernel's io-wq workers (splice
// from a socket, an open of a FIFO) is interrupted when the process is stopped and continued
// (Ctrl-Z then fg, a debugger, a cgroup freeze) or the worker is signalled: its CQE says -EINTR
// (or a restart code), and nothing was transferred. The program asked for no interruption, so
// the operation is submitted again, as SA_RESTART and Python's PEP 475 do for system calls. Not
// when the interruption is how a cancel arrived: the kernel cancels a running io-wq request by
// signalling its worker, so an operation with a cancel sent, a link timeout (which cancels it
// that way when it fires), or a loop closing keeps its -EINTR; and not a timeout, nor a CQE that
// took a provided buffer (its owner must give it back).
bool Loop::restarts(Operation& operation, std::int32_t result, std::uint32_t flags) noexcept {
  if (result != -EINTR || operation.cancel_sent || operation.is_timeout ||
      operation.link_timeout != nullptr || closing_ || (flags & IORING_CQE_F_BUFFER) != 0 ||
      operation.restarts_in_a_row == kMaxRestartsInARow) {
    operation.restarts_in_a_row = 0;
    return false;
  }
  ++operation.restarts_in_a_row;
  ++stats_.operations_restarted;
  submit(operation);
  return true;
}

void Loop::reap_completions() {
  if (ring_->cq_has_overflow()) ++stats_.cq_overflows;
  unsigned reaped = ring().reap(
      [this](const io_uring_cqe& cqe) {
        std::int32_t result = visible_result(cqe.res);
        auto* operation = reinterpret_cast<Operation*>(io_uring_cqe_get_data(&cqe));
        if (operation != nullptr && operation->unsolicited) {
          operation->complete(*operation, result, cqe.flags);  // another loop's doorbell
          return;
        }
        if ((cqe.flags & IORING_CQE_F_MORE) != 0) {
          // One of a stream (multishot, or SEND_ZC's result before its notification): the
          // operation stays submitted and still owes its last CQE, the one counted in flight.
          RINGLOOP_ASSERT(operation != nullptr && operation->state == OpState::submitted,
                          "a CQE with F_MORE arrived for an operation that was not in flight");
          operation->complete(*operation, result, cqe.flags);
          return;
        }
        RINGLOOP_ASSERT(in_flight_ > 0, "a CQE arrived that no operation was owed");
        --in_flight_;
        if (operation == nullptr) return;  // a cancel request's own answer
        RINGLOOP_ASSERT(operation->state == OpState::submitted,
                        "a CQE arrived for an operation that was not in flight");
        operation->state = OpState::idle;
        if (operation->daemon) --daemon_in_flight_;
        if (restarts(*operation, result, cqe.flags)) return;
        if (result == -ETIME && operation->arm_seq != 0) {
          queue_due_timer(*operation);  // completed after this reap's I/O, in deadline order
          return;
        }
        // Read first: the last CQE of a multishot record may free it (its handle is gone).
        Operation* timeout = operation->link_timeout;
        operation->complete(*operation, result, cqe.flags);
        // Its link timeout on the virtual clock ends as the kernel would end it: cancelled.
        if (timeout != nullptr && timeout->state == OpState::timer) {
          erase_virtual_timer(*timeout);
          timeout->complete(*timeout, -ECANCELED, 0);
        }
      },
      kMaxReapBatch);
  stats_.cqes_reaped += reaped;
  check_dropped_cqes();
  hand_on_due_timers();
}

// Under IORING_FEAT_NODROP the kernel loses a CQE only when it cannot allocate its overflow
// entry: the operation then never completes. Nothing can recover it; it is counted and
// reported, never silent.
void Loop::check_dropped_cqes() noexcept {
  unsigned dropped = ring_->dropped_cqes();
  if (dropped == stats_.cqes_dropped) return;
  stats_.cqes_dropped = dropped;
  if (drop_reported_) return;
  drop_reported_ = true;
  try {
    report_limit("the kernel dropped " + std::to_string(dropped) +
                 " completion(s) (its CQ overflow list could not grow: out of memory); the "
                 "operations they belonged to will never complete. Lower "
                 "LoopOptions::max_in_flight");
  } catch (...) {  // out of memory while formatting: the counter still says it
  }
}

void Loop::wait_and_reap(bool may_block) {
  Ring& r = ring();
  // Blocking with a timer still lazy could wait past its deadline: all go before a blocking
  // enter; otherwise those that have waited an iteration already.
  bool idle = may_block && ready_.empty() && !stop_requested_;
  flush_lazy_timers(idle);
  bool must_wait = idle && due_timers_.empty();
  if (must_wait)
    r.submit_and_wait_one();
  else if (r.queued_sqes() != 0 || r.completions_pending_in_kernel())
    r.submit();  // with DEFER_TASKRUN this also runs the kernel's deferred completions
  reap_completions();
  submit_deferred();
}

bool Loop::run_once() {
  check_thread("run_once");
  ++stats_.iterations;
  lazy_aged_seq_ = timers_armed_;
  // Run only what was ready when the iteration began: a coroutine that reschedules itself
  // (sleep(0) in a loop) runs again after the next enter, so it cannot starve I/O.
  if (debug_)
    run_ready_timed();
  else
    for (std::size_t n = ready_.size(); n > 0; --n) run_step(ready_.pop());
  // The loop's own operations (run()'s SIGINT watch) do not keep it waiting, except while it
  // closes: a program that waits only on them is deadlocked. (An SQE still in the SQ is
  // counted in in_flight_ already.)
  std::size_t owed = closing_ ? in_flight_ : in_flight_ - daemon_in_flight_;
  bool waiting_on_kernel =
      owed != 0 || !unqueued_.empty() || !unqueued_priority_.empty() || !lazy_timers_.empty();
  // Doorbells have no CQE to wait for: a loop with nothing else owed still sends them now.
  if (!waiting_on_kernel && ring_ && ring_->queued_sqes() != 0) ring_->submit();
  if (virtual_timers_.empty()) {
    if (!waiting_on_kernel && ready_.empty()) return false;
    if (waiting_on_kernel) wait_and_reap();  // nothing owed: nothing to submit or reap
    return true;
  }
  // Virtual time with timeouts pending: look at the kernel without waiting (unless work on
  // another thread must come back first), then, if nothing is ready, jump to the next deadline.
  bool idle = ready_.empty() && !stop_requested_;
  if (waiting_on_kernel) wait_and_reap(/*may_block=*/idle && waits_for_threads());
  if (ready_.empty() && !stop_requested_ && !waits_for_threads()) {
    virtual_now_ = std::max(virtual_now_, virtual_timers_.begin()->first);
    fire_due_virtual_timers();
  }
  return true;
}

// Debug mode: each step is timed on the real clock (virtual time does not pass while code runs).
void Loop::run_ready_timed() {
  for (std::size_t n = ready_.size(); n > 0; --n) {
    detail::ReadyStep step = ready_.pop();
    step_file_ = nullptr;
    std::int64_t start = monotonic_now_ns();
    run_step(step);
    std::int64_t took = monotonic_now_ns() - start;
    if (took <= slow_step_ns_) continue;
    if (step_file_ != nullptr)
      std::fprintf(stderr,
                   "ringloop: debug: a step of the loop took %.3f s (in the task created at "
                   "%s:%u%s%s): something blocked the loop's thread\n",
                   static_cast<double>(took) / 1e9, step_file_, step_line_,
                   step_function_ != nullptr ? " in " : "",  // made before debug mode was on
                   step_function_ != nullptr ? step_function_ : "");
    else
      std::fprintf(stderr,
                   "ringloop: debug: a step of the loop took %.3f s (a coroutine outside any "
                   "task, frame %p): something blocked the loop's thread\n",
                   static_cast<double>(took) / 1e9, step.address());
  }
}

void Loop::run_forever() {
  RunningScope scope(*this);
  while (!stop_requested_) {
    if (!run_once() && !stop_requested_)
      throw std::logic_error(
          "run_forever: nothing is scheduled and no operation is in flight, so nothing could "
          "ever wake the loop; stop() it from a task instead");
  }
}

void Loop::cancel_all_tasks() noexcept {
  tasks_.for_each([](detail::TaskHook& task) { detail::cancel_task(task); });
}

void Loop::abandon_stuck_tasks() noexcept {
  if (tasks_.empty()) return;
  // Nothing in flight and nothing ready, yet these tasks have not finished: each is suspended
  // on a foreign awaitable that never resumed it. asyncio destroys such tasks and says so.
  std::fprintf(stderr,
               "ringloop: %zu task(s) never finished: suspended on an awaitable that nothing "
               "in flight can resume; destroyed while pending\n",
               tasks_.size());
  while (!tasks_.empty()) {
    detail::abandon_task(tasks_.pop_front());
  }
}

void Loop::close() {
  if (is_closed()) return;
  if (running_) throw std::logic_error("close(): the event loop is still running");
  if (wakeup_) wakeup_->close_door();
  if (debug_ && (user_task_count() != 0 || user_in_flight() != 0))
    std::fprintf(stderr,
                 "ringloop: debug: closing the loop with %zu operation(s) in flight and %zu "
                 "task(s) pending; cancelling them and waiting for the kernel\n",
                 user_in_flight(), user_task_count());
  closing_ = true;
  if (tasks_.size() != 0 || in_flight() != 0 || !ready_.empty()) {
    // Freeing the ring with operations in flight would let the kernel write into frames after
    // they are gone: cancel everything and drive the loop until the kernel owes nothing.
    RunningScope scope(*this);
    cancel_all_tasks();
    while (!close_hooks_.empty()) {
      detail::CloseHook& hook = close_hooks_.pop_front();
      hook.fn(hook);
    }
    while (run_once()) {
    }
  }
  RINGLOOP_ASSERT(in_flight() == 0, "the loop closed with operations in flight");
  abandon_stuck_tasks();
  if (ring_->queued_sqes() != 0) ring_->submit();  // doorbells, which nothing counts
  ring_.reset();
}

}  // namespace ringloop
