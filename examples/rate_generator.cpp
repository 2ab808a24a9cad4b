// rate_generator [rate_per_s [seconds [connections [port [host [kernel|spin]]]]]]: a constant-rate
// load generator for examples/echo_server, honest about coordinated omission. Each connection
// sends a 64-byte request at every tick of a Pacer (rate / connections per second, the
// connections' grids staggered) and waits for the echo. A slow reply delays the next send, but
// not the next tick's intended time: latency measured from Tick::intended counts the time a
// request spent waiting to be sent, as a user of a real service would have. Latency measured
// from the actual send hides it (coordinated omission); HdrHistogram's record_corrected repairs
// part of it after the fact. All three are printed, as percentiles. Defaults: 1000 requests/s,
// 5 s, 1 connection, 127.0.0.1:7007, kernel precision.
//
//   build/gcc/examples/echo_server 7007 &
//   build/gcc/examples/rate_generator 20000 5 4
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::LatencyRecorder;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  double rate_per_s = 1000;
  double seconds = 5;
  int connections = 1;
  std::uint16_t port = 7007;
  std::string host = "127.0.0.1";
  ringloop::Precision precision = ringloop::Precision::kernel;
};

struct Recorders {
  LatencyRecorder from_intended;   // corrected: the Pacer's intended send time
  LatencyRecorder from_send;       // uncorrected: when the request was actually sent
  LatencyRecorder post_corrected;  // from_send, repaired by record_corrected
  LatencyRecorder send_lateness;   // how late each send was against its tick
  std::uint64_t requests = 0;

  void merge(const Recorders& other) {
    from_intended.merge(other.from_intended);
    from_send.merge(other.from_send);
    post_corrected.merge(other.post_corrected);
    send_lateness.merge(other.send_lateness);
    requests += other.requests;
  }
};

// One connection: a request at every tick until `end`, each awaited before the next.
Coro<> run_connection(const Options& options, int index, Clock::time_point origin,
                      Clock::time_point end, Recorders& out) {
  auto period = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(options.connections / options.rate_per_s));
  ringloop::Stream stream = co_await ringloop::open_connection(options.host, options.port);
  // Burst: ticks missed behind a slow reply are all sent, late, with their own intended times.
  ringloop::Pacer pacer(period, ringloop::MissedTick::burst, options.precision,
                        origin + period * index / options.connections);
  const std::string request(64, 'x');
  while (true) {
    ringloop::Tick tick = co_await pacer.next();
    if (tick.intended >= end) break;
    auto sent = Clock::now();
    co_await stream.write(request);
    std::string reply = co_await stream.read_exactly(request.size());
    auto done = Clock::now();
    out.from_intended.record(done - tick.intended);
    out.from_send.record(done - sent);
    out.post_corrected.record_corrected(done - sent, period);
    out.send_lateness.record(sent - tick.intended);
    ++out.requests;
  }
  co_await stream.close();
}

void print_row(const char* name, const LatencyRecorder& recorder) {
  auto us = [](std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e3; };
  std::printf("%-34s", name);
  for (double q : {50.0, 90.0, 99.0, 99.9, 99.99})
    std::printf(" %9.1f", us(recorder.percentile(q)));
  std::printf(" %9.1f %9.1f\n", us(recorder.max()), recorder.mean().count() / 1e3);
}

Coro<> generate(Options options) {
  // The first ticks go out 50 ms from now, once every connection is up.
  auto origin = Clock::now() + 50ms;
  auto end = origin + std::chrono::duration_cast<Clock::duration>(
                          std::chrono::duration<double>(options.seconds));
  std::vector<Recorders> per_connection(static_cast<std::size_t>(options.connections));
  std::vector<Coro<>> connections;
  for (int i = 0; i < options.connections; ++i)
    connections.push_back(
        run_connection(options, i, origin, end, per_connection[static_cast<std::size_t>(i)]));
  if (options.precision == ringloop::Precision::spin) co_await ringloop::calibrate_spin_margin(32);
  auto cpu_start = std::clock();
  co_await ringloop::gather(std::move(connections));
  double cpu_s = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  Recorders all;
  for (const Recorders& recorders : per_connection) all.merge(recorders);
  double elapsed_s = std::chrono::duration<double>(Clock::now() - origin).count();
  std::printf(
      "rate_generator: %llu requests in %.2f s over %d connection(s): %.0f/s (asked %.0f/s),"
      " cpu %.0f%% (%s precision)\n",
      static_cast<unsigned long long>(all.requests), elapsed_s, options.connections,
      static_cast<double>(all.requests) / elapsed_s, options.rate_per_s, 100 * cpu_s / elapsed_s,
      options.precision == ringloop::Precision::spin ? "spin" : "kernel");
  std::printf("%-34s %9s %9s %9s %9s %9s %9s %9s\n", "latency, us", "p50", "p90", "p99", "p99.9",
              "p99.99", "max", "mean");
  print_row("from intended send (CO-corrected)", all.from_intended);
  print_row("from actual send (uncorrected)", all.from_send);
  print_row("actual send + record_corrected", all.post_corrected);
  print_row("send lateness vs the Pacer", all.send_lateness);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (argc > 1) options.rate_per_s = std::atof(argv[1]);
  if (argc > 2) options.seconds = std::atof(argv[2]);
  if (argc > 3) options.connections = std::atoi(argv[3]);
  if (argc > 4) options.port = static_cast<std::uint16_t>(std::atoi(argv[4]));
  if (argc > 5) options.host = argv[5];
  if (argc > 6 && std::string_view(argv[6]) == "spin")
    options.precision = ringloop::Precision::spin;
  if (!(options.rate_per_s > 0) || !(options.seconds > 0) || options.connections <= 0) {
    std::fprintf(stderr,
                 "usage: rate_generator [rate_per_s (1000)] [seconds (5)] [connections (1)] "
                 "[port (7007)] [host (127.0.0.1)] [kernel|spin]\n");
    return 2;
  }
  try {
    ringloop::run(generate(options));
  } catch (const ringloop::KeyboardInterrupt&) {
    return 130;  // Ctrl-C: the generator was cancelled and has unwound (128 + SIGINT)
  } catch (const std::exception& error) {
    std::fprintf(stderr, "rate_generator: %s (is examples/echo_server running?)\n", error.what());
    return 1;
  }
  return 0;
}
