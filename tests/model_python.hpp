// The model test's programs as Python asyncio programs, for CPython as the oracle
// (model_oracle.cpp): emit() writes a model::Program as asyncio code, script() puts many into one
// self-contained script that runs each in its own event loop on a virtual clock and prints its
// trace, and run_python() runs the script with python3 once and reads the traces back.
//
// The emitted code is plain asyncio (sleep, create_task, gather, cancel, try/except), with these
// adjustments, each to follow a rule the README's asyncio table says ringloop chose:
// - wait_for is Python 3.12's: `async with timeout(t): return await coro` (3.12's wait_for for
//   t > 0, word for word; 3.11's wraps the coroutine in a task and can lose a cancel), with
//   3.12's timeout() exit rule (3.11.2's converts to TimeoutError only when uncancel() is 0);
// - gather without return_exceptions cancels the other children on the first failure and waits
//   for them all before raising it (ringloop's documented difference: asyncio leaves them
//   running and raises at once);
// - Task.uncancel() drops a pending cancel when the count returns to 0 (Python 3.13);
// - timers due at the same time fire in the order they were armed (asyncio's heap leaves ties
//   to heapq's order; ringloop and the reference model use arming order).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/model_program.hpp"

namespace model::python {

// The script's runtime: the virtual-time loop, the tracing and the adjusted combinators.
inline const char* prelude() {
  return R"PY(# The model test's random programs as asyncio programs (tests/model_python.hpp).
# Each program runs in its own event loop on a virtual clock (1.0 = one tick) and prints its
# trace: one line per event, "event NODE enter|exit|cancel WHAT VALUE TIME".
import asyncio
import asyncio.tasks
import gc
import heapq
import os
import selectors
import sys


class VirtualSelector(selectors.SelectSelector):
    """CPython's test_asyncio TestLoop idea: a wait for I/O is where time passes. When nothing
    is ready, _run_once asks for a timeout that ends at the next timer: the clock jumps there."""

    def __init__(self, loop):
        super().__init__()
        self.loop = loop

    def select(self, timeout=None):
        if timeout is None:
            raise RuntimeError("deadlock: nothing ready and no timer armed")
        self.loop.virtual_now += timeout
        return super().select(0)


class FifoTimerHandle(asyncio.TimerHandle):
    """Timers due at the same time fire in the order they were armed."""

    __slots__ = ("seq",)

    def __lt__(self, other):
        return (self._when, self.seq) < (other._when, other.seq)


class Task(asyncio.tasks._PyTask):
    """Python 3.13's uncancel(): a pending cancel is dropped when the count returns to 0. For
    the emulation of ringloop's known differences: waiters called as the task ends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waiters_now = []

    def _Future__schedule_callbacks(self):
        for waiter in self.waiters_now:
            waiter(self)
        super()._Future__schedule_callbacks()

    def uncancel(self):
        if self._num_cancels_requested > 0:
            self._num_cancels_requested -= 1
            if self._num_cancels_requested == 0:
                self._must_cancel = False
        return self._num_cancels_requested


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self):
        self.virtual_now = 0.0
        self.timers_armed = 0
        super().__init__(VirtualSelector(self))
        self.set_task_factory(lambda loop, coro, **kw: Task(coro, loop=loop, **kw))

    def time(self):
        return self.virtual_now

    def call_at(self, when, callback, *args, context=None):
        self._check_closed()
        timer = FifoTimerHandle(when, callback, args, self, context)
        timer.seq = self.timers_armed
        self.timers_armed += 1
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer


class ModelError(Exception):
    def __init__(self, tag):
        super().__init__(tag)
        self.tag = tag


def outcome(e):
    if isinstance(e, ModelError):
        return ("error", e.tag)
    if isinstance(e, asyncio.CancelledError):
        return ("cancelled", 0)
    if isinstance(e, TimeoutError):
        return ("timeout", 0)
    raise RuntimeError(f"unexpected exception {e!r}") from e


def mix(acc, position, value):
    return (acc * 31 + (position + 1) * value) % 1000003


def code_of(result):
    """What a caught exception, or an outcome of gather(return_exceptions=True), contributes."""
    if not isinstance(result, BaseException):
        return result
    what, value = outcome(result)
    return {"error": 1000 + value, "cancelled": 777, "timeout": 888}[what]


async def gather_cancelling(*coros):
    """ringloop's gather: the first child that fails (CancelledError included) cancels the
    others; its exception is raised once all have finished. A cancel of the awaiting task
    cancels every child, and raises CancelledError once all have finished. Each child is
    cancelled once, whichever comes first (asyncio's TaskGroup aborts once, too)."""
    children = [asyncio.create_task(c) for c in coros]
    failed = []
    state = {"cancelled_all": False}

    def cancel_all():
        state["cancelled_all"] = True
        for other in children:
            other.cancel()

    def on_done(child):
        if not failed and (child.cancelled() or child.exception() is not None):
            failed.append(child)
            if not state["cancelled_all"]:
                cancel_all()

    for child in children:
        child.add_done_callback(on_done)
    waiting = asyncio.gather(*children, return_exceptions=True)

    def cancel_once(msg=None):
        """asyncio's _GatheringFuture.cancel, but children already cancelled are not again."""
        if waiting.done():
            return False
        if state["cancelled_all"]:
            accepted = any(not child.done() for child in children)
        else:
            state["cancelled_all"] = True
            accepted = any([child.cancel(msg=msg) for child in children])
        if accepted:
            waiting._cancel_requested = True
        return accepted

    waiting.cancel = cancel_once
    await waiting
    if failed:
        return failed[0].result()  # raises its exception
    return [child.result() for child in children]


class Timeout(asyncio.timeouts.Timeout):
    """asyncio.timeout() with Python 3.12's exit rule, whatever the 3.11 release: the expiry
    becomes TimeoutError unless the task got a cancel of its own meanwhile (3.11.2 converts only
    when uncancel() reaches 0)."""

    async def __aenter__(self):
        await super().__aenter__()
        self._cancelling = self._task.cancelling()
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb):
        if self._timeout_handler is not None:
            self._timeout_handler.cancel()
            self._timeout_handler = None
        if self._state is asyncio.timeouts._State.EXPIRING:
            self._state = asyncio.timeouts._State.EXPIRED
            if self._task.uncancel() <= self._cancelling and exc_type is not None:
                if issubclass(exc_type, asyncio.CancelledError):
                    raise TimeoutError from exc_val
        elif self._state is asyncio.timeouts._State.ENTERED:
            self._state = asyncio.timeouts._State.EXITED
        return None


async def wait_for(coro, delay):
    """Python 3.12's asyncio.wait_for for a delay > 0, word for word (3.11's runs the coroutine
    in a task of its own)."""
    async with Timeout(asyncio.get_running_loop().time() + delay):
        return await coro


# RINGLOOP_ORACLE_EMULATE=1 (or gather): ringloop's known difference from asyncio,
# emulated, which tells a known difference from a new one (tests/model_oracle.cpp). Not the
# oracle.


class GatherFuture(asyncio.Future):
    """What the caller of an emulated gather waits on: a cancel goes to every child."""

    def __init__(self, children, loop, state):
        super().__init__(loop=loop)
        self.children = children
        self.state = state
        self.cancel_requested = False

    def cancel(self, msg=None):
        if self.done():
            return False
        self.cancel_requested = True
        cancel_children_once(self.children, self.state)
        return True


def cancel_children_once(children, state):
    """Once per gather, whichever comes first: a failure or the gather's own cancel."""
    if state["children_cancelled"]:
        return
    state["children_cancelled"] = True
    for child in children:
        child.cancel()


async def emulated_gather(*coros, return_exceptions=False):
    """ringloop's gather, step for step: it reacts to a child's end as the child ends (a sibling
    not started yet is cancelled before its first step), and resumes its caller on the next
    step (asyncio's gather: two steps later)."""
    loop = asyncio.get_running_loop()
    children = [loop.create_task(c) for c in coros]
    state = {"remaining": len(children), "failed": None, "children_cancelled": False}
    outer = GatherFuture(children, loop, state)

    def child_done(child):
        state["remaining"] -= 1
        failed = child.cancelled() or child.exception() is not None
        if failed and not return_exceptions and state["failed"] is None:
            state["failed"] = child
            cancel_children_once(children, state)
        if state["remaining"] == 0:
            outer.set_result(None)

    for child in children:
        child.waiters_now.append(child_done)
    try:
        await outer
    finally:  # a pending cancel raises here: the children's failures are retrieved all the same
        outcomes = []
        for child in children:
            if child.cancelled():
                outcomes.append(asyncio.CancelledError())
            else:
                outcomes.append(child.exception() or child.result())
    if outer.cancel_requested:
        raise asyncio.CancelledError()
    if state["failed"] is not None:
        return state["failed"].result()
    return outcomes


EMULATE = set(os.environ.get("RINGLOOP_ORACLE_EMULATE", "").split(","))
if "1" in EMULATE or "gather" in EMULATE:
    asyncio.gather = emulated_gather
    gather_cancelling = emulated_gather


class Trace:
    def __init__(self, loop):
        self.loop = loop
        self.lines = []

    def stamp(self):
        now = self.loop.time()
        return str(int(now)) if now == int(now) else repr(now)

    def record(self, node, kind, what="value", value=0):
        self.lines.append(f"event {node} {kind} {what} {value} {self.stamp()}")

    def unexpected(self, text):
        self.lines.append("unexpected " + " ".join(str(text).split()))

    async def node(self, node, body):
        self.record(node, "enter")
        try:
            value = await body()
        except BaseException as e:
            self.record(node, "exit", *outcome(e))
            raise
        self.record(node, "exit", "value", value)
        return value


def run_program(name, program):
    loop = VirtualLoop()
    trace = Trace(loop)
    loop.set_exception_handler(lambda loop, context: trace.unexpected(context["message"]))

    async def root():
        try:
            await program(trace)
        except (ModelError, asyncio.CancelledError, TimeoutError):
            pass  # recorded as the root's exit

    try:
        loop.run_until_complete(root())
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if pending:
            trace.unexpected(f"{len(pending)} tasks still pending at the end")
    except BaseException as e:
        trace.unexpected(repr(e))
    finally:
        gc.collect()  # "exception never retrieved" reports come from the tasks' finalizers
        loop.close()
    print("program", name)
    for line in trace.lines:
        print(line)
    print("end", name, flush=True)
)PY";
}

