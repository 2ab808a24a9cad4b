// UDP: DatagramSocket's send_to/recv_from and send/recv over IPv4 and IPv6 loopback, a datagram
// longer than the buffer (reported truncated, with its size), ECONNREFUSED on a connected
// socket, wrong-family addresses, broadcast and multicast options, create_datagram_endpoint,
// a cancelled receive; and examples/udp_echo answering python3's asyncio client.
#include <catch2/catch.hpp>

#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/process_support.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::DatagramSocket;
using ringloop::ReceivedDatagram;

namespace {

std::string text_of(std::span<const std::byte> buffer, const ReceivedDatagram& received) {
  return std::string(reinterpret_cast<const char*>(buffer.data()), received.bytes);
}

}  // namespace

TEST_CASE("send_to and recv_from carry a datagram and its sender over IPv4 and IPv6", "[udp]") {
  for (const char* host : {"127.0.0.1", "::1"}) {
    INFO(host);
    ringloop::run([](std::string h) -> Coro<> {
      DatagramSocket a = DatagramSocket::bind(ringloop::make_address(h, 0));
      DatagramSocket b = DatagramSocket::bind(ringloop::make_address(h, 0));
      std::size_t sent = co_await a.send_to("ping", b.local_address());
      CHECK(sent == 4);
      std::vector<std::byte> buffer(64);
      ReceivedDatagram received = co_await b.recv_from(buffer);
      CHECK(text_of(buffer, received) == "ping");
      CHECK(received.datagram_bytes == 4);
      CHECK(!received.truncated);
      CHECK(ringloop::to_string(received.sender) == ringloop::to_string(a.local_address()));
      co_await b.send_to("pong", received.sender);
      ReceivedDatagram answer = co_await a.recv_from(buffer);
      CHECK(text_of(buffer, answer) == "pong");
    }(host));
  }
}

TEST_CASE("connected datagram sockets send and recv to and from their peer", "[udp]") {
  ringloop::run([]() -> Coro<> {
    DatagramSocket a = DatagramSocket::bind(ringloop::make_address("127.0.0.1", 0));
    DatagramSocket b = DatagramSocket::bind(ringloop::make_address("127.0.0.1", 0));
    a.connect(b.local_address());
    b.connect(a.local_address());
    CHECK(ringloop::to_string(a.peer_address()) == ringloop::to_string(b.local_address()));
    co_await a.send("one");
    co_await a.send("two");
    std::vector<std::byte> buffer(16);
    ReceivedDatagram first = co_await b.recv(buffer);
    CHECK(text_of(buffer, first) == "one");  // datagram boundaries kept
    ReceivedDatagram second = co_await b.recv(buffer);
    CHECK(text_of(buffer, second) == "two");
  }());
}

TEST_CASE("a datagram longer than the buffer is reported truncated, with its real size", "[udp]") {
  ringloop::run([]() -> Coro<> {
    DatagramSocket a = DatagramSocket::bind(ringloop::make_address("127.0.0.1", 0));
    DatagramSocket b = DatagramSocket::bind(ringloop::make_address("127.0.0.1", 0));
    std::string big(1000, 'x');
    big[0] = 'a';
    co_await a.send_to(big, b.local_address());
    co_await a.send_to("next", b.local_address());
    std::vector<std::byte> small(10);
    ReceivedDatagram received = co_await b.recv_from(small);
    CHECK(received.truncated);
    CHECK(received.bytes == 10);
    CHECK(received.datagram_bytes == 1000);
    CHECK(text_of(small, received) == "axxxxxxxxx");
    // The rest of the long datagram is gone; the next receive is the next datagram.
    ReceivedDatagram next = co_await b.recv_from(small);
    CHECK(!next.truncated);
    CHECK(text_of(small, next) == "next");
  }());
}

