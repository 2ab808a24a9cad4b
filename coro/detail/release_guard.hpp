// The RAII half of asyncio's `async with lock:` / `async with semaphore:`: what
// co_await lock.scoped() hands back owns the acquisition and releases it when it goes out of
// scope, on every path out (return, exception, CancelledError).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <utility>

namespace ringloop::detail {

template <class Primitive>
class [[nodiscard]] ReleaseGuard {
 public:
  explicit ReleaseGuard(Primitive& primitive) noexcept : primitive_(&primitive) {}
  ReleaseGuard(ReleaseGuard&& other) noexcept
      : primitive_(std::exchange(other.primitive_, nullptr)) {}
  ReleaseGuard& operator=(ReleaseGuard&& other) noexcept {
    if (this != &other) {
      reset();
      primitive_ = std::exchange(other.primitive_, nullptr);
    }
    return *this;
  }
  ~ReleaseGuard() { reset(); }

  // Releases early; the guard then owns nothing.
  void release() { reset(); }
  bool owns() const noexcept { return primitive_ != nullptr; }

 private:
  void reset() {
    if (primitive_ != nullptr) std::exchange(primitive_, nullptr)->release();
  }

  Primitive* primitive_;
};

}  // namespace ringloop::detail
