// The synchronisation primitives: Event, Lock, Semaphore, BoundedSemaphore, Condition, Queue,
// LifoQueue, PriorityQueue. Orders are compared with what asyncio prints for the same program
// (the program is quoted next to the test). Each primitive is cancelled while queued and after
// it chose a waiter that had not run yet: nothing it granted (the lock, a permit, an item, a
// place, a notification) may be lost or given twice.
#include <catch2/catch.hpp>

#include <algorithm>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Condition;
using ringloop::Coro;
using ringloop::Event;
using ringloop::Lock;
using ringloop::Semaphore;
using ringloop::Task;
using Log = std::vector<std::string>;

namespace {

Coro<> yield() { co_await ringloop::sleep(0s); }

Coro<> yield_times(int n) {
  for (int i = 0; i < n; ++i) co_await ringloop::sleep(0s);
}

// Appends "<name>+" once it holds the lock, "<name>-" as it lets go, one loop step later.
Coro<> lock_worker(Lock& lock, std::string name, Log& log) {
  auto guard = co_await lock.scoped();
  log.push_back(name + "+");
  co_await ringloop::sleep(0s);
  log.push_back(name + "-");
}

Coro<> acquire_and_log(Lock& lock, std::string name, Log& log) {
  co_await lock.acquire();
  log.push_back(name);
  lock.release();
}

Coro<> wait_and_log(Event& event, std::string name, Log& log) {
  co_await event.wait();
  log.push_back(name);
}

Coro<> semaphore_worker(Semaphore& semaphore, std::string name, Log& log) {
  auto guard = co_await semaphore.scoped();
  log.push_back(name + "+");
  co_await ringloop::sleep(0s);
  co_await ringloop::sleep(0s);
  log.push_back(name + "-");
}

Coro<> take_permit_and_log(Semaphore& semaphore, std::string name, Log& log) {
  co_await semaphore.acquire();
  log.push_back(name);
}

// Waits on the condition and logs "<name>" holding the lock; on CancelledError logs
// "<name> cancelled" and whether it held the lock then.
Coro<> condition_waiter(Condition& condition, std::string name, Log& log) {
  auto guard = co_await condition.scoped();
  try {
    co_await condition.wait();
    log.push_back(name);
  } catch (const CancelledError&) {
    log.push_back(name + (condition.locked() ? " cancelled, locked" : " cancelled, unlocked"));
    throw;
  }
}

template <class Q>
Coro<> get_and_log(Q& queue, std::string name, Log& log) {
  auto item = co_await queue.get();
  log.push_back(name + ":" + std::to_string(item));
}

template <class Q>
Coro<> put_and_log(Q& queue, int item, Log& log) {
  co_await queue.put(item);
  log.push_back("put" + std::to_string(item));
}

// A task that cancels itself, then awaits the primitive: the cancel is pending at the await.
struct SelfCancel {
  Task<> task;
};

}  // namespace

// ---------------------------------------------------------------------------------------- Event

TEST_CASE("Event: set wakes every waiter in order on a later step, never inside set", "[sync]") {
  // asyncio: waiters 0..2 wait; ev.set(); out.append("set")
  //   -> ['set', 'woke0', 'woke1', 'woke2']
  Log log;
  ringloop::run([](Log& out) -> Coro<> {
    Event event;
    std::vector<Task<>> waiters;
    for (int i = 0; i < 3; ++i)
      waiters.push_back(
          ringloop::create_task(wait_and_log(event, "woke" + std::to_string(i), out)));
    co_await yield();
    CHECK_FALSE(event.is_set());
    event.set();
    out.push_back("set");
    CHECK(event.is_set());
    for (auto& waiter : waiters) co_await waiter;
  }(log));
  CHECK(log == Log{"set", "woke0", "woke1", "woke2"});
}

TEST_CASE("Event: a set event lets waits through until clear", "[sync]") {
  ringloop::run([]() -> Coro<> {
    Event event;
    event.set();
    co_await event.wait();  // returns at once
    event.clear();
    CHECK_FALSE(event.is_set());
    Log log;
    auto waiter = ringloop::create_task(wait_and_log(event, "woke", log));
    co_await yield_times(3);
    CHECK(log.empty());
    event.set();
    co_await waiter;
    CHECK(log == Log{"woke"});
  }());
}

TEST_CASE("Event: a cancelled waiter throws CancelledError, queued or already woken", "[sync]") {
  ringloop::run([]() -> Coro<> {
    Event event;
    Log log;
    auto queued = ringloop::create_task(wait_and_log(event, "queued", log));
    auto woken = ringloop::create_task(wait_and_log(event, "woken", log));
    auto other = ringloop::create_task(wait_and_log(event, "other", log));
    co_await yield();
    CHECK(queued.cancel());  // still waiting
    event.set();
    CHECK(woken.cancel());  // set() chose it; it has not run yet
    CHECK_THROWS_AS(co_await queued, CancelledError);
    CHECK_THROWS_AS(co_await woken, CancelledError);
    co_await other;
    CHECK(log == Log{"other"});
  }());
}

TEST_CASE("Event: uncancel() after set() woke the waiter lets it resume normally",
          "[sync][event]") {
  // Issue #20. asyncio 3.13: the waiter's future is done, so cancel() sets _must_cancel;
  // uncancel() bringing cancelling() to 0 clears it (3.11 and 3.12 keep it and throw).
  ringloop::run([]() -> Coro<> {
    Event event;
    Log log;
    auto woken = ringloop::create_task(wait_and_log(event, "woken", log));
    co_await yield();
    event.set();
    CHECK(woken.cancel());
    CHECK(woken.cancelling() == 1);
    CHECK(woken.uncancel() == 0);
    co_await woken;
    CHECK_FALSE(woken.cancelled());
    CHECK(log == Log{"woken"});
  }());
}

