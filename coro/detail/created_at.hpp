// Where a task was created, for reports ("Task exception was never retrieved"). Our own small
// type rather than std::source_location: clang 14 with libstdc++ 12 lacks the builtin that
// std::source_location needs, while __builtin_FILE/LINE/FUNCTION work on both compilers, as
// default arguments too (they then name the caller).
#pragma once
#include <ringloop/loop/detail/config.hpp>

namespace ringloop::detail {

struct CreatedAt {
  const char* file = nullptr;
  unsigned line = 0;
  const char* function = nullptr;

  static CreatedAt here(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE(),
                        const char* function = __builtin_FUNCTION()) noexcept {
    return {file, line, function};
  }
};

}  // namespace ringloop::detail
