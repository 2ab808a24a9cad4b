// The I/O scenarios, on ringloop's one-SQE operations (coro/io/io.hpp):
//   wait_for_io  N sequential wait_for(nop(), 1 s): the NOP linked to an IORING_OP_LINK_TIMEOUT,
//                as the floor does it by hand;
//   echo         TCP echo over 127.0.0.1, C connections, 64-byte messages, for `secs`: one
//                server task and one client task per connection, in one loop, as the peers.
//   echo_direct  the same with every socket also in the loop's DirectFileTable (installed after
//                set-up), each recv and send with IOSQE_FIXED_FILE: ringloop against itself.
//   echo_multishot  the same clients and timing; each server-side connection receives through
//                ONE receive_multishot over a loop-wide BufferRing and sends back from the
//                received buffer, released after its send (issue #18).
//   echo_bulk    echo with 64 KiB messages (a client writes one, reads its echo in full, then
//                the next): MB/s; echo_bulk_multishot is its server on the multishot path.
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
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <ringloop/coro/io/buffer_ring.hpp>
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
constexpr std::size_t kBulkBytes = 64 * 1024;  // echo_bulk's message

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
template <std::size_t Bytes = kMessageBytes, class End>
ringloop::Coro<> serve_echo(End end) {
  char buffer[Bytes];
  for (;;) {
    std::size_t received = co_await end.recv(buffer, sizeof buffer);
    if (received == 0) co_return;
    for (std::size_t sent = 0; sent < received;)
      sent += co_await end.send(buffer + sent, received - sent);
  }
}

// The server side on the multishot path: one multishot receive over the loop's BufferRing for
// the connection's whole life; each Buffer is sent back from the ring's memory and released
// after its send, so a buffer is out only from its CQE to the end of its echo. A ring that runs
// dry ends the kernel's multishot with -ENOBUFS: the stream re-arms itself when a buffer comes
// back, the bytes wait in the socket meanwhile (coro/io/buffer_ring.hpp), so nothing here
// handles it; `arms` adds up the SQEs each stream used (1 + its re-arms) for the output line.
inline ringloop::Coro<> serve_echo_multishot(const ringloop::Socket& socket,
                                             const ringloop::BufferRing& ring,
                                             std::uint64_t& arms) {
  auto received = ringloop::receive_multishot(socket, ring);
  for (;;) {
    std::optional<ringloop::Buffer> buffer = co_await received.next();
    if (!buffer) break;  // the client shut down its side
    std::span<const std::byte> data = buffer->data();
    for (std::size_t sent = 0; sent < data.size();)
      sent += co_await socket.send(data.data() + sent, data.size() - sent);
    buffer->release();
  }
  arms += received.arms();
}

// The client side: a message of Bytes, then its echo in full, timed, until the deadline. The
// last echo is compared with the message byte for byte (a lost or reordered byte fails the run;
// one that never comes hangs it).
template <std::size_t Bytes = kMessageBytes, class End>
ringloop::Coro<> run_client(End end, Clock::time_point deadline,
                            std::vector<std::uint32_t>& rtt_ns) {
  static const auto message = [] {
    std::array<char, Bytes> text{};
    for (std::size_t i = 0; i < Bytes; ++i) text[i] = static_cast<char>('0' + i % 64);
    return text;
  }();
  std::vector<char> echo(Bytes);
  for (auto now = Clock::now(); now < deadline;) {
    for (std::size_t sent = 0; sent < Bytes;)
      sent += co_await end.send(message.data() + sent, Bytes - sent);
    for (std::size_t got = 0; got < Bytes;) {
      std::size_t received = co_await end.recv(echo.data() + got, Bytes - got);
      if (received == 0) throw std::runtime_error("echo: the server closed the connection");
      got += received;
    }
    auto echoed = Clock::now();
    rtt_ns.push_back(static_cast<std::uint32_t>(
        std::min<std::int64_t>(std::chrono::nanoseconds(echoed - now).count(), UINT32_MAX)));
    now = echoed;
  }
  if (std::memcmp(echo.data(), message.data(), Bytes) != 0)
    throw std::runtime_error("echo: the echo differs from the message");
  co_await end.shutdown_write();  // the server's recv sees the end and its task ends
}

// The figures every echo scenario prints: round trips per second and their p99; with a message
// other than 64 bytes (echo_bulk), its size and the MB/s echoed: each round trip's message
// counted once (the bytes the clients got back, 10^6 bytes a MB), not twice for both ways.
inline std::string summary(std::vector<std::uint32_t>& rtt_ns, long conns, double secs,
                           double elapsed_s, std::size_t bytes = kMessageBytes) {
  std::sort(rtt_ns.begin(), rtt_ns.end());
  double p99_us = 0;
  if (!rtt_ns.empty()) {
    std::size_t rank = (rtt_ns.size() * 99 + 99) / 100;
    p99_us = rtt_ns[rank - 1] / 1e3;
  }
  double round_trips = static_cast<double>(rtt_ns.size());
  char extra[200];
  std::snprintf(extra, sizeof extra, " conns=%ld secs=%g rtt_per_s=%.0f p99_us=%.1f", conns, secs,
                round_trips / elapsed_s, p99_us);
  std::string line = extra;
  if (bytes != kMessageBytes) {
    std::snprintf(extra, sizeof extra, " bytes=%zu mb_per_s=%.1f", bytes,
                  round_trips * static_cast<double>(bytes) / elapsed_s / 1e6);
    line += extra;
  }
  return line;
}

