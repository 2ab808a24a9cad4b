// CPython 3.11's Lib/test/test_asyncio/test_queues.py, ported: one case per test (the join
// tests once per queue kind, as the mixin runs them), on virtual time. PORTED.md lists every
// test of the file.
#include <catch2/catch.hpp>

#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/cpython/port.hpp"

using namespace std::chrono_literals;
using cpython_port::run_virtual;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Event;
using ringloop::LifoQueue;
using ringloop::PriorityQueue;
using ringloop::Queue;
using ringloop::QueueEmpty;
using ringloop::QueueFull;
using ringloop::Task;
using ringloop::TaskGroup;

namespace {

auto yield() { return ringloop::sleep(0s); }

// asyncio.create_task(q.get()), asyncio.create_task(q.put(x)).
template <class Q>
auto get(Q& q) -> Coro<decltype(q.get_nowait())> {
  co_return co_await q.get();
}
template <class Q, class T>
Coro<> put(Q& q, T item) {
  co_await q.put(std::move(item));
}

}  // namespace

// ---- QueueBasicTests

TEST_CASE("Queue test_empty: empty() follows put and get", "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q;
    CHECK(q.empty());
    co_await q.put(1);
    CHECK_FALSE(q.empty());
    int item = co_await q.get();
    CHECK(item == 1);
    CHECK(q.empty());
  });
}

TEST_CASE("Queue test_full: an unbounded queue is never full; maxsize 1 is after one put",
          "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> unbounded;
    CHECK_FALSE(unbounded.full());
    Queue<int> q(1);
    co_await q.put(1);
    CHECK(q.full());
  });
}

TEST_CASE("Queue test_order: a Queue is first in, first out", "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q;
    for (int i : {1, 3, 2}) co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
    CHECK(items == (std::vector<int>{1, 3, 2}));
  });
}

TEST_CASE("Queue test_maxsize: a putter blocks at maxsize and resumes when an item is taken",
          "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q(2);
    CHECK(q.maxsize() == 2);
    std::vector<int> have_been_put;
    auto putter = [&]() -> Coro<bool> {
      for (int i = 0; i < 3; ++i) {
        co_await q.put(i);
        have_been_put.push_back(i);
      }
      co_return true;
    };
    auto t = ringloop::create_task(putter());
    for (int i = 0; i < 2; ++i) co_await yield();
    CHECK(have_been_put == (std::vector<int>{0, 1}));
    int first = co_await q.get();
    CHECK(first == 0);
    co_await yield();
    CHECK(have_been_put == (std::vector<int>{0, 1, 2}));
    int second = co_await q.get();
    CHECK(second == 1);
    int third = co_await q.get();
    CHECK(third == 2);
    CHECK(t.done());
    CHECK(t.result());
  });
}

// ---- QueueGetTests

TEST_CASE("Queue test_blocking_get: get returns an item already there",
          "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q;
    q.put_nowait(1);
    int item = co_await q.get();
    CHECK(item == 1);
  });
}

TEST_CASE("Queue test_blocking_get_wait: get waits until an item is put",
          "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q;
    Event started;
    bool finished = false;
    auto queue_get = [&]() -> Coro<int> {
      started.set();
      int res = co_await q.get();
      finished = true;
      co_return res;
    };
    auto queue_get_task = ringloop::create_task(queue_get());
    co_await started.wait();
    CHECK_FALSE(finished);
    ringloop::call_later(10ms, [&q] { q.put_nowait(1); });
    int res = co_await queue_get_task;
    CHECK(finished);
    CHECK(res == 1);
  });
}

TEST_CASE("Queue test_nonblocking_get: get_nowait takes an item", "[cpython][cpython_queues]") {
  Queue<int> q;
  q.put_nowait(1);
  CHECK(q.get_nowait() == 1);
}

TEST_CASE("Queue test_nonblocking_get_exception: get_nowait on an empty queue raises QueueEmpty",
          "[cpython][cpython_queues]") {
  Queue<int> q;
  CHECK_THROWS_AS(q.get_nowait(), QueueEmpty);
}

TEST_CASE(
    "Queue test_get_cancelled_race: an item put after a getter was cancelled goes to the "
    "next getter",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<std::string> q;
    auto t1 = ringloop::create_task(get(q));
    auto t2 = ringloop::create_task(get(q));
    co_await yield();
    t1.cancel();
    co_await yield();
    CHECK(t1.done());
    co_await q.put("a");
    co_await yield();
    std::string item = co_await t2;
    CHECK(item == "a");
  });
}

TEST_CASE("Queue test_get_with_waiting_putters: waiting putters fill a full queue in order",
          "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<std::string> q(1);
    auto a = ringloop::create_task(put(q, std::string("a")));
    auto b = ringloop::create_task(put(q, std::string("b")));
    std::string first = co_await q.get();
    CHECK(first == "a");
    std::string second = co_await q.get();
    CHECK(second == "b");
  });
}

