// Outcome<T>: a child's value or the exception it ended with, what gather(return_exceptions,
// ...) hands back for each child (asyncio's gather(..., return_exceptions=True)).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <exception>
#include <utility>
#include <variant>

#include <ringloop/coro/detail/promise.hpp>

namespace ringloop {

template <class T>
class Outcome {
 public:
  using Value = detail::ResultOf<T>;

  static Outcome from_value(Value value) {
    return Outcome(std::in_place_index<1>, std::move(value));
  }
  static Outcome from_exception(std::exception_ptr error) {
    return Outcome(std::in_place_index<0>, std::move(error));
  }

  bool has_value() const noexcept { return state_.index() == 1; }
  // The value; rethrows the exception when there is one.
  Value& value() & {
    if (!has_value()) std::rethrow_exception(std::get<0>(state_));
    return std::get<1>(state_);
  }
  Value&& value() && { return std::move(value()); }
  std::exception_ptr exception() const noexcept {
    return has_value() ? nullptr : std::get<0>(state_);
  }

 private:
  template <std::size_t I, class A>
  Outcome(std::in_place_index_t<I> index, A&& arg) : state_(index, std::forward<A>(arg)) {}

  std::variant<std::exception_ptr, Value> state_;
};

}  // namespace ringloop
