// wait_for on one operation: an IOSQE_IO_LINK + IORING_OP_LINK_TIMEOUT pair. The deadline is
// the kernel's; both CQEs are reaped (in either order, in one reap or two) before the awaiter
// resumes; the pair costs two CQEs; an outer cancel ends in CancelledError, never TimeoutError;
// the SQ never splits the pair. Also the loop's handling of linked records, without coroutines.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/io_support.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Socket;
using ringloop::TimeoutError;

TEST_CASE("wait_for(recv, 50 ms) on a silent socket throws TimeoutError after about 50 ms",
          "[io][wait_for]") {
  test_support::SocketPair pair;
  auto start = std::chrono::steady_clock::now();
  ringloop::run([](Socket& s) -> Coro<> {
    char buffer[8] = {};
    CHECK_THROWS_AS(co_await ringloop::wait_for(s.recv(buffer, sizeof(buffer)), 50ms),
                    TimeoutError);
    CHECK(ringloop::Loop::current()->in_flight() == 0);  // both CQEs were reaped
  }(pair.b));
  double elapsed = test_support::seconds_since(start);
  CHECK(elapsed >= 0.050);
  CHECK(elapsed < 0.5);
}

TEST_CASE("wait_for(op) returns the result when the operation finishes in time", "[io][wait_for]") {
  test_support::SocketPair pair;
  ringloop::run([](Socket& a, Socket& b) -> Coro<> {
    ringloop::create_task([](Socket& s) -> Coro<> {
      co_await ringloop::sleep(5ms);
      co_await s.send("late", 4);
    }(a));
    char buffer[8] = {};
    std::size_t got = co_await ringloop::wait_for(b.recv(buffer, sizeof(buffer)), 1s);
    CHECK(std::string(buffer, got) == "late");
    co_await ringloop::wait_for(ringloop::io::nop(), 1s);  // completes at once: timeout -ECANCELED
    auto op = ringloop::io::nop();
    co_await ringloop::wait_for(op, 1s);  // an lvalue operation is linked too
    CHECK(ringloop::Loop::current()->in_flight() == 0);
  }(pair.a, pair.b));
}

TEST_CASE("after a linked timeout the socket stays usable and loses nothing", "[io][wait_for]") {
  test_support::SocketPair pair;
  ringloop::run([](Socket& a, Socket& b) -> Coro<> {
    char buffer[8] = {};
    for (int i = 0; i < 20; ++i) {
      CHECK_THROWS_AS(co_await ringloop::wait_for(b.recv(buffer, sizeof(buffer)), 1ms),
                      TimeoutError);
    }
    co_await a.send("data", 4);
    std::size_t got = co_await ringloop::wait_for(b.recv(buffer, sizeof(buffer)), 1s);
    CHECK(std::string(buffer, got) == "data");
  }(pair.a, pair.b));
}

TEST_CASE("a linked operation costs two CQEs against the loop's budget", "[io][wait_for]") {
  test_support::SocketPair pair;
  ringloop::run([](Socket& b) -> Coro<> {
    char buffer[8] = {};
    auto task = ringloop::create_task([](Socket& s, char* buf) -> Coro<> {
      co_await ringloop::wait_for(s.recv(buf, 8), 1h);
    }(b, buffer));
    co_await ringloop::sleep(1ms);
    CHECK(ringloop::Loop::current()->in_flight() == 2);
    task.cancel();
    CHECK_THROWS_AS(co_await task, CancelledError);
    CHECK(ringloop::Loop::current()->in_flight() == 0);
  }(pair.b));
}

// cpython #86296's rule, for operations: an outer cancel is never turned into a TimeoutError.
TEST_CASE("cancelling a task in wait_for(op) ends in CancelledError, never TimeoutError",
          "[io][wait_for][cancel]") {
  test_support::SocketPair pair;
  ringloop::run([](Socket& b) -> Coro<> {
    int cancelled = 0;
    int timed_out = 0;
    for (int i = 0; i < 100; ++i) {
      auto deadline = std::chrono::steady_clock::now() + 1ms;
      auto task = ringloop::create_task([](Socket& s) -> Coro<> {
        char buffer[8] = {};
        co_await ringloop::wait_for(s.recv(buffer, sizeof(buffer)), 1ms);
      }(b));
      co_await ringloop::sleep_until(deadline);  // races the link timeout
      bool was_pending = task.cancel();
      try {
        co_await task;
        FAIL("a recv on a silent socket returned");
      } catch (const CancelledError&) {
        CHECK(was_pending);
        ++cancelled;
      } catch (const TimeoutError&) {
        CHECK_FALSE(was_pending);  // only when the timeout had ended the task already
        ++timed_out;
      }
    }
    CHECK(cancelled + timed_out == 100);
    CHECK(ringloop::Loop::current()->in_flight() == 0);
  }(pair.b));
}

TEST_CASE("a linked operation waiting for CQ room: cancelled there, or timed out on submit",
          "[io][wait_for][cancel]") {
  ringloop::LoopOptions options;
  options.max_in_flight = 2;  // one linked pair fills the budget
  test_support::SocketPair pair;
  ringloop::run(
      [](Socket& b) -> Coro<> {
        ringloop::Loop& loop = *ringloop::Loop::current();
        char first[8] = {};
        char second[8] = {};
        auto holder = ringloop::create_task([](Socket& s, char* buf) -> Coro<> {
          co_await ringloop::wait_for(s.recv(buf, 8), 30ms);
        }(b, first));
        auto waiting = ringloop::create_task([](Socket& s, char* buf) -> Coro<> {
          co_await ringloop::wait_for(s.recv(buf, 8), 1h);
        }(b, second));
        co_await ringloop::sleep(0ms);
        CHECK(loop.stats().operations_deferred >= 1);
        waiting.cancel();  // still in the FIFO: both records end with -ECANCELED at once
        CHECK_THROWS_AS(co_await waiting, CancelledError);
        // Its deadline passes while it waits in the FIFO: the link timeout fires on submit.
        auto late = ringloop::create_task([](Socket& s, char* buf) -> Coro<> {
          co_await ringloop::wait_for(s.recv(buf, 8), 1ms);
        }(b, second));
        CHECK_THROWS_AS(co_await holder, TimeoutError);
        CHECK_THROWS_AS(co_await late, TimeoutError);
        CHECK(loop.in_flight() == 0);
      }(pair.b),
      options);
}

