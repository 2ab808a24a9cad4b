// Barrier: asyncio.Barrier (3.11). `parties` tasks meet: each co_await barrier.wait() returns,
// to all of them at once, when the last one arrives, with its arrival index (0 to parties - 1).
// asyncio's algorithm: the barrier fills, then drains (new arrivals wait until every released
// task has left), then fills again; reset() and abort() break the waits with BrokenBarrierError
// (abort() for good, until a reset()). asyncio guards the state with a Condition whose lock is
// never held across a suspension, so here a broadcast of "the state changed" (an Event set and
// cleared) replaces it, with the same order of wake-ups; reset() and abort() need no await.
//
// Cancellation is asyncio's: a task cancelled while it waits for the barrier to fill leaves it
// (n_waiting() drops by one, and the barrier then needs one more arrival); one cancelled while
// the barrier drains or resets leaves without taking a place.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cstddef>
#include <stdexcept>

#include <ringloop/coro/errors.hpp>
#include <ringloop/coro/sync/event.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

class Barrier {
 public:
  // Throws std::invalid_argument for 0 parties (asyncio's ValueError).
  explicit Barrier(std::size_t parties) : parties_(parties) {
    if (parties == 0) throw std::invalid_argument("Barrier: parties must be > 0");
  }
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // co_await barrier.wait(): returns the arrival index once `parties` tasks wait, or throws
  // BrokenBarrierError if the barrier is aborted or reset meanwhile (or is broken already).
  Coro<std::size_t> wait();
  // Back to the empty, filling state; tasks waiting now throw BrokenBarrierError. (asyncio's
  // reset() and abort() are coroutines only to take the Condition's lock.)
  void reset() {
    state_ = count_ > 0 ? State::resetting : State::filling;  // the last to leave: filling
    notify_all();
  }
  // Broken until a reset(): tasks waiting now and later throw BrokenBarrierError.
  void abort() {
    state_ = State::broken;
    notify_all();
  }

  std::size_t parties() const noexcept { return parties_; }
  // The tasks waiting for the barrier to fill (0 while it drains, resets or is broken).
  std::size_t n_waiting() const noexcept { return state_ == State::filling ? count_ : 0; }
  bool broken() const noexcept { return state_ == State::broken; }

 private:
  enum class State { filling, draining, resetting, broken };

  // Wakes every wait of wait(), in the order they came; each checks the state again.
  void notify_all() {
    changed_.set();
    changed_.clear();
  }

  // asyncio's `finally` in wait(): the task leaves the barrier; the last to leave a draining or
  // resetting barrier opens it for the next round.
  struct Leave {
    explicit Leave(Barrier& b) noexcept : barrier(b) {}
    Leave(const Leave&) = delete;
    Leave& operator=(const Leave&) = delete;
    ~Leave() {
      --barrier.count_;
      if (barrier.count_ == 0) {
        if (barrier.state_ == State::resetting || barrier.state_ == State::draining)
          barrier.state_ = State::filling;
        barrier.notify_all();
      }
    }
    Barrier& barrier;
  };

  Event changed_;  // set and cleared at every state change: wakes the waits
  std::size_t parties_;
  std::size_t count_ = 0;  // tasks inside wait(), between arrival and leaving
  State state_ = State::filling;
};

inline Coro<std::size_t> Barrier::wait() {
  // Block while the barrier drains or resets (asyncio's _block()).
  while (state_ == State::draining || state_ == State::resetting) co_await changed_.wait();
  if (state_ == State::broken) throw BrokenBarrierError("Barrier aborted");
  std::size_t index = count_++;
  Leave leave{*this};
  if (index + 1 == parties_) {
    state_ = State::draining;  // the last arrival releases the others (asyncio's _release())
    notify_all();
  } else {
    while (state_ == State::filling) co_await changed_.wait();
    if (state_ == State::broken || state_ == State::resetting)
      throw BrokenBarrierError("Barrier: aborted or reset while waiting");
  }
  co_return index;
}

}  // namespace ringloop
