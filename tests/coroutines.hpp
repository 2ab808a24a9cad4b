// Small coroutines the tests share: a value after a delay, a failure after a delay, a line echo
// server's handler.
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

// A server's handler: echoes each line until the client closes.
inline ringloop::Coro<> echo_lines(ringloop::Stream stream) {
  for (;;) {
    std::string line;
    try {
      line = co_await stream.read_until("\n");
    } catch (const ringloop::IncompleteReadError&) {
      co_return;
    }
    co_await stream.write(line);
  }
}

}  // namespace test_support