TEST_CASE("uncancel() after a grant keeps it: Lock, Semaphore, Queue get and put, Condition",
          "[sync][event][semaphore]") {
  // The same rule for every primitive's waiter: the grant (lock, permit, item, place, notify)
  // is kept when the cancel that came after it is taken back, and nothing is handed on.
  ringloop::run([]() -> Coro<> {
    Log log;
    Lock lock;
    co_await lock.acquire();
    auto locker = ringloop::create_task(acquire_and_log(lock, "lock", log));
    Semaphore semaphore(0);
    auto permit = ringloop::create_task(take_permit_and_log(semaphore, "permit", log));
    ringloop::Queue<int> items;
    auto getter = ringloop::create_task(get_and_log(items, "get", log));
    ringloop::Queue<int> places(1);
    places.put_nowait(0);
    auto putter = ringloop::create_task(put_and_log(places, 7, log));
    Condition condition;
    auto waiter = ringloop::create_task(condition_waiter(condition, "notified", log));
    co_await yield();
    lock.release();
    semaphore.release();
    items.put_nowait(5);
    int freed = places.get_nowait();
    CHECK(freed == 0);
    {
      auto guard = co_await condition.scoped();
      condition.notify();
    }  // the lock goes to the notified waiter
    for (Task<>* task : {&locker, &permit, &getter, &putter, &waiter}) {
      CHECK(task->cancel());
      CHECK(task->uncancel() == 0);
    }
    co_await ringloop::gather(locker, permit, getter, putter, waiter);
    std::sort(log.begin(), log.end());
    CHECK(log == Log{"get:5", "lock", "notified", "permit", "put7"});
    CHECK_FALSE(lock.locked());
    CHECK(semaphore.value() == 0);
    CHECK(items.empty());
    CHECK(places.qsize() == 1);
  }());
}

// ----------------------------------------------------------------------------------------- Lock

TEST_CASE("Lock: waiters acquire in the order they came", "[sync]") {
  // asyncio: three workers `async with lock: out.append(f"{i}+"); await sleep(0);
  // out.append(f"{i}-")` under gather -> ['0+', '0-', '1+', '1-', '2+', '2-']
  Log log;
  ringloop::run([](Log& out) -> Coro<> {
    Lock lock;
    co_await ringloop::gather(lock_worker(lock, "0", out), lock_worker(lock, "1", out),
                              lock_worker(lock, "2", out));
    CHECK_FALSE(lock.locked());
  }(log));
  CHECK(log == Log{"0+", "0-", "1+", "1-", "2+", "2-"});
}

TEST_CASE("Lock: release hands the lock to the first waiter; nobody takes it out of turn",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Lock lock;
    Log log;
    co_await lock.acquire();
    auto first = ringloop::create_task(acquire_and_log(lock, "first", log));
    co_await yield();
    lock.release();
    CHECK(lock.locked());  // owned by "first", which has not run yet
    // A new acquire queues behind "first" although "first" has not run.
    co_await lock.acquire();
    log.push_back("main");
    lock.release();
    co_await first;
    CHECK(log == Log{"first", "main"});
    CHECK_FALSE(lock.locked());
  }());
}

TEST_CASE("Lock: a queued waiter that is cancelled leaves the queue", "[sync]") {
  ringloop::run([]() -> Coro<> {
    Lock lock;
    Log log;
    co_await lock.acquire();
    auto a = ringloop::create_task(acquire_and_log(lock, "a", log));
    auto b = ringloop::create_task(acquire_and_log(lock, "b", log));
    co_await yield();
    a.cancel();
    CHECK_THROWS_AS(co_await a, CancelledError);
    CHECK(lock.locked());
    lock.release();
    co_await b;
    CHECK(log == Log{"b"});
    CHECK_FALSE(lock.locked());
  }());
}

TEST_CASE("Lock: a waiter cancelled after release chose it hands the lock to the next", "[sync]") {
  ringloop::run([]() -> Coro<> {
    Lock lock;
    Log log;
    co_await lock.acquire();
    auto a = ringloop::create_task(acquire_and_log(lock, "a", log));
    auto b = ringloop::create_task(acquire_and_log(lock, "b", log));
    co_await yield();
    lock.release();  // "a" owns the lock and is scheduled...
    a.cancel();      // ...but is cancelled before it runs
    CHECK(lock.locked());
    CHECK_THROWS_AS(co_await a, CancelledError);
    co_await b;
    CHECK(log == Log{"b"});
    CHECK_FALSE(lock.locked());
  }());
}

TEST_CASE("Lock: the last waiter cancelled after release chose it leaves the lock unlocked",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Lock lock;
    Log log;
    co_await lock.acquire();
    auto a = ringloop::create_task(acquire_and_log(lock, "a", log));
    co_await yield();
    lock.release();
    a.cancel();
    a.cancel();  // a second cancel changes nothing
    CHECK_THROWS_AS(co_await a, CancelledError);
    CHECK_FALSE(lock.locked());
    CHECK(log.empty());
  }());
}

TEST_CASE("Lock: a cancel pending before acquire throws at once without taking the lock",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Lock lock;
    SelfCancel box;
    box.task = ringloop::create_task([](SelfCancel& self, Lock& l) -> Coro<> {
      self.task.cancel();  // running: nothing can take it now, so it is pending
      co_await l.acquire();
      FAIL("acquire returned although a cancel was pending");
    }(box, lock));
    CHECK_THROWS_AS(co_await box.task, CancelledError);
    CHECK_FALSE(lock.locked());
  }());
}

TEST_CASE("Lock: the scoped guard releases on an exception; release when unlocked is an error",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Lock lock;
    try {
      auto guard = co_await lock.scoped();
      CHECK(lock.locked());
      throw std::runtime_error("inside");
    } catch (const std::runtime_error&) {
    }
    CHECK_FALSE(lock.locked());
    CHECK_THROWS_WITH(lock.release(), Catch::Contains("not acquired"));
    auto guard = co_await lock.scoped();
    guard.release();
    CHECK_FALSE(guard.owns());
    CHECK_FALSE(lock.locked());
  }());
}

// ------------------------------------------------------------------------------------ Semaphore

