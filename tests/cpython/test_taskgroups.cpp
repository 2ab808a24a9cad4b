// CPython 3.11's Lib/test/test_asyncio/test_taskgroups.py, ported: one case per test, on virtual
// time. `async with TaskGroup() as g: body` is `co_await task_group([&](TaskGroup& g) -> Coro<>
// {...})`. Python's exception classes are C++ classes of the same names; get_error_types() is
// error_types(). C++ cannot await inside a catch block: a handler that awaits in Python notes the
// exception, and the await follows the handler. PORTED.md lists every test of the file.
#include <catch2/catch.hpp>

#include <exception>
#include <set>
#include <stdexcept>
#include <string>

#include <ringloop/ringloop.hpp>
#include "tests/cpython/port.hpp"

using namespace std::chrono_literals;
using cpython_port::run_virtual;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::ExceptionGroup;
using ringloop::Task;
using ringloop::TaskGroup;

namespace {

#define PY_ERROR(Name)                    \
  struct Name : std::runtime_error {      \
    Name() : std::runtime_error(#Name) {} \
  }
PY_ERROR(ZeroDivisionError);
PY_ERROR(ValueError);
PY_ERROR(MyExc);
PY_ERROR(MyBaseExc);  // a BaseException in Python; C++ has one kind of exception
PY_ERROR(TypeError);
PY_ERROR(CustomException);
#undef PY_ERROR

std::string type_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const ExceptionGroup&) {
    return "ExceptionGroup";
  } catch (const ZeroDivisionError&) {
    return "ZeroDivisionError";
  } catch (const ValueError&) {
    return "ValueError";
  } catch (const MyExc&) {
    return "MyExc";
  } catch (const MyBaseExc&) {
    return "MyBaseExc";
  } catch (const TypeError&) {
    return "TypeError";
  } catch (const CustomException&) {
    return "CustomException";
  } catch (const CancelledError&) {
    return "CancelledError";
  } catch (...) {
    return "other";
  }
}

// get_error_types(eg)
std::set<std::string> error_types(const ExceptionGroup& group) {
  std::set<std::string> types;
  for (const auto& error : group.exceptions()) types.insert(type_of(error));
  return types;
}

std::set<std::string> types(std::initializer_list<const char*> names) {
  return std::set<std::string>(names.begin(), names.end());
}

Coro<int> value_after(std::chrono::milliseconds delay, int value) {
  co_await ringloop::sleep(delay);
  co_return value;
}

Coro<> sleep_for(std::chrono::milliseconds delay) { co_await ringloop::sleep(delay); }

template <class E>
Coro<> raise_after(std::chrono::milliseconds delay) {
  co_await ringloop::sleep(delay);
  throw E();
}

// foo() of tests 08, 11, 12: `try: await asyncio.sleep(10) finally: 1 / 0`.
Coro<> sleep_then_divide_by_zero() {
  try {
    co_await ringloop::sleep(10s);
  } catch (...) {
  }
  throw ZeroDivisionError();
}

// nested() of tests 19 to 21a: `try: await asyncio.sleep(10) finally: raise E`.
template <class E>
Coro<> sleep_then_raise() {
  try {
    co_await ringloop::sleep(10s);
  } catch (...) {
  }
  throw E();
}

// Awaits task and returns the ExceptionGroup it ends with; fails the test if it ends otherwise.
template <class T>
Coro<std::set<std::string>> group_error_types(Task<T> task) {
  std::exception_ptr error;
  try {
    co_await task;
  } catch (...) {
    error = std::current_exception();
  }
  REQUIRE(error != nullptr);
  try {
    std::rethrow_exception(error);
  } catch (const ExceptionGroup& group) {
    co_return error_types(group);
  } catch (...) {
    FAIL("ended with " + type_of(error) + ", not an ExceptionGroup");
  }
  co_return std::set<std::string>{};
}

}  // namespace

