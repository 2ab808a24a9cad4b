// asyncio's exceptions, as C++ types. CancelledError is what a cancelled task sees at the await
// point where it was suspended; TimeoutError is what wait_for throws when its deadline passed.
// CancelledError and KeyboardInterrupt derive from BaseException, not std::exception, so that
// a "log and go on" catch (const std::exception&) cannot swallow them (Python 3.8's rule).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ringloop {

// Python's BaseException: the root of the exceptions that end a task or a program rather than
// report an error (CancelledError, KeyboardInterrupt). Not a std::exception on purpose: a
// handler for "any error" must not stop a cancel or a Ctrl-C; catch BaseException (or
// catch (...)) where both are meant. Copying never throws, as for std::exception.
class BaseException {
 public:
  explicit BaseException(const std::string& message)
      : message_(std::make_shared<const std::string>(message)) {}
  virtual ~BaseException() = default;
  virtual const char* what() const noexcept { return message_->c_str(); }

 private:
  std::shared_ptr<const std::string> message_;
};

class CancelledError : public BaseException {
 public:
  CancelledError() : BaseException("the task was cancelled") {}
  explicit CancelledError(const std::string& message) : BaseException(message) {}
};

class TimeoutError : public std::runtime_error {
 public:
  TimeoutError() : std::runtime_error("the deadline passed before the operation finished") {}
  explicit TimeoutError(const std::string& message) : std::runtime_error(message) {}
};

// run() was interrupted by SIGINT (Ctrl-C): the main task was cancelled and ended cancelled
// (Python's KeyboardInterrupt).
class KeyboardInterrupt : public BaseException {
 public:
  KeyboardInterrupt() : BaseException("interrupted by SIGINT: the main task was cancelled") {}
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
