// Random programs for the model test: a tree of nodes (sleep, throw, sequence, try/catch,
// gather, wait_for, spawn with a cancel) generated from a seed or from a fuzzer's bytes, and what
// running one produces: each node's outcome and a trace of events. The reference model
// (model_reference.hpp) and ringloop (model_runner.hpp) run the same tree; model.cpp compares.
//
// Durations are whole ticks of virtual time. Every node runs at most once, so an event is named
// by its node and its kind alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace model {

enum class Kind : std::uint8_t {
  value,      // returns arg at once
  sleep,      // sleeps arg ticks, returns arg
  raise,      // throws ModelError(arg) at once
  sequence,   // runs kids in order; fails with the first failure
  try_catch,  // kids[0] is the body, kids[1] the handler; arg is a mask of what is caught
  gather,     // kids concurrently; arg = 1: return_exceptions
  wait_for,   // kids[0] with a timeout of arg ticks
  spawn,  // kids[0] as a task; runs kids[1] meanwhile; arg = 1: then cancels the task; awaits it
};

// What try_catch catches (arg's bits).
constexpr int kCatchError = 1;
constexpr int kCatchCancelled = 2;
constexpr int kCatchTimeout = 4;

struct Node {
  Kind kind = Kind::value;
  int arg = 0;
  std::vector<int> kids;
};

struct Program {
  std::vector<Node> nodes;  // nodes[0] is the root
};

// How a node ended.
struct Outcome {
  enum class What : std::uint8_t { value, error, cancelled, timeout };
  What what = What::value;
  int value = 0;  // the value, or the ModelError's tag