TEST_CASE("test_taskgroup_01: the group waits for its children; their results are there after",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    Task<int> t1, t2;
    co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
      t1 = g.create_task(value_after(100ms, 42));
      t2 = g.create_task(value_after(200ms, 11));
      co_return;
    });
    CHECK(t1.result() == 42);
    CHECK(t2.result() == 11);
  });
}

TEST_CASE("test_taskgroup_02: a child created after the body slept is waited for too",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    Task<int> t1, t2;
    co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
      t1 = g.create_task(value_after(100ms, 42));
      co_await ringloop::sleep(150ms);
      t2 = g.create_task(value_after(200ms, 11));
    });
    CHECK(t1.result() == 42);
    CHECK(t2.result() == 11);
  });
}

TEST_CASE("test_taskgroup_03: a child cancelled by hand does not disturb the group",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    Task<int> t1, t2;
    co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
      t1 = g.create_task(value_after(1s, 42));
      co_await ringloop::sleep(150ms);
      t1.cancel();
      t2 = g.create_task(value_after(200ms, 11));
    });
    CHECK(t1.cancelled());
    CHECK(t2.result() == 11);
  });
}

TEST_CASE(
    "test_taskgroup_04: a failing child cancels its sibling; the group raises an "
    "ExceptionGroup and the code after it does not run",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    int num = 0;
    bool t2_cancel = false;
    Task<> t2;
    auto foo2 = [&]() -> Coro<> {
      try {
        co_await ringloop::sleep(1s);
      } catch (const CancelledError&) {
        t2_cancel = true;
        throw;
      }
      num += 1;
    };
    auto runner = [&]() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(raise_after<ZeroDivisionError>(100ms));
        t2 = g.create_task(foo2());
        co_return;
      });
      num += 10;
    };
    auto errors = co_await group_error_types(ringloop::create_task(runner()));
    CHECK(errors == types({"ZeroDivisionError"}));
    CHECK(num == 0);
    CHECK(t2_cancel);
    CHECK(t2.cancelled());
  });
}

TEST_CASE(
    "test_cancel_children_on_child_error: the first failure cancels the other children "
    "and the body; the errors come back together",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    int num = 0;
    bool t2_cancel = false;
    bool runner_cancel = false;
    auto foo2 = [&]() -> Coro<> {
      try {
        co_await ringloop::sleep(5s);
      } catch (const CancelledError&) {
        t2_cancel = true;
        throw;
      }
      num += 1;
    };
    auto runner = [&]() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        for (int i = 0; i < 3; ++i) g.create_task(raise_after<ZeroDivisionError>(100ms));
        g.create_task(foo2());
        try {
          co_await ringloop::sleep(10s);
        } catch (const CancelledError&) {
          runner_cancel = true;
          throw;
        }
      });
      num += 10;
    };
    auto errors = co_await group_error_types(ringloop::create_task(runner()));
    CHECK(errors == types({"ZeroDivisionError"}));
    CHECK(num == 0);
    CHECK(t2_cancel);
    CHECK(runner_cancel);
  });
}

namespace {

// foo() of test_cancellation and test_taskgroup_07.
Coro<> count_cancel(int& num) {
  try {
    co_await ringloop::sleep(5s);
  } catch (const CancelledError&) {
    num += 1;
    throw;
  }
}

}  // namespace

TEST_CASE(
    "test_cancellation: cancelling the task that runs a group cancels every child and "
    "ends in CancelledError",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    int num = 0;
    auto runner = [&]() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        for (int i = 0; i < 5; ++i) g.create_task(count_cancel(num));
        co_return;
      });
    };
    auto r = ringloop::create_task(runner());
    co_await ringloop::sleep(100ms);
    CHECK_FALSE(r.done());
    r.cancel();
    CHECK_THROWS_AS(co_await r, CancelledError);
    CHECK(num == 5);
  });
}

