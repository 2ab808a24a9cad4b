// The four examples of the asyncio guide (shared/seed/asyncio-guide.md), line for line in
// ringloop, with the guide's function names and printed lines. Used by examples/asyncio_guide
// and by tests/guide.cpp.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include <ringloop/ringloop.hpp>

namespace asyncio_guide {

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::create_task;
using ringloop::gather;
using ringloop::wait_for;

inline Coro<std::string> fetch_data(int id) {
  co_await ringloop::sleep(2s);
  co_return "Data " + std::to_string(id);
}

inline Coro<> run_parallel_using_create_task() {
  auto task1 = create_task(fetch_data(1));  // Starts immediately
  auto task2 = create_task(fetch_data(2));  // Starts immediately

  auto result1 = co_await task1;
  auto result2 = co_await task2;
  std::printf("Results: %s, %s\n", result1.c_str(), result2.c_str());
}

inline Coro<> run_parallel_using_gather() {
  // Run multiple coroutines concurrently
  auto tasks = gather(fetch_data(1), fetch_data(2));
  auto [first, second] = co_await tasks;
  std::printf("All results: ['%s', '%s']\n", first.c_str(), second.c_str());
}

inline Coro<> run_parallel_using_create_task_with_timeout() {
  auto task1 = create_task(fetch_data(1));  // Starts immediately
  auto task2 = create_task(fetch_data(2));  // Starts immediately

  try {
    auto result1 = co_await wait_for(task1, 1s);
    auto result2 = co_await wait_for(task2, 1s);
    std::printf("Results: %s, %s\n", result1.c_str(), result2.c_str());
  } catch (const ringloop::TimeoutError&) {
    std::printf("At least one task timed out!\n");
    // Note: wait_for() cancelled the timed out task automatically
  }
}

inline Coro<> run_parallel_using_gather_with_timeout() {
  auto tasks = gather(fetch_data(1), fetch_data(2));
  try {
    auto [first, second] = co_await wait_for(std::move(tasks), 2s);
    std::printf("All results: ['%s', '%s']\n", first.c_str(), second.c_str());
  } catch (const ringloop::TimeoutError&) {
    std::printf("Entire operation timed out!\n");
    // Note: wait_for() cancelled the gathered tasks automatically
  }
}

}  // namespace asyncio_guide
