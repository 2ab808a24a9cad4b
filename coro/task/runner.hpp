// Runner: asyncio.Runner (3.11), a loop kept across several run() calls. Each run(coro) runs coro
// as the main task until it finishes, with run()'s SIGINT rule (the code is run()'s own); tasks
// it leaves behind stay pending and go on in the next run(). close() (or the destructor) cancels
// what is left and waits for it, as run() does at its end.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <optional>
#include <stdexcept>
#include <utility>

#include <ringloop/coro/task/run.hpp>

namespace ringloop {

class Runner {
 public:
  explicit Runner(const LoopOptions& options = {}) : options_(options) {}
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;
  ~Runner() { close(); }

  // Runs coro (a Coro, or any awaitable create_task takes) on the runner's loop to its end;
  // returns its result or rethrows (KeyboardInterrupt after Ctrl-C, as run() does). Refused
  // inside a running loop and after close().
  template <detail::TaskSource A>
  auto run(A coro) {
    return detail::run_main(get_loop(), detail::as_coro(std::move(coro)),
                            options_.cancel_main_on_sigint, "Runner::run()");
  }

  // The runner's loop, made on first use (asyncio's Runner.get_loop()).
  Loop& get_loop() {
    if (closed_) throw std::logic_error("Runner: the runner is closed");
    if (!loop_) loop_.emplace(options_);
    return *loop_;
  }

  // Cancels the tasks still pending, waits for them and every operation in flight, and closes
  // the loop. Idempotent.
  void close() {
    if (closed_) return;
    closed_ = true;
    if (loop_) loop_->close();
  }

 private:
  LoopOptions options_;
  std::optional<Loop> loop_;
  bool closed_ = false;
};

}  // namespace ringloop