TEST_CASE("Semaphore: n holders at once, waiters served in order", "[sync]") {
  // asyncio: Semaphore(2), four workers `async with sem: out.append(f"{i}+"); await sleep(0);
  // await sleep(0); out.append(f"{i}-")` under gather
  //   -> ['0+', '1+', '0-', '1-', '2+', '3+', '2-', '3-']
  Log log;
  ringloop::run([](Log& out) -> Coro<> {
    Semaphore semaphore(2);
    co_await ringloop::gather(
        semaphore_worker(semaphore, "0", out), semaphore_worker(semaphore, "1", out),
        semaphore_worker(semaphore, "2", out), semaphore_worker(semaphore, "3", out));
    CHECK(semaphore.value() == 2);
  }(log));
  CHECK(log == Log{"0+", "1+", "0-", "1-", "2+", "3+", "2-", "3-"});
}

TEST_CASE("Semaphore: a permit handed to a cancelled waiter goes to the next one", "[sync]") {
  ringloop::run([]() -> Coro<> {
    Semaphore semaphore(1);
    Log log;
    co_await semaphore.acquire();
    auto queued = ringloop::create_task(take_permit_and_log(semaphore, "queued", log));
    auto chosen = ringloop::create_task(take_permit_and_log(semaphore, "chosen", log));
    auto next = ringloop::create_task(take_permit_and_log(semaphore, "next", log));
    co_await yield();
    queued.cancel();      // cancelled while queued
    semaphore.release();  // the permit goes to "chosen"...
    chosen.cancel();      // ...cancelled before it runs: the permit goes on to "next"
    CHECK_THROWS_AS(co_await queued, CancelledError);
    CHECK_THROWS_AS(co_await chosen, CancelledError);
    co_await next;
    CHECK(log == Log{"next"});
    CHECK(semaphore.value() == 0);  // "next" holds the only permit
    semaphore.release();
    CHECK(semaphore.value() == 1);
  }());
}

TEST_CASE("Semaphore: a permit handed to a cancelled last waiter goes back to the count",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Semaphore semaphore(0);
    Log log;
    auto chosen = ringloop::create_task(take_permit_and_log(semaphore, "chosen", log));
    co_await yield();
    CHECK(semaphore.locked());
    semaphore.release();
    CHECK(semaphore.value() == 0);  // handed over
    chosen.cancel();
    CHECK(semaphore.value() == 0);  // given back when "chosen" runs (asyncio's except clause)
    CHECK_THROWS_AS(co_await chosen, CancelledError);
    CHECK(semaphore.value() == 1);  // and back
    co_await semaphore.acquire();   // the permit is there
    CHECK(semaphore.value() == 0);
  }());
}

TEST_CASE("Semaphore: a waiter woken but not yet resumed keeps its turn over a later acquire",
          "[sync][semaphore]") {
  // Issue #20; asyncio 3.11.1+ (gh-90155):
  //   sem = Semaphore(0); t = create_task(w())  # w: await sem.acquire(); log.append("woken")
  //   await sleep(0); sem.release(); sem.release(); sem.release()
  //   sem.locked() -> True, sem._value -> 2
  //   await sem.acquire(); log.append("main"); await t
  //   -> log ['woken', 'main'], sem._value 1
  ringloop::run([]() -> Coro<> {
    Semaphore semaphore(0);
    Log log;
    auto woken = ringloop::create_task(take_permit_and_log(semaphore, "woken", log));
    co_await yield();
    semaphore.release();  // handed to "woken", which has not run yet
    semaphore.release();
    semaphore.release();
    CHECK(semaphore.locked());
    CHECK(semaphore.value() == 2);
    co_await semaphore.acquire();  // queues behind "woken"
    log.push_back("main");
    co_await woken;
    CHECK(log == Log{"woken", "main"});
    CHECK(semaphore.value() == 1);
    CHECK_FALSE(semaphore.locked());
  }());
}

