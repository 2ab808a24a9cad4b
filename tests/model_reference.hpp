// The reference model: a small discrete-event interpreter of a model::Program in virtual time,
// with ringloop's documented rules and none of its code. Its own tiny coroutines carry Outcome
// values instead of exceptions; a task is a record with asyncio's state (done, a pending cancel,
// the point it waits on, its waiters); time is a list of timers, and a FIFO ready queue runs what
// is ready, as ringloop's loop does.
//
// Rules modelled (ringloop's, which are asyncio's except where noted in the README):
// - a task starts on the loop's next step; one cancelled before it started never runs its body;
// - cancel() asks the point the task waits on to end the wait (a sleep not fired yet ends with
//   CancelledError; awaiting a task forwards the cancel to it; gather cancels every child, once;
//   a wait_for's body runs in the caller's task, so a cancel goes to what the body waits on);
//   when the point cannot take it (the sleep fired, the awaited task has finished) the cancel is
//   remembered and thrown at the task's next await point, even one that completed;
// - gather: the first child that fails (CancelledError included) cancels the others, and is
//   rethrown once all have finished; with return_exceptions every outcome is handed back;
// - wait_for (Python 3.12's `async with timeout(): return await coro`): the body runs in the
//   caller's task, started inline; if it finishes without suspending there is no timer; when the
//   timer fires first the caller's task is cancelled; as the body ends, the timer is removed
//   (the caller goes on in that step) and the task's cancel request taken back: TimeoutError if
//   the body ended cancelled and no other cancel came, its value if it swallowed the cancel.
//
// Timers due at the same tick may complete in any order in the kernel, and in one reap or in
// several; so may timers removed in one iteration: run() takes a policy that orders both and
// says whether the due ones complete as one batch. A timer's SQE goes to the kernel at the
// loop's next submit point only if the loop is about to block, else one iteration later
// (ringloop's lazy timers): removed before then, it ends at once with no CQE to wait for.
// A program is unambiguous when every policy gives the same events at the same ticks.
#pragma once

#include <algorithm>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "tests/model_program.hpp"

namespace model::reference {

class VLoop;

struct CancelPoint {
  virtual bool request_cancel() = 0;

 protected:
  ~CancelPoint() = default;
};

struct VTask {
  bool done = false;
  bool must_cancel = false;
  int cancel_requests = 0;  // asyncio's cancelling()
  Outcome result;
  CancelPoint* waiting_on = nullptr;
  std::vector<std::function<void()>> waiters;  // called in order when the task finishes
  std::coroutine_handle<> driver;

  bool cancel() {
    if (done) return false;
    ++cancel_requests;
    if (waiting_on != nullptr && waiting_on->request_cancel()) return true;
    must_cancel = true;
    return true;
  }
  // Python 3.13's uncancel(): a pending cancel goes when the count returns to 0.
  int uncancel() {
    if (cancel_requests > 0 && --cancel_requests == 0) must_cancel = false;
    return cancel_requests;
  }
  // What every await point does as it resumes: a remembered cancel surfaces here.
  bool resumed_cancelled() {
    waiting_on = nullptr;
    return std::exchange(must_cancel, false);
  }
  void finish(Outcome o) {
    done = true;
    result = o;
    auto callbacks = std::move(waiters);
    for (auto& callback : callbacks) callback();
  }
};

// A lazy coroutine returning an Outcome; awaiting it runs it, by symmetric transfer.
class VCoro {
 public:
  struct promise_type {
    Outcome result;
    std::coroutine_handle<> continuation;
    VCoro get_return_object() {
      return VCoro(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Final {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        return h.promise().continuation;
      }
      void await_resume() noexcept {}
    };
    Final final_suspend() noexcept { return {}; }
    void return_value(Outcome o) { result = o; }
    void unhandled_exception() { std::terminate(); }
  };

