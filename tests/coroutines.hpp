// Small coroutines the tests share: a value after a delay, a failure after a delay.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include <ringloop/ringloop.hpp>

namespace test_support {

inline ringloop::Coro<int> value_after(std::chrono::milliseconds delay, int value) {
  co_await ringloop::sleep(delay);
  co_return value;
}

inline ringloop::Coro<int> fail_after(std::chrono::milliseconds delay, std::string message) {
  co_await ringloop::sleep(delay);
  throw std::runtime_error(message);
}

}  // namespace test_support
