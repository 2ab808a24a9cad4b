// The I/O scenarios, on ringloop's one-SQE operations (coro/io/io.hpp):
//   wait_for_io  N sequential wait_for(nop(), 1 s): the NOP linked to an IORING_OP_LINK_TIMEOUT,
//                as the floor does it by hand;
//   echo         TCP echo over 127.0.0.1, C connections, 64-byte messages, for `secs`: one
//                server task and one client task per connection, in one loop, as the peers.
//   echo_direct  the same with every socket also in the loop's DirectFileTable (installed after
//                set-up), each recv and send with IOSQE_FIXED_FILE: ringloop against itself.
//   unix_echo    the same over a Unix socket in /tmp, served as a user would: a Server from
//                start_unix_server (one handler task per connection), clients from
//                open_unix_connection.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <ringloop/coro/io/direct.hpp>
#include <ringloop/coro/io/io.hpp>
#include <ringloop/coro/net/unix_socket.hpp>
#include "bench/scenario_util.hpp"

namespace ringloop_bench {

inline ringloop::Coro<std::string> wait_for_io(long n) {
  using namespace std::chrono_literals;
  Meter meter;
  auto start = Clock::now();
  for (long i = 0; i < n; ++i) co_await ringloop::wait_for(ringloop::io::nop(), 1s);
  auto elapsed = Clock::now() - start;
  co_return meter.line("wait_for_io", n) + ns_per_op(elapsed, n);
}

namespace echo_detail {

constexpr std::size_t kMessageBytes = 64;

[[noreturn]] inline void fail(const char* what) {
  throw std::system_error(errno, std::system_category(), std::string("echo: ") + what);
}

inline void set_nodelay(int fd) {
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail("TCP_NODELAY");
}

// A listening socket on 127.0.0.1 and an ephemeral port (set-up: plain syscalls, untimed).
inline int listen_loopback(sockaddr_in& address) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) fail("bind");
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) fail("getsockname");
  if (::listen(fd, 4096) != 0) fail("listen");
  return fd;
}

// One end of a connection: a plain fd, or a slot of the loop's file table (echo_direct).
struct PlainEnd {
  int fd;
  auto recv(void* data, std::size_t size) const { return ringloop::io::recv(fd, data, size); }
  auto send(const void* data, std::size_t size) const { return ringloop::io::send(fd, data, size); }
  auto shutdown_write() const { return ringloop::io::shutdown(fd, SHUT_WR); }
};
struct DirectEnd {
  const ringloop::DirectFd* direct;
  auto recv(void* data, std::size_t size) const { return direct->recv(data, size); }
  auto send(const void* data, std::size_t size) const { return direct->send(data, size); }
  auto shutdown_write() const { return direct->shutdown(SHUT_WR); }
};

// The server side of one connection: echoes what it receives until the client shuts down.
template <class End>
ringloop::Coro<> serve_echo(End end) {
  char buffer[kMessageBytes];
  for (;;) {
    std::size_t received = co_await end.recv(buffer, sizeof buffer);
    if (received == 0) co_return;
    for (std::size_t sent = 0; sent < received;)
      sent += co_await end.send(buffer + sent, received - sent);
  }
}

// The client side: a 64-byte message, then its echo in full, timed, until the deadline.
template <class End>
ringloop::Coro<> run_client(End end, Clock::time_point deadline,
                            std::vector<std::uint32_t>& rtt_ns) {
  static const char message[kMessageBytes] =
      "0123456789abcdef0123456789abcdef"
      "0123456789abcdef0123456789abcde";
  char echo[kMessageBytes];
  for (auto now = Clock::now(); now < deadline;) {
    for (std::size_t sent = 0; sent < kMessageBytes;)
      sent += co_await end.send(message + sent, kMessageBytes - sent);
    for (std::size_t got = 0; got < kMessageBytes;) {
      std::size_t received = co_await end.recv(echo + got, kMessageBytes - got);
      if (received == 0) throw std::runtime_error("echo: the server closed the connection");
      got += received;
    }
    auto end = Clock::now();
    rtt_ns.push_back(static_cast<std::uint32_t>(
        std::min<std::int64_t>(std::chrono::nanoseconds(end - now).count(), UINT32_MAX)));
    now = end;
  }
  co_await end.shutdown_write();  // the server's recv sees the end and its task ends
}