  explicit VCoro(std::coroutine_handle<promise_type> h) : h_(h) {}
  VCoro(VCoro&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  VCoro& operator=(VCoro&&) = delete;
  ~VCoro() {
    if (h_) h_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
    h_.promise().continuation = parent;
    return h_;
  }
  Outcome await_resume() const { return h_.promise().result; }

 private:
  std::coroutine_handle<promise_type> h_;
};

// The root of a task: runs the body unless a cancel came first, then finishes the task.
struct VDriver {
  struct promise_type {
    VDriver get_return_object() {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }  // freed by the loop
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

inline VDriver drive(VTask* task, VCoro body) {
  Outcome o = Outcome::cancelled();
  if (!task->resumed_cancelled()) o = co_await body;
  task->finish(o);
}

struct Timer {
  long long due = 0;
  std::uint64_t order = 0;  // when it was armed
  bool armed = false;
  std::uint64_t armed_in = 0;  // the loop iteration that armed it
  bool submitted = false;      // its SQE has gone to the kernel
  virtual void fire() = 0;

 protected:
  ~Timer() = default;
};

struct Policy {
  int order = 0;       // 0: as armed; 1: reversed; otherwise shuffled with this as the seed
  bool batch = false;  // all timers of a tick complete before anything runs (one reap)
};

class VLoop {
 public:
  ~VLoop() {
    for (auto& task : tasks_) task->driver.destroy();
  }

  long long now() const { return now_; }
  VTask* current() const { return current_; }

  void schedule(std::coroutine_handle<> h, VTask* task) {
    ready_.push_back([this, h, task] {
      current_ = task;
      h.resume();
      current_ = nullptr;
    });
  }

  // Removes an armed timer; `complete` (which may only schedule) runs as ringloop ends it: at
  // once if it never reached the kernel, else with the reap of the iteration that asked (the
  // CQE of the TIMEOUT_REMOVE'd timer).
  void remove(Timer& timer, std::function<void()> complete) {
    bool submitted = timer.submitted;
    disarm(timer);
    if (submitted)
      kernel_.push_back(std::move(complete));
    else
      complete();
  }

  // create_task: the task starts on a later step.
  VTask* create_task(VCoro body) {
    VTask* task = make_task(std::move(body));
    schedule(task->driver, task);
    return task;
  }
  VTask* make_task(VCoro body) {
    tasks_.push_back(std::make_unique<VTask>());
    VTask* task = tasks_.back().get();
    task->driver = drive(task, std::move(body)).handle;
    return task;
  }
  void arm(Timer& timer, long long due) {
    timer.due = due;
    timer.order = next_order_++;
    timer.armed = true;
    timer.armed_in = iteration_;
    timer.submitted = false;
    timers_.push_back(&timer);
  }
  // A timer leaves the list as soon as it is disarmed or fires: its awaiter's frame may go, and
  // its address be reused by another.
  void disarm(Timer& timer) {
    timer.armed = false;
    std::erase(timers_, &timer);
  }

  // Runs until root finishes. Returns false on a deadlock (nothing ready, no timer armed).
  bool run(VTask* root, const Policy& policy) {
    std::mt19937_64 shuffle(static_cast<std::uint64_t>(policy.order));
    reap_order_ = policy.order;
    reap_shuffle_.seed(static_cast<std::uint64_t>(policy.order) + 1);
    for (;;) {
      drain();
      if (root->done) return true;
      if (timers_.empty()) return false;
      long long due = (*std::min_element(timers_.begin(), timers_.end(), [](Timer* a, Timer* b) {
                        return a->due < b->due;
                      }))->due;
      std::vector<std::pair<std::uint64_t, Timer*>> firing;  // (order, timer): order is unique
      for (Timer* t : timers_)
        if (t->due == due) firing.emplace_back(t->order, t);
      std::sort(firing.begin(), firing.end());
      if (policy.order == 1) std::reverse(firing.begin(), firing.end());
      if (policy.order > 1) std::shuffle(firing.begin(), firing.end(), shuffle);
      now_ = due;
      for (auto [order, t] : firing) {
        if (!armed(t, order)) continue;  // removed by one that fired before it
        disarm(*t);
        t->fire();
        if (!policy.batch) drain();
      }
    }
  }

  bool armed(Timer* t, std::uint64_t order) const {
    for (Timer* armed_timer : timers_)
      if (armed_timer == t && t->order == order) return true;
    return false;
  }