TEST_CASE("Semaphore: test_acquire_fifo_order (CPython test_locks.py)", "[sync][semaphore]") {
  Log log;
  ringloop::run([](Log& out) -> Coro<> {
    Semaphore semaphore(1);
    auto worker = [](Semaphore& sem, std::string tag, Log& log) -> Coro<> {
      co_await sem.acquire();
      log.push_back(tag + "_1");
      co_await ringloop::sleep(10ms);
      sem.release();
      co_await sem.acquire();
      log.push_back(tag + "_2");
      co_await ringloop::sleep(10ms);
      sem.release();
    };
    co_await ringloop::gather(worker(semaphore, "c1", out), worker(semaphore, "c2", out),
                              worker(semaphore, "c3", out));
  }(log));
  CHECK(log == Log{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"});
}

TEST_CASE("Semaphore: test_acquire_fifo_order_2 (CPython test_locks.py)", "[sync][semaphore]") {
  ringloop::run([]() -> Coro<> {
    Semaphore semaphore(1);
    Log log;
    auto c1 = ringloop::create_task(take_permit_and_log(semaphore, "1", log));
    auto c2 = ringloop::create_task([](Semaphore& sem, Log& out) -> Coro<> {
      co_await sem.acquire();
      out.push_back("2");
      sem.release();
      co_await sem.acquire();
      out.push_back("4");
    }(semaphore, log));
    auto c3 = ringloop::create_task(take_permit_and_log(semaphore, "3", log));
    co_await yield();
    semaphore.release();
    semaphore.release();
    co_await ringloop::gather(c1, c2, c3);
    CHECK(log == Log{"1", "2", "3", "4"});
  }());
}

TEST_CASE("Semaphore: test_acquire_fifo_order_3 (CPython test_locks.py)", "[sync][semaphore]") {
  ringloop::run([]() -> Coro<> {
    Semaphore semaphore(0);
    Log log;
    auto c1 = ringloop::create_task(take_permit_and_log(semaphore, "1", log));
    auto c2 = ringloop::create_task(take_permit_and_log(semaphore, "2", log));
    auto c3 = ringloop::create_task(take_permit_and_log(semaphore, "3", log));
    co_await yield();
    c1.cancel();
    co_await yield();
    semaphore.release();
    semaphore.release();
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, c1, c2, c3);
    (void)outcomes;
    CHECK(c1.cancelled());
    CHECK(log == Log{"2", "3"});
  }());
}

TEST_CASE("BoundedSemaphore: a release above the initial value is a clear error", "[sync]") {
  ringloop::run([]() -> Coro<> {
    ringloop::BoundedSemaphore semaphore(2);
    {
      auto guard = co_await semaphore.scoped();
      CHECK(semaphore.value() == 1);
    }
    CHECK(semaphore.value() == 2);
    CHECK_THROWS_WITH(semaphore.release(), Catch::Contains("released more times than it was "
                                                           "acquired") &&
                                               Catch::Contains("initial value, 2"));
    CHECK(semaphore.value() == 2);
    Semaphore unbounded(2);
    unbounded.release();  // a plain Semaphore may go above (asyncio's too)
    CHECK(unbounded.value() == 3);
  }());
}

// ------------------------------------------------------------------------------------ Condition

TEST_CASE("Condition: notify wakes waiters in order, each holding the lock", "[sync]") {
  // asyncio: four waiters `async with cond: await cond.wait(); out.append(f"w{i}")`; then
  // `async with cond: cond.notify(1); out.append("n1")`; two sleep(0); then
  // `async with cond: cond.notify_all(); out.append("nall")`
  //   -> ['n1', 'w0', 'nall', 'w1', 'w2', 'w3']
  Log log;
  ringloop::run([](Log& out) -> Coro<> {
    Condition condition;
    std::vector<Task<>> waiters;
    for (int i = 0; i < 4; ++i)
      waiters.push_back(
          ringloop::create_task(condition_waiter(condition, "w" + std::to_string(i), out)));
    co_await yield();
    {
      auto guard = co_await condition.scoped();
      condition.notify(1);
      out.push_back("n1");
    }
    co_await yield_times(2);
    {
      auto guard = co_await condition.scoped();
      condition.notify_all();
      out.push_back("nall");
    }
    for (auto& waiter : waiters) co_await waiter;
    CHECK_FALSE(condition.locked());
  }(log));
  CHECK(log == Log{"n1", "w0", "nall", "w1", "w2", "w3"});
}

TEST_CASE("Condition: wait_for returns once the predicate holds, checked under the lock",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Condition condition;
    int value = 0;
    auto waiter = ringloop::create_task([](Condition& c, int& v) -> Coro<int> {
      auto guard = co_await c.scoped();
      bool ok = co_await c.wait_for([&] { return v >= 3; });
      CHECK(ok);
      CHECK(c.locked());
      co_return v;
    }(condition, value));
    for (int i = 0; i < 5; ++i) {
      co_await yield();
      auto guard = co_await condition.scoped();
      ++value;
      condition.notify_all();
    }
    int seen = co_await waiter;
    CHECK(seen == 3);  // woken at 1 and 2, returned at 3
  }());
}

TEST_CASE("Condition: a wait cancelled while the lock is held elsewhere re-acquires it first",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Condition condition;
    Log log;
    auto waiter = ringloop::create_task(condition_waiter(condition, "w", log));
    co_await yield();
    co_await condition.acquire();  // the waiter released it in wait()
    waiter.cancel();
    co_await yield_times(3);
    CHECK_FALSE(waiter.done());  // it cannot end before it holds the lock again
    CHECK(log.empty());
    condition.release();
    CHECK_THROWS_AS(co_await waiter, CancelledError);
    CHECK(log == Log{"w cancelled, locked"});
    CHECK_FALSE(condition.locked());  // its guard released it on the way out
  }());
}

TEST_CASE("Condition: a wait cancelled with the lock free re-acquires it and throws", "[sync]") {
  ringloop::run([]() -> Coro<> {
    Condition condition;
    Log log;
    auto waiter = ringloop::create_task(condition_waiter(condition, "w", log));
    co_await yield();
    CHECK_FALSE(condition.locked());
    waiter.cancel();
    CHECK(condition.locked());  // taken for the waiter at once
    CHECK_THROWS_AS(co_await waiter, CancelledError);
    CHECK(log == Log{"w cancelled, locked"});
    CHECK_FALSE(condition.locked());
  }());
}

TEST_CASE("Condition: a notified waiter cancelled before it resumes passes the notify on",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Condition condition;
    Log log;
    auto first = ringloop::create_task(condition_waiter(condition, "first", log));
    auto second = ringloop::create_task(condition_waiter(condition, "second", log));
    co_await yield();
    {
      auto guard = co_await condition.scoped();
      condition.notify(1);  // "first" is chosen...
      first.cancel();       // ...and cancelled: "second" gets the notification
    }
    CHECK_THROWS_AS(co_await first, CancelledError);
    co_await second;
    CHECK(log == Log{"first cancelled, locked", "second"});
  }());
}

TEST_CASE("Condition: wait and notify without the lock, or with a cancel pending, are clear",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Condition condition;
    CHECK_THROWS_WITH(co_await condition.wait(), Catch::Contains("lock is not acquired"));
    CHECK_THROWS_WITH(condition.notify(), Catch::Contains("lock is not acquired"));
    SelfCancel box;
    box.task = ringloop::create_task([](SelfCancel& self, Condition& c) -> Coro<> {
      auto guard = co_await c.scoped();
      self.task.cancel();
      try {
        co_await c.wait();
      } catch (const CancelledError&) {
        CHECK(c.locked());  // never released
        throw;
      }
    }(box, condition));
    CHECK_THROWS_AS(co_await box.task, CancelledError);
    CHECK_FALSE(condition.locked());
  }());
}

TEST_CASE("Condition: a shared Lock is the one wait releases and re-acquires", "[sync]") {
  ringloop::run([]() -> Coro<> {
    Lock lock;
    Condition condition(lock);
    Log log;
    auto waiter = ringloop::create_task(condition_waiter(condition, "w", log));
    co_await yield();
    CHECK_FALSE(lock.locked());
    co_await lock.acquire();
    condition.notify();
    lock.release();
    co_await waiter;
    CHECK(log == Log{"w"});
  }());
}