// A node is `async def n<id>()`, run through T.node(id, n<id>), which records its entry and
// its exit as the C++ runner's run_node does.
inline std::string node_coro(int id) {
  return "T.node(" + std::to_string(id) + ", n" + std::to_string(id) + ")";
}

inline void emit_node(const Program& p, int id, std::ostringstream& out) {
  const Node& n = p.nodes[static_cast<std::size_t>(id)];
  auto call = [](int kid) { return "await " + node_coro(kid); };
  auto kids_list = [&n] {
    std::string list;
    for (std::size_t i = 0; i < n.kids.size(); ++i) list += (i ? ", " : "") + node_coro(n.kids[i]);
    return list;
  };
  const std::string in = "        ";
  std::ostringstream what;
  describe(p, id, what);
  std::string summary = what.str();
  if (summary.size() > 60) summary = summary.substr(0, summary.find('(')) + "(...)";
  out << "    async def n" << id << "():  # " << summary << '\n';
  switch (n.kind) {
    case Kind::value:
      out << in << "return " << n.arg << '\n';
      break;
    case Kind::raise:
      out << in << "raise ModelError(" << n.arg << ")\n";
      break;
    case Kind::sleep:
      out << in << "await asyncio.sleep(" << n.arg << ")\n" << in << "return " << n.arg << '\n';
      break;
    case Kind::sequence:
      out << in << "acc = 0\n";
      for (std::size_t i = 0; i < n.kids.size(); ++i)
        out << in << "acc = mix(acc, " << i << ", " << call(n.kids[i]) << ")\n";
      out << in << "return acc\n";
      break;
    case Kind::try_catch: {
      std::vector<std::string> types;
      if (n.arg & kCatchError) types.emplace_back("ModelError");
      if (n.arg & kCatchCancelled) types.emplace_back("asyncio.CancelledError");
      if (n.arg & kCatchTimeout) types.emplace_back("TimeoutError");
      std::string caught = types.size() == 1 ? types[0] : "(";
      if (types.size() > 1) {
        for (std::size_t i = 0; i < types.size(); ++i) caught += (i ? ", " : "") + types[i];
        caught += ")";
      }
      out << in << "try:\n"
          << in << "    return " << call(n.kids[0]) << '\n'
          << in << "except " << caught << " as e:\n"
          << in << "    caught = code_of(e)\n"
          << in << "handled = " << call(n.kids[1]) << '\n'
          << in << "return mix(handled, 1, caught)\n";
      break;
    }
    case Kind::gather:
      if (n.arg != 0) {
        out << in << "outcomes = await asyncio.gather(" << kids_list()
            << ", return_exceptions=True)\n"
            << in << "acc = 0\n"
            << in << "for i, o in enumerate(outcomes):\n"
            << in << "    acc = mix(acc, i, code_of(o))\n";
      } else {
        out << in << "values = await gather_cancelling(" << kids_list() << ")\n"
            << in << "acc = 0\n"
            << in << "for i, v in enumerate(values):\n"
            << in << "    acc = mix(acc, i, v)\n";
      }
      out << in << "return acc\n";
      break;
    case Kind::wait_for:
      out << in << "return await wait_for(" << node_coro(n.kids[0]) << ", " << n.arg << ")\n";
      break;
    case Kind::spawn:
      out << in << "task = asyncio.create_task(" << node_coro(n.kids[0]) << ")\n"
          << in << "try:\n"
          << in << "    pre = " << call(n.kids[1]) << '\n'
          << in << "except BaseException:\n"
          << in << "    task.cancel()  # no task outlives its node\n"
          << in << "    try:\n"
          << in << "        await task\n"
          << in << "    except BaseException:\n"
          << in << "        pass\n"
          << in << "    raise\n";
      if (n.arg != 0) {
        out << in << "taken = task.cancel()\n"
            << in << "T.record(" << id << ", \"cancel\", \"value\", int(taken))\n"
            << in << "cancel_code = 1 if taken else 2\n";
      } else {
        out << in << "cancel_code = 0\n";
      }
      out << in << "value = await task\n"
          << in << "return mix(mix(pre, 1, value), 2, cancel_code)\n";
      break;
  }
}

