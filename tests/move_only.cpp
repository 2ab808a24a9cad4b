// Move-only results (Stream, std::unique_ptr) through every combinator: they are moved, never
// copied, so each compiles and hands the value over; a second taker of a move-only result gets
// InvalidStateError.
#include <catch2/catch.hpp>

#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Socket;
using ringloop::Stream;
using ringloop::Task;
using Box = std::unique_ptr<int>;

namespace {

Coro<Box> box(int value) {
  co_await ringloop::sleep(1ms);
  co_return std::make_unique<int>(value);
}

Coro<Box> box_now(int value) { co_return std::make_unique<int>(value); }

}  // namespace

TEST_CASE("wait_for and gather carry a Stream from open_connection", "[api][move_only]") {
  ringloop::run([]() -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    std::uint16_t port = ringloop::local_port(listener);
    Stream one = co_await ringloop::wait_for(ringloop::open_connection("127.0.0.1", port), 1s);
    CHECK(one.socket().fd() >= 0);
    auto [two, three] = co_await ringloop::gather(ringloop::open_connection("127.0.0.1", port),
                                                  ringloop::open_connection("127.0.0.1", port));
    CHECK(two.socket().fd() >= 0);
    CHECK(three.socket().fd() >= 0);
    CHECK(two.socket().fd() != three.socket().fd());
  }());
}

TEST_CASE("run returns a move-only result", "[api][move_only]") {
  Box result = ringloop::run(box(7));
  REQUIRE(result);
  CHECK(*result == 7);
}

TEST_CASE("wait_for, gather and shield carry a std::unique_ptr", "[api][move_only]") {
  ringloop::run([]() -> Coro<> {
    Box a = co_await ringloop::wait_for(box(1), 1s);
    Box b = co_await ringloop::wait_for(box_now(2), 1s);
    Box c = co_await ringloop::wait_for(ringloop::create_task(box(3)), 1s);
    CHECK((*a + *b + *c) == 6);

    auto [d, e] = co_await ringloop::gather(box(4), ringloop::create_task(box(5)));
    CHECK((*d + *e) == 9);
    std::vector<Coro<Box>> coros;
    coros.push_back(box(6));
    coros.push_back(box_now(7));
    std::vector<Box> many = co_await ringloop::gather(coros);
    REQUIRE(many.size() == 2);
    CHECK((*many[0] + *many[1]) == 13);

    auto [f, g] = co_await ringloop::gather(ringloop::return_exceptions, box(8), box_now(9));
    Box f_value = std::move(f).value();
    CHECK(*f_value == 8);
    CHECK(*g.value() == 9);
    std::vector<Task<Box>> tasks{ringloop::create_task(box(10))};
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, tasks);
    CHECK(*outcomes.at(0).value() == 10);

    Box h = co_await ringloop::shield(box(11));
    Box i = co_await ringloop::shield(ringloop::create_task(box(12)));
    CHECK((*h + *i) == 23);
  }());
}

TEST_CASE("a Task of a move-only type is awaited with std::move, and its result taken once",
          "[api][move_only]") {
  ringloop::run([]() -> Coro<> {
    Task<Box> task = ringloop::create_task(box(5));
    Box got = co_await std::move(task);
    CHECK(*got == 5);

    // Two handles to one task: the first taker moves the value out, the second is told.
    Task<Box> shared = ringloop::create_task(box(6));
    Task<Box> other = shared;
    Box first = co_await std::move(shared);
    CHECK(*first == 6);
    CHECK_THROWS_AS(other.result(), ringloop::InvalidStateError);
    bool second_told = false;
    try {
      Box second = co_await std::move(other);
    } catch (const ringloop::InvalidStateError& error) {
      second_told = std::string(error.what()).find("moved out already") != std::string::npos;
    }
    CHECK(second_told);

    // result() lends the value without taking it.
    Task<Box> kept = ringloop::create_task(box_now(8));
    co_await ringloop::sleep(1ms);
    CHECK(*kept.result() == 8);
  }());
}

TEST_CASE("wait, AsCompleted and TaskGroup hand back tasks whose move-only result can be taken",
          "[api][move_only]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Task<Box>> tasks{ringloop::create_task(box(1)), ringloop::create_task(box(2))};
    auto result = co_await ringloop::wait(std::move(tasks));
    int sum = 0;
    for (Task<Box>& task : result.done) {
      Box value = co_await std::move(task);
      sum += *value;
    }
    CHECK(sum == 3);

    std::vector<Coro<Box>> coros;
    coros.push_back(box(3));
    coros.push_back(box_now(4));
    ringloop::AsCompleted<Box> each(std::move(coros));
    sum = 0;
    while (each.has_next()) {
      Task<Box> task = co_await each.next();
      Box value = co_await std::move(task);
      sum += *value;
    }
    CHECK(sum == 7);

    Box from_group = co_await ringloop::task_group([](ringloop::TaskGroup& group) -> Coro<Box> {
      Task<Box> child = group.create_task(box(5));
      Box value = co_await std::move(child);
      co_return std::make_unique<int>(*value + 1);
    });
    CHECK(*from_group == 6);
  }());
}

namespace {

// Counts its copies: a result handed over is moved.
struct Counted {
  static inline int copies = 0;
  int value = 0;
  explicit Counted(int v) : value(v) {}
  Counted(const Counted& other) : value(other.value) { ++copies; }
  Counted(Counted&&) noexcept = default;
  Counted& operator=(const Counted&) = delete;
  Counted& operator=(Counted&&) noexcept = default;
};

Coro<Counted> counted(int value) {
  co_await ringloop::sleep(0s);
  co_return Counted(value);
}

}  // namespace

TEST_CASE("gather of a vector of tasks handed over takes the vector and moves the results",
          "[api][move_only]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Task<Counted>> tasks;
    for (int i = 1; i <= 3; ++i) tasks.push_back(ringloop::create_task(counted(i)));
    Counted::copies = 0;
    // Handed over: gather holds the only reference to each task, so each result is moved out.
    std::vector<Counted> moved = co_await ringloop::gather(std::move(tasks));
    REQUIRE(moved.size() == 3);
    CHECK(moved[0].value + moved[1].value + moved[2].value == 6);
    CHECK(Counted::copies == 0);
    CHECK(tasks.empty());  // NOLINT(bugprone-use-after-move): std::vector's move empties it

    // Shared: the caller's handles keep the tasks and their results, so gather copies them.
    std::vector<Task<Counted>> kept{ringloop::create_task(counted(4))};
    std::vector<Counted> copied = co_await ringloop::gather(kept);
    CHECK(copied.at(0).value == 4);
    CHECK(Counted::copies >= 1);
    CHECK(kept.at(0).result().value == 4);
  }());
}
