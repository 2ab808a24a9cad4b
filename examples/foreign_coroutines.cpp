// Drives a coroutine type that knows nothing of ringloop on ringloop's loop: started on another
// thread, it moves onto the loop with LoopHandle::schedule(), then awaits ringloop's sleep and an
// io_uring write as any awaitable. The type below uses only the standard library, as a
// coroutine type from another library would.
#include <coroutine>
#include <exception>
#include <functional>

namespace other_library {

// Eager and detached: runs at once, frees its own frame, calls on_done at the end.
struct Fire {
  struct promise_type {
    Fire get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

}  // namespace other_library

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;

namespace {

std::string thread_name(std::thread::id loop_thread) {
  return std::this_thread::get_id() == loop_thread ? "the loop's thread" : "another thread";
}

other_library::Fire greet(ringloop::LoopHandle handle, std::thread::id loop_thread,
                          ringloop::Loop& loop) {
  std::printf("foreign coroutine: started on %s\n", thread_name(loop_thread).c_str());
  co_await handle.schedule();
  std::printf("foreign coroutine: now on %s\n", thread_name(loop_thread).c_str());
  auto start = std::chrono::steady_clock::now();
  co_await ringloop::sleep(100ms);  // an IORING_OP_TIMEOUT on the loop's ring
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string line = "foreign coroutine: slept " + std::to_string(waited).substr(0, 5) +
                     " s, and this line is an IORING_OP_WRITE\n";
  std::fflush(stdout);
  co_await ringloop::io::write(STDOUT_FILENO, line.data(), line.size());
  loop.stop();
}

}  // namespace

// No run(): a Loop driven by hand installs no Ctrl-C handling (run() does, and then throws
// KeyboardInterrupt, which a main catches to return 130), so SIGINT keeps its default action.
int main() {
  ringloop::Loop loop;
  std::thread::id loop_thread = std::this_thread::get_id();
  {
    ringloop::LoopHandle handle(loop);  // keeps the loop waiting for the other thread
    std::thread starter([handle, loop_thread, &loop] { greet(handle, loop_thread, loop); });
    loop.run_forever();
    starter.join();
  }
  loop.close();
  std::printf("loop closed\n");
}
