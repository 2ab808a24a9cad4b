// asyncio's exceptions, as C++ types. CancelledError is what a cancelled task sees at the await
// point where it was suspended; TimeoutError is what wait_for throws when its deadline passed.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ringloop {

class CancelledError : public std::runtime_error {
 public:
  CancelledError() : std::runtime_error("the task was cancelled") {}
  explicit CancelledError(const std::string& message) : std::runtime_error(message) {}
};

class TimeoutError : public std::runtime_error {
 public:
  TimeoutError() : std::runtime_error("the deadline passed before the operation finished") {}
  explicit TimeoutError(const std::string& message) : std::runtime_error(message) {}
};

// run() was interrupted by SIGINT (Ctrl-C): the main task was cancelled and ended cancelled
// (Python's KeyboardInterrupt).
class KeyboardInterrupt : public std::runtime_error {
 public:
  KeyboardInterrupt() : std::runtime_error("interrupted by SIGINT: the main task was cancelled") {}
};

// A Barrier was aborted, or reset while this task waited at it (asyncio.BrokenBarrierError).
class BrokenBarrierError : public std::runtime_error {
 public:
  explicit BrokenBarrierError(const std::string& message) : std::runtime_error(message) {}
};

// A task's result or exception was asked for before the task finished.
class InvalidStateError : public std::logic_error {
 public:
  explicit InvalidStateError(const std::string& message) : std::logic_error(message) {}
};

// Several exceptions at once (Python's ExceptionGroup): what a TaskGroup throws when children
// failed. exceptions() holds each, in the order they happened.
class ExceptionGroup : public std::runtime_error {
 public:
  ExceptionGroup(const std::string& message, std::vector<std::exception_ptr> exceptions)
      : std::runtime_error(message + " (" + std::to_string(exceptions.size()) + " sub-exception" +
                           (exceptions.size() == 1 ? ")" : "s)")),
        exceptions_(std::move(exceptions)) {}
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  std::vector<std::exception_ptr> exceptions_;
};

}  // namespace ringloop
