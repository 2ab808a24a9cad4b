// Barrier: CPython 3.11's test_locks.py BarrierTests, ported one case per test (named after
// it). Not ported: test_barrier (repr, and `await barrier` as a TypeError: C++ rejects it at
// compile time) and test_draining_state and test_reset_barrier_when_tasks_half_draining, which
// read the repr's state name and the private _count; their behaviour is covered by
// test_blocking_tasks_while_draining and test_reset_barrier_while_tasks_draining.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <numeric>
#include <vector>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Barrier;
using ringloop::BrokenBarrierError;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Task;

namespace {

constexpr std::size_t kN = 5;  // asyncSetUp's self.N

Coro<> yield() { co_await ringloop::sleep(0s); }

// gather_tasks(n, coro): n tasks of make(), gathered. A coroutine, so that `make` (often a
// coroutine lambda, whose captures its coroutines use) lives in its frame until they finish.
template <class Make>
auto gather_tasks(std::size_t n, Make make)
    -> Coro<decltype(ringloop::gather(std::vector<Task<typename decltype(make())::value_type>>{})
                         .await_resume())> {
  std::vector<Task<typename decltype(make())::value_type>> tasks;
  for (std::size_t i = 0; i < n; ++i) tasks.push_back(ringloop::create_task(make()));
  co_return co_await ringloop::gather(std::move(tasks));
}

Coro<std::size_t> wait_at(Barrier& barrier) { co_return co_await barrier.wait(); }

std::vector<std::size_t> iota(std::size_t n) {
  std::vector<std::size_t> all(n);
  std::iota(all.begin(), all.end(), std::size_t{0});
  return all;
}

}  // namespace

TEST_CASE("Barrier: test_repr: waiting, draining, resetting and broken states", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(kN);
    std::vector<Task<std::size_t>> waiters;
    for (int i = 0; i < 2; ++i) waiters.push_back(ringloop::create_task(wait_at(barrier)));
    co_await yield();
    CHECK(barrier.n_waiting() == 2);
    for (std::size_t i = barrier.n_waiting(); i < barrier.parties(); ++i)
      waiters.push_back(ringloop::create_task(wait_at(barrier)));
    co_await yield();
    CHECK(barrier.n_waiting() == 0);  // draining
    for (int i = 0; i < 2; ++i) waiters.push_back(ringloop::create_task(wait_at(barrier)));
    co_await yield();
    barrier.reset();
    CHECK_FALSE(barrier.broken());
    for (int i = 0; i < 2; ++i) waiters.push_back(ringloop::create_task(wait_at(barrier)));
    co_await yield();
    barrier.abort();
    CHECK(barrier.broken());
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, std::move(waiters));
    CHECK(outcomes.size() == kN + 4);
  }());
}

TEST_CASE("Barrier: test_barrier_parties: 0 parties is an error", "[barrier]") {
  CHECK_THROWS_AS(Barrier(0), std::invalid_argument);
  Barrier barrier(kN);
  CHECK(barrier.parties() == kN);
}

TEST_CASE("Barrier: test_context_manager: each of N tasks gets its own index", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(3);
    auto results = co_await gather_tasks(3, [&] { return wait_at(barrier); });
    std::sort(results.begin(), results.end());
    CHECK(results == iota(3));
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
  }());
}

TEST_CASE("Barrier: test_filling_one_task: a barrier of one returns at once", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(1);
    std::size_t index = co_await barrier.wait();
    CHECK(index == 0);
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
  }());
}

TEST_CASE("Barrier: test_filling_one_task_twice", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(1);
    auto t1 = ringloop::create_task(wait_at(barrier));
    co_await yield();
    CHECK(barrier.n_waiting() == 0);
    auto t2 = ringloop::create_task(wait_at(barrier));
    co_await yield();
    REQUIRE(t1.done());
    REQUIRE(t2.done());
    CHECK(t1.result() == t2.result());
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
  }());
}

TEST_CASE("Barrier: test_filling_task_by_task", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(3);
    auto t1 = ringloop::create_task(wait_at(barrier));
    co_await yield();
    CHECK(barrier.n_waiting() == 1);
    auto t2 = ringloop::create_task(wait_at(barrier));
    co_await yield();
    CHECK(barrier.n_waiting() == 2);
    auto t3 = ringloop::create_task(wait_at(barrier));
    co_await yield();
    co_await ringloop::gather(t1, t2, t3);
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
  }());
}

TEST_CASE("Barrier: test_filling_tasks_wait_twice", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(kN);
    std::vector<bool> results;
    co_await gather_tasks(kN, [&]() -> Coro<> {
      co_await barrier.wait();
      results.push_back(true);
      co_await barrier.wait();
      results.push_back(false);
    });
    CHECK(results.size() == kN * 2);
    CHECK(std::count(results.begin(), results.end(), true) == kN);
    CHECK(std::count(results.begin(), results.end(), false) == kN);
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
  }());
}

