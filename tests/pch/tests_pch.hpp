// The test files' precompiled header (tests/meson.build, cpp_pch): Catch2's single header and
// ringloop's umbrella header are most of every test file's compile time; parsed once, the suite
// builds in about two thirds of the time. Not a header to include (so no include guard: the
// compiler precompiles it as a main file): meson passes it to the
// compiler ahead of each test file, which still includes what it uses.

// leak_check.cpp's listener needs Catch2's external interfaces; they must be on when the
// precompiled catch.hpp is parsed (its include guard keeps the file's own #include from it).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include <ringloop/ringloop.hpp>
