// AsyncGenerator<T>: asyncio's asynchronous generator (`async for`). A coroutine that may
// co_await anything a Coro may, and hands out values with co_yield; the consumer pulls them one
// at a time with co_await gen.next(), which gives std::nullopt at the end. The generator runs in
// the task of whoever awaits next(), so a cancel of that task reaches the generator's await point.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <concepts>
#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <ringloop/coro/detail/promise.hpp>
#include <ringloop/coro/errors.hpp>
#include <ringloop/loop/assert.hpp>

namespace ringloop {

// Thrown into an asynchronous generator at its co_yield by aclose() (asyncio's GeneratorExit).
// Not a std::exception (asyncio's GeneratorExit is a BaseException), so a "log any error" handler
// does not keep the generator going; a generator may catch it to run asynchronous cleanup, then
// must end.
class GeneratorExit : public BaseException {
 public:
  GeneratorExit() : BaseException("asynchronous generator closed by aclose()") {}
};

// Usage:
//
//   AsyncGenerator<std::string> lines(Stream& stream) {
//     for (;;) {
//       std::string line;
//       try {
//         line = co_await stream.read_until("\n");
//       } catch (const IncompleteReadError& end) {  // the stream ended
//         if (end.partial.empty()) co_return;
//         line = end.partial;  // a last line without its newline
//       }
//       co_yield std::move(line);  // (no co_yield or co_await inside a handler, in C++)
//     }
//   }
//   ...
//   auto gen = lines(stream);
//   for (;;) {
//     std::optional<std::string> line = co_await gen.next();  // asyncio's __anext__
//     if (!line) break;                                         // StopAsyncIteration
//     use(*line);
//   }
//
// Await next() into a variable, as above: g++ 12 miscompiles a co_await inside an if or while
// condition (PITFALLS.md, "Toolchain").
//
// Rules, asyncio's where it has one:
// - Lazy: the body starts at the first next().
// - An exception the body lets out is thrown by that next(); the generator is then finished and
//   every later next() returns nullopt (asyncio raises StopAsyncIteration after it too).
// - One next() at a time: a next() (or aclose()) while another is pending throws
//   std::logic_error (asyncio's RuntimeError "asynchronous generator is already running").
// - Destroying an unfinished generator destroys its frame: its locals' destructors run, from the
//   point where it last yielded. Destroy it only while no next() is pending.
// - aclose() throws GeneratorExit into the body at its co_yield, so the body may run
//   asynchronous cleanup (catch it, leave the handler, co_await, end); a body that yields again
//   makes aclose() throw std::logic_error (asyncio's "async generator ignored GeneratorExit").
//
// A next() whose item comes without the body suspending returns without growing the stack: the
// body runs inline inside next()'s await_suspend, which then returns false (promise.hpp's
// pattern), so a million synchronous items cost no stack at -O0 and under sanitizers.
template <class T>
class [[nodiscard]] AsyncGenerator {
 public:
  class promise_type;
  using value_type = T;
  using Handle = std::coroutine_handle<promise_type>;

  class promise_type : public detail::PromiseBase {
   public:
    AsyncGenerator get_return_object() noexcept {
      return AsyncGenerator(Handle::from_promise(*this));
    }

    // Back to the consumer: by returning from its await_suspend when it runs the body inline
    // (nothing to resume), by symmetric transfer when the body was resumed by the loop.
    struct HandBack {
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(Handle handle) const noexcept {
        promise_type& promise = handle.promise();
        if (promise.start == detail::StartState::inline_start) {
          promise.start = detail::StartState::finished_inline;  // "handed back inline"
          return std::noop_coroutine();
        }
        return promise.continuation();
      }
      void await_resume() const noexcept {}
    };

    struct YieldAwaiter : HandBack {
      promise_type& promise;
      void await_resume() const {
        if (promise.closing) throw GeneratorExit();
      }
    };

    template <class U>
    requires std::convertible_to<U&&, T> YieldAwaiter yield_value(U&& value) {
      value_.emplace(std::forward<U>(value));
      return YieldAwaiter{{}, *this};
    }

