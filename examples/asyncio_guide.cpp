// The asyncio guide's four examples, run as the guide runs them: one asyncio.run() each.
// Each prints the guide's line, then how long its run() took: about 2 s, 2 s, 1 s and 2 s.
// In example 3 the second task is still sleeping when the coroutine returns; run() cancels it,
// as asyncio.run() does, so that example ends after 1 s.
#include "examples/asyncio_guide.hpp"

namespace {

template <class Example>
void timed_run(Example example) {
  auto start = std::chrono::steady_clock::now();
  ringloop::run(example());
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::printf("  (%.3f s)\n", elapsed.count());
  std::fflush(stdout);
}

}  // namespace

int main() {
  using namespace asyncio_guide;
  try {
    timed_run(run_parallel_using_create_task);
    timed_run(run_parallel_using_gather);
    timed_run(run_parallel_using_create_task_with_timeout);
    timed_run(run_parallel_using_gather_with_timeout);
  } catch (const ringloop::KeyboardInterrupt&) {
    return 130;  // Ctrl-C: the running example was cancelled and has unwound (128 + SIGINT)
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asyncio_guide: %s\n", e.what());
    return 1;
  }
  return 0;
}
