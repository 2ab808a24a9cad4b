// asio_peer.cpp - Asio (Debian libasio-dev 1.22, standalone) peer for the
// ringloop benchmarks, on Asio's io_uring backend.
//
// Build: g++ -std=c++20 -O2 -DASIO_HAS_IO_URING -DASIO_DISABLE_EPOLL
//            asio_peer.cpp -o asio_peer -luring -pthread
//   ASIO_HAS_IO_URING + ASIO_DISABLE_EPOLL make io_uring the scheduler's
//   reactor: every socket/pipe operation and the timer deadline go through
//   one io_uring (strace shows io_uring_enter, no epoll_wait).
//
// Usage: asio_peer <scenario> <n> [conns] [secs]
//   echo: n is the number of connections (a 3rd argument overrides it);
//         secs defaults to 2.
// Prints one `key=value ...` line on stdout (see bench/peers/README.md).
//
// Idioms: C++20 coroutines with asio::awaitable / co_spawn, steady_timer for
// sleeps, `op || timer.async_wait(...)` from experimental::awaitable_operators
// for wait_for, a cancellation_signal bound to each co_spawn'ed task for
// cancel.  Gather has no ranged helper in Asio 1.22 (ranged parallel_group
// came later), so it is the usual counter + completion handler, with the
// waiter parked on a timer that the last task cancels.
//
// Fairness notes: the `||` operator co_spawns both operands and the loser is
// cancelled, which ends it with an operation_aborted exception: that cost is
// part of Asio's wait_for.  The io_context is created with concurrency hint 1
// (one thread), the usual single-threaded configuration.

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using asio::awaitable;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

static const char *kPeer = "asio";

static double cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long rss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static double ns_since(Clock::time_point a) {
  return std::chrono::duration<double, std::nano>(Clock::now() - a).count();
}

// Wall clock and CPU from the start of a scenario (start-up excluded).
struct Meter {
  Clock::time_point t0 = Clock::now();
  double c0 = cpu_s();
  std::string base(const char *sc, long n) const {
    char buf[256];
    snprintf(buf, sizeof buf,
             "peer=%s scenario=%s n=%ld wall_s=%.3f cpu_s=%.3f rss_kb=%ld",
             kPeer, sc, n, ns_since(t0) / 1e9, cpu_s() - c0, rss_kb());
    return buf;
  }
};

// Nearest-rank percentile (q in percent) of a sorted vector: element
// ceil(q*n/100)-1.  All peers use this definition.
template <typename T>
static T pct(const std::vector<T> &v, size_t q) {
  size_t idx = std::max<size_t>(1, (v.size() * q + 99) / 100);
  return v[idx - 1];
}

