// After every test case: no coroutine frame of ringloop's is alive and no loop is running on
// this thread. A leak is reported with the test's name and ends the run.
#define CATCH_CONFIG_EXTERNAL_INTERFACES  // for TestEventListenerBase
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>

#include <ringloop/ringloop.hpp>

namespace {

class LeakCheck : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    std::size_t frames = ringloop::detail::live_frames();
    bool running = ringloop::Loop::current() != nullptr;
    if (frames == 0 && !running) return;
    std::fprintf(stderr, "leak check: after \"%s\": %zu coroutine frame(s) alive%s\n",
                 stats.testInfo.name.c_str(), frames,
                 running ? ", and a loop still marked running" : "");
    std::abort();
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(LeakCheck)