TEST_CASE(
    "a connected socket's receive after sending to a port with nothing bound is "
    "ECONNREFUSED naming the peer",
    "[udp]") {
  ringloop::run([]() -> Coro<> {
    // Closed and awaited: a socket destroyed on a loop's thread is closed by an SQE the loop
    // has not submitted yet, and would still take the datagram.
    DatagramSocket closed = DatagramSocket::bind(ringloop::make_address("127.0.0.1", 0));
    ringloop::SocketAddress nobody = closed.local_address();
    co_await closed.close();
    DatagramSocket socket = DatagramSocket::bind(ringloop::make_address("127.0.0.1", 0));
    socket.connect(nobody);
    co_await socket.send("anyone?");
    std::vector<std::byte> buffer(16);
    try {
      // The ICMP port unreachable comes back at once on loopback; 2 s turns a hang into a fail.
      ReceivedDatagram received = co_await ringloop::wait_for(socket.recv(buffer), 2s);
      FAIL("received " << received.bytes << " bytes");
    } catch (const std::system_error& error) {
      CHECK(error.code().value() == ECONNREFUSED);
      CHECK_THAT(error.what(), Catch::Contains(ringloop::to_string(nobody)));
    }
  }());
}

TEST_CASE("an address of the other family is a clear error", "[udp]") {
  DatagramSocket v4 = DatagramSocket::open(AF_INET);
  CHECK_THROWS_WITH(v4.connect(ringloop::make_address("::1", 9)),
                    Catch::Contains("[::1]:9 is an IPv6 address and this is an IPv4 socket"));
  CHECK_THROWS_AS(v4.send_to("x", ringloop::make_address("::1", 9)), std::invalid_argument);
  CHECK_THROWS_AS(v4.bind_to(ringloop::make_address("::1", 0)), std::invalid_argument);
  DatagramSocket v6 = DatagramSocket::open(AF_INET6);
  CHECK_THROWS_WITH(v6.send_to("x", ringloop::make_address("127.0.0.1", 9)),
                    Catch::Contains("IPv4 address and this is an IPv6 socket"));
  CHECK_THROWS_AS(DatagramSocket::open(AF_UNIX), std::invalid_argument);
}

TEST_CASE("a broadcast needs set_broadcast, and then arrives", "[udp]") {
  ringloop::run([]() -> Coro<> {
    DatagramSocket receiver = DatagramSocket::bind(ringloop::make_address("0.0.0.0", 0));
    DatagramSocket sender = DatagramSocket::open(AF_INET);
    auto broadcast = ringloop::make_address("127.255.255.255", receiver.local_address().port());
    int refused = 0;
    try {
      co_await sender.send_to("all", broadcast);
    } catch (const std::system_error& error) {
      refused = error.code().value();
    }
    CHECK(refused == EACCES);
    sender.set_broadcast(true);
    co_await sender.send_to("all", broadcast);
    std::vector<std::byte> buffer(16);
    ReceivedDatagram received = co_await ringloop::wait_for(receiver.recv_from(buffer), 2s);
    CHECK(text_of(buffer, received) == "all");
  }());
}

TEST_CASE("an IPv4 multicast group joined on loopback gets its datagrams until left", "[udp]") {
  ringloop::run([]() -> Coro<> {
    DatagramSocket receiver = DatagramSocket::bind(ringloop::make_address("0.0.0.0", 0));
    receiver.join_multicast_v4("239.255.42.1", "127.0.0.1");
    DatagramSocket sender = DatagramSocket::open(AF_INET);
    sender.set_multicast_interface_v4("127.0.0.1");
    sender.set_multicast_ttl_v4(1);
    sender.set_multicast_loop_v4(true);
    auto group = ringloop::make_address("239.255.42.1", receiver.local_address().port());
    co_await sender.send_to("to the group", group);
    std::vector<std::byte> buffer(32);
    ReceivedDatagram received = co_await ringloop::wait_for(receiver.recv_from(buffer), 2s);
    CHECK(text_of(buffer, received) == "to the group");
    receiver.leave_multicast_v4("239.255.42.1", "127.0.0.1");
    co_await sender.send_to("gone", group);
    CHECK_THROWS_AS(co_await ringloop::wait_for(receiver.recv_from(buffer), 200ms),
                    ringloop::TimeoutError);
  }());
  DatagramSocket socket = DatagramSocket::open(AF_INET);
  CHECK_THROWS_WITH(socket.join_multicast_v4("not-an-address"),
                    Catch::Contains("is not an IPv4 address"));
}

