// The udp_echo scenario on DatagramSocket (coro/net/datagram.hpp): one server socket on
// 127.0.0.1 whose task echoes every datagram to its sender (recv_from, send_to: a recvmsg and a
// sendmsg SQE each), and C client sockets, each a task that sends an n-byte datagram and waits
// for its echo, for `secs`. The figure: echoed datagrams per second (round trips), p99 µs.
// n is the payload (64 and 1400 in scripts/bench). Loopback does not drop datagrams while each
// client has one in flight (C datagrams fit the server's receive buffer).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "bench/scenario_util.hpp"

namespace ringloop_bench {

namespace udp_detail {

inline ringloop::Coro<> serve(ringloop::DatagramSocket& server, std::size_t bytes) {
  std::vector<std::byte> buffer(std::max<std::size_t>(bytes, 1) + 1);
  for (;;) {
    ringloop::ReceivedDatagram received = co_await server.recv_from(buffer);
    co_await server.send_to(std::span(buffer.data(), received.bytes), received.sender);
  }
}

inline ringloop::Coro<> client(ringloop::DatagramSocket& socket, std::size_t bytes,
                               Clock::time_point deadline, std::vector<std::uint32_t>& rtt_ns) {
  std::vector<std::byte> message(bytes, std::byte{'x'});
  std::vector<std::byte> echo(bytes + 1);
  for (auto now = Clock::now(); now < deadline;) {
    co_await socket.send(message);
    ringloop::ReceivedDatagram received = co_await socket.recv(echo);
    if (received.bytes != bytes) throw std::runtime_error("udp_echo: a short echo");
    auto end = Clock::now();
    rtt_ns.push_back(static_cast<std::uint32_t>(
        std::min<std::int64_t>(std::chrono::nanoseconds(end - now).count(), UINT32_MAX)));
    now = end;
  }
}

}  // namespace udp_detail

inline ringloop::Coro<std::string> udp_echo(long bytes, long conns, double secs) {
  Meter meter;
  auto size = static_cast<std::size_t>(bytes);
  ringloop::DatagramSocket server =
      ringloop::DatagramSocket::bind(ringloop::make_address("127.0.0.1", 0));
  std::vector<ringloop::DatagramSocket> clients;
  for (long i = 0; i < conns; ++i) {
    clients.push_back(ringloop::DatagramSocket::bind(ringloop::make_address("127.0.0.1", 0)));
    clients.back().connect(server.local_address());
  }
  auto serving = ringloop::create_task(udp_detail::serve(server, size));
  std::vector<std::uint32_t> rtt_ns;
  rtt_ns.reserve(1 << 20);
  auto start = Clock::now();
  auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  std::vector<ringloop::Coro<>> running;
  for (auto& socket : clients)
    running.push_back(udp_detail::client(socket, size, deadline, rtt_ns));
  co_await ringloop::gather(std::move(running));
  double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  serving.cancel();
  try {
    co_await serving;
  } catch (const ringloop::CancelledError&) {
  }
  std::sort(rtt_ns.begin(), rtt_ns.end());
  double p99_us = 0;
  if (!rtt_ns.empty()) p99_us = rtt_ns[(rtt_ns.size() * 99 + 99) / 100 - 1] / 1e3;
  char extra[160];
  std::snprintf(extra, sizeof extra, " conns=%ld secs=%g datagrams_per_s=%.0f p99_us=%.1f", conns,
                secs, static_cast<double>(rtt_ns.size()) / elapsed_s, p99_us);
  co_return meter.line("udp_echo", bytes) + extra;
}

}  // namespace ringloop_bench