  bool all_tasks_done() const {
    return std::all_of(tasks_.begin(), tasks_.end(), [](const auto& t) { return t->done; });
  }

 private:
  // ringloop's iterations: run what was ready when the iteration began, then hand the SQEs to
  // the kernel and reap; the answers to this iteration's cancel requests come back there.
  void drain() {
    while (!ready_.empty() || !kernel_.empty()) {
      ++iteration_;
      for (std::size_t n = ready_.size(); n > 0; --n) {
        auto step = std::move(ready_.front());
        ready_.pop_front();
        step();
      }
      submit_point();
      auto completions = std::move(kernel_);
      kernel_.clear();
      // Removed timers' CQEs of one reap come in the kernel's order, not the requests' (Linux
      // 6.1 reverses them): the policy orders them as it orders timers due together.
      if (reap_order_ == 1) std::reverse(completions.begin(), completions.end());
      if (reap_order_ > 1) std::shuffle(completions.begin(), completions.end(), reap_shuffle_);
      for (auto& complete : completions) complete();
    }
  }

  // ringloop's lazy timers: a timer's SQE goes to the kernel at the submit point of the
  // iteration after the one that armed it, or of its own if the loop is about to block (nothing
  // ready). Removed before then, it ends at once in user space.
  void submit_point() {
    bool idle = ready_.empty();
    for (Timer* t : timers_)
      if (idle || t->armed_in < iteration_) t->submitted = true;
  }

  long long now_ = 0;
  int reap_order_ = 0;  // Policy::order
  std::mt19937_64 reap_shuffle_;
  std::uint64_t iteration_ = 0;
  std::uint64_t next_order_ = 0;
  VTask* current_ = nullptr;
  std::deque<std::function<void()>> ready_;
  std::vector<std::function<void()>> kernel_;
  std::vector<Timer*> timers_;
  std::vector<std::unique_ptr<VTask>> tasks_;
};

class SleepAwaiter final : CancelPoint, Timer {
 public:
  SleepAwaiter(VLoop& loop, long long ticks) : loop_(loop), ticks_(ticks) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    task_ = loop_.current();
    if (task_->must_cancel) return false;  // a pending cancel: no timer, resume now
    h_ = h;
    loop_.arm(*this, loop_.now() + ticks_);
    task_->waiting_on = this;
    return true;
  }
  Outcome await_resume() {
    if (task_->resumed_cancelled() || cancel_taken_) return Outcome::cancelled();
    return Outcome::of(static_cast<int>(ticks_));
  }

 private:
  void fire() override {
    fired_ = true;
    loop_.schedule(h_, task_);
  }
  bool request_cancel() override {
    if (fired_) return false;  // its resume is on its way: the cancel waits for the next await
    if (cancel_taken_) return true;  // one cancel is on its way already
    cancel_taken_ = true;
    loop_.remove(*this, [this] { loop_.schedule(h_, task_); });
    return true;
  }

  VLoop& loop_;
  long long ticks_;
  VTask* task_ = nullptr;
  std::coroutine_handle<> h_;
  bool fired_ = false;
  bool cancel_taken_ = false;
};

class TaskAwaiter final : CancelPoint {
 public:
  TaskAwaiter(VLoop& loop, VTask* target) : loop_(loop), target_(target) {}
  bool await_ready() const noexcept { return target_->done; }
  void await_suspend(std::coroutine_handle<> h) {
    task_ = loop_.current();
    target_->waiters.push_back([this, h] { loop_.schedule(h, task_); });
    task_->waiting_on = this;
    if (task_->must_cancel && target_->cancel()) task_->must_cancel = false;
  }
  Outcome await_resume() {
    if (task_ != nullptr && task_->resumed_cancelled()) return Outcome::cancelled();
    return target_->result;
  }

 private:
  bool request_cancel() override { return target_->cancel(); }