TEST_CASE("Barrier: test_filling_tasks_check_return_value", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(kN);
    std::size_t first_passes = 0;
    auto res = co_await gather_tasks(kN, [&]() -> Coro<std::size_t> {
      co_await barrier.wait();
      ++first_passes;
      co_return co_await barrier.wait();
    });
    CHECK(first_passes == kN);
    std::sort(res.begin(), res.end());
    CHECK(res == iota(kN));
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
  }());
}

TEST_CASE("Barrier: test_blocking_tasks_while_draining", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    constexpr std::size_t rewait = 2;
    Barrier barrier(kN);
    Barrier barrier_nowaiting(kN - rewait);
    std::size_t rewait_n = rewait;
    // A success means that barrier_nowaiting was waited for exactly N - rewait times.
    co_await gather_tasks(kN, [&]() -> Coro<> {
      co_await barrier.wait();
      if (rewait_n > 0) {
        --rewait_n;
        co_await barrier.wait();
      } else {
        co_await barrier_nowaiting.wait();
        co_await barrier.wait();
      }
    });
    CHECK(barrier.n_waiting() == 0);
  }());
}

TEST_CASE("Barrier: test_filling_tasks_cancel_one: a cancelled waiter leaves the barrier",
          "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(3);
    std::size_t results = 0;
    auto coro = [&]() -> Coro<> {
      co_await barrier.wait();
      ++results;
    };
    auto t1 = ringloop::create_task(coro());
    co_await yield();
    CHECK(barrier.n_waiting() == 1);
    auto t2 = ringloop::create_task(coro());
    co_await yield();
    CHECK(barrier.n_waiting() == 2);
    t1.cancel();
    co_await yield();
    CHECK(barrier.n_waiting() == 1);
    CHECK_THROWS_AS(co_await t1, CancelledError);
    CHECK(t1.cancelled());
    auto t3 = ringloop::create_task(coro());
    co_await yield();
    CHECK(barrier.n_waiting() == 2);
    auto t4 = ringloop::create_task(coro());
    co_await ringloop::gather(t2, t3, t4);
    CHECK(results == 3);
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
  }());
}

TEST_CASE("Barrier: test_reset_barrier", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(1);
    barrier.reset();
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
    co_return;
  }());
}

TEST_CASE("Barrier: test_reset_barrier_while_tasks_waiting", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(kN);
    std::size_t broken = 0;
    auto coro = [&]() -> Coro<> {  // named: its captures outlive the tasks
      try {
        co_await barrier.wait();
      } catch (const BrokenBarrierError&) {
        ++broken;
      }
    };
    std::vector<Task<>> tasks;
    for (std::size_t i = 0; i < kN - 1; ++i) tasks.push_back(ringloop::create_task(coro()));
    co_await yield();
    auto reset = ringloop::create_task([](Barrier& b) -> Coro<> {
      b.reset();
      co_return;
    }(barrier));
    co_await ringloop::gather(std::move(tasks));
    co_await reset;
    CHECK(broken == kN - 1);
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
    // Not resetting any more: a full round passes.
    auto round = co_await gather_tasks(kN, [&] { return wait_at(barrier); });
    CHECK(round.size() == kN);
  }());
}

TEST_CASE("Barrier: test_reset_barrier_when_tasks_half_draining_half_blocking", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(kN);
    constexpr std::size_t blocking_tasks = kN / 2;
    std::size_t results1 = 0, results2 = 0, count = 0;
    co_await gather_tasks(kN, [&]() -> Coro<> {
      bool broke = false;
      try {
        co_await barrier.wait();
      } catch (const BrokenBarrierError&) {
        broke = true;
      }
      if (broke) {
        ++results1;
        co_await barrier.wait();  // waiting again to reach the parties
      } else if (++count > blocking_tasks) {
        barrier.reset();  // BrokenBarrierError for the waiting tasks
        co_await barrier.wait();
      } else {
        try {
          co_await barrier.wait();
        } catch (const BrokenBarrierError&) {
          ++results2;  // never: blocked tasks go on waiting
        }
      }
    });
    CHECK(results1 == blocking_tasks);
    CHECK(results2 == 0);
    CHECK(barrier.n_waiting() == 0);
    CHECK_FALSE(barrier.broken());
  }());
}

TEST_CASE("Barrier: test_reset_barrier_while_tasks_waiting_and_waiting_again", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(kN);
    std::size_t results1 = 0, results2 = 0;
    auto coro1 = [&]() -> Coro<> {  // named: its captures outlive the tasks
      try {
        co_await barrier.wait();
      } catch (const BrokenBarrierError&) {
        ++results1;
      }
      co_await barrier.wait();  // Python's `finally`
      ++results2;
    };
    auto coro2 = [&]() -> Coro<> {
      co_await barrier.wait();
      ++results2;
    };
    std::vector<Task<>> tasks;
    for (std::size_t i = 0; i < kN - 1; ++i) tasks.push_back(ringloop::create_task(coro1()));
    co_await yield();
    barrier.reset();  // asyncio: create_task(barrier.reset()); await sleep(0)
    auto last = ringloop::create_task(coro2());
    co_await ringloop::gather(std::move(tasks));
    co_await last;
    CHECK_FALSE(barrier.broken());
    CHECK(results1 == kN - 1);
    CHECK(results2 == kN);
    CHECK(barrier.n_waiting() == 0);
  }());
}