// The server sides of an echo scenario. multishot: receive_multishot over one BufferRing.
enum class EchoServer { plain, direct, multishot };

// The loop-wide ring of the multishot server, sized for the connection count: each connection
// has at most one message in flight (its client waits for the echo before the next), taken in
// buffers of the message's size (at most 64 KiB: the 64 KiB message of echo_bulk measured 25%
// more MB/s at 1 connection in one 64 KiB buffer than in 16 KiB ones, one CQE and one send a
// message instead of four), so about one buffer per connection is ever out at once; twice the
// connections (rounded up to a power of two, at least 16, at most the kernel's 32768) is the
// slack for a message the kernel splits into two CQEs and for buffers whose echo is still being
// sent. A ring that runs dry anyway ends a multishot with -ENOBUFS, handled by the stream:
// RINGLOOP_BENCH_ECHO_RING=N (a power of two) makes the ring N buffers to see that path under
// load (rearms= in the line counts it; every client's last echo is still checked).
inline ringloop::BufferRing echo_ring(long conns, std::size_t bytes) {
  std::size_t buffer = std::min<std::size_t>(bytes, 64 * 1024);
  std::size_t per_connection = (bytes + buffer - 1) / buffer;
  std::size_t wanted = 2 * static_cast<std::size_t>(conns) * per_connection;
  auto count = static_cast<unsigned>(std::clamp<std::size_t>(std::bit_ceil(wanted), 16, 32768));
  if (const char* value = std::getenv("RINGLOOP_BENCH_ECHO_RING"))
    count = static_cast<unsigned>(std::strtoul(value, nullptr, 10));
  return ringloop::BufferRing(*ringloop::Loop::current(), count, buffer);
}

}  // namespace echo_detail

// echo, echo_direct, echo_multishot (Bytes = 64) and echo_bulk, echo_bulk_multishot
// (Bytes = 64 KiB): the same clients and timing; only the server side differs.
template <std::size_t Bytes = echo_detail::kMessageBytes>
ringloop::Coro<std::string> echo(const char* scenario, long conns, double secs,
                                 echo_detail::EchoServer server = echo_detail::EchoServer::plain) {
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
  bool direct = server == EchoServer::direct;
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
  // echo_multishot: the loop's buffer ring (registered untimed).
  // Its server sides hold their descriptor as a Socket, which receive_multishot takes; given
  // back (release) before the descriptors are closed below.
  std::optional<ringloop::BufferRing> ring;
  std::vector<ringloop::Socket> server_sockets;
  if (server == EchoServer::multishot) {
    ring.emplace(echo_ring(conns, Bytes));
    for (int fd : server_fds) server_sockets.emplace_back(fd);
  }
  std::uint64_t arms = 0;
  std::vector<std::uint32_t> rtt_ns;
  rtt_ns.reserve(1 << 20);
  auto start = Clock::now();
  auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  std::vector<ringloop::Coro<>> connections;
  for (long i = 0; i < conns; ++i) {
    auto k = static_cast<std::size_t>(i);
    if (direct) {
      connections.push_back(serve_echo<Bytes>(DirectEnd{&server_slots[k]}));
      connections.push_back(run_client<Bytes>(DirectEnd{&client_slots[k]}, deadline, rtt_ns));
      continue;
    }
    if (ring)
      connections.push_back(serve_echo_multishot(server_sockets[k], *ring, arms));
    else
      connections.push_back(serve_echo<Bytes>(PlainEnd{server_fds[k]}));
    connections.push_back(run_client<Bytes>(PlainEnd{client_fds[k]}, deadline, rtt_ns));
  }
  co_await ringloop::gather(std::move(connections));
  double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  for (ringloop::Socket& socket : server_sockets) socket.release();
  for (int fd : client_fds) ::close(fd);
  for (int fd : server_fds) ::close(fd);
  ::close(listener);
  std::string line =
      meter.line(scenario, conns) + echo_detail::summary(rtt_ns, conns, secs, elapsed_s, Bytes);
  if (ring) {
    // The ring's size, and the SQEs the receives used beyond one per connection: re-arms after
    // the kernel ended a multishot (-ENOBUFS included) or the stream's queue paused it.
    char text[128];
    std::snprintf(text, sizeof text, " ring_buffers=%u buffer_bytes=%zu rearms=%llu", ring->count(),
                  ring->buffer_size(),
                  static_cast<unsigned long long>(arms - static_cast<std::uint64_t>(conns)));
    line += text;
  }
  co_return line;
}

inline ringloop::Coro<std::string> unix_echo(long conns, double secs) {
  using namespace echo_detail;
  Meter meter;
  std::string path = "/tmp/ringloop-bench-" + std::to_string(::getpid()) + ".sock";
  ringloop::ServerOptions options{.backlog = 4096};  // not braced inside co_await: g++ 12
  ringloop::Server server = co_await ringloop::start_unix_server(
      [](ringloop::Stream stream) -> ringloop::Coro<> {
        co_await serve_echo<kMessageBytes>(PlainEnd{stream.socket().fd()});
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
    runs.push_back(run_client<kMessageBytes>(PlainEnd{client.socket().fd()}, deadline, rtt_ns));
  co_await ringloop::gather(std::move(runs));
  double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  server.close();                 // removes the socket file
  co_await server.wait_closed();  // the clients shut down their side: every handler ends
  co_return meter.line("unix_echo", conns) + summary(rtt_ns, conns, secs, elapsed_s);
}

}  // namespace ringloop_bench