// ---------------------------------------------------------------------------------------- Queue

TEST_CASE("Queue, LifoQueue, PriorityQueue: their orders, sizes and nowait errors", "[sync]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Queue<int> fifo(3);
    ringloop::LifoQueue<int> lifo;
    ringloop::PriorityQueue<int> priority;
    for (int item : {2, 3, 1}) {
      fifo.put_nowait(item);
      lifo.put_nowait(item);
      priority.put_nowait(item);
    }
    CHECK(fifo.full());
    CHECK(fifo.qsize() == 3);
    CHECK_FALSE(lifo.full());  // unbounded
    CHECK_THROWS_AS(fifo.put_nowait(4), ringloop::QueueFull);
    CHECK_THROWS_WITH(fifo.put_nowait(4), Catch::Contains("queue is full (maxsize 3)"));
    std::vector<int> got_fifo, got_lifo, got_priority;
    while (!fifo.empty()) got_fifo.push_back(fifo.get_nowait());
    while (!lifo.empty()) got_lifo.push_back(co_await lifo.get());
    while (!priority.empty()) got_priority.push_back(priority.get_nowait());
    CHECK(got_fifo == std::vector<int>{2, 3, 1});
    CHECK(got_lifo == std::vector<int>{1, 3, 2});
    CHECK(got_priority == std::vector<int>{1, 2, 3});
    CHECK_THROWS_AS(fifo.get_nowait(), ringloop::QueueEmpty);
    CHECK_THROWS_WITH(fifo.get_nowait(), Catch::Contains("queue is empty"));
    // Items that only move: put and get take them by value.
    ringloop::Queue<std::unique_ptr<int>> owning;
    co_await owning.put(std::make_unique<int>(7));
    auto item = co_await owning.get();
    CHECK(*item == 7);
  }());
}

TEST_CASE("Queue: a bounded producer and consumer interleave as in asyncio", "[sync]") {
  // asyncio: Queue(maxsize=2); producer `for i in range(5): await q.put(i); out.append(f"put{i}")`
  // and consumer `for _ in range(5): item = await q.get(); out.append(f"get{item}");
  // q.task_done()` under gather, then `await q.join()`
  //   -> put0 put1 get0 get1 put2 put3 get2 get3 put4 get4
  Log log;
  ringloop::run([](Log& out) -> Coro<> {
    ringloop::Queue<int> queue(2);
    co_await ringloop::gather(
        [](ringloop::Queue<int>& q, Log& o) -> Coro<> {
          for (int i = 0; i < 5; ++i) {
            co_await q.put(i);
            o.push_back("put" + std::to_string(i));
          }
        }(queue, out),
        [](ringloop::Queue<int>& q, Log& o) -> Coro<> {
          for (int i = 0; i < 5; ++i) {
            int item = co_await q.get();
            o.push_back("get" + std::to_string(item));
            q.task_done();
          }
        }(queue, out));
    co_await queue.join();
  }(log));
  CHECK(log == Log{"put0", "put1", "get0", "get1", "put2", "put3", "get2", "get3", "put4", "get4"});
}

TEST_CASE("Queue: getters wait in order and are served in order", "[sync]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Queue<int> queue;
    Log log;
    auto a = ringloop::create_task(get_and_log(queue, "a", log));
    auto b = ringloop::create_task(get_and_log(queue, "b", log));
    co_await yield();
    queue.put_nowait(1);
    CHECK(queue.empty());  // promised to "a"
    CHECK_THROWS_AS(queue.get_nowait(), ringloop::QueueEmpty);
    queue.put_nowait(2);
    co_await a;
    co_await b;
    CHECK(log == Log{"a:1", "b:2"});
  }());
}

TEST_CASE("Queue: a getter cancelled after an item was promised to it does not lose the item",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Queue<int> queue;
    Log log;
    auto queued = ringloop::create_task(get_and_log(queue, "queued", log));
    auto chosen = ringloop::create_task(get_and_log(queue, "chosen", log));
    auto next = ringloop::create_task(get_and_log(queue, "next", log));
    co_await yield();
    queued.cancel();
    queue.put_nowait(1);  // promised to "chosen"...
    chosen.cancel();      // ...which is cancelled before it runs: "next" gets it
    CHECK_THROWS_AS(co_await queued, CancelledError);
    CHECK_THROWS_AS(co_await chosen, CancelledError);
    co_await next;
    CHECK(log == Log{"next:1"});

    // With no other getter, the item stays in the queue.
    auto last = ringloop::create_task(get_and_log(queue, "last", log));
    co_await yield();
    queue.put_nowait(2);
    CHECK(queue.qsize() == 0);
    last.cancel();
    CHECK(queue.qsize() == 0);  // given back when "last" runs (asyncio's except clause)
    CHECK_THROWS_AS(co_await last, CancelledError);
    CHECK(queue.qsize() == 1);
    int item = queue.get_nowait();
    CHECK(item == 2);
  }());
}

TEST_CASE("Queue: a putter cancelled on a full queue puts nothing; its place goes on", "[sync]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Queue<int> queue(1);
    Log log;
    queue.put_nowait(1);
    auto queued = ringloop::create_task(put_and_log(queue, 2, log));
    auto chosen = ringloop::create_task(put_and_log(queue, 3, log));
    auto next = ringloop::create_task(put_and_log(queue, 4, log));
    co_await yield();
    queued.cancel();                 // cancelled while waiting for room
    int first = queue.get_nowait();  // the place is promised to "chosen"...
    CHECK(queue.full());             // ...so nobody else may fill it
    chosen.cancel();                 // ...which is cancelled before it runs: "next" gets it
    CHECK_THROWS_AS(co_await queued, CancelledError);
    CHECK_THROWS_AS(co_await chosen, CancelledError);
    co_await next;
    CHECK(first == 1);
    CHECK(log == Log{"put4"});
    CHECK(queue.qsize() == 1);
    int second = queue.get_nowait();
    CHECK(second == 4);
    CHECK(queue.empty());
  }());
}