TEST_CASE("Barrier: test_reset_barrier_while_tasks_draining", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(kN);
    std::size_t results1 = 0, results2 = 0, results3 = 0, count = 0;
    co_await gather_tasks(kN, [&]() -> Coro<> {
      co_await barrier.wait();
      if (++count == kN) {
        barrier.reset();  // the last task out of the barrier
        co_await barrier.wait();
      } else {
        try {
          co_await barrier.wait();
          ++results1;
        } catch (const std::exception&) {
          ++results2;  // never
        }
      }
      co_await barrier.wait();  // passes the barrier again
      ++results3;
    });
    CHECK_FALSE(barrier.broken());
    CHECK(results1 == kN - 1);
    CHECK(results2 == 0);
    CHECK(results3 == kN);
    CHECK(barrier.n_waiting() == 0);
  }());
}

TEST_CASE("Barrier: test_abort_barrier", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(1);
    barrier.abort();
    CHECK(barrier.n_waiting() == 0);
    CHECK(barrier.broken());
    CHECK_THROWS_AS(co_await barrier.wait(), BrokenBarrierError);
  }());
}

TEST_CASE("Barrier: test_abort_barrier_when_tasks_half_draining_half_blocking", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(kN);
    constexpr std::size_t blocking_tasks = kN / 2;
    std::size_t results1 = 0, results2 = 0, count = 0;
    co_await gather_tasks(kN, [&]() -> Coro<> {
      bool broke = false;
      try {
        co_await barrier.wait();
      } catch (const BrokenBarrierError&) {
        broke = true;
      }
      if (broke) {
        ++results1;  // tasks waiting to drain
      } else if (++count > blocking_tasks) {
        barrier.abort();  // BrokenBarrierError for every task
      } else {
        try {
          co_await barrier.wait();
        } catch (const BrokenBarrierError&) {
          ++results2;  // blocked tasks, already drained
        }
      }
    });
    CHECK(barrier.broken());
    CHECK(results1 == blocking_tasks);
    CHECK(results2 == kN - blocking_tasks - 1);
    CHECK(barrier.n_waiting() == 0);
  }());
}

TEST_CASE("Barrier: test_abort_barrier_when_exception", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(kN);
    std::size_t results1 = 0, results2 = 0;
    co_await gather_tasks(kN, [&]() -> Coro<> {
      bool failed = false;
      try {
        std::size_t i = co_await barrier.wait();
        if (i == kN / 2) throw std::runtime_error("boom");
        co_await barrier.wait();
        ++results1;
      } catch (const BrokenBarrierError&) {
        ++results2;
      } catch (const std::runtime_error&) {
        failed = true;
      }
      if (failed) barrier.abort();
    });
    CHECK(barrier.broken());
    CHECK(results1 == 0);
    CHECK(results2 == kN - 1);
    CHECK(barrier.n_waiting() == 0);
  }());
}

TEST_CASE("Barrier: test_abort_barrier_when_exception_then_resetting", "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier1(kN), barrier2(kN);
    std::size_t results1 = 0, results2 = 0, results3 = 0;
    co_await gather_tasks(kN, [&]() -> Coro<> {
      bool failed = false;
      try {
        std::size_t i = co_await barrier1.wait();
        if (i == kN / 2) throw std::runtime_error("boom");
        co_await barrier1.wait();
        ++results1;
      } catch (const BrokenBarrierError&) {
        ++results2;
      } catch (const std::runtime_error&) {
        failed = true;
      }
      if (failed) barrier1.abort();
      // Everyone leaves barrier1 before the reset, and nobody enters it before.
      std::size_t i = co_await barrier2.wait();
      if (i == kN / 2) barrier1.reset();
      co_await barrier2.wait();
      co_await barrier1.wait();
      ++results3;
    });
    CHECK_FALSE(barrier1.broken());
    CHECK(results1 == 0);
    CHECK(results2 == kN - 1);
    CHECK(results3 == kN);
    CHECK(barrier1.n_waiting() == 0);
  }());
}

TEST_CASE("Barrier: a task cancelled while the barrier drains leaves without taking a place",
          "[barrier]") {
  ringloop::run([]() -> Coro<> {
    Barrier barrier(2);
    auto a = ringloop::create_task(wait_at(barrier));
    auto b = ringloop::create_task(wait_at(barrier));
    co_await yield();  // a waits, b released the barrier: it drains until a has left
    auto late = ringloop::create_task(wait_at(barrier));
    co_await yield();
    late.cancel();
    CHECK_THROWS_AS(co_await late, CancelledError);
    co_await ringloop::gather(a, b);
    CHECK(barrier.n_waiting() == 0);
    auto round = co_await gather_tasks(2, [&] { return wait_at(barrier); });
    std::sort(round.begin(), round.end());
    CHECK(round == iota(2));
  }());
}
