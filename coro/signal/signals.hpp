// Signals through the ring (asyncio's loop.add_signal_handler). add_signal_handler blocks the
// signal in the calling thread and reads it from a signalfd with IORING_OP_READ, in a small
// task of the loop; the handler runs there, on the loop's thread, as ordinary code (it may
// start tasks, cancel them, stop the loop). remove_signal_handler gives the signal back its
// previous disposition; a pending instance is consumed first, so removing a handler never
// delivers a signal the handler was meant to take.
//
// Threads that exist already keep their own signal masks: add handlers before starting other
// threads (ringloop's thread pool starts its workers on first use, from the loop's thread, and
// inherits the mask), or block the signals there too.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <functional>
#include <memory>

#include <ringloop/coro/detail/task_core.hpp>
#include <ringloop/loop/loop.hpp>

namespace ringloop {

// Installs fn for signal on loop (replacing a handler installed before). Throws
// std::invalid_argument for a signal that cannot be caught (SIGKILL, SIGSTOP) or is out of
// range, std::logic_error when the loop is closed or called from another thread.
void add_signal_handler(Loop& loop, int signal, std::function<void()> fn);
void add_signal_handler(int signal, std::function<void()> fn);  // the running loop

// Removes the handler; false when there was none.
bool remove_signal_handler(Loop& loop, int signal);
bool remove_signal_handler(int signal);

namespace detail {

// run()'s rule, asyncio's: in the main thread, when SIGINT still has its default action and is
// not blocked (the program does not handle it itself), the
// first SIGINT cancels the main task (run() then throws KeyboardInterrupt if it ended
// cancelled), and a second one, while the main task is still unwinding, kills the process as
// SIGINT's default action does.
class InterruptMainOnSigint {
 public:
  InterruptMainOnSigint(Loop& loop, TaskCore& main);
  InterruptMainOnSigint(const InterruptMainOnSigint&) = delete;
  InterruptMainOnSigint& operator=(const InterruptMainOnSigint&) = delete;
  ~InterruptMainOnSigint();
  unsigned interrupts() const noexcept { return state_->interrupts; }

  struct State {
    Loop* loop;
    TaskCore* main;  // null once run() is done with it
    unsigned interrupts;
  };

 private:
  std::shared_ptr<State> state_;
};

}  // namespace detail
}  // namespace ringloop
