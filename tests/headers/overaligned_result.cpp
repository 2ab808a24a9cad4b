// Must not compile: a coroutine whose result is aligned beyond what the frame's allocation gives.
// tests/headers/expect_compile_error.sh expects promise.hpp's static_assert, naming the fix.
#include <ringloop/ringloop.hpp>

struct alignas(32) Wide {
  long value;
};

ringloop::Coro<Wide> make_wide() { co_return Wide{1}; }