// One program as `async def program_<name>(T)`, T being its Trace.
inline std::string emit(const Program& p, const std::string& name) {
  std::ostringstream out;
  out << "\n# " << describe(p) << "\nasync def program_" << name << "(T):\n";
  for (std::size_t id = 0; id < p.nodes.size(); ++id) emit_node(p, static_cast<int>(id), out);
  out << "    return await T.node(0, n0)\n";
  return out.str();
}

// The whole script: the prelude, the programs, and a main that runs them one after another.
inline std::string script(const std::vector<std::pair<std::string, const Program*>>& programs) {
  std::ostringstream out;
  out << prelude();
  for (const auto& [name, program] : programs) out << emit(*program, name);
  out << "\n\nfor name, program in [";
  for (const auto& [name, program] : programs)
    out << "\n    (\"" << name << "\", program_" << name << "),";
  // gc.freeze(): the collection after each program skips the programs' own code, which would
  // make a run of thousands quadratic.
  out << "\n]:\n    gc.freeze()\n    run_program(name, program)\n";
  return out.str();
}

// What python3 printed for one program.
struct Trace {
  std::vector<Event> events;  // `at` in ticks
  std::vector<std::string> unexpected;
  bool seen = false;
};

struct Output {
  std::map<std::string, Trace> traces;
  std::string stray;  // lines outside any program: Python's own errors
  int status = 0;     // python3's exit status
};