  VLoop& loop_;
  VTask* target_;
  VTask* task_ = nullptr;
};

class GatherAwaiter final : CancelPoint {
 public:
  GatherAwaiter(VLoop& loop, std::vector<VCoro> bodies, bool return_exceptions)
      : loop_(loop), bodies_(std::move(bodies)), return_exceptions_(return_exceptions) {}
  bool await_ready() const noexcept { return bodies_.empty(); }
  void await_suspend(std::coroutine_handle<> h) {
    outer_ = loop_.current();
    h_ = h;
    for (VCoro& body : bodies_) children_.push_back(loop_.create_task(std::move(body)));
    remaining_ = children_.size();
    for (std::size_t i = 0; i < children_.size(); ++i)
      children_[i]->waiters.push_back([this, i] { child_done(i); });
    outer_->waiting_on = this;
    if (outer_->must_cancel) {
      outer_->must_cancel = false;
      request_cancel();
    }
  }
  Outcome await_resume() {
    if (outer_->resumed_cancelled() || cancel_taken_) return Outcome::cancelled();
    if (!return_exceptions_ && first_failed_ >= 0)
      return children_[static_cast<std::size_t>(first_failed_)]->result;
    int acc = 0;
    for (std::size_t i = 0; i < children_.size(); ++i) {
      const Outcome& o = children_[i]->result;
      acc = mix(acc, i, return_exceptions_ ? code_of(o) : o.value);
    }
    return Outcome::of(acc);
  }

 private:
  void child_done(std::size_t i) {
    --remaining_;
    if (!children_[i]->result.ok() && first_failed_ < 0 && !return_exceptions_) {
      first_failed_ = static_cast<long>(i);
      cancel_children();
    }
    if (remaining_ == 0) loop_.schedule(h_, outer_);
  }
  // Once per gather, whichever comes first: a failure or the gather's own cancel.
  void cancel_children() {
    if (children_cancelled_) return;
    children_cancelled_ = true;
    for (VTask* child : children_) child->cancel();
  }
  bool request_cancel() override {
    cancel_taken_ = true;
    cancel_children();
    return true;
  }

  VLoop& loop_;
  std::vector<VCoro> bodies_;
  bool return_exceptions_;
  std::vector<VTask*> children_;
  std::size_t remaining_ = 0;
  long first_failed_ = -1;
  VTask* outer_ = nullptr;
  std::coroutine_handle<> h_;
  bool cancel_taken_ = false;
  bool children_cancelled_ = false;
};

// Runs a wait_for's body in the caller's task and, as it ends, calls its awaiter, which says
// where to go next (the caller, or nowhere while the caller cannot go on yet).
class InlineBody {
 public:
  struct promise_type {
    std::function<std::coroutine_handle<>(Outcome)> on_end;
    Outcome result;
    bool ended = false;
    InlineBody get_return_object() {
      return InlineBody(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Final {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        promise_type& p = h.promise();
        p.ended = true;
        return p.on_end ? p.on_end(p.result) : std::noop_coroutine();
      }
      void await_resume() noexcept {}
    };
    Final final_suspend() noexcept { return {}; }
    void return_value(Outcome o) { result = o; }
    void unhandled_exception() { std::terminate(); }
  };
  explicit InlineBody(std::coroutine_handle<promise_type> h) : h_(h) {}
  InlineBody(InlineBody&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  InlineBody& operator=(InlineBody&&) = delete;
  ~InlineBody() {
    if (h_) h_.destroy();
  }
  promise_type& promise() { return h_.promise(); }
  void start() { h_.resume(); }

 private:
  std::coroutine_handle<promise_type> h_;
};

inline InlineBody run_body(VCoro body) { co_return co_await body; }

class WaitForAwaiter final : Timer {
 public:
  WaitForAwaiter(VLoop& loop, VCoro body, long long ticks)
      : loop_(loop), body_(run_body(std::move(body))), due_(loop.now() + ticks) {}
  ~WaitForAwaiter() {
    if (armed) loop_.disarm(*this);
  }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    task_ = loop_.current();
    h_ = h;
    cancelling_at_entry_ = task_->cancel_requests;
    body_.start();  // in the caller's task: its awaits take the caller's cancels
    if (body_.promise().ended) return false;  // finished without suspending: no timer
    body_.promise().on_end = [this](Outcome) { return on_body_end(); };
    loop_.arm(*this, due_);
    return true;
  }
  Outcome await_resume() {
    Outcome o = body_.promise().result;
    if (expired_ && task_->uncancel() <= cancelling_at_entry_ && o.what == Outcome::What::cancelled)
      return Outcome::timeout();
    return o;
  }