TEST_CASE(
    "Queue test_why_are_getters_waiting: a producer and a consumer through a queue of 1 "
    "both finish",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q(1);
    auto consumer = [&](int num_expected) -> Coro<> {
      for (int i = 0; i < num_expected; ++i) co_await q.get();
    };
    auto producer = [&](int num_items) -> Coro<> {
      for (int i = 0; i < num_items; ++i) co_await q.put(i);
    };
    co_await ringloop::task_group([&](TaskGroup& tg) -> Coro<> {
      tg.create_task(producer(5));
      tg.create_task(consumer(5));
      co_return;
    });
    CHECK(q.empty());
  });
}

TEST_CASE(
    "Queue test_cancelled_getters_not_being_held_in_self_getters: a getter timed out by "
    "wait_for leaves nothing behind",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> queue(5);
    CHECK_THROWS_AS(co_await ringloop::wait_for(get(queue), 100ms), ringloop::TimeoutError);
    // len(queue._getters) == 0: the next item is there for get_nowait, promised to nobody.
    queue.put_nowait(1);
    CHECK(queue.qsize() == 1);
    CHECK(queue.get_nowait() == 1);
  });
}

// ---- QueuePutTests

TEST_CASE("Queue test_blocking_put: put on an unbounded queue does not block",
          "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q;
    co_await q.put(1);
    int item = co_await q.get();
    CHECK(item == 1);
  });
}

TEST_CASE("Queue test_blocking_put_wait: put waits for a free place", "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q(1);
    Event started;
    bool finished = false;
    auto queue_put = [&]() -> Coro<> {
      started.set();
      co_await q.put(1);
      co_await q.put(2);
      finished = true;
    };
    ringloop::call_later(10ms, [&q] { q.get_nowait(); });
    auto queue_put_task = ringloop::create_task(queue_put());
    co_await started.wait();
    CHECK_FALSE(finished);
    co_await queue_put_task;
    CHECK(finished);
  });
}

TEST_CASE("Queue test_nonblocking_put: put_nowait adds an item", "[cpython][cpython_queues]") {
  Queue<int> q;
  q.put_nowait(1);
  CHECK(q.get_nowait() == 1);
}

TEST_CASE(
    "Queue test_get_cancel_drop_one_pending_reader: a getter cancelled after an item was "
    "put for it drops nothing",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q;
    auto reader = ringloop::create_task(get(q));
    co_await yield();
    q.put_nowait(1);
    q.put_nowait(2);
    reader.cancel();
    bool cancelled = false;
    try {
      co_await reader;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    if (cancelled) {  // try again
      reader = ringloop::create_task(get(q));
      co_await reader;
    }
    int result = reader.result();
    CHECK(result == 1);  // if we get 2, it means 1 got dropped!
    q.get_nowait();
  });
}

TEST_CASE(
    "Queue test_get_cancel_drop_many_pending_readers: of three getters, the cancelled one "
    "takes nothing and the others get both items",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q;
    Task<int> reader1, reader2, reader3;
    co_await ringloop::task_group([&](TaskGroup& tg) -> Coro<> {
      reader1 = tg.create_task(get(q));
      reader2 = tg.create_task(get(q));
      reader3 = tg.create_task(get(q));
      co_await yield();
      q.put_nowait(1);
      q.put_nowait(2);
      reader1.cancel();
      CHECK_THROWS_AS(co_await reader1, CancelledError);
      co_await reader3;
    });
    CHECK(std::set<int>{reader2.result(), reader3.result()} == (std::set<int>{1, 2}));
  });
}

TEST_CASE(
    "Queue test_put_cancel_drop: a putter cancelled after a place was freed for it puts "
    "nothing twice",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q(1);
    q.put_nowait(1);
    auto writer = ringloop::create_task(put(q, 2));
    co_await yield();
    int value1 = q.get_nowait();
    CHECK(value1 == 1);
    writer.cancel();
    bool cancelled = false;
    try {
      co_await writer;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    if (cancelled) {  // try again
      writer = ringloop::create_task(put(q, 2));
      co_await writer;
    }
    int value2 = q.get_nowait();
    CHECK(value2 == 2);
    CHECK(q.qsize() == 0);
  });
}

TEST_CASE("Queue test_nonblocking_put_exception: put_nowait on a full queue raises QueueFull",
          "[cpython][cpython_queues]") {
  Queue<int> q(1);
  q.put_nowait(1);
  CHECK_THROWS_AS(q.put_nowait(2), QueueFull);
}

TEST_CASE("Queue test_put_cancelled: a put into an unbounded queue finishes",
          "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> q;
    auto queue_put = [&]() -> Coro<bool> {
      co_await q.put(1);
      co_return true;
    };
    auto t = ringloop::create_task(queue_put());
    int item = co_await q.get();
    CHECK(item == 1);
    CHECK(t.done());
    CHECK(t.result());
  });
}