TEST_CASE("test_taskgroup_07: an outside cancel reaches the body and every child",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    int num = 0;
    auto runner = [&]() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        for (int i = 0; i < 5; ++i) g.create_task(count_cancel(num));
        try {
          co_await ringloop::sleep(10s);
        } catch (const CancelledError&) {
          num += 10;
          throw;
        }
      });
    };
    auto r = ringloop::create_task(runner());
    co_await ringloop::sleep(100ms);
    CHECK_FALSE(r.done());
    r.cancel();
    CHECK_THROWS_AS(co_await r, CancelledError);
    CHECK(num == 15);
  });
}

TEST_CASE(
    "test_taskgroup_08: children that fail while being cancelled turn an outside cancel "
    "into an ExceptionGroup",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        for (int i = 0; i < 5; ++i) g.create_task(sleep_then_divide_by_zero());
        co_await ringloop::sleep(10s);
      });
    };
    auto r = ringloop::create_task(runner());
    co_await ringloop::sleep(100ms);
    CHECK_FALSE(r.done());
    r.cancel();
    auto errors = co_await group_error_types(r);
    CHECK(errors == types({"ZeroDivisionError"}));
  });
}

TEST_CASE("test_taskgroup_09: the body failing after a sleep cancels the children",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    Task<int> t1, t2;
    auto runner = [&]() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        t1 = g.create_task(value_after(1s, 42));
        t2 = g.create_task(value_after(2s, 11));
        co_await ringloop::sleep(100ms);
        throw ZeroDivisionError();
      });
    };
    auto errors = co_await group_error_types(ringloop::create_task(runner()));
    CHECK(errors == types({"ZeroDivisionError"}));
    CHECK(t1.cancelled());
    CHECK(t2.cancelled());
  });
}

TEST_CASE("test_taskgroup_10: the body failing at once cancels the children before they start",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    Task<int> t1, t2;
    auto runner = [&]() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        t1 = g.create_task(value_after(1s, 42));
        t2 = g.create_task(value_after(2s, 11));
        throw ZeroDivisionError();
        co_return;
      });
    };
    auto errors = co_await group_error_types(ringloop::create_task(runner()));
    CHECK(errors == types({"ZeroDivisionError"}));
    CHECK(t1.cancelled());
    CHECK(t2.cancelled());
  });
}

TEST_CASE("test_taskgroup_11: an inner group's ExceptionGroup is one error of the outer group",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup&) -> Coro<> {
        co_await ringloop::task_group([&](TaskGroup& g2) -> Coro<> {
          for (int i = 0; i < 5; ++i) g2.create_task(sleep_then_divide_by_zero());
          co_await ringloop::sleep(10s);
        });
      });
    };
    auto r = ringloop::create_task(runner());
    co_await ringloop::sleep(100ms);
    CHECK_FALSE(r.done());
    r.cancel();
    std::exception_ptr error;
    try {
      co_await r;
    } catch (...) {
      error = std::current_exception();
    }
    REQUIRE(type_of(error) == "ExceptionGroup");
    try {
      std::rethrow_exception(error);
    } catch (const ExceptionGroup& eg) {
      CHECK(error_types(eg) == types({"ExceptionGroup"}));
      REQUIRE(eg.exceptions().size() == 1);
      try {
        std::rethrow_exception(eg.exceptions()[0]);
      } catch (const ExceptionGroup& inner) {
        CHECK(error_types(inner) == types({"ZeroDivisionError"}));
      }
    }
  });
}