TEST_CASE("Queue: a get with a cancel pending throws at once and takes nothing", "[sync]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Queue<int> queue;
    queue.put_nowait(5);
    SelfCancel box;
    box.task = ringloop::create_task([](SelfCancel& self, ringloop::Queue<int>& q) -> Coro<> {
      self.task.cancel();
      int item = co_await q.get();
      FAIL("get returned " << item << " although a cancel was pending");
    }(box, queue));
    CHECK_THROWS_AS(co_await box.task, CancelledError);
    CHECK(queue.qsize() == 1);
    co_await queue.get();
  }());
}

TEST_CASE("Queue: join waits for task_done on every item; too many task_done is an error",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Queue<int> queue;
    co_await queue.join();  // nothing put: returns at once
    queue.put_nowait(1);
    queue.put_nowait(2);
    Log log;
    auto joiner = ringloop::create_task([](ringloop::Queue<int>& q, Log& o) -> Coro<> {
      co_await q.join();
      o.push_back("joined");
    }(queue, log));
    co_await yield();
    (void)queue.get_nowait();
    (void)queue.get_nowait();
    queue.task_done();
    co_await yield_times(2);
    CHECK(log.empty());  // one item is still being processed
    queue.task_done();
    co_await joiner;
    CHECK(log == Log{"joined"});
    CHECK_THROWS_WITH(queue.task_done(),
                      Catch::Contains("called more times than there were items"));
  }());
}

// ---------------------------------------------------------------------------- every primitive

TEST_CASE("wait_for on a primitive's wait: a timeout takes nothing and leaves no waiter",
          "[sync]") {
  ringloop::run([]() -> Coro<> {
    Lock lock;
    Semaphore semaphore(0);
    Event event;
    ringloop::Queue<int> queue(1);
    co_await lock.acquire();
    queue.put_nowait(1);
    CHECK_THROWS_AS(co_await ringloop::wait_for(lock.acquire(), 2ms), ringloop::TimeoutError);
    CHECK_THROWS_AS(co_await ringloop::wait_for(semaphore.acquire(), 2ms), ringloop::TimeoutError);
    CHECK_THROWS_AS(co_await ringloop::wait_for(event.wait(), 2ms), ringloop::TimeoutError);
    CHECK_THROWS_AS(co_await ringloop::wait_for(queue.put(2), 2ms), ringloop::TimeoutError);
    lock.release();
    semaphore.release();
    CHECK_FALSE(lock.locked());  // no waiter left behind to hand it to
    CHECK(semaphore.value() == 1);
    int item = co_await ringloop::wait_for(queue.get(), 1s);  // ready: no timer
    CHECK(item == 1);
    CHECK_THROWS_AS(co_await ringloop::wait_for(queue.get(), 2ms), ringloop::TimeoutError);
    queue.put_nowait(3);
    CHECK(queue.qsize() == 1);  // not promised to the getter that timed out
    auto [a, b] = co_await ringloop::gather(lock.acquire(), queue.get());
    (void)a;
    CHECK(b == 3);
    CHECK(lock.locked());
    lock.release();
  }());
}

TEST_CASE("a primitive awaited on one loop is refused on another, with a clear error", "[sync]") {
  Lock lock;
  Event event;
  ringloop::Queue<int> queue;
  ringloop::Loop first;
  ringloop::Loop second;
  first.run_until_complete([](Lock& l, Event& e, ringloop::Queue<int>& q) -> Coro<> {
    auto guard = co_await l.scoped();  // binds the lock to `first`
    e.set();
    co_await e.wait();
    q.put_nowait(1);
    (void)co_await q.get();
  }(lock, event, queue));
  second.run_until_complete([](Lock& l, Event& e, ringloop::Queue<int>& q) -> Coro<> {
    CHECK_THROWS_WITH(co_await l.acquire(), Catch::Contains("Lock.acquire") &&
                                                Catch::Contains("bound to another event loop"));
    CHECK_THROWS_WITH(co_await e.wait(), Catch::Contains("another event loop"));
    CHECK_THROWS_WITH(e.set(), Catch::Contains("Event.set"));
    CHECK_THROWS_WITH(q.put_nowait(2), Catch::Contains("another event loop"));
    CHECK_THROWS_WITH(co_await q.get(), Catch::Contains("Queue.get"));
  }(lock, event, queue));
  CHECK_FALSE(lock.locked());
}

namespace {
// Makes the primitive, leaves a task waiting on it, then destroys it under that task.
template <class Primitive, class Wait>
Coro<> destroy_while_waited(Wait wait) {
  auto primitive = std::make_unique<Primitive>();
  auto waiter = ringloop::create_task(wait(*primitive));
  co_await yield();
  primitive.reset();
}

// Runs the coroutine in a child process; returns what the child wrote to stderr if it died of
// SIGABRT, and "(no abort)" otherwise.
std::string abort_message(Coro<> (*make)()) {
  std::string status_text = "(no abort)";
  std::string report = test_support::capture_stderr([&] {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
      test_support::in_forked_child();
      ::signal(SIGABRT, SIG_DFL);
      ringloop::run(make());
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) status_text.clear();
  });
  return status_text.empty() ? report : status_text;
}
}  // namespace

