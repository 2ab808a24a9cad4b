// echo_server [port [idle_seconds [host]]]: a TCP echo server on ringloop. One task per
// connection; a connection idle for idle_seconds (default 10) in either direction (the client
// sends nothing, or stops reading its echoes) is closed. SIGINT or SIGTERM
// shuts it down cleanly: the signals are blocked and read from a signalfd through the ring, then
// the server stops accepting and cancels the connection tasks. Listens on 127.0.0.1:7007 by
// default.
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <ringloop/ringloop.hpp>

using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Stream;

namespace {

struct Counters {
  unsigned long accepted = 0;
  unsigned long closed_idle = 0;
  unsigned long failed = 0;
};

// Idle in either direction closes the connection: a client that sends nothing for `idle` (a
// wait_for on the recv, whose deadline the kernel enforces with a linked timeout), and a client
// that stops reading, so that its echoes pile up above the Stream's high-water mark and stay
// there for `idle` (a wait_for on drain). A connection given up on is aborted: close() would
// wait to flush to a client that does not read.
Coro<> echo(Stream stream, std::chrono::milliseconds idle, Counters& counters) {
  ++counters.accepted;
  char buffer[16 * 1024];
  bool graceful = true;
  for (;;) {
    std::size_t received = 0;
    try {
      received = co_await ringloop::wait_for(stream.socket().recv(buffer, sizeof(buffer)), idle);
    } catch (const ringloop::TimeoutError&) {
      ++counters.closed_idle;
      break;
    } catch (const std::system_error&) {  // a reset peer: nothing to echo to
      ++counters.failed;
      graceful = false;
      break;
    }
    if (received == 0) break;  // the client is done
    try {
      stream.write(std::string_view(buffer, received));  // queued; sent in the background
      co_await ringloop::wait_for(stream.drain(), idle);
    } catch (const ringloop::TimeoutError&) {  // the client stopped reading
      ++counters.closed_idle;
      graceful = false;
      break;
    } catch (const std::system_error&) {
      ++counters.failed;
      graceful = false;
      break;
    }
  }
  if (!graceful) {
    stream.abort();
    co_return;
  }
  try {
    co_await ringloop::wait_for(stream.close(), idle);  // flushes what is queued first
  } catch (const ringloop::TimeoutError&) {
    ++counters.closed_idle;
    stream.abort();
  } catch (const std::system_error&) {
    ++counters.failed;
  }
}

// Serves until SIGINT or SIGTERM arrives on signal_fd.
Coro<> serve_until_signal(int signal_fd, std::string host, std::uint16_t port,
                          std::chrono::milliseconds idle) {
  ringloop::Socket listener = ringloop::listen_tcp(host, port);
  Counters counters;
  auto server = ringloop::create_task(ringloop::serve(
      listener, [idle, &counters](Stream s) { return echo(std::move(s), idle, counters); }));
  std::printf("echo_server: listening on %s port %u, closing connections idle for %.3f s\n",
              host.c_str(), static_cast<unsigned>(ringloop::local_port(listener)),
              std::chrono::duration<double>(idle).count());
  std::fflush(stdout);
  signalfd_siginfo signal{};
  co_await ringloop::io::read(signal_fd, &signal, sizeof(signal));
  std::printf("echo_server: %s: no longer accepting; cancelling the connections\n",
              strsignal(static_cast<int>(signal.ssi_signo)));
  server.cancel();
  try {
    co_await server;
  } catch (const CancelledError&) {
  }
  ringloop::Loop& loop = *ringloop::Loop::current();
  std::printf(
      "echo_server: served %lu connections (%lu closed idle, %lu failed); %llu operations in "
      "%llu io_uring_enter calls; bye\n",
      counters.accepted, counters.closed_idle, counters.failed,
      static_cast<unsigned long long>(loop.stats().operations_submitted),
      static_cast<unsigned long long>(loop.ring().enter_calls()));
}

}  // namespace

int main(int argc, char** argv) {
  long port = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 7007;
  double idle_seconds = argc > 2 ? std::strtod(argv[2], nullptr) : 10.0;
  std::string host = argc > 3 ? argv[3] : "127.0.0.1";
  if (port < 0 || port > 65535 || !(idle_seconds > 0)) {
    std::fprintf(stderr,
                 "usage: echo_server [port (7007)] [idle_seconds (10)] [host (127.0.0.1)]\n");
    return 2;
  }
  // One fd per connection: a thousand clients need more than the usual soft limit of 1024.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  // Blocked, so that the signals wait in the signalfd for the ring's read instead of killing us.
  // Ctrl-C is then the program's own: run() installs no SIGINT watch of its own, so no
  // KeyboardInterrupt comes, and SIGINT ends the server as cleanly as SIGTERM (exit 0). A
  // program that leaves SIGINT alone catches KeyboardInterrupt and returns 130 (README).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::perror("echo_server: signalfd");
    return 1;
  }
  auto idle = std::chrono::milliseconds(static_cast<long>(idle_seconds * 1000));
  try {
    ringloop::run(serve_until_signal(signal_fd, host, static_cast<std::uint16_t>(port), idle));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "echo_server: %s\n", error.what());
    return 1;
  }
  return 0;
}