  bool ok() const { return what == What::value; }
  static Outcome of(int v) { return {What::value, v}; }
  static Outcome error(int tag) { return {What::error, tag}; }
  static Outcome cancelled() { return {What::cancelled, 0}; }
  static Outcome timeout() { return {What::timeout, 0}; }
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

inline std::string to_string(const Outcome& o) {
  switch (o.what) {
    case Outcome::What::value:
      return std::to_string(o.value);
    case Outcome::What::error:
      return "Error(" + std::to_string(o.value) + ")";
    case Outcome::What::cancelled:
      return "Cancelled";
    case Outcome::What::timeout:
      return "Timeout";
  }
  return "?";
}

// Whether a TryCatch node whose mask is `mask` catches an outcome: the rule both the reference
// model and the ringloop runner apply.
inline bool catches(int mask, const Outcome& o) {
  switch (o.what) {
    case Outcome::What::error:
      return (mask & kCatchError) != 0;
    case Outcome::What::cancelled:
      return (mask & kCatchCancelled) != 0;
    case Outcome::What::timeout:
      return (mask & kCatchTimeout) != 0;
    default:
      return false;
  }
}

// Mixing values keeps them small and order-sensitive.
constexpr int kValueModulus = 1'000'003;
inline int mix(int acc, std::size_t position, int value) {
  long long r = (static_cast<long long>(acc) * 31 + static_cast<long long>(position + 1) * value) %
                kValueModulus;
  return static_cast<int>(r < 0 ? r + kValueModulus : r);
}
// What an exception contributes to a value (a caught one, or one in gather's outcomes).
inline int code_of(const Outcome& o) {
  switch (o.what) {
    case Outcome::What::value:
      return o.value;
    case Outcome::What::error:
      return 1000 + o.value;
    case Outcome::What::cancelled:
      return 777;
    case Outcome::What::timeout:
      return 888;
  }
  return 0;
}

enum class EventKind : std::uint8_t { enter, exit, cancel_returned };

struct Event {
  int node = 0;
  EventKind kind = EventKind::enter;
  Outcome outcome;   // exit: how the node ended; cancel_returned: value 1 (true) or 0 (false)
  long long at = 0;  // model: the virtual tick; ringloop: ns since the program started
};

using EventKey = std::pair<int, EventKind>;

inline std::string to_string(const Event& e, bool virtual_time) {
  std::ostringstream out;
  out << (e.kind == EventKind::enter  ? "enter"
          : e.kind == EventKind::exit ? "exit "
                                      : "cancel")
      << " #" << e.node;
  if (e.kind == EventKind::exit) out << " -> " << to_string(e.outcome);
  if (e.kind == EventKind::cancel_returned) out << " -> " << (e.outcome.value ? "true" : "false");
  if (virtual_time)
    out << "  @" << e.at;
  else
    out << "  @" << e.at / 100'000 / 10.0 << "ms";
  return out.str();
}

// The generator's source of choices: a fuzzer's bytes while they last, then splitmix64.
class Choices {
 public:
  explicit Choices(std::uint64_t seed) : state_(scramble(seed)) {}
  Choices(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {
    for (std::size_t i = 0; i < size; ++i) state_ = state_ * 131 + data[i];
  }

  // A number in [lo, hi].
  int between(int lo, int hi) {
    auto span = static_cast<std::uint64_t>(hi - lo + 1);
    return lo + static_cast<int>(next() % span);
  }
  bool percent(int p) { return between(0, 99) < p; }

 private:
  // splitmix64's finaliser: neighbouring seeds give unrelated streams.
  static std::uint64_t scramble(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t next() {
    if (pos_ < size_) return data_[pos_++];
    return scramble(state_ += 0x9e3779b97f4a7c15ULL);
  }

  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t pos_ = 0;
  std::uint64_t state_ = 0x243f6a8885a308d3ULL;
};

struct Limits {
  int max_depth = 4;
  int max_nodes = 24;
  int max_sleep_ticks = 4;
  int max_timeout_ticks = 6;
};

class Generator {
 public:
  Generator(Choices& choices, const Limits& limits) : c_(choices), limits_(limits) {}

  Program generate() {
    make(0);
    return std::move(program_);
  }

 private:
  int add(Kind kind, int arg) {
    program_.nodes.push_back(Node{kind, arg, {}});
    return static_cast<int>(program_.nodes.size()) - 1;
  }
  void add_kid(int parent, int depth) {
    int kid = make(depth + 1);
    program_.nodes[static_cast<std::size_t>(parent)].kids.push_back(kid);
  }

  int make_leaf() {
    int roll = c_.between(0, 99);
    if (roll < 15) return add(Kind::value, c_.between(1, 9));
    if (roll < 75) return add(Kind::sleep, c_.between(1, limits_.max_sleep_ticks));
    return add(Kind::raise, c_.between(1, 9));
  }

  int make(int depth) {
    bool leaf = depth >= limits_.max_depth ||
                static_cast<int>(program_.nodes.size()) >= limits_.max_nodes ||
                (depth > 0 && c_.percent(30));
    if (leaf) return make_leaf();
    switch (c_.between(0, 4)) {
      case 0: {
        int id = add(Kind::sequence, 0);
        for (int i = c_.between(2, 3); i > 0; --i) add_kid(id, depth);
        return id;
      }
      case 1: {
        int id = add(Kind::try_catch, c_.between(1, 7));
        add_kid(id, depth);
        add_kid(id, depth + 1);  // handlers stay shallow
        return id;
      }
      case 2: {
        int id = add(Kind::gather, c_.percent(40) ? 1 : 0);
        for (int i = c_.between(1, 3); i > 0; --i) add_kid(id, depth);
        return id;
      }
      case 3: {
        int id = add(Kind::wait_for, c_.between(1, limits_.max_timeout_ticks));
        add_kid(id, depth);
        return id;
      }
      default: {
        int id = add(Kind::spawn, c_.percent(60) ? 1 : 0);
        add_kid(id, depth);
        add_kid(id, depth);
        return id;
      }
    }
  }

  Choices& c_;
  Limits limits_;
  Program program_;
};

inline Program generate(Choices& choices, const Limits& limits = {}) {
  return Generator(choices, limits).generate();
}

inline void describe(const Program& p, int id, std::ostringstream& out) {
  const Node& n = p.nodes[static_cast<std::size_t>(id)];
  static const char* const names[] = {"value", "sleep",  "raise",    "seq",
                                      "try",   "gather", "wait_for", "spawn"};
  out << names[static_cast<int>(n.kind)] << '#' << id;
  switch (n.kind) {
    case Kind::value:
    case Kind::sleep:
    case Kind::raise:
      out << '(' << n.arg << ')';
      return;
    case Kind::try_catch:
      out << '[' << ((n.arg & kCatchError) ? "E" : "") << ((n.arg & kCatchCancelled) ? "C" : "")
          << ((n.arg & kCatchTimeout) ? "T" : "") << ']';
      break;
    case Kind::gather:
      out << (n.arg ? "[rex]" : "");
      break;
    case Kind::wait_for:
      out << '[' << n.arg << ']';
      break;
    case Kind::spawn:
      out << (n.arg ? "[cancel]" : "");
      break;
    default:
      break;
  }
  out << '(';
  for (std::size_t i = 0; i < n.kids.size(); ++i) {
    if (i) out << ", ";
    describe(p, n.kids[i], out);
  }
  out << ')';
}

inline std::string describe(const Program& p) {
  std::ostringstream out;
  describe(p, 0, out);
  return out.str();
}

}  // namespace model