TEST_CASE("destroying a primitive while coroutines wait on it aborts with a message", "[sync]") {
  CHECK_THAT(abort_message([] {
               return destroy_while_waited<Event>([](Event& e) -> Coro<> { co_await e.wait(); });
             }),
             Catch::Contains("an Event was destroyed while coroutines wait on it"));
  CHECK_THAT(abort_message([] {
               return destroy_while_waited<Lock>([](Lock& l) -> Coro<> {
                 co_await l.acquire();
                 co_await l.acquire();
               });
             }),
             Catch::Contains("a Lock was destroyed while coroutines wait"));
  CHECK_THAT(abort_message([] {
               return destroy_while_waited<Semaphore>([](Semaphore& s) -> Coro<> {
                 co_await s.acquire();
                 co_await s.acquire();
               });
             }),
             Catch::Contains("a Semaphore was destroyed while coroutines wait"));
  CHECK_THAT(abort_message([] {
               return destroy_while_waited<Condition>([](Condition& c) -> Coro<> {
                 co_await c.acquire();
                 co_await c.wait();
               });
             }),
             Catch::Contains("a Condition was destroyed while coroutines wait"));
  CHECK_THAT(abort_message([] {
               return destroy_while_waited<ringloop::Queue<int>>(
                   [](ringloop::Queue<int>& q) -> Coro<> { (void)co_await q.get(); });
             }),
             Catch::Contains("a Queue was destroyed while coroutines wait"));
}

namespace {
// Swallows the first cancel and waits again: the closing loop can only abandon it.
Coro<> stubborn_waiter(Lock& lock) {
  try {
    co_await lock.acquire();
  } catch (const CancelledError&) {
  }
  co_await lock.acquire();
}
}  // namespace

TEST_CASE("a task abandoned by its closing loop while it waits leaves the primitive's queue",
          "[sync]") {
  Lock lock;  // outlives the loop: its queue must not keep a node of a destroyed frame
  std::string report = test_support::capture_stderr([&] {
    ringloop::Loop loop;
    loop.run_until_complete([](Lock& l) -> Coro<> {
      co_await l.acquire();
      ringloop::create_task(stubborn_waiter(l));
      co_await yield();
    }(lock));
    loop.close();  // cancels the waiter, which waits again, and is then destroyed pending
  });
  CHECK_THAT(report, Catch::Contains("1 task(s) never finished"));
  CHECK(lock.locked());  // still owned by the coroutine that returned without releasing it
}