    void return_void() noexcept {}
    HandBack final_suspend() noexcept {
      finished = true;
      return {};
    }

    std::optional<T> value_;
    bool finished = false;  // the body has ended (returned or threw)
    bool pending = false;   // a next() or aclose() is waiting for the body
    bool closing = false;   // aclose() asked the body to end
  };

  AsyncGenerator() noexcept = default;
  AsyncGenerator(AsyncGenerator&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  AsyncGenerator& operator=(AsyncGenerator&& other) noexcept {
    if (this != &other) {
      destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  ~AsyncGenerator() { destroy(); }

  bool valid() const noexcept { return static_cast<bool>(handle_); }

  // Whether the body has ended (returned, thrown, or been closed).
  bool finished() const noexcept { return !handle_ || handle_.promise().finished; }

 private:
  // Runs the body up to its next co_yield or its end, in the awaiting coroutine's task.
  class Step {
   public:
    Step(Handle body, bool close, const char* caller) noexcept
        : body_(body), close_(close), caller_(caller) {}

    bool await_ready() const {
      if (!body_)
        throw std::logic_error(std::string(caller_) +
                               " on an empty AsyncGenerator (moved from, or default-constructed)");
      promise_type& promise = body_.promise();
      if (promise.pending)
        throw std::logic_error(std::string(caller_) +
                               ": asynchronous generator is already running (a previous next() "
                               "or aclose() is still pending)");
      // An aclose() of a body that never started or has ended has nothing to run.
      return promise.finished || (close_ && promise.start == detail::StartState::not_started);
    }

    template <class P>
    bool await_suspend(std::coroutine_handle<P> consumer) noexcept {
      promise_type& promise = body_.promise();
      promise.pending = true;
      promise.closing = close_;
      promise.await_from(consumer, detail::task_of(consumer));
      promise.value_.reset();
      promise.start = detail::StartState::inline_start;
      body_.resume();
      if (promise.start == detail::StartState::finished_inline) return false;
      promise.start = detail::StartState::running;
      return true;
    }

   protected:
    Handle body_;
    bool close_;
    const char* caller_;
  };

  class NextAwaiter : public Step {
   public:
    explicit NextAwaiter(Handle body) noexcept : Step(body, false, "next()") {}
    std::optional<T> await_resume() {
      promise_type& promise = this->body_.promise();
      promise.pending = false;
      if (std::exception_ptr error = promise.take_error()) std::rethrow_exception(error);
      if (promise.finished) return std::nullopt;
      RINGLOOP_ASSERT(promise.value_.has_value(), "a generator handed back without a value");
      std::optional<T> item(std::move(promise.value_));
      promise.value_.reset();
      return item;
    }
  };

  class CloseAwaiter : public Step {
   public:
    explicit CloseAwaiter(Handle body) noexcept : Step(body, true, "aclose()") {}
    void await_resume() {
      promise_type& promise = this->body_.promise();
      promise.pending = false;
      promise.closing = false;
      if (promise.start == detail::StartState::not_started) {
        promise.finished = true;  // closed before it began: the body never runs
        return;
      }
      if (!promise.finished) {
        promise.value_.reset();
        throw std::logic_error(
            "asynchronous generator ignored GeneratorExit: it yielded again "
            "after aclose()");
      }
      if (std::exception_ptr error = promise.take_error()) {
        try {
          std::rethrow_exception(error);
        } catch (const GeneratorExit&) {
          // the body let aclose()'s request out: the ordinary end
        }
      }
    }
  };

 public:
  // asyncio's __anext__: the next item, or std::nullopt when the body has ended.
  NextAwaiter next() noexcept { return NextAwaiter(handle_); }

  // asyncio's aclose(): ends a body suspended at a co_yield by throwing GeneratorExit there and
  // running it to its end; a body that never started never runs. Rethrows any other exception
  // the body ends with.
  CloseAwaiter aclose() noexcept { return CloseAwaiter(handle_); }

 private:
  explicit AsyncGenerator(Handle handle) noexcept : handle_(handle) {}

  void destroy() noexcept {
    if (handle_) std::exchange(handle_, {}).destroy();
  }

  Handle handle_;
};

}  // namespace ringloop