 private:
  void fire() override {
    expired_ = true;
    task_->cancel();
  }
  std::coroutine_handle<> on_body_end() {
    // The timer goes (its CQE, if the kernel has it, frees a record the caller no longer
    // needs) and the caller goes on now.
    if (armed) loop_.remove(*this, [] {});
    return h_;
  }

  VLoop& loop_;
  InlineBody body_;
  long long due_;
  VTask* task_ = nullptr;
  std::coroutine_handle<> h_;
  int cancelling_at_entry_ = 0;
  bool expired_ = false;
};

struct Interpreter {
  const Program& program;
  VLoop& loop;
  std::vector<Event> events;

  void record(int node, EventKind kind, Outcome o = {}) {
    events.push_back(Event{node, kind, o, loop.now()});
  }
  const Node& node(int id) const { return program.nodes[static_cast<std::size_t>(id)]; }

  VCoro exec(int id) {
    record(id, EventKind::enter);
    Outcome o = co_await body(id);
    record(id, EventKind::exit, o);
    co_return o;
  }

  VCoro body(int id) {
    const Node& n = node(id);
    switch (n.kind) {
      case Kind::value:
        co_return Outcome::of(n.arg);
      case Kind::raise:
        co_return Outcome::error(n.arg);
      case Kind::sleep:
        co_return co_await SleepAwaiter(loop, n.arg);
      case Kind::sequence: {
        int acc = 0;
        for (std::size_t i = 0; i < n.kids.size(); ++i) {
          Outcome o = co_await exec(n.kids[i]);
          if (!o.ok()) co_return o;
          acc = mix(acc, i, o.value);
        }
        co_return Outcome::of(acc);
      }
      case Kind::try_catch: {
        Outcome o = co_await exec(n.kids[0]);
        if (o.ok() || !catches(n.arg, o)) co_return o;
        Outcome h = co_await exec(n.kids[1]);
        if (!h.ok()) co_return h;
        co_return Outcome::of(mix(h.value, 1, code_of(o)));
      }
      case Kind::gather: {
        std::vector<VCoro> kids;
        for (int kid : n.kids) kids.push_back(exec(kid));
        co_return co_await GatherAwaiter(loop, std::move(kids), n.arg != 0);
      }
      case Kind::wait_for:
        co_return co_await WaitForAwaiter(loop, exec(n.kids[0]), n.arg);
      case Kind::spawn: {
        VTask* task = loop.create_task(exec(n.kids[0]));
        Outcome pre = co_await exec(n.kids[1]);
        if (!pre.ok()) {
          // As the ringloop runner does: no task outlives its spawn node.
          task->cancel();
          (void)co_await TaskAwaiter(loop, task);
          co_return pre;
        }
        int cancel_code = 0;
        if (n.arg != 0) {
          bool taken = task->cancel();
          record(id, EventKind::cancel_returned, Outcome::of(taken ? 1 : 0));
          cancel_code = taken ? 1 : 2;
        }
        Outcome o = co_await TaskAwaiter(loop, task);
        if (!o.ok()) co_return o;
        co_return Outcome::of(mix(mix(pre.value, 1, o.value), 2, cancel_code));
      }
    }
    co_return Outcome::error(-1);
  }
};

struct Result {
  bool finished = false;  // false: a deadlock in the model
  std::vector<Event> events;
  long long end_tick = 0;
};

inline Result run(const Program& program, const Policy& policy) {
  VLoop loop;
  Interpreter interpreter{program, loop, {}};
  VTask* root = loop.create_task(interpreter.exec(0));
  Result result;
  result.finished = loop.run(root, policy) && loop.all_tasks_done();
  result.end_tick = loop.now();
  result.events = std::move(interpreter.events);
  return result;
}

}  // namespace model::reference
