// What the synchronisation primitives (Event, Lock, Semaphore, Condition, Queue) share: a
// waiter, which lives in the awaiter (in the waiting coroutine's frame) and links into its
// primitive's FIFO, so a wait never allocates; and the loop a primitive is bound to.
//
// A waiter is woken by being *granted* what it waits for (the lock, a permit, an item) and
// scheduled on its loop; set(), release() and put() never resume a coroutine inline. Between
// the grant and the waiter's resumption its task may still be cancelled. As in asyncio (whose
// Task.cancel() finds the waiter's future done and sets _must_cancel), that cancel is left
// pending on the task: uncancel() can still take it back (Python 3.13's rule), and the waiter
// then keeps its grant. If it is still pending when the waiter resumes, the waiter gives the
// grant back (the lock, permit, item or place goes on to the next waiter, as asyncio's Lock,
// Semaphore and Queue do in their `except CancelledError`) and throws CancelledError.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <ringloop/coro/detail/promise.hpp>
#include <ringloop/loop/detail/intrusive_list.hpp>

namespace ringloop::detail {

// The event loop a primitive belongs to: the loop of the first coroutine that awaits it
// (asyncio's _LoopBoundMixin). Its waiters are scheduled there, so awaiting it from another
// loop is refused.
class LoopBinding {
 public:
  Loop& bind(Loop& loop, const char* what) {
    if (loop_ == nullptr) loop_ = &loop;
    if (loop_ != &loop) throw_other_loop(what, loop);
    return loop;
  }

  // For the calls that do not wait (set, release, put_nowait...): they wake waiters on the
  // bound loop, which is wrong from inside another running loop.
  void check(const char* what) const {
    Loop* running = Loop::current();
    if (loop_ != nullptr && running != nullptr && running != loop_)
      throw_other_loop(what, *running);
  }

 private:
  [[noreturn]] void throw_other_loop(const char* what, const Loop& used_from) const {
    throw std::logic_error(
        std::string(what) + ": this primitive is bound to another event loop, " + loop_->name() +
        " (the loop of the first coroutine that awaited it) and was used "
        "from " +
        used_from.name() + "; use one primitive per loop (across loops, a LoopGroup's call())");
  }

  Loop* loop_ = nullptr;
};

class Waiter;
using WaitList = IntrusiveList<Waiter>;

// One coroutine waiting on a primitive. The concrete awaiter supplies the cancel handler,
// which decides what happens to a grant that its task will no longer use.
class Waiter : public ListNode, public CancelPoint {
 public:
  enum class State : std::uint8_t {
    idle,
    queued,     // linked in a primitive's list, suspended
    granted,    // has what it waited for (scheduled to resume, or did not suspend)
    cancelled,  // will throw CancelledError when it resumes
  };

  explicit Waiter(RequestFn on_cancel) noexcept : CancelPoint(on_cancel) {}
  // Moved only before it is awaited: wait_for(lock.acquire(), timeout) and gather move the
  // awaiter into the frame of the coroutine that awaits it.
  Waiter(Waiter&& other) noexcept : ListNode(), CancelPoint(other) {
    RINGLOOP_ASSERT(other.state_ == State::idle, "a primitive's awaiter moved after its await");
  }
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  // A frame destroyed while suspended here (a task abandoned when its loop closed, a foreign
  // coroutine destroyed by its owner) leaves its primitive's list, not a dangling node in it.
  ~Waiter() {
    if (linked()) list_->erase(*this);
  }

  bool await_ready() const noexcept { return false; }

  // Grants the first waiter of list and schedules it. False when the list is empty.
  static bool grant_first(WaitList& list) noexcept {
    if (list.empty()) return false;
    list.pop_front().wake(State::granted);
    return true;
  }
  static void grant_all(WaitList& list) noexcept {
    while (grant_first(list)) {
    }
  }

  // The cancel handler of every waiter but Condition's: a queued waiter leaves its list and
  // resumes to throw; a granted one leaves the cancel pending on its task (false: see above).
  static bool cancel_unless_granted(CancelPoint& point) noexcept {
    auto& self = static_cast<Waiter&>(point);
    if (self.state_ == State::queued) self.withdraw();
    return self.state_ != State::granted;
  }

 protected:
  // First step of every await_suspend: binds the primitive to the awaiting coroutine's loop.
  // Returns false when the task has a cancel pending: the await then throws CancelledError at
  // once, without taking anything (the state says cancelled, and the caller must not suspend).
  template <class P>
  bool start(std::coroutine_handle<P> awaiting, LoopBinding& binding, const char* what) {
    task_ = task_of(awaiting);
    loop_ = &binding.bind(loop_for(task_, what), what);
    awaiting_ = awaiting;
    if (task_ != nullptr && task_->must_cancel) {
      state_ = State::cancelled;
      return false;
    }
    return true;
  }

  // Suspends in list, as a cancel point of the awaiting task (a foreign coroutine has none).
  void enqueue(WaitList& list) noexcept {
    list.push_back(*this);
    list_ = &list;
    state_ = State::queued;
    if (task_ != nullptr) task_->suspend_on(*this);
  }

  // Cancel of a queued waiter: it leaves the list and resumes to throw CancelledError.
  void withdraw() noexcept {
    RINGLOOP_ASSERT(state_ == State::queued, "withdrawing a waiter that is not queued");
    list_->erase(*this);
    wake(State::cancelled);
  }

  // First step of an await_resume whose grant must be given back when refused: true when a
  // cancel that came after the grant is still pending (not taken back by uncancel()). The
  // waiter is then cancelled, and finish() throws.
  bool refuse_grant_if_cancelled() noexcept {
    if (state_ != State::granted || task_ == nullptr || !task_->must_cancel) return false;
    state_ = State::cancelled;
    return true;
  }

  // True when this waiter was granted by a wake-up (queued first), not at once in await_suspend.
  bool was_queued() const noexcept { return list_ != nullptr; }

  // Last step of every await_resume: throws CancelledError if the wait was cancelled.
  void finish() {
    // A cancel is pending here only if the wait was refused at start(), or came after the grant
    // and refuse_grant_if_cancelled() gave the grant back: a grant still held never throws from
    // resumed(), which would lose it.
    RINGLOOP_ASSERT(task_ == nullptr || !task_->must_cancel || state_ == State::cancelled,
                    "a cancel became pending during a primitive's wait");
    if (task_ != nullptr) task_->resumed();
    if (state_ == State::cancelled) throw cancelled_error(task_);
  }

  void wake(State outcome) noexcept {
    state_ = outcome;
    loop_->schedule(awaiting_);
  }

  State state_ = State::idle;
  WaitList* list_ = nullptr;  // the list this waiter is (or was last) queued in
  TaskCore* task_ = nullptr;
  Loop* loop_ = nullptr;
  std::coroutine_handle<> awaiting_;
};

}  // namespace ringloop::detail
