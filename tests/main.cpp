// Catch2's runner, compiled once (it takes long); every other test file is small.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <ringloop/coro/errors.hpp>

// CancelledError and KeyboardInterrupt are no std::exception: say what they are when a test
// fails with one.
CATCH_TRANSLATE_EXCEPTION(const ringloop::BaseException& error) { return error.what(); }
