// The asyncio guide's four examples: the guide's printed lines and timings. Each runs under
// virtual time (the timings exact, in milliseconds of wall time), and all four run together once
// in real time, where each must take the guide's 2, 2, 1 and 2 seconds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "examples/asyncio_guide.hpp"
#include "tests/support.hpp"

using ringloop::Coro;

namespace {

using Example = Coro<> (*)();

const Example kExamples[] = {
    asyncio_guide::run_parallel_using_create_task,
    asyncio_guide::run_parallel_using_gather,
    asyncio_guide::run_parallel_using_create_task_with_timeout,
    asyncio_guide::run_parallel_using_gather_with_timeout,
};
const char* const kLines[] = {
    "Results: Data 1, Data 2\n",
    "All results: ['Data 1', 'Data 2']\n",
    "At least one task timed out!\n",
    "Entire operation timed out!\n",
};
const double kSeconds[] = {2.0, 2.0, 1.0, 2.0};

// Runs example on the running loop; its duration on the loop's clock goes to seconds.
Coro<> timed(Example example, double& seconds) {
  ringloop::Loop& loop = *ringloop::Loop::current();
  auto start = loop.now();
  co_await example();
  seconds = std::chrono::duration<double>(loop.now() - start).count();
}

void check_under_virtual_time(int index) {
  double seconds = 0;
  auto wall = std::chrono::steady_clock::now();
  std::string printed = test_support::capture_stdout(
      [&] { ringloop::run(timed(kExamples[index], seconds), {.virtual_time = true}); });
  CHECK(printed == kLines[index]);
  CHECK(seconds == Approx(kSeconds[index]).margin(1e-6));
  CHECK(test_support::seconds_since(wall) < 0.5);
}

}  // namespace

TEST_CASE("guide example 1: two tasks started by create_task finish together in 2 s",
          "[guide][virtual_time]") {
  check_under_virtual_time(0);
}

TEST_CASE("guide example 2: gather runs both fetches in 2 s", "[guide][virtual_time]") {
  check_under_virtual_time(1);
}

TEST_CASE("guide example 3: wait_for times out after 1 s and run cancels the other task",
          "[guide][virtual_time]") {
  check_under_virtual_time(2);
}

TEST_CASE("guide example 4: a gather under a 2 s wait_for times out", "[guide][virtual_time]") {
  check_under_virtual_time(3);
}

TEST_CASE("the guide's four examples in real time: the guide's lines in 2, 2, 1 and 2 s",
          "[guide][slow]") {
  double seconds[4] = {};
  auto wall = std::chrono::steady_clock::now();
  std::string printed = test_support::capture_stdout([&] {
    ringloop::run([](double* out) -> Coro<> {
      co_await ringloop::gather(timed(kExamples[0], out[0]), timed(kExamples[1], out[1]),
                                timed(kExamples[2], out[2]), timed(kExamples[3], out[3]));
    }(seconds));
  });
  double elapsed = test_support::seconds_since(wall);
  for (int i = 0; i < 4; ++i) {
    CHECK_THAT(printed, Catch::Contains(kLines[i]));
    CHECK(seconds[i] == Approx(kSeconds[i]).margin(0.3));
  }
  CHECK(std::count(printed.begin(), printed.end(), '\n') == 4);
  CHECK(elapsed == Approx(2.0).margin(0.3));  // side by side, not one after another
}
