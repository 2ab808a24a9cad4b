#include <ringloop/loop/assert.hpp>

#include <cstdio>
#include <cstdlib>

namespace ringloop::detail {

void assertion_failed(const char* condition, const char* message, const char* file,
                      int line) noexcept {
  std::fprintf(stderr, "ringloop: invariant broken at %s:%d: %s (%s)\n", file, line, message,
               condition);
  std::abort();
}

}  // namespace ringloop::detail
