// The asyncio guide's four examples: same printed lines, same timings (generous tolerances).
#include <catch2/catch.hpp>

#include "examples/asyncio_guide.hpp"
#include "tests/support.hpp"

namespace {

template <class Example>
std::pair<std::string, double> run_example(Example example) {
  double elapsed = 0;
  std::string printed = test_support::capture_stdout([&] {
    auto start = std::chrono::steady_clock::now();
    ringloop::run(example());
    elapsed = test_support::seconds_since(start);
  });
  return {printed, elapsed};
}

}  // namespace

TEST_CASE("guide example 1: two tasks started by create_task finish together in 2 s",
          "[guide][slow]") {
  auto [printed, seconds] = run_example(asyncio_guide::run_parallel_using_create_task);
  CHECK(printed == "Results: Data 1, Data 2\n");
  CHECK(seconds == Approx(2.0).margin(0.3));
}

TEST_CASE("guide example 2: gather runs both fetches in 2 s", "[guide][slow]") {
  auto [printed, seconds] = run_example(asyncio_guide::run_parallel_using_gather);
  CHECK(printed == "All results: ['Data 1', 'Data 2']\n");
  CHECK(seconds == Approx(2.0).margin(0.3));
}

TEST_CASE("guide example 3: wait_for times out after 1 s and run cancels the other task",
          "[guide][slow]") {
  auto [printed, seconds] = run_example(asyncio_guide::run_parallel_using_create_task_with_timeout);
  CHECK(printed == "At least one task timed out!\n");
  CHECK(seconds == Approx(1.0).margin(0.3));
}

TEST_CASE("guide example 4: a gather under a 2 s wait_for times out", "[guide][slow]") {
  auto [printed, seconds] = run_example(asyncio_guide::run_parallel_using_gather_with_timeout);
  CHECK(printed == "Entire operation timed out!\n");
  CHECK(seconds == Approx(2.0).margin(0.3));
}
