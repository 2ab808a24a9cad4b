// A drop-in loop for foreign coroutine types: they await ringloop's awaiters (sleep, I/O),
// move onto the loop with loop.schedule() or LoopHandle::schedule() from another thread, and
// a raw std::coroutine_handle can be posted to the loop.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include <ringloop/coro/thread/loop_handle.hpp>
#include <ringloop/ringloop.hpp>
#include "tests/foreign_coroutine.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using test_support::Detached;

namespace {

Detached foreign_steps(ringloop::Loop& loop, std::vector<int>& log, std::atomic<bool>& done) {
  co_await loop.schedule();  // from the loop thread: a later step
  log.push_back(1);
  co_await ringloop::sleep(5ms);  // a TIMEOUT SQE, without a ringloop task around it
  log.push_back(2);
  co_await ringloop::io::nop();  // any io_uring operation
  log.push_back(3);
  done = true;
}

Detached from_another_thread(ringloop::LoopHandle handle, std::thread::id& resumed_on,
                             std::atomic<bool>& done, ringloop::Loop& loop) {
  co_await handle.schedule();  // now on the loop's thread
  resumed_on = std::this_thread::get_id();
  co_await ringloop::sleep(2ms);
  done = true;
  loop.stop();
}

struct ResumeLater {
  std::coroutine_handle<>* slot;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept { *slot = h; }
  void await_resume() const noexcept {}
};

Detached parked(std::coroutine_handle<>& slot, int& resumed) {
  co_await ResumeLater{&slot};
  ++resumed;
}

}  // namespace

TEST_CASE("a foreign coroutine awaits ringloop's sleep and I/O on the loop", "[foreign]") {
  ringloop::run([]() -> Coro<> {
    std::vector<int> log;
    std::atomic<bool> done{false};
    foreign_steps(*ringloop::Loop::current(), log, done);
    CHECK(log.empty());  // schedule() suspended it until a later step
    while (!done) co_await ringloop::sleep(1ms);
    CHECK(log == std::vector<int>{1, 2, 3});
  }());
}

TEST_CASE("a coroutine handle posted with Loop::schedule resumes on the loop", "[foreign]") {
  ringloop::run([]() -> Coro<> {
    std::coroutine_handle<> slot;
    int resumed = 0;
    parked(slot, resumed);
    ringloop::Loop::current()->schedule(slot);
    CHECK(resumed == 0);
    co_await ringloop::sleep(0ms);
    CHECK(resumed == 1);
  }());
}

TEST_CASE("LoopHandle::schedule moves a foreign coroutine from another thread onto the loop",
          "[foreign][thread]") {
  ringloop::Loop loop;
  std::thread::id resumed_on;
  std::atomic<bool> done{false};
  {
    ringloop::LoopHandle handle(loop);
    std::thread starter([handle, &resumed_on, &done, &loop] {
      from_another_thread(handle, resumed_on, done, loop);
    });
    loop.run_forever();
    starter.join();
  }
  CHECK(done);
  CHECK(resumed_on == std::this_thread::get_id());
}

TEST_CASE("Loop::schedule from another thread is refused with a clear error", "[foreign][thread]") {
  ringloop::Loop loop;
  std::string error;
  std::thread other([&] {
    auto awaiter = loop.schedule();
    try {
      awaiter.await_suspend(std::noop_coroutine());
    } catch (const std::logic_error& e) {
      error = e.what();
    }
  });
  other.join();
  CHECK_THAT(error, Catch::Contains("thread other than the one that created it"));
}
