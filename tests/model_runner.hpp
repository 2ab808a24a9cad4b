// Runs a model::Program on ringloop: each node is a real coroutine (Coro, Task, gather, wait_for,
// sleep_until, cancel) and records its events with the time since its program started.
//
// Virtual time maps onto the monotonic clock: tick k is start + k * tick. A sleep of d ticks
// sleeps until tick (now + d) and a wait_for's deadline is a whole tick too, so lateness never
// accumulates along a chain: while every event lands within half a tick after its tick, events
// of different ticks happen in the model's order. The current tick is read from the clock
// (floor), which is right for the same reason.
//
// Under virtual time (model_oracle.cpp) the clock is the loop's and nothing is late: every
// deadline is a tick exactly, so timers due on one tick fire in the same pass, in the order they
// were armed, as asyncio's do on its virtual clock.
#pragma once

#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/model_program.hpp"

namespace model::runner {

using Clock = std::chrono::steady_clock;

// What a raise node throws.
struct ModelError : std::exception {
  explicit ModelError(int t) : tag(t) {}
  const char* what() const noexcept override { return "ModelError"; }
  int tag;
};

struct Run {
  const Program* program = nullptr;
  std::chrono::nanoseconds tick{};
  Clock::time_point start{};
  bool exact = false;  // virtual time: every deadline on its tick exactly
  std::vector<Event> events;
  std::string unexpected;  // an exception no node should ever see

  // The loop's clock: the monotonic clock, or the virtual one.
  static Clock::time_point now() { return ringloop::Loop::current()->now(); }
  long long elapsed_ns() const { return (now() - start).count(); }
  long long tick_now() const { return elapsed_ns() / tick.count(); }
  Clock::time_point at_tick(long long k) const { return start + k * tick; }
  const Node& node(int id) const { return program->nodes[static_cast<std::size_t>(id)]; }
  void record(int node, EventKind kind, Outcome o = {}) {
    events.push_back(Event{node, kind, o, elapsed_ns()});
  }
};

inline Outcome classify(Run& r, const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const ModelError& e) {
    return Outcome::error(e.tag);
  } catch (const ringloop::CancelledError&) {
    return Outcome::cancelled();
  } catch (const ringloop::TimeoutError&) {
    return Outcome::timeout();
  } catch (const std::exception& e) {
    r.unexpected = e.what();
  } catch (...) {
    r.unexpected = "not a std::exception";
  }
  return Outcome::error(-1);
}

inline ringloop::Coro<int> run_node(Run& r, int id);

inline ringloop::Coro<int> run_sequence(Run& r, int id) {
  int acc = 0;
  const Node& n = r.node(id);
  for (std::size_t i = 0; i < n.kids.size(); ++i) {
    int v = co_await run_node(r, n.kids[i]);
    acc = mix(acc, i, v);
  }
  co_return acc;
}

// No co_await may appear in a handler: the exception is kept and the handler node runs after.
inline ringloop::Coro<int> run_try(Run& r, int id) {
  const Node& n = r.node(id);
  std::exception_ptr error;
  try {
    int v = co_await run_node(r, n.kids[0]);
    co_return v;
  } catch (...) {
    error = std::current_exception();
  }
  Outcome caught = classify(r, error);
  if (!catches(n.arg, caught)) std::rethrow_exception(error);
  int h = co_await run_node(r, n.kids[1]);
  co_return mix(h, 1, code_of(caught));
}

inline ringloop::Coro<int> run_gather(Run& r, int id) {
  const Node& n = r.node(id);
  std::vector<ringloop::Coro<int>> kids;
  for (int kid : n.kids) kids.push_back(run_node(r, kid));
  int acc = 0;
  if (n.arg != 0) {
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, kids);
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      Outcome o = outcomes[i].has_value() ? Outcome::of(outcomes[i].value())
                                          : classify(r, outcomes[i].exception());
      acc = mix(acc, i, code_of(o));
    }
  } else {
    auto values = co_await ringloop::gather(kids);
    for (std::size_t i = 0; i < values.size(); ++i) acc = mix(acc, i, values[i]);
  }
  co_return acc;
}