// The figures every echo scenario prints: round trips per second and their p99.
inline std::string summary(std::vector<std::uint32_t>& rtt_ns, long conns, double secs,
                           double elapsed_s) {
  std::sort(rtt_ns.begin(), rtt_ns.end());
  double p99_us = 0;
  if (!rtt_ns.empty()) {
    std::size_t rank = (rtt_ns.size() * 99 + 99) / 100;
    p99_us = rtt_ns[rank - 1] / 1e3;
  }
  char extra[160];
  std::snprintf(extra, sizeof extra, " conns=%ld secs=%g rtt_per_s=%.0f p99_us=%.1f", conns, secs,
                static_cast<double>(rtt_ns.size()) / elapsed_s, p99_us);
  return extra;
}

}  // namespace echo_detail

inline ringloop::Coro<std::string> echo(long conns, double secs, bool direct = false) {
  using namespace echo_detail;
  Meter meter;
  sockaddr_in address{};
  int listener = listen_loopback(address);
  std::vector<int> client_fds, server_fds;
  for (long i = 0; i < conns; ++i) {  // untimed: every client connects before the clock starts
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) fail("connect");
    set_nodelay(fd);
    client_fds.push_back(fd);
    server_fds.push_back(co_await ringloop::io::accept(listener));
    set_nodelay(server_fds.back());
  }
  // echo_direct: every socket also in a slot (untimed, like the connects).
  std::optional<ringloop::DirectFileTable> table;
  std::vector<ringloop::DirectFd> client_slots, server_slots;
  if (direct) {
    table.emplace(*ringloop::Loop::current(), static_cast<unsigned>(2 * conns));
    for (long i = 0; i < conns; ++i) {
      auto k = static_cast<std::size_t>(i);
      client_slots.push_back(co_await ringloop::io::install_direct(client_fds[k]));
      server_slots.push_back(co_await ringloop::io::install_direct(server_fds[k]));
    }
  }
  std::vector<std::uint32_t> rtt_ns;
  rtt_ns.reserve(1 << 20);
  auto start = Clock::now();
  auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  std::vector<ringloop::Coro<>> connections;
  for (long i = 0; i < conns; ++i) {
    auto k = static_cast<std::size_t>(i);
    if (direct) {
      connections.push_back(serve_echo(DirectEnd{&server_slots[k]}));
      connections.push_back(run_client(DirectEnd{&client_slots[k]}, deadline, rtt_ns));
    } else {
      connections.push_back(serve_echo(PlainEnd{server_fds[k]}));
      connections.push_back(run_client(PlainEnd{client_fds[k]}, deadline, rtt_ns));
    }
  }
  co_await ringloop::gather(std::move(connections));
  double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  for (int fd : client_fds) ::close(fd);
  for (int fd : server_fds) ::close(fd);
  ::close(listener);
  co_return meter.line(direct ? "echo_direct" : "echo", conns) +
            echo_detail::summary(rtt_ns, conns, secs, elapsed_s);
}

inline ringloop::Coro<std::string> unix_echo(long conns, double secs) {
  using namespace echo_detail;
  Meter meter;
  std::string path = "/tmp/ringloop-bench-" + std::to_string(::getpid()) + ".sock";
  ringloop::ServerOptions options{.backlog = 4096};  // not braced inside co_await: g++ 12
  ringloop::Server server = co_await ringloop::start_unix_server(
      [](ringloop::Stream stream) -> ringloop::Coro<> {
        co_await serve_echo(PlainEnd{stream.socket().fd()});
      },
      path, options);
  std::vector<ringloop::Stream> clients;
  for (long i = 0; i < conns; ++i)  // untimed: every client connects before the clock starts
    clients.push_back(co_await ringloop::open_unix_connection(path));
  std::vector<std::uint32_t> rtt_ns;
  rtt_ns.reserve(1 << 20);
  auto start = Clock::now();
  auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  std::vector<ringloop::Coro<>> runs;
  for (ringloop::Stream& client : clients)
    runs.push_back(run_client(PlainEnd{client.socket().fd()}, deadline, rtt_ns));
  co_await ringloop::gather(std::move(runs));
  double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  server.close();                 // removes the socket file
  co_await server.wait_closed();  // the clients shut down their side: every handler ends
  co_return meter.line("unix_echo", conns) + summary(rtt_ns, conns, secs, elapsed_s);
}

}  // namespace ringloop_bench
