// udp_echo [port [host]]: a UDP echo server on ringloop: every datagram goes back to its sender,
// one recvmsg and one sendmsg SQE each. SIGINT or SIGTERM ends it cleanly (a signal handler of
// the loop cancels the echo task; exit 0). Listens on 127.0.0.1:7008 by default; port 0 lets
// the kernel choose, and the first line printed names the port.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>

using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::DatagramSocket;

namespace {

struct Counters {
  unsigned long long datagrams = 0;
  unsigned long long truncated = 0;
  unsigned long long failed = 0;
};

Coro<> echo(DatagramSocket& socket, Counters& counters) {
  // The largest UDP payload (65,507 bytes over IPv4): nothing is ever truncated here, but a
  // smaller buffer would be told so.
  std::vector<std::byte> buffer(65536);
  for (;;) {
    ringloop::ReceivedDatagram received = co_await socket.recv_from(buffer);
    ++counters.datagrams;
    if (received.truncated) ++counters.truncated;
    try {
      co_await socket.send_to(std::span(buffer.data(), received.bytes), received.sender);
    } catch (const std::system_error&) {  // the sender went away (ICMP): serve the others
      ++counters.failed;
    }
  }
}

Coro<> serve(std::string host, std::uint16_t port) {
  DatagramSocket socket = DatagramSocket::bind(ringloop::make_address(host, port));
  Counters counters;
  auto echoing = ringloop::create_task(echo(socket, counters));
  for (int signal : {SIGINT, SIGTERM})
    ringloop::add_signal_handler(signal, [&echoing] { echoing.cancel(); });
  std::printf("udp_echo: listening on %s port %u\n", host.c_str(),
              static_cast<unsigned>(socket.local_address().port()));
  std::fflush(stdout);
  try {
    co_await echoing;
  } catch (const CancelledError&) {
  }
  std::printf("udp_echo: echoed %llu datagrams (%llu truncated, %llu failed); bye\n",
              counters.datagrams, counters.truncated, counters.failed);
}

}  // namespace

int main(int argc, char** argv) {
  long port = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 7008;
  std::string host = argc > 2 ? argv[2] : "127.0.0.1";
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "usage: udp_echo [port (7008)] [host (127.0.0.1)]\n");
    return 2;
  }
  try {
    ringloop::run(serve(host, static_cast<std::uint16_t>(port)));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "udp_echo: %s\n", error.what());
    return 1;
  }
  return 0;
}