inline ringloop::Coro<int> run_wait_for(Run& r, int id) {
  const Node& n = r.node(id);
  auto deadline = r.at_tick(r.tick_now() + n.arg);
  std::chrono::nanoseconds timeout = deadline - Run::now();
  // Virtual time: wait_for reads the clock once more, 1 ns later; its deadline is then the
  // tick exactly, the same instant as the sleeps due on that tick (as in asyncio).
  if (r.exact) timeout -= std::chrono::nanoseconds(1);
  int v = co_await ringloop::wait_for(run_node(r, n.kids[0]), timeout);
  co_return v;
}

// The child runs as a task while this task runs `pre`; then the child is cancelled (if the node
// says so) and awaited. If `pre` fails, the child is cancelled and awaited before the failure
// goes on: no task outlives its node.
inline ringloop::Coro<int> run_spawn(Run& r, int id) {
  const Node& n = r.node(id);
  ringloop::Task<int> task = ringloop::create_task(run_node(r, n.kids[0]));
  std::exception_ptr error;
  int pre = 0;
  try {
    pre = co_await run_node(r, n.kids[1]);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    task.cancel();
    try {
      co_await task;
    } catch (...) {
    }
    std::rethrow_exception(error);
  }
  int cancel_code = 0;
  if (n.arg != 0) {
    bool taken = task.cancel();
    r.record(id, EventKind::cancel_returned, Outcome::of(taken ? 1 : 0));
    cancel_code = taken ? 1 : 2;
  }
  int v = co_await task;
  co_return mix(mix(pre, 1, v), 2, cancel_code);
}

inline ringloop::Coro<int> run_body(Run& r, int id) {
  const Node& n = r.node(id);
  switch (n.kind) {
    case Kind::value:
      co_return n.arg;
    case Kind::raise:
      throw ModelError(n.arg);
    case Kind::sleep:
      co_await ringloop::sleep_until(r.at_tick(r.tick_now() + n.arg));
      co_return n.arg;
    case Kind::sequence:
      co_return co_await run_sequence(r, id);
    case Kind::try_catch:
      co_return co_await run_try(r, id);
    case Kind::gather:
      co_return co_await run_gather(r, id);
    case Kind::wait_for:
      co_return co_await run_wait_for(r, id);
    case Kind::spawn:
      co_return co_await run_spawn(r, id);
  }
  throw std::logic_error("unknown node kind");
}

inline ringloop::Coro<int> run_node(Run& r, int id) {
  r.record(id, EventKind::enter);
  std::exception_ptr error;
  int v = 0;
  try {
    v = co_await run_body(r, id);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    r.record(id, EventKind::exit, classify(r, error));
    std::rethrow_exception(error);
  }
  r.record(id, EventKind::exit, Outcome::of(v));
  co_return v;
}

inline ringloop::Coro<> run_program(Run& r) {
  r.start = Run::now();
  try {
    co_await run_node(r, 0);
  } catch (...) {
    // recorded as the root's exit
  }
}

// Runs every program concurrently on one loop (each with its own start).
inline void run_all(std::vector<Run>& runs, const ringloop::LoopOptions& options = {}) {
  ringloop::run(
      [](std::vector<Run>& all) -> ringloop::Coro<> {
        std::vector<ringloop::Coro<>> programs;
        for (Run& r : all) programs.push_back(run_program(r));
        co_await ringloop::gather(programs);
      }(runs),
      options);
}

// Runs one program alone on a loop of its own with virtual time: exact ticks, no lateness.
inline Run run_virtual(const Program& program, std::chrono::nanoseconds tick) {
  std::vector<Run> runs(1);
  runs[0].program = &program;
  runs[0].tick = tick;
  runs[0].exact = true;
  ringloop::LoopOptions options;
  options.virtual_time = true;
  options.cancel_main_on_sigint = false;
  run_all(runs, options);
  return std::move(runs[0]);
}

}  // namespace model::runner
