// Included first by every public header: the one check a consumer's build meets before anything
// else, so that compiling ringloop without C++20 fails with a message that says what to do,
// not with pages of errors from the standard headers (coroutine, concepts).
#pragma once

#if __cplusplus < 202002L
#error "ringloop needs C++20: compile with -std=c++20 (Meson: cpp_std=c++20; CMake: cxx_std_20)"
// A missing include is fatal in g++ and clang (an #error is not): compilation stops here instead
// of going on into some four hundred errors from the standard headers.
#include <ringloop: compilation stopped, see the error above>
#endif
