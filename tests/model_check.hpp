// The model test's judge: the reference model's verdict on a program (under every tie policy),
// and the comparison of a ringloop run with it.
//
// What must match exactly: the set of events (which nodes entered, how each ended, what each
// cancel() returned). What must hold of the order: ringloop's events come in nondecreasing model
// tick, and none happens before its tick on the clock. Events of one tick may come in any order
// across tasks (timers due together complete in any order), so that order is not compared;
// within a task, program order makes it follow from the events themselves.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/model_program.hpp"
#include "tests/model_reference.hpp"
#include "tests/model_runner.hpp"

namespace model {

using EventMap = std::map<EventKey, Event>;

inline std::optional<EventMap> index_events(const std::vector<Event>& events) {
  EventMap map;
  for (const Event& e : events)
    if (!map.emplace(EventKey{e.node, e.kind}, e).second) return std::nullopt;
  return map;
}

inline bool same_events(const EventMap& a, const EventMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    if (ia->first != ib->first || !(ia->second.outcome == ib->second.outcome) ||
        ia->second.at != ib->second.at)
      return false;
  }
  return true;
}

struct Expected {
  std::vector<Event> trace;  // in the order of the first policy
  EventMap events;
  long long end_tick = 0;
};

// The model's verdict, or nothing when the program is ambiguous (two tie policies disagree) or
// the model deadlocked (a bug in the model or the generator, reported by the caller).
struct Verdict {
  std::optional<Expected> expected;
  bool deadlock = false;
};

inline Verdict judge(const Program& program) {
  static const reference::Policy policies[] = {
      {0, false}, {1, false}, {0, true}, {1, true},  {2, false},
      {3, false}, {4, true},  {5, true}, {6, false}, {7, true},
  };
  Verdict verdict;
  Expected expected;
  bool first = true;
  for (const auto& policy : policies) {
    reference::Result result = reference::run(program, policy);
    if (!result.finished) {
      verdict.deadlock = true;
      return verdict;
    }
    auto events = index_events(result.events);
    if (!events) {
      verdict.deadlock = true;  // an event twice: the model is wrong
      return verdict;
    }
    if (first) {
      expected.trace = std::move(result.events);
      expected.events = std::move(*events);
      expected.end_tick = result.end_tick;
      first = false;
    } else if (!same_events(expected.events, *events)) {
      return verdict;  // ambiguous
    }
  }
  verdict.expected = std::move(expected);
  return verdict;
}

struct Comparison {
  bool match = true;
  bool disturbed = false;  // some event came more than half a tick late
  double worst_late_ms = 0;
  std::string why;
};

inline Comparison compare(const Expected& expected, const runner::Run& run) {
  Comparison c;
  const long long tick_ns = run.tick.count();
  auto fail = [&c](const std::string& why) {
    if (c.match) c.why = why;
    c.match = false;
  };
  if (!run.unexpected.empty()) fail("an unexpected exception: " + run.unexpected);
  long long previous_tick = 0;
  EventMap seen;
  for (const Event& e : run.events) {
    EventKey key{e.node, e.kind};
    if (!seen.emplace(key, e).second) fail("an event twice: " + to_string(e, false));
    long long late_in_tick = e.at % tick_ns;
    auto it = expected.events.find(key);
    if (it == expected.events.end()) {
      fail("an event the model does not have: " + to_string(e, false));
      if (late_in_tick > tick_ns / 2) c.disturbed = true;
      continue;
    }
    const Event& want = it->second;
    if (!(want.outcome == e.outcome))
      fail("#" + std::to_string(e.node) + " ended " + to_string(e.outcome) + ", the model says " +
           to_string(want.outcome));
    long long late_ns = e.at - want.at * tick_ns;
    if (late_ns < 0) fail("an event before its tick: " + to_string(e, false));
    c.worst_late_ms = std::max(c.worst_late_ms, late_ns / 1e6);
    if (late_ns > tick_ns / 2 || late_in_tick > tick_ns / 2) c.disturbed = true;
    if (want.at < previous_tick) fail("out of tick order: " + to_string(e, false));
    previous_tick = std::max(previous_tick, want.at);
  }
  for (const auto& [key, want] : expected.events)
    if (!seen.count(key)) fail("a missing event: " + to_string(want, true));
  return c;
}

inline std::string report(std::uint64_t seed, const Program& program, const Expected& expected,
                          const runner::Run& run, const Comparison& c) {
  std::ostringstream out;
  out << (c.match ? "model match" : "model mismatch") << ", seed " << seed
      << " (replay: RINGLOOP_MODEL_SEED=" << seed << " ringloop_tests \"[model]\"), tick "
      << run.tick.count() / 1e6 << " ms" << (c.match ? "" : ": ") << c.why
      << "\nprogram: " << describe(program) << "\nmodel:\n";
  for (const Event& e : expected.trace) out << "  " << to_string(e, true) << '\n';
  out << "ringloop:\n";
  for (const Event& e : run.events) out << "  " << to_string(e, false) << '\n';
  return out.str();
}

// The program for a seed: the first of its attempts that the model finds unambiguous and short.
struct Chosen {
  Program program;
  Expected expected;
  int ambiguous = 0;  // attempts rejected on the way
  bool deadlock = false;
};

inline std::optional<Chosen> choose(std::uint64_t seed, const Limits& limits = {},
                                    long long max_ticks = 40) {
  Chosen chosen;
  for (std::uint64_t attempt = 0; attempt < 50; ++attempt) {
    Choices choices(seed * 64 + attempt);  // Choices scrambles it
    Program program = generate(choices, limits);
    Verdict verdict = judge(program);
    if (verdict.deadlock) {
      chosen.program = std::move(program);
      chosen.deadlock = true;
      return chosen;
    }
    if (!verdict.expected) {
      ++chosen.ambiguous;
      continue;
    }
    // Too long for the test's time, or over before any time passed (nothing raced).
    if (verdict.expected->end_tick > max_ticks || verdict.expected->end_tick < 2) continue;
    chosen.program = std::move(program);
    chosen.expected = std::move(*verdict.expected);
    return chosen;
  }
  return std::nullopt;
}

}  // namespace model