inline bool parse_event(const std::string& line, Event& e) {
  std::istringstream in(line);
  std::string tag, kind, what;
  int value = 0;
  double at = 0;
  if (!(in >> tag >> e.node >> kind >> what >> value >> at) || tag != "event") return false;
  e.kind = kind == "enter"  ? EventKind::enter
           : kind == "exit" ? EventKind::exit
                            : EventKind::cancel_returned;
  if (what == "value")
    e.outcome = Outcome::of(value);
  else if (what == "error")
    e.outcome = Outcome::error(value);
  else if (what == "cancelled")
    e.outcome = Outcome::cancelled();
  else if (what == "timeout")
    e.outcome = Outcome::timeout();
  else
    return false;
  e.at = static_cast<long long>(at);
  return static_cast<double>(e.at) == at;
}

inline Output parse(std::istream& in) {
  Output output;
  std::string line;
  Trace* current = nullptr;
  while (std::getline(in, line)) {
    if (line.rfind("program ", 0) == 0) {
      current = &output.traces[line.substr(8)];
      current->seen = true;
    } else if (line.rfind("end ", 0) == 0) {
      current = nullptr;
    } else if (current != nullptr && line.rfind("unexpected ", 0) == 0) {
      current->unexpected.push_back(line.substr(11));
    } else if (Event e; current != nullptr && parse_event(line, e)) {
      current->events.push_back(e);
    } else if (current != nullptr) {
      current->unexpected.push_back("unreadable line: " + line);
    } else {
      output.stray += line + '\n';
    }
  }
  return output;
}

// Runs the script with the python3 on PATH (one process for all the programs); `emulate` runs
// it with RINGLOOP_ORACLE_EMULATE=1 (ringloop's known difference emulated, not the oracle), or
// with the environment's RINGLOOP_ORACLE_EMULATE (gather).
inline Output run_python(const std::string& text, bool emulate = false) {
  char path[] = "/tmp/ringloop-oracle-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) throw std::runtime_error("run_python: mkstemp failed");
  ::close(fd);
  std::ofstream(path) << text;
  if (const char* keep = std::getenv("RINGLOOP_ORACLE_SCRIPT"); keep != nullptr && !emulate)
    std::ofstream(keep) << text;  // to run it again by hand: python3 <file>
  // The oracle's run never inherits an emulation from the environment.
  std::string command =
      std::string(emulate ? "RINGLOOP_ORACLE_EMULATE=${RINGLOOP_ORACLE_EMULATE:-1}"
                          : "RINGLOOP_ORACLE_EMULATE=") +
      " python3 " + path + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ::unlink(path);
    throw std::runtime_error("run_python: popen failed");
  }
  std::string all;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) all.append(buffer, n);
  int status = ::pclose(pipe);
  ::unlink(path);
  std::istringstream in(all);
  Output output = parse(in);
  output.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return output;
}

}  // namespace model::python
