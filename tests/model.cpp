// The randomized model test: random programs (tasks that sleep, spawn, gather, wait_for, cancel,
// throw and catch) run on ringloop and on the reference model, and must end the same way.
//
//   ringloop_tests "[model]"                              300 seeds from the run's --rng-seed
//   RINGLOOP_MODEL_SEED=1234 ringloop_tests "[model]"     one seed, its program and both traces
//   RINGLOOP_MODEL_SEEDS=5000 RINGLOOP_MODEL_FIRST_SEED=1 ringloop_tests "[model]"
//   RINGLOOP_MODEL_TICK_MS=20                             a longer tick on a loaded machine
//
// A mismatch prints the seed, the program and both traces. Programs run 50 at a time on one
// loop. A mismatch in a run where some event came more than half a tick late (the machine was
// busy) is run again alone with a longer tick, and counts only if it mismatches on time.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/model_check.hpp"
#include "tests/support.hpp"

namespace {

using namespace std::chrono_literals;

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : fallback;
}

std::chrono::milliseconds default_tick() {
#if defined(__SANITIZE_ADDRESS__)
  constexpr std::chrono::milliseconds kTick = 20ms;
#else
  constexpr std::chrono::milliseconds kTick = 10ms;
#endif
  return test_support::under_valgrind() ? 60ms : kTick;
}

struct Totals {
  int seeds = 0;
  int ambiguous_skipped = 0;
  int no_program = 0;
  int reruns = 0;
  int inconclusive = 0;
  int events = 0;
  int timeouts = 0;
  int cancelled = 0;
  int cancel_false = 0;
  double worst_late_ms = 0;
};

void count(const model::runner::Run& run, Totals& totals) {
  totals.events += static_cast<int>(run.events.size());
  for (const model::Event& e : run.events) {
    if (e.kind == model::EventKind::exit && e.outcome.what == model::Outcome::What::timeout)
      ++totals.timeouts;
    if (e.kind == model::EventKind::exit && e.outcome.what == model::Outcome::What::cancelled)
      ++totals.cancelled;
    if (e.kind == model::EventKind::cancel_returned && e.outcome.value == 0) ++totals.cancel_false;
  }
}

model::runner::Run make_run(const model::Chosen& chosen, std::chrono::nanoseconds tick) {
  model::runner::Run run;
  run.program = &chosen.program;
  run.tick = tick;
  return run;
}

// Runs one seed alone again with longer ticks while the machine keeps it from running on time.
// Returns the last comparison (and its run, for the report).
model::Comparison rerun_alone(const model::Chosen& chosen, std::chrono::nanoseconds tick,
                              model::runner::Run& last, Totals& totals) {
  model::Comparison c;
  for (int attempt = 0; attempt < 3; ++attempt) {
    tick *= 2;
    ++totals.reruns;
    std::vector<model::runner::Run> runs{make_run(chosen, tick)};
    model::runner::run_all(runs);
    last = std::move(runs[0]);
    last.program = &chosen.program;
    c = model::compare(chosen.expected, last);
    if (c.match || !c.disturbed) return c;
  }
  return c;
}

}  // namespace

TEST_CASE("random programs end on ringloop as the reference model says", "[model]") {
  const bool one_seed = std::getenv("RINGLOOP_MODEL_SEED") != nullptr;
  const std::uint64_t first =
      one_seed ? env_number("RINGLOOP_MODEL_SEED", 0)
               : env_number("RINGLOOP_MODEL_FIRST_SEED", std::uint64_t{Catch::rngSeed()} * 1000);
  const std::uint64_t count_seeds =
      one_seed ? 1 : env_number("RINGLOOP_MODEL_SEEDS", test_support::under_valgrind() ? 60 : 300);
  const std::chrono::nanoseconds tick =
      std::chrono::milliseconds(env_number("RINGLOOP_MODEL_TICK_MS", default_tick().count()));
  constexpr std::size_t kBatch = 50;

  Totals totals;
  auto started = std::chrono::steady_clock::now();
  for (std::uint64_t batch_first = first; batch_first < first + count_seeds;
       batch_first += kBatch) {
    std::vector<std::uint64_t> seeds;
    std::vector<model::Chosen> chosen;
    for (std::uint64_t seed = batch_first;
         seed < std::min(batch_first + kBatch, first + count_seeds); ++seed) {
      auto c = model::choose(seed);
      if (!c) {
        ++totals.no_program;
        continue;
      }
      totals.ambiguous_skipped += c->ambiguous;
      INFO("seed " << seed << ": " << model::describe(c->program));
      REQUIRE_FALSE(c->deadlock);  // the model itself must never deadlock
      seeds.push_back(seed);
      chosen.push_back(std::move(*c));
    }
    std::vector<model::runner::Run> runs;
    for (const auto& c : chosen) runs.push_back(make_run(c, tick));
    model::runner::run_all(runs);
    for (std::size_t i = 0; i < runs.size(); ++i) {
      ++totals.seeds;
      model::runner::Run& run = runs[i];
      model::Comparison c = model::compare(chosen[i].expected, run);
      if (!c.match && c.disturbed) {
        if (std::getenv("RINGLOOP_MODEL_VERBOSE") != nullptr)
          std::fprintf(
              stderr, "rerun (late by %.1f ms): %s", c.worst_late_ms,
              model::report(seeds[i], chosen[i].program, chosen[i].expected, run, c).c_str());
        c = rerun_alone(chosen[i], tick, run, totals);
      }
      totals.worst_late_ms = std::max(totals.worst_late_ms, c.worst_late_ms);
      count(run, totals);
      if (!c.match && c.disturbed) {
        ++totals.inconclusive;
        continue;
      }
      if (one_seed || !c.match)
        std::fputs(model::report(seeds[i], chosen[i].program, chosen[i].expected, run, c).c_str(),
                   one_seed && c.match ? stdout : stderr);
      INFO(model::report(seeds[i], chosen[i].program, chosen[i].expected, run, c));
      CHECK(c.match);
    }
  }
  double seconds = test_support::seconds_since(started);
  std::printf(
      "model: %d seeds from %llu (tick %.0f ms) in %.1f s: %d events, %d timeouts, %d cancelled "
      "exits, %d cancel() false; %d ambiguous programs skipped, %d seeds without a program, %d "
      "reruns, %d inconclusive, worst lateness %.2f ms\n",
      totals.seeds, static_cast<unsigned long long>(first), tick.count() / 1e6, seconds,
      totals.events, totals.timeouts, totals.cancelled, totals.cancel_false,
      totals.ambiguous_skipped, totals.no_program, totals.reruns, totals.inconclusive,
      totals.worst_late_ms);
  // A machine too busy to keep ticks would make the test prove little; say so rather than pass.
  CHECK(totals.inconclusive * 10 <= totals.seeds);
}
