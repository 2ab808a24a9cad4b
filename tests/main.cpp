// Catch2's runner, compiled once (it takes long); every other test file is small.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
