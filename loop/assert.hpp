// ringloop's invariant check. An invariant that only a bug in ringloop can break is asserted
// with RINGLOOP_ASSERT, which stays on in release builds: a loop that has lost track of an
// in-flight operation must stop at once, not let the kernel write into freed memory later.
#pragma once
#include <ringloop/loop/detail/config.hpp>

namespace ringloop::detail {

[[noreturn]] void assertion_failed(const char* condition, const char* message, const char* file,
                                   int line) noexcept;

}  // namespace ringloop::detail

#define RINGLOOP_ASSERT(condition, message)                                          \
  do {                                                                               \
    if (!(condition)) [[unlikely]]                                                   \
      ::ringloop::detail::assertion_failed(#condition, message, __FILE__, __LINE__); \
  } while (false)
