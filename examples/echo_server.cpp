// echo_server [port [idle_seconds [host]]] [--unix PATH] [--tls CERT KEY]: an echo server on
// ringloop, on TCP and, with --unix, on a Unix socket too ('@name' for an abstract one); with
// --tls, the TCP port speaks TLS (CERT: the PEM chain, leaf first; KEY: its private key), its
// records through the kernel (kTLS) where it can carry them. A Server runs one task per
// connection; a connection idle for idle_seconds (default 10) in either direction (the client
// sends nothing, or stops reading its echoes) is closed. SIGINT or SIGTERM
// shuts it down cleanly: the signals are blocked and read from a signalfd through the ring, then
// the servers close (the socket file goes), cancel their connection tasks and wait for them.
// Listens on 127.0.0.1:7007 by default.
#include <signal.h>
#include <sys/signalfd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <ringloop/ringloop.hpp>

#include "examples/server_process.hpp"

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

// The same over TLS: a client silent for `idle` (or one that stops reading for `idle`) is closed.
// A failed handshake never reaches here: the Server reports it and closes that connection.
Coro<> echo_tls(ringloop::TlsStream stream, std::chrono::milliseconds idle, Counters& counters) {
  ++counters.accepted;
  try {
    for (;;) {
      std::string data = co_await ringloop::wait_for(stream.read(), idle);
      if (data.empty()) break;  // close_notify
      co_await ringloop::wait_for(stream.write(data), idle);
    }
    co_await stream.close();
  } catch (const ringloop::TimeoutError&) {
    ++counters.closed_idle;
  } catch (const std::exception&) {  // a reset, an EOF without close_notify
    ++counters.failed;
  }
}

struct TlsFiles {
  std::string certificate;
  std::string key;
};

// Serves until SIGINT or SIGTERM arrives on signal_fd: on host:port (with TLS when tls names
// the files), and on the Unix socket at unix_path when one is given.
Coro<> serve_until_signal(int signal_fd, std::string host, std::uint16_t port,
                          std::string unix_path, TlsFiles tls, std::chrono::milliseconds idle) {
  Counters counters;
  auto handler = [idle, &counters](Stream s) { return echo(std::move(s), idle, counters); };
  // A deep accept queue: a benchmark opens its connections all at once.
  ringloop::ServerOptions options{.backlog = 4096};
  std::vector<ringloop::Server> servers;
  if (tls.certificate.empty()) {
    servers.push_back(co_await ringloop::start_server(handler, host, port, options));
  } else {
    ringloop::TlsContext context = ringloop::TlsContext::server();
    context.load_cert_chain(tls.certificate, tls.key);
    ringloop::TlsOptions tls_options;
    tls_options.handshake_timeout = idle;
    auto tls_handler = [idle, &counters](ringloop::TlsStream s) {
      return echo_tls(std::move(s), idle, counters);
    };
    servers.push_back(
        co_await ringloop::start_server(tls_handler, host, port, context, options, tls_options));
    std::printf("echo_server: TLS with %s (kernel TLS %s)\n", tls.certificate.c_str(),
                ringloop::kernel_tls_available() ? "available" : "not available here");
  }
  std::printf("echo_server: listening on %s port %u, closing connections idle for %.3f s\n",
              host.c_str(), static_cast<unsigned>(ringloop::local_port(servers[0].sockets()[0])),
              std::chrono::duration<double>(idle).count());
  if (!unix_path.empty()) {
    servers.push_back(co_await ringloop::start_unix_server(handler, unix_path, options));
    std::printf("echo_server: listening on unix socket %s\n",
                ringloop::printable_unix_path(unix_path).c_str());
  }
  std::fflush(stdout);
  signalfd_siginfo signal{};
  co_await ringloop::io::read(signal_fd, &signal, sizeof(signal));
  std::printf("echo_server: %s: no longer accepting; cancelling the connections\n",
              strsignal(static_cast<int>(signal.ssi_signo)));
  for (ringloop::Server& server : servers) {
    server.close();  // removes the Unix socket file too
    server.close_clients();
  }
  for (ringloop::Server& server : servers) co_await server.wait_closed();
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
  // --unix PATH and --tls CERT KEY, anywhere; the other arguments by position.
  std::string unix_path;
  TlsFiles tls;
  std::vector<std::string> positional;
  bool usage_error = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--unix") {
      if (i + 1 == argc)
        usage_error = true;
      else
        unix_path = argv[++i];
    } else if (std::string_view(argv[i]) == "--tls") {
      if (i + 2 >= argc) {
        usage_error = true;
        break;
      }
      tls.certificate = argv[++i];
      tls.key = argv[++i];
    } else {
      positional.emplace_back(argv[i]);
    }
  }
  long port = positional.size() > 0 ? std::strtol(positional[0].c_str(), nullptr, 10) : 7007;
  double idle_seconds = positional.size() > 1 ? std::strtod(positional[1].c_str(), nullptr) : 10.0;
  std::string host = positional.size() > 2 ? positional[2] : "127.0.0.1";
  if (usage_error || positional.size() > 3 || port < 0 || port > 65535 || !(idle_seconds > 0)) {
    std::fprintf(stderr,
                 "usage: echo_server [port (7007)] [idle_seconds (10)] [host (127.0.0.1)] "
                 "[--unix PATH ('@name': abstract)] [--tls CERT KEY]\n");
    return 2;
  }
  // The abstract namespace from the command line: '@' for the leading NUL, as ss(8) shows it.
  if (!unix_path.empty() && unix_path[0] == '@') unix_path[0] = '\0';
  examples::raise_open_file_limit();
  int signal_fd = examples::stop_signal_fd();  // SIGINT and SIGTERM, blocked (see the header)
  if (signal_fd < 0) {
    std::perror("echo_server: signalfd");
    return 1;
  }
  auto idle = std::chrono::milliseconds(static_cast<long>(idle_seconds * 1000));
  try {
    ringloop::run(serve_until_signal(signal_fd, host, static_cast<std::uint16_t>(port), unix_path,
                                     std::move(tls), idle));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "echo_server: %s\n", error.what());
    return 1;
  }
  return 0;
}
