// The loop's exception handler (asyncio's loop.set_exception_handler): every report that has no
// awaiter reaches it with a context; the default one prints as before; a handler that throws is
// reported by the default handler and the loop goes on.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::ExceptionContext;
using ringloop::Loop;

namespace {

struct Seen {
  std::string message;
  std::string what;
  std::string task;
};

ringloop::ExceptionHandler recorder(std::vector<Seen>& seen) {
  return [&seen](Loop&, const ExceptionContext& context) {
    std::string what;
    try {
      std::rethrow_exception(context.exception);
    } catch (const std::exception& e) {
      what = e.what();
    }
    seen.push_back({context.message, what, context.task});
  };
}

}  // namespace

TEST_CASE("unretrieved task exceptions and callback failures reach the exception handler",
          "[api][exception_handler]") {
  std::vector<Seen> seen;
  std::string err = test_support::capture_stderr([&seen] {
    ringloop::run([&seen]() -> Coro<> {
      Loop& loop = *Loop::current();
      loop.set_exception_handler(recorder(seen));
      CHECK(static_cast<bool>(loop.get_exception_handler()));
      ringloop::call_soon([] { throw std::runtime_error("callback broke"); });
      {
        auto task = ringloop::create_task(test_support::fail_after(0ms, "nobody looked"));
        co_await ringloop::sleep(5ms);
      }
    }());
  });
  CHECK(err.empty());
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].message == "exception in callback");
  CHECK(seen[0].what == "callback broke");
  CHECK(seen[1].message == "Task exception was never retrieved");
  CHECK(seen[1].what == "nobody looked");
  CHECK_THAT(seen[1].task, Catch::Contains("tests/exception_handler.cpp:"));
}

TEST_CASE("a failed connection handler in serve reaches the exception handler",
          "[api][exception_handler][stream]") {
  std::vector<Seen> seen;
  ringloop::run([&seen]() -> Coro<> {
    Loop::current()->set_exception_handler(recorder(seen));
    ringloop::Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    std::uint16_t port = ringloop::local_port(listener);
    auto server = ringloop::create_task(ringloop::serve(listener, [](ringloop::Stream) -> Coro<> {
      throw std::runtime_error("handler broke");
      co_return;
    }));
    ringloop::Stream client = co_await ringloop::open_connection("127.0.0.1", port);
    co_await ringloop::sleep(20ms);
    server.cancel();
    try {
      co_await server;
    } catch (const ringloop::CancelledError&) {
    }
  }());
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].message == "a connection handler failed");
  CHECK(seen[0].what == "handler broke");
}

TEST_CASE("a signal handler's failure reaches the exception handler",
          "[api][exception_handler][signals]") {
  int status = test_support::run_in_child([] {
    std::vector<Seen> seen;
    ringloop::run([&seen]() -> Coro<> {
      Loop::current()->set_exception_handler(recorder(seen));
      ringloop::add_signal_handler(SIGUSR1, [] { throw std::runtime_error("signal broke"); });
      ::kill(::getpid(), SIGUSR1);
      co_await ringloop::sleep(20ms);
      ringloop::remove_signal_handler(SIGUSR1);
    }());
    bool ok = seen.size() == 1 && seen[0].what == "signal broke" &&
              seen[0].message.find("exception in the handler of") == 0;
    ::_exit(ok ? 0 : 1);
  });
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a handler that throws is reported by the default handler and the loop goes on",
          "[api][exception_handler]") {
  int after = 0;
  std::string err = test_support::capture_stderr([&after] {
    ringloop::run([&after]() -> Coro<> {
      Loop::current()->set_exception_handler(
          [](Loop&, const ExceptionContext&) { throw std::logic_error("handler broke too"); });
      ringloop::call_soon([] { throw std::runtime_error("callback broke"); });
      co_await ringloop::sleep(5ms);
      after = 1;
    }());
  });
  CHECK(after == 1);
  CHECK_THAT(err,
             Catch::Contains("ringloop: Unhandled error in exception handler: handler broke too"));
  CHECK_THAT(err, Catch::Contains("ringloop: exception in callback: callback broke"));
}

TEST_CASE("the default exception handler prints as before", "[api][exception_handler]") {
  std::string err = test_support::capture_stderr([] {
    Loop::default_exception_handler(
        {"exception in callback", std::make_exception_ptr(std::runtime_error("boom")), ""});
    Loop::default_exception_handler({"Task exception was never retrieved",
                                     std::make_exception_ptr(std::runtime_error("lost")),
                                     "task created at f.cpp:3 in g"});
    Loop::default_exception_handler({"exception in callback", std::make_exception_ptr(42), ""});
  });
  CHECK_THAT(err, Catch::Contains("ringloop: exception in callback: boom\n"));
  CHECK_THAT(err, Catch::Contains("ringloop: Task exception was never retrieved (task created at "
                                  "f.cpp:3 in g): std::runtime_error: lost\n"));
  CHECK_THAT(err, Catch::Contains("ringloop: exception in callback (not a std::exception)\n"));
}
