// libFuzzer over the model test: the fuzzer's bytes are the generator's choices (then a
// splitmix stream), the program runs on the reference model and on ringloop, and a mismatch
// that is not explained by a late clock aborts with the program and both traces. The crash
// file replays it: build/fuzz/tests/fuzz_model crash-<hash>.
//
//   CXX=clang++ meson setup build/fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
//   ninja -C build/fuzz tests/fuzz_model && build/fuzz/tests/fuzz_model -max_total_time=60
//
// RINGLOOP_FUZZ_TICK_MS sets the tick (3 ms by default: small programs, many runs).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tests/model_check.hpp"

namespace {

std::chrono::nanoseconds fuzz_tick() {
  const char* text = std::getenv("RINGLOOP_FUZZ_TICK_MS");
  long ms = text != nullptr ? std::strtol(text, nullptr, 10) : 3;
  return std::chrono::milliseconds(ms > 0 ? ms : 3);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  model::Choices choices(data, size);
  model::Limits limits;
  limits.max_nodes = 16;
  model::Program program = model::generate(choices, limits);
  model::Verdict verdict = model::judge(program);
  if (verdict.deadlock) {
    std::fprintf(stderr, "the reference model deadlocked on: %s\n",
                 model::describe(program).c_str());
    std::abort();
  }
  if (!verdict.expected || verdict.expected->end_tick > 25) return 0;  // ambiguous, or long
  std::vector<model::runner::Run> runs(1);
  runs[0].program = &program;
  runs[0].tick = fuzz_tick();
  model::runner::run_all(runs);
  model::Comparison c = model::compare(*verdict.expected, runs[0]);
  if (!c.match && !c.disturbed) {
    std::fputs(model::report(0, program, *verdict.expected, runs[0], c).c_str(), stderr);
    std::abort();
  }
  return 0;
}