TEST_CASE(
    "test_taskgroup_12: an inner group's ExceptionGroup is one error of the outer group, "
    "whose other child is cancelled",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g1) -> Coro<> {
        g1.create_task(sleep_for(10s));
        co_await ringloop::task_group([&](TaskGroup& g2) -> Coro<> {
          for (int i = 0; i < 5; ++i) g2.create_task(sleep_then_divide_by_zero());
          co_await ringloop::sleep(10s);
        });
      });
    };
    auto r = ringloop::create_task(runner());
    co_await ringloop::sleep(100ms);
    CHECK_FALSE(r.done());
    r.cancel();
    std::exception_ptr error;
    try {
      co_await r;
    } catch (...) {
      error = std::current_exception();
    }
    REQUIRE(type_of(error) == "ExceptionGroup");
    try {
      std::rethrow_exception(error);
    } catch (const ExceptionGroup& eg) {
      CHECK(error_types(eg) == types({"ExceptionGroup"}));
      REQUIRE(eg.exceptions().size() == 1);
      try {
        std::rethrow_exception(eg.exceptions()[0]);
      } catch (const ExceptionGroup& inner) {
        CHECK(error_types(inner) == types({"ZeroDivisionError"}));
      }
    }
  });
}

TEST_CASE(
    "test_taskgroup_13: an outer child failing first cancels the inner group; only its "
    "error comes back",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g1) -> Coro<> {
        g1.create_task(raise_after<ValueError>(100ms));
        co_await ringloop::task_group([&](TaskGroup& g2) -> Coro<> {
          g2.create_task(raise_after<ValueError>(10s));
          co_return;
        });
      });
    };
    auto errors = co_await group_error_types(ringloop::create_task(runner()));
    CHECK(errors == types({"ValueError"}));
  });
}

TEST_CASE(
    "test_taskgroup_14: an inner child failing first comes back wrapped in the inner "
    "group's ExceptionGroup",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g1) -> Coro<> {
        g1.create_task(raise_after<ValueError>(10s));
        co_await ringloop::task_group([&](TaskGroup& g2) -> Coro<> {
          g2.create_task(raise_after<ValueError>(100ms));
          co_return;
        });
      });
    };
    auto r = ringloop::create_task(runner());
    std::exception_ptr error;
    try {
      co_await r;
    } catch (...) {
      error = std::current_exception();
    }
    REQUIRE(type_of(error) == "ExceptionGroup");
    try {
      std::rethrow_exception(error);
    } catch (const ExceptionGroup& eg) {
      CHECK(error_types(eg) == types({"ExceptionGroup"}));
      REQUIRE(eg.exceptions().size() == 1);
      try {
        std::rethrow_exception(eg.exceptions()[0]);
      } catch (const ExceptionGroup& inner) {
        CHECK(error_types(inner) == types({"ValueError"}));
      }
    }
  });
}

namespace {

// runner() of tests 15 and 16: the body, cancelled from outside, sleeps 0.5 s before re-raising;
// meanwhile the child fails.
Coro<> crash_soon_while_body_lingers() {
  co_await ringloop::task_group([&](TaskGroup& g1) -> Coro<> {
    g1.create_task(raise_after<ZeroDivisionError>(300ms));
    bool cancelled = false;
    try {
      co_await ringloop::sleep(10s);
    } catch (const CancelledError&) {
      cancelled = true;
    }
    if (cancelled) {
      co_await ringloop::sleep(500ms);
      throw CancelledError();
    }
  });
}

}  // namespace

TEST_CASE(
    "test_taskgroup_15: a child failing while the cancelled body lingers makes the group "
    "raise an ExceptionGroup",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto r = ringloop::create_task(crash_soon_while_body_lingers());
    co_await ringloop::sleep(100ms);
    CHECK_FALSE(r.done());
    r.cancel();
    auto errors = co_await group_error_types(r);
    CHECK(errors == types({"ZeroDivisionError"}));
  });
}

TEST_CASE("test_taskgroup_16: the same, with the group one task further down",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      auto t = ringloop::create_task(crash_soon_while_body_lingers());
      co_await t;
    };
    auto r = ringloop::create_task(runner());
    co_await ringloop::sleep(100ms);
    CHECK_FALSE(r.done());
    r.cancel();
    auto errors = co_await group_error_types(r);
    CHECK(errors == types({"ZeroDivisionError"}));
  });
}