static std::string fmt(const char *f, double a, double b = 0, double c = 0) {
  char buf[128];
  snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

// Gather: count completions of co_spawn'ed tasks; the waiter sleeps on a
// timer that never expires and that the last completion cancels.
class Gather {
 public:
  Gather(asio::any_io_executor ex, size_t n)
      : done_(ex, Clock::time_point::max()), left_(n) {}
  // Completion handler for co_spawn of an awaitable<void>.
  auto handler() {
    return [this](std::exception_ptr e) {
      if (e) error_ = e;
      if (--left_ == 0) done_.cancel();
    };
  }
  // Same for an awaitable<T>: the value is dropped (or checked by the task).
  template <typename T>
  auto value_handler() {
    return [this](std::exception_ptr e, T) {
      if (e) error_ = e;
      if (--left_ == 0) done_.cancel();
    };
  }
  awaitable<void> wait() {
    if (left_ > 0) {
      asio::error_code ec;
      co_await done_.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  asio::steady_timer done_;
  size_t left_;
  std::exception_ptr error_;
};

static awaitable<void> sleep_for(Clock::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_awaitable);
}

// ---------------------------------------------------------------- scenarios

static awaitable<std::string> sleep_many(long n) {
  auto ex = co_await asio::this_coro::executor;
  Meter m;
  Gather g(ex, n);
  for (long i = 0; i < n; i++) asio::co_spawn(ex, sleep_for(100ms), g.handler());
  co_await g.wait();
  co_return m.base("sleep_many", n);
}

// A task that sleeps an hour; cancellation (terminal, through the slot bound
// at co_spawn) reaches the timer wait.  redirect_error: a cancelled sleep is
// an ordinary outcome here, not an exception.
static awaitable<void> hour_sleeper(long *started, long *cancelled) {
  ++*started;
  asio::steady_timer t(co_await asio::this_coro::executor, 3600s);
  asio::error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
  if (ec == asio::error::operation_aborted) ++*cancelled;
}

// Spawns `count` hour sleepers, each with its own cancellation signal, and
// returns once all of them have started (their timers are armed).
struct Sleepers {
  std::vector<asio::cancellation_signal> sig;
  long started = 0, cancelled = 0;
  Gather gather;
  Sleepers(asio::any_io_executor ex, long count) : sig(count), gather(ex, count) {}
};

static awaitable<void> spawn_sleepers(Sleepers &s) {
  auto ex = co_await asio::this_coro::executor;
  long count = (long)s.sig.size();
  for (long i = 0; i < count; i++)
    asio::co_spawn(ex, hour_sleeper(&s.started, &s.cancelled),
                   asio::bind_cancellation_slot(s.sig[i].slot(), s.gather.handler()));
  // co_spawn posts each start; one post of our own runs after all of them.
  while (s.started < count) co_await asio::post(ex, use_awaitable);
}

static awaitable<void> cancel_sleepers(Sleepers &s) {
  for (auto &sig : s.sig) sig.emit(asio::cancellation_type::terminal);
  co_await s.gather.wait();
}

static awaitable<std::string> lateness(const char *sc, long n, bool loaded) {
  auto ex = co_await asio::this_coro::executor;
  Meter m;
  std::unique_ptr<Sleepers> pending;
  if (loaded) {
    pending = std::make_unique<Sleepers>(ex, 10000);
    co_await spawn_sleepers(*pending);
  }
  std::vector<double> lat(n);
  asio::steady_timer t(ex);
  for (long i = 0; i < n; i++) {
    auto a = Clock::now();
    t.expires_after(1ms);
    co_await t.async_wait(use_awaitable);
    lat[i] = (ns_since(a) - 1e6) / 1e3;
  }
  if (pending) co_await cancel_sleepers(*pending);
  std::sort(lat.begin(), lat.end());
  co_return m.base(sc, n) + fmt(" p50_us=%.1f p99_us=%.1f max_us=%.1f",
                                pct(lat, 50), pct(lat, 99), lat.back());
}

static awaitable<long> trivial(long i) { co_return i; }

static awaitable<long> yield_once(long i) {
  co_await asio::post(co_await asio::this_coro::executor, use_awaitable);
  co_return i;
}

static awaitable<std::string> spawn_gather(long n) {
  auto ex = co_await asio::this_coro::executor;
  Meter m;
  auto a = Clock::now();
  Gather g(ex, n);
  for (long i = 0; i < n; i++) asio::co_spawn(ex, trivial(i), g.value_handler<long>());
  co_await g.wait();
  double d = ns_since(a);
  co_return m.base("spawn_gather", n) + fmt(" ns_per_op=%.1f", d / n);
}

template <typename MakeOp>
static awaitable<std::string> wait_for_loop(const char *sc, long n, MakeOp make) {
  auto ex = co_await asio::this_coro::executor;
  Meter m;
  asio::steady_timer t(ex);
  long sum = 0;
  auto a = Clock::now();
  for (long i = 0; i < n; i++) {
    t.expires_after(1s);
    auto r = co_await (make(i) || t.async_wait(use_awaitable));
    if (r.index() != 0) throw std::runtime_error("timed out");
    sum += std::get<0>(r);
  }
  double d = ns_since(a);
  if (sum != n * (n - 1) / 2) throw std::runtime_error("bad sum");
  co_return m.base(sc, n) + fmt(" ns_per_op=%.1f", d / n);
}

static awaitable<std::string> wait_for_io(long n) {
  auto ex = co_await asio::this_coro::executor;
  Meter m;
  // A pipe that always holds data: enlarged to 1 MiB and topped up (outside
  // the per-op path, amortised) whenever it has been drained.  The read end
  // stays blocking so Asio submits a real IORING_OP_READV for every read (it
  // only tries a speculative read(2) on descriptors it made non-blocking).
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw std::runtime_error("pipe2");
  fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
  fcntl(fds[1], F_SETFL, O_NONBLOCK);  // the write end only
  static char chunk[65536];
  auto refill = [&] {
    long put = 0;
    for (ssize_t k; (k = write(fds[1], chunk, sizeof chunk)) > 0;) put += k;
    return put;
  };
  asio::readable_pipe rd(ex, fds[0]);
  asio::steady_timer t(ex);
  long avail = refill();
  char b;
  auto a = Clock::now();
  for (long i = 0; i < n; i++) {
    if (avail == 0) avail = refill();
    t.expires_after(1s);
    auto r = co_await (rd.async_read_some(asio::buffer(&b, 1), use_awaitable) ||
                       t.async_wait(use_awaitable));
    if (r.index() != 0 || std::get<0>(r) != 1) throw std::runtime_error("read");
    avail--;
  }
  double d = ns_since(a);
  close(fds[1]);
  co_return m.base("wait_for_io", n) + fmt(" ns_per_op=%.1f", d / n);
}

static awaitable<std::string> cancel_many(long n) {
  auto ex = co_await asio::this_coro::executor;
  Meter m;
  Sleepers s(ex, n);
  co_await spawn_sleepers(s);
  auto a = Clock::now();
  co_await cancel_sleepers(s);
  double d = ns_since(a);
  if (s.cancelled != n) throw std::runtime_error("not all cancelled");
  co_return m.base("cancel_many", n) + fmt(" ns_per_op=%.1f", d / n);
}

// ---------------------------------------------------------------------- echo
constexpr size_t kMsg = 64;

static awaitable<void> echo_session(asio::ip::tcp::socket s) {
  char buf[kMsg];
  for (;;) {
    asio::error_code ec;
    size_t k = co_await s.async_read_some(asio::buffer(buf),
                                          asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;  // EOF / closed at the end of the run
    co_await asio::async_write(s, asio::buffer(buf, k),
                               asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
  }
}

static awaitable<void> echo_acceptor(asio::ip::tcp::acceptor &acc) {
  for (;;) {
    asio::error_code ec;
    auto s = co_await acc.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    s.set_option(asio::ip::tcp::no_delay(true));
    asio::co_spawn(acc.get_executor(), echo_session(std::move(s)), asio::detached);
  }
}

static awaitable<void> echo_client(asio::ip::tcp::socket &s, Clock::time_point deadline,
                                   std::vector<uint32_t> &rtts) {
  char msg[kMsg];
  char buf[kMsg];
  memset(msg, 'x', sizeof msg);
  for (;;) {
    auto t = Clock::now();
    co_await asio::async_write(s, asio::buffer(msg), use_awaitable);
    co_await asio::async_read(s, asio::buffer(buf), use_awaitable);
    auto e = Clock::now();
    rtts.push_back((uint32_t)std::min<int64_t>(
        UINT32_MAX, std::chrono::duration_cast<std::chrono::nanoseconds>(e - t).count()));
    if (e >= deadline) co_return;
  }
}

static awaitable<std::string> echo(long conns, double secs) {
  auto ex = co_await asio::this_coro::executor;
  Meter m;
  asio::ip::tcp::acceptor acc(ex, {asio::ip::make_address("127.0.0.1"), 0});
  auto ep = acc.local_endpoint();
  asio::co_spawn(ex, echo_acceptor(acc), asio::detached);
  // Set-up (untimed): connect every client first.
  std::vector<asio::ip::tcp::socket> socks;
  socks.reserve(conns);
  for (long i = 0; i < conns; i++) {
    socks.emplace_back(ex);
    co_await socks.back().async_connect(ep, use_awaitable);
    socks.back().set_option(asio::ip::tcp::no_delay(true));
  }
  std::vector<uint32_t> rtts;
  rtts.reserve(1 << 20);
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(secs));
  Gather g(ex, conns);
  for (auto &s : socks) asio::co_spawn(ex, echo_client(s, deadline, rtts), g.handler());
  co_await g.wait();
  double elapsed = ns_since(start) / 1e9;
  for (auto &s : socks) s.close();
  acc.close();
  std::sort(rtts.begin(), rtts.end());
  double p99 = rtts.empty() ? 0 : pct(rtts, 99) / 1e3;
  char buf[160];
  snprintf(buf, sizeof buf, " conns=%ld secs=%g rtt_per_s=%.0f p99_us=%.1f", conns,
           secs, rtts.size() / elapsed, p99);
  co_return m.base("echo", conns) + buf;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <scenario> <n> [conns] [secs]\n", argv[0]);
    return 2;
  }
  std::string sc = argv[1];
  long n = atol(argv[2]);
  if (n <= 0) {
    fprintf(stderr, "asio_peer: n must be > 0\n");
    return 2;
  }
  long conns = argc > 3 ? atol(argv[3]) : n;
  double secs = argc > 4 ? atof(argv[4]) : 2.0;

  asio::io_context ctx(1);  // one thread runs this loop
  awaitable<std::string> work;
  if (sc == "sleep_many") work = sleep_many(n);
  else if (sc == "lateness") work = lateness("lateness", n, false);
  else if (sc == "lateness_loaded") work = lateness("lateness_loaded", n, true);
  else if (sc == "spawn_gather") work = spawn_gather(n);
  else if (sc == "wait_for_fast") work = wait_for_loop("wait_for_fast", n, trivial);
  else if (sc == "wait_for_yield") work = wait_for_loop("wait_for_yield", n, yield_once);
  else if (sc == "wait_for_io") work = wait_for_io(n);
  else if (sc == "cancel_many") work = cancel_many(n);
  else if (sc == "echo") work = echo(conns, secs);
  else if (sc == "udp_echo") {
    // Not among udp_echo's peers in shared/BENCH.md (tokio, Node, uvloop, the floor).
    printf("peer=asio scenario=udp_echo n=%ld skipped=not_a_udp_echo_peer\n", n);
    return 0;
  } else {
    fprintf(stderr, "asio_peer: unknown scenario %s\n", sc.c_str());
    return 2;
  }
  std::string line;
  asio::co_spawn(ctx, std::move(work), [&](std::exception_ptr e, std::string r) {
    if (e) std::rethrow_exception(e);
    line = std::move(r);
    // The measurement is complete: stop here rather than wait for leftover
    // work to drain.  With Asio 1.22's io_uring backend the echo server
    // sessions' last reads sometimes never reach the ring after the clients
    // close (seen in /proc/PID/fdinfo: no request in flight, sockets in
    // CLOSE-WAIT), and run() would then block for ever.
    ctx.stop();
  });
  ctx.run();
  printf("%s\n", line.c_str());
  fflush(stdout);
  // Skip the io_context destructor for the same reason (its shutdown waits
  // on the ring); the kernel reclaims everything at exit.
  std::_Exit(line.empty() ? 1 : 0);
}