TEST_CASE("an IPv6 multicast group is joined and left on an interface", "[udp]") {
  DatagramSocket socket = DatagramSocket::bind(ringloop::make_address("::", 0));
  unsigned loopback = ::if_nametoindex("lo");
  REQUIRE(loopback != 0);
  socket.join_multicast_v6("ff02::1:3", loopback);
  socket.set_multicast_loop_v6(true);
  socket.leave_multicast_v6("ff02::1:3", loopback);
  // Leaving twice: the kernel's error, named.
  CHECK_THROWS_WITH(socket.leave_multicast_v6("ff02::1:3", loopback),
                    Catch::Contains("IPV6_DROP_MEMBERSHIP ff02::1:3"));
  socket.set_ttl(5);
  int hops = 0;
  socklen_t length = sizeof(hops);
  ::getsockopt(socket.fd(), IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, &length);
  CHECK(hops == 5);
}

TEST_CASE("create_datagram_endpoint resolves, binds and connects", "[udp][names]") {
  ringloop::run([]() -> Coro<> {
    ringloop::DatagramEndpointOptions server_options;
    server_options.local_addr = ringloop::HostPort{"localhost", 0};
    server_options.reuse_port = true;
    DatagramSocket server = co_await ringloop::create_datagram_endpoint(server_options);
    ringloop::DatagramEndpointOptions client_options;
    client_options.remote_addr = ringloop::HostPort{"localhost", server.local_address().port()};
    client_options.allow_broadcast = true;
    DatagramSocket client = co_await ringloop::create_datagram_endpoint(client_options);
    co_await client.send("hello");
    std::vector<std::byte> buffer(16);
    ReceivedDatagram received = co_await server.recv_from(buffer);
    CHECK(text_of(buffer, received) == "hello");
    co_await server.send_to("back", received.sender);
    ReceivedDatagram answer = co_await client.recv(buffer);
    CHECK(text_of(buffer, answer) == "back");
    ringloop::DatagramEndpointOptions nowhere;
    nowhere.remote_addr = ringloop::HostPort{"nonexistent.invalid", 9};
    CHECK_THROWS_AS(co_await ringloop::create_datagram_endpoint(nowhere), ringloop::GaiError);
  }());
}

TEST_CASE("a cancelled receive ends in CancelledError and the socket goes on working", "[udp]") {
  ringloop::run([]() -> Coro<> {
    DatagramSocket socket = DatagramSocket::bind(ringloop::make_address("127.0.0.1", 0));
    std::vector<std::byte> buffer(16);
    auto waiting =
        ringloop::create_task([](DatagramSocket& s, std::span<std::byte> b) -> Coro<std::size_t> {
          ReceivedDatagram received = co_await s.recv_from(b);
          co_return received.bytes;
        }(socket, buffer));
    co_await ringloop::sleep(10ms);
    waiting.cancel();
    CHECK_THROWS_AS(co_await waiting, CancelledError);
    co_await socket.send_to("still", socket.local_address());
    ReceivedDatagram received = co_await socket.recv_from(buffer);
    CHECK(text_of(buffer, received) == "still");
  }());
}

TEST_CASE("an asyncio client's datagrams come back from examples/udp_echo", "[udp][host]") {
  std::string example = test_support::example_path("udp_echo");
  INFO(example << " (built by ninja's default target)");
  REQUIRE(::access(example.c_str(), X_OK) == 0);
  test_support::ChildProcess server({example, "0"});
  std::string banner = server.read_line();  // "udp_echo: listening on 127.0.0.1 port 41234"
  INFO(banner);
  auto at = banner.find(" port ");
  REQUIRE(at != std::string::npos);
  std::string port = banner.substr(at + 6);
  // Python's own asyncio: create_datagram_endpoint, a protocol that collects the echoes.
  const char* script = R"PY(
import asyncio, sys
async def main(port):
    loop = asyncio.get_running_loop()
    got = asyncio.Queue()
    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.put_nowait(data)
    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    sent = [b"hello", b"x" * 1400, b"y" * 60000]
    for data in sent:
        transport.sendto(data)
        echo = await asyncio.wait_for(got.get(), 5)
        assert echo == data, (len(echo), len(data))
    transport.close()
    print("echoed", len(sent), flush=True)
asyncio.run(main(int(sys.argv[1])))
)PY";
  test_support::ChildProcess client({"python3", "-c", script, port}, /*merge_stderr=*/true);
  std::string answer = client.read_line(std::chrono::seconds(20));
  CHECK(answer == "echoed 3");
  int client_status = client.wait();
  CHECK((WIFEXITED(client_status) && WEXITSTATUS(client_status) == 0));
  int status = server.stop(SIGINT);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK_THAT(server.read_line(), Catch::StartsWith("udp_echo: echoed 3 datagrams (0 truncated"));
}