TEST_CASE("test_taskgroup_17: an outside cancel of a group without children is a CancelledError",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    int num = 0;
    auto runner = [&]() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup&) -> Coro<> {
        try {
          co_await ringloop::sleep(10s);
        } catch (const CancelledError&) {
          num += 10;
          throw;
        }
      });
    };
    auto r = ringloop::create_task(runner());
    co_await ringloop::sleep(100ms);
    CHECK_FALSE(r.done());
    r.cancel();
    CHECK_THROWS_AS(co_await r, CancelledError);
    CHECK(num == 10);
  });
}

TEST_CASE(
    "test_taskgroup_18: a body that turns an outside cancel into an error ends in an "
    "ExceptionGroup of that error",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    int num = 0;
    auto runner = [&]() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup&) -> Coro<> {
        try {
          co_await ringloop::sleep(10s);
        } catch (const CancelledError&) {
          num += 10;
          throw MyExc();
        }
      });
    };
    auto r = ringloop::create_task(runner());
    co_await ringloop::sleep(100ms);
    CHECK_FALSE(r.done());
    r.cancel();
    auto errors = co_await group_error_types(r);
    CHECK(errors == types({"MyExc"}));
    CHECK(num == 10);
  });
}

TEST_CASE("test_taskgroup_19: the body's own error joins the child's in the ExceptionGroup",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(raise_after<ZeroDivisionError>(100ms));
        co_await sleep_then_raise<MyExc>();
      });
    };
    auto errors = co_await group_error_types(ringloop::create_task(runner()));
    CHECK(errors == types({"MyExc", "ZeroDivisionError"}));
  });
}

TEST_CASE("test_taskgroup_20a: a 'base' exception from the body joins the child's error",
          "[cpython][cpython_taskgroups]") {
  // Python: a BaseExceptionGroup; C++ has one kind of exception, so this is test_taskgroup_19.
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(raise_after<ZeroDivisionError>(100ms));
        co_await sleep_then_raise<MyBaseExc>();
      });
    };
    auto errors = co_await group_error_types(ringloop::create_task(runner()));
    CHECK(errors == types({"MyBaseExc", "ZeroDivisionError"}));
  });
}

TEST_CASE("test_taskgroup_21a: a child's 'base' exception joins the body's error",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(raise_after<MyBaseExc>(100ms));
        co_await sleep_then_raise<TypeError>();
      });
    };
    auto errors = co_await group_error_types(ringloop::create_task(runner()));
    CHECK(errors == types({"MyBaseExc", "TypeError"}));
  });
}

TEST_CASE("test_taskgroup_22: cancelling the task while the children sleep is a CancelledError",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    auto runner = []() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(value_after(1s, 42));
        g.create_task(value_after(2s, 11));
        co_return;
      });
    };
    auto r = ringloop::create_task(runner());
    co_await ringloop::sleep(50ms);
    r.cancel();
    CHECK_THROWS_AS(co_await r, CancelledError);
  });
}

TEST_CASE("test_taskgroup_23: finished children leave the group while the body still runs",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
      for (int count = 0; count < 10; ++count) {
        co_await ringloop::sleep(100ms);
        g.create_task(sleep_for(300ms));
        if (count == 5) CHECK(g.pending() < 5);  // len(g._tasks)
      }
      co_await ringloop::sleep(1350ms);
      CHECK(g.pending() == 0);
    });
  });
}

TEST_CASE("test_taskgroup_24: a child may add children to the group",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    int finished = 0;
    auto coro1 = [&](std::chrono::milliseconds delay) -> Coro<> {
      co_await ringloop::sleep(delay);
      ++finished;
    };
    auto root = [&](TaskGroup& g) -> Coro<> {
      co_await ringloop::sleep(100ms);
      g.create_task(coro1(100ms));
      g.create_task(coro1(200ms));
    };
    co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
      g.create_task(root(g));
      co_return;
    });
    CHECK(finished == 2);
  });
}