TEST_CASE(
    "Queue test_put_cancelled_race: a cancelled putter is skipped; the others put in "
    "order",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<std::string> q(1);
    auto put_a = ringloop::create_task(put(q, std::string("a")));
    auto put_b = ringloop::create_task(put(q, std::string("b")));
    auto put_c = ringloop::create_task(put(q, std::string("X")));
    co_await yield();
    CHECK(put_a.done());
    CHECK_FALSE(put_b.done());
    put_c.cancel();
    co_await yield();
    CHECK(put_c.done());
    CHECK(q.get_nowait() == "a");
    co_await yield();
    CHECK(q.get_nowait() == "b");
    co_await put_b;
  });
}

TEST_CASE("Queue test_put_with_waiting_getters: a put reaches a waiting getter",
          "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<std::string> q;
    auto t = ringloop::create_task(get(q));
    co_await yield();
    co_await q.put("a");
    std::string item = co_await t;
    CHECK(item == "a");
  });
}

TEST_CASE(
    "Queue test_why_are_putters_waiting: putters blocked on a full queue all finish once "
    "a getter empties it",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> queue(2);
    auto putter = [&](int item) -> Coro<> { co_await queue.put(item); };
    auto getter = [&]() -> Coro<> {
      co_await yield();
      std::size_t num = queue.qsize();
      for (std::size_t i = 0; i < num; ++i) queue.get_nowait();
    };
    co_await ringloop::task_group([&](TaskGroup& tg) -> Coro<> {
      tg.create_task(getter());
      for (int i = 0; i < 4; ++i) tg.create_task(putter(i));
      co_return;
    });
    CHECK(queue.qsize() == 2);
  });
}

TEST_CASE(
    "Queue test_cancelled_puts_not_being_held_in_self_putters: a cancelled putter leaves "
    "nothing behind",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> queue(1);
    queue.put_nowait(1);
    auto put_task = ringloop::create_task(put(queue, 1));
    co_await yield();
    put_task.cancel();
    CHECK_THROWS_AS(co_await put_task, CancelledError);
    // len(queue._putters) == 0: the place freed next is there for put_nowait.
    queue.get_nowait();
    queue.put_nowait(2);
    CHECK(queue.get_nowait() == 2);
  });
}

TEST_CASE(
    "Queue test_cancelled_put_silence_value_error_exception: a putter cancelled after "
    "get_nowait freed its place raises CancelledError",
    "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    Queue<int> queue(1);
    queue.put_nowait(1);
    auto put_task = ringloop::create_task(put(queue, 1));
    co_await yield();
    queue.get_nowait();
    put_task.cancel();
    CHECK_THROWS_AS(co_await put_task, CancelledError);
  });
}

// ---- LifoQueueTests, PriorityQueueTests

TEST_CASE("LifoQueue test_order: a LifoQueue is last in, first out", "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    LifoQueue<int> q;
    for (int i : {1, 3, 2}) co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
    CHECK(items == (std::vector<int>{2, 3, 1}));
  });
}

TEST_CASE("PriorityQueue test_order: a PriorityQueue gives the smallest first",
          "[cpython][cpython_queues]") {
  run_virtual([]() -> Coro<> {
    PriorityQueue<int> q;
    for (int i : {1, 3, 2}) co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
    CHECK(items == (std::vector<int>{1, 2, 3}));
  });
}

// ---- _QueueJoinTestMixin, run for each kind

TEMPLATE_TEST_CASE(
    "Queue/LifoQueue/PriorityQueue JoinTests test_task_done_underflow: task_done "
    "without an item is an error",
    "[cpython][cpython_queues]", Queue<int>, LifoQueue<int>, PriorityQueue<int>) {
  TestType q;
  CHECK_THROWS_AS(q.task_done(), std::logic_error);  // asyncio's ValueError
}

TEMPLATE_TEST_CASE(
    "Queue/LifoQueue/PriorityQueue JoinTests test_task_done: join returns once "
    "every item is done",
    "[cpython][cpython_queues]", Queue<int>, LifoQueue<int>, PriorityQueue<int>) {
  run_virtual([]() -> Coro<> {
    TestType q;
    for (int i = 0; i < 100; ++i) q.put_nowait(i);
    int accumulator = 0;
    bool running = true;
    auto worker = [&]() -> Coro<> {
      while (running) {
        int item = co_await q.get();
        accumulator += item;
        q.task_done();
      }
    };
    co_await ringloop::task_group([&](TaskGroup& tg) -> Coro<> {
      std::vector<Task<>> tasks;
      for (int i = 0; i < 2; ++i) tasks.push_back(tg.create_task(worker()));
      co_await q.join();
      CHECK(accumulator == 99 * 100 / 2);
      running = false;
      for (std::size_t i = 0; i < tasks.size(); ++i) q.put_nowait(0);
    });
  });
}

TEMPLATE_TEST_CASE(
    "Queue/LifoQueue/PriorityQueue JoinTests test_join_empty_queue: join on an "
    "empty queue returns at once",
    "[cpython][cpython_queues]", Queue<int>, LifoQueue<int>, PriorityQueue<int>) {
  run_virtual([]() -> Coro<> {
    TestType q;
    co_await q.join();
    co_await q.join();
  });
}