TEST_CASE("a nearly full SQ never splits a linked pair", "[io][wait_for][ring]") {
  for (unsigned sq_entries : {2u, 4u, 8u}) {
    INFO("sq_entries " << sq_entries);
    ringloop::LoopOptions options;
    options.ring.sq_entries = sq_entries;
    options.ring.cq_entries = 4096;
    int completed = ringloop::run(
        []() -> Coro<int> {
          // Single and linked SQEs interleaved, so a pair often meets one free slot.
          std::vector<Coro<>> children;
          for (int i = 0; i < 300; ++i) {
            if (i % 3 == 0)
              children.push_back(ringloop::detail::await_in_coro(ringloop::io::nop()));
            else
              children.push_back(
                  []() -> Coro<> { co_await ringloop::wait_for(ringloop::io::nop(), 10s); }());
          }
          co_await ringloop::gather(children);
          co_return static_cast<int>(children.size());
        }(),
        options);
    CHECK(completed == 300);
  }
}

namespace {

// Raw records, to watch the loop's side of a linked pair: each completes exactly once.
struct Record : ringloop::Operation {
  using PrepFn = void (*)(Record&, io_uring_sqe&);
  Record(PrepFn p, std::vector<std::string>& log, const char* name)
      : Operation(&prepare, &complete, false), prep(p), log(log), name(name) {}
  static void prepare(Operation& op, io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<Record&>(op);
    self.prep(self, sqe);
  }
  static void complete(Operation& op, std::int32_t result, std::uint32_t) noexcept {
    auto& self = static_cast<Record&>(op);
    self.result = result;
    ++self.completions;
    self.log.push_back(self.name);
  }
  PrepFn prep;
  std::vector<std::string>& log;
  const char* name;
  int fd = -1;
  char buffer[8] = {};
  __kernel_timespec timespec{};
  std::int32_t result = 1;
  int completions = 0;
};

void prep_read(Record& r, io_uring_sqe& sqe) { io_uring_prep_read(&sqe, r.fd, r.buffer, 8, 0); }
void prep_link_timeout(Record& r, io_uring_sqe& sqe) {
  io_uring_prep_link_timeout(&sqe, &r.timespec, 0);
}

}  // namespace

TEST_CASE(
    "the loop submits a linked pair together and completes each record once, in either "
    "order",
    "[loop][wait_for]") {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  for (bool data_first : {false, true}) {
    INFO("data written before the read: " << data_first);
    if (data_first) REQUIRE(::write(fds[1], "x", 1) == 1);
    ringloop::Loop loop;
    std::vector<std::string> log;
    Record read(&prep_read, log, "read");
    Record timeout(&prep_link_timeout, log, "timeout");
    read.fd = fds[0];
    timeout.timespec.tv_nsec = 10'000'000;  // 10 ms, relative
    read.link_timeout = &timeout;
    loop.submit(read);
    CHECK(loop.in_flight() == 2);
    while (loop.in_flight() != 0) loop.run_once();
    CHECK(read.completions == 1);
    CHECK(timeout.completions == 1);
    if (data_first) {
      CHECK(read.result == 1);
      CHECK(timeout.result == -ECANCELED);
    } else {
      CHECK(read.result == -ECANCELED);  // liburing #1422: a read cut short is -ECANCELED
      CHECK(timeout.result == -ETIME);
    }
    INFO("order: " << log[0] << ", " << log[1]);
    CHECK(log.size() == 2);
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("cancelling a linked pair still in the FIFO completes both records with -ECANCELED",
          "[loop][wait_for][cancel]") {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  ringloop::LoopOptions options;
  options.max_in_flight = 2;
  ringloop::Loop loop(options);
  std::vector<std::string> log;
  Record first(&prep_read, log, "first");
  Record first_timeout(&prep_link_timeout, log, "first timeout");
  Record second(&prep_read, log, "second");
  Record second_timeout(&prep_link_timeout, log, "second timeout");
  first.fd = second.fd = fds[0];
  first_timeout.timespec.tv_sec = second_timeout.timespec.tv_sec = 3600;
  first.link_timeout = &first_timeout;
  second.link_timeout = &second_timeout;
  loop.submit(first);
  loop.submit(second);  // no room: waits in the FIFO
  CHECK(second.state == ringloop::OpState::unqueued);
  loop.cancel(second);
  CHECK(second.result == -ECANCELED);
  CHECK(second_timeout.result == -ECANCELED);
  CHECK(second.completions == 1);
  CHECK(second_timeout.completions == 1);
  loop.cancel(first);  // in the kernel: ASYNC_CANCEL, and the kernel ends its timeout
  while (loop.in_flight() != 0) loop.run_once();
  CHECK(first.result == -ECANCELED);
  CHECK(first_timeout.result == -ECANCELED);
  CHECK(first_timeout.completions == 1);
  ::close(fds[0]);
  ::close(fds[1]);
}
