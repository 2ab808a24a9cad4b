// Google Benchmark's main for ringloop_microbench (Debian's libbenchmark-dev ships no
// benchmark_main pkg-config module).
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