namespace {
// A coroutine type that is not ringloop's: it starts at once and is resumed by whoever it waits
// on (here, the loop), with no task behind it and so no cancellation.
struct Foreign {
  struct promise_type {
    Foreign get_return_object() {
      return Foreign{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  explicit Foreign(std::coroutine_handle<promise_type> h) noexcept : handle(h) {}
  Foreign(Foreign&& other) noexcept : handle(std::exchange(other.handle, {})) {}
  ~Foreign() {
    if (handle) handle.destroy();
  }
  bool done() const { return handle.done(); }
  std::coroutine_handle<promise_type> handle;
};

Foreign foreign_user(Event& event, Lock& lock, ringloop::Queue<int>& queue, Log& log) {
  co_await event.wait();
  log.push_back("event");
  auto guard = co_await lock.scoped();
  log.push_back("lock");
  int item = co_await queue.get();
  log.push_back("item " + std::to_string(item));
}
}  // namespace

TEST_CASE("a coroutine that is not a task can wait on the primitives", "[sync]") {
  ringloop::run([]() -> Coro<> {
    Event event;
    Lock lock;
    ringloop::Queue<int> queue;
    Log log;
    co_await lock.acquire();
    Foreign user = foreign_user(event, lock, queue, log);
    event.set();
    co_await yield();
    CHECK(log == Log{"event"});
    lock.release();
    co_await yield();
    queue.put_nowait(9);
    co_await yield();
    CHECK(log == Log{"event", "lock", "item 9"});
    CHECK(user.done());
    CHECK_FALSE(lock.locked());
  }());
}

// ----------------------------------------------------------------------------------- stress

namespace {

struct Contention {
  Lock lock;
  Semaphore semaphore{3};
  ringloop::Queue<int> queue{4};
  int in_lock = 0;
  int in_semaphore = 0;
  int max_in_semaphore = 0;
  std::uint64_t lock_entries = 0;
  std::vector<int> put_items;  // put() returned for these
  std::vector<int> got_items;  // get() returned these
  int consumer_cancels = 0;
  bool stop = false;
  bool violated = false;
};

Coro<> lock_user(Contention& c, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto guard = co_await c.lock.scoped();
    if (++c.in_lock != 1) c.violated = true;
    ++c.lock_entries;
    try {
      co_await ringloop::sleep(0s);
    } catch (const CancelledError&) {
      --c.in_lock;
      throw;
    }
    --c.in_lock;
  }
}

Coro<> semaphore_user(Contention& c, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto guard = co_await c.semaphore.scoped();
    c.max_in_semaphore = std::max(c.max_in_semaphore, ++c.in_semaphore);
    try {
      co_await ringloop::sleep(0s);
    } catch (const CancelledError&) {
      --c.in_semaphore;
      throw;
    }
    --c.in_semaphore;
  }
}

Coro<> producer(Contention& c, int first, int count) {
  for (int item = first; item < first + count; ++item) {
    co_await c.queue.put(item);
    c.put_items.push_back(item);
  }
}

// A cancel ends a consumer's current get (or yield), not the consumer: the producers must
// always find someone to take their items. It stops once told to.
Coro<> consumer(Contention& c) {
  while (!c.stop) {
    try {
      int item = co_await c.queue.get();
      c.got_items.push_back(item);
      if (c.got_items.size() % 3 == 0) co_await ringloop::sleep(0s);
    } catch (const CancelledError&) {
      ++c.consumer_cancels;
    }
  }
}

}  // namespace

TEST_CASE("many tasks contending a Lock, a Semaphore and a Queue under random cancels",
          "[sync][stress]") {
  const auto seed = static_cast<std::uint32_t>(Catch::rngSeed());
  INFO("seed " << seed);
  Contention c;
  ringloop::run([](Contention& state, std::uint32_t s) -> Coro<> {
    std::mt19937 random(s);
    std::vector<Task<>> workers;
    for (int i = 0; i < 60; ++i) {
      workers.push_back(ringloop::create_task(lock_user(state, 50)));
      workers.push_back(ringloop::create_task(semaphore_user(state, 50)));
    }
    for (int i = 0; i < 20; ++i)
      workers.push_back(ringloop::create_task(producer(state, i * 1000, 100)));
    std::vector<Task<>> consumers;
    for (int i = 0; i < 5; ++i) consumers.push_back(ringloop::create_task(consumer(state)));
    // Cancel a random worker or consumer now and then, whatever it is doing at that moment:
    // queued, just granted, or running.
    for (int step = 0; step < 400; ++step) {
      int yields = static_cast<int>(random() % 3);
      for (int i = 0; i < yields; ++i) co_await ringloop::sleep(0s);
      if (random() % 4 == 0) workers[random() % workers.size()].cancel();
      if (random() % 16 == 0) consumers[random() % consumers.size()].cancel();
    }
    for (auto& worker : workers) {
      try {
        co_await worker;
      } catch (const CancelledError&) {
      }
    }
    state.stop = true;
    for (auto& consumer_task : consumers) consumer_task.cancel();
    for (auto& consumer_task : consumers) co_await consumer_task;
    // Whatever was put and not got is still in the queue, promised to nobody.
    while (!state.queue.empty()) state.got_items.push_back(state.queue.get_nowait());
  }(c, seed));
  CHECK_FALSE(c.violated);
  CHECK(c.lock_entries > 0);
  CHECK_FALSE(c.lock.locked());
  CHECK(c.max_in_semaphore <= 3);
  CHECK(c.max_in_semaphore > 1);
  CHECK(c.semaphore.value() == 3);
  // Every item put was got exactly once, and nothing was got that was not put.
  std::sort(c.put_items.begin(), c.put_items.end());
  std::sort(c.got_items.begin(), c.got_items.end());
  CHECK(c.got_items == c.put_items);
  CHECK(c.queue.qsize() == 0);
  CHECK(c.consumer_cancels > 0);
}

// ------------------------------------------------------------------------------ Queue.shutdown
// Python 3.13's Queue.shutdown(immediate), for Queue, LifoQueue and PriorityQueue alike.

TEMPLATE_TEST_CASE("Queue.shutdown: put throws, get drains then throws, waiters are woken",
                   "[sync][queue]", ringloop::Queue<int>, ringloop::LifoQueue<int>,
                   ringloop::PriorityQueue<int>) {
  ringloop::run([]() -> Coro<> {
    TestType queue(1);
    Log log;
    auto getter_log = [](TestType& q, Log& out) -> Coro<> {
      try {
        int item = co_await q.get();
        out.push_back("got" + std::to_string(item));
      } catch (const ringloop::QueueShutDown&) {
        out.push_back("getter shut down");
      }
    };
    auto putter_log = [](TestType& q, int item, Log& out) -> Coro<> {
      try {
        co_await q.put(item);
        out.push_back("put" + std::to_string(item));
      } catch (const ringloop::QueueShutDown&) {
        out.push_back("putter shut down");
      }
    };
    // A getter waiting on an empty queue is woken by shutdown and throws.
    auto getter = ringloop::create_task(getter_log(queue, log));
    co_await yield();
    queue.shutdown();
    CHECK(queue.is_shut_down());
    co_await getter;
    CHECK(log == Log{"getter shut down"});
    CHECK_THROWS_AS(queue.put_nowait(1), ringloop::QueueShutDown);
    CHECK_THROWS_AS(co_await queue.put(1), ringloop::QueueShutDown);
    CHECK_THROWS_AS(queue.get_nowait(), ringloop::QueueShutDown);
    CHECK_THROWS_AS(co_await queue.get(), ringloop::QueueShutDown);

    // A putter waiting on a full queue is woken and throws; the items already there drain.
    TestType full(1);
    full.put_nowait(7);
    log.clear();
    auto putter = ringloop::create_task(putter_log(full, 8, log));
    co_await yield();
    full.shutdown();
    co_await putter;
    CHECK(log == Log{"putter shut down"});
    int drained = co_await full.get();
    CHECK(drained == 7);
    CHECK_THROWS_AS(co_await full.get(), ringloop::QueueShutDown);
    full.task_done();
    co_await full.join();  // every item got and done
  }());
}

TEMPLATE_TEST_CASE("Queue.shutdown(immediate): empties the queue, wakes everyone, releases join",
                   "[sync][queue]", ringloop::Queue<int>, ringloop::LifoQueue<int>,
                   ringloop::PriorityQueue<int>) {
  ringloop::run([]() -> Coro<> {
    TestType queue(2);
    Log log;
    queue.put_nowait(1);
    queue.put_nowait(2);
    auto putter = ringloop::create_task([](TestType& q, Log& out) -> Coro<> {
      try {
        co_await q.put(3);
      } catch (const ringloop::QueueShutDown&) {
        out.push_back("putter shut down");
      }
    }(queue, log));
    auto joiner = ringloop::create_task([](TestType& q, Log& out) -> Coro<> {
      co_await q.join();
      out.push_back("joined");
    }(queue, log));
    co_await yield();
    int first = queue.get_nowait();  // one item got, not yet done; its place goes to the putter
    CHECK((first == 1 || first == 2));
    queue.shutdown(true);
    CHECK(queue.empty());
    co_await putter;
    CHECK(log == Log{"putter shut down"});
    CHECK_FALSE(joiner.done());  // the item got is not done yet
    queue.task_done();
    co_await joiner;
    CHECK(log == Log{"putter shut down", "joined"});
    CHECK_THROWS_AS(queue.get_nowait(), ringloop::QueueShutDown);
  }());
}

TEST_CASE("Queue.shutdown(immediate): a getter woken with an item that shutdown removed throws",
          "[sync][queue]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Queue<int> queue;
    auto getter = ringloop::create_task(
        [](ringloop::Queue<int>& q) -> Coro<int> { co_return co_await q.get(); }(queue));
    co_await yield();
    queue.put_nowait(1);  // promised to the getter, which has not run yet
    queue.shutdown(true);
    CHECK_THROWS_AS(co_await getter, ringloop::QueueShutDown);
    co_await queue.join();  // the removed item counts as done
    CHECK(queue.qsize() == 0);
  }());
}