namespace {

Coro<> new_hydra(TaskGroup& g, int& nhydras);

Coro<> hydra(TaskGroup& g, int& nhydras) {
  nhydras += 1;
  co_await ringloop::sleep(10ms);
  g.create_task(new_hydra(g, nhydras));
  g.create_task(new_hydra(g, nhydras));
}

// Only creates the coroutine (no recursion at run time); clang 14's -Winfinite-recursion takes
// a coroutine that creates a new frame of itself for a call that never returns.
Coro<> new_hydra(TaskGroup& g, int& nhydras) { return hydra(g, nhydras); }

Coro<> hercules(const int& nhydras) {
  while (nhydras < 10) co_await ringloop::sleep(15ms);
  throw ZeroDivisionError();
}

}  // namespace

TEST_CASE("test_taskgroup_25: a failing child stops children that keep creating children",
          "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    int nhydras = 0;
    auto runner = [&]() -> Coro<> {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(hydra(g, nhydras));
        g.create_task(hercules(nhydras));
        co_return;
      });
    };
    auto errors = co_await group_error_types(ringloop::create_task(runner()));
    CHECK(errors == types({"ZeroDivisionError"}));
    CHECK(nhydras >= 10);
  });
}

TEST_CASE(
    "test_taskgroup_no_create_task_after_failure: a group that is shutting down refuses "
    "new children",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    bool refused = false;
    auto coro2 = [&](TaskGroup& g) -> Coro<> {
      bool cancelled = false;
      try {
        co_await ringloop::sleep(1s);
      } catch (const CancelledError&) {
        cancelled = true;
      }
      if (cancelled) {
        // asyncio raises RuntimeError; the refused coroutine is then awaited by hand.
        auto c1 = raise_after<ZeroDivisionError>(1ms);
        try {
          g.create_task(std::move(c1));
        } catch (const std::logic_error&) {
          refused = true;
        }
        CHECK_THROWS_AS(co_await raise_after<ZeroDivisionError>(1ms), ZeroDivisionError);
      }
    };
    std::exception_ptr error;
    try {
      co_await ringloop::task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(raise_after<ZeroDivisionError>(1ms));
        g.create_task(coro2(g));
        co_return;
      });
    } catch (...) {
      error = std::current_exception();
    }
    CHECK(refused);
    REQUIRE(type_of(error) == "ExceptionGroup");
    try {
      std::rethrow_exception(error);
    } catch (const ExceptionGroup& eg) {
      CHECK(error_types(eg) == types({"ZeroDivisionError"}));
    }
  });
}

TEST_CASE(
    "test_taskgroup_context_manager_exit_raises: an error raised while the body unwinds "
    "joins the child's; the task's cancel count is back to 0",
    "[cpython][cpython_taskgroups]") {
  run_virtual([]() -> Coro<> {
    Task<> task;  // asyncio.current_task() inside main()
    auto raise_exc = []() -> Coro<> {
      throw CustomException();
      co_return;
    };
    auto main = [&]() -> Coro<> {
      std::exception_ptr error;
      try {
        co_await ringloop::task_group([&](TaskGroup& tg) -> Coro<> {
          // async with database(): its finally raises CustomException
          try {
            tg.create_task(raise_exc());
            co_await ringloop::sleep(1s);
          } catch (...) {
          }
          throw CustomException();
        });
      } catch (...) {
        error = std::current_exception();
      }
      REQUIRE(type_of(error) == "ExceptionGroup");
      CHECK(task.cancelling() == 0);
      try {
        std::rethrow_exception(error);
      } catch (const ExceptionGroup& eg) {
        CHECK(eg.exceptions().size() == 2);
        CHECK(error_types(eg) == types({"CustomException"}));
      }
    };
    task = ringloop::create_task(main());
    co_await task;
  });
}
