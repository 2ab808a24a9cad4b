// open_connection: a client's TCP connection to host:port, as a Stream (asyncio's
// open_connection).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/net/address.hpp>
#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

// Connects to host:port (numeric IPv4 or IPv6); TCP_NODELAY, as a request/response peer wants.
inline Coro<Stream> open_connection(std::string host, std::uint16_t port) {
  SocketAddress address = make_address(host, port);
  int fd = co_await ringloop::io::socket(address.family(), SOCK_STREAM);
  Socket socket(fd);
  int one = 1;
  ::setsockopt(socket.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  try {
    co_await socket.connect(address.get(), address.length);
  } catch (const std::system_error& error) {
    // The address belongs in the message, as asyncio's "Connect call failed ('::1', 80)": a
    // bare "connect: Connection refused" does not say which of a program's peers refused.
    throw std::system_error(error.code(),
                            "connect to " + host + " port " + std::to_string(port) + " failed");
  }
  co_return Stream(std::move(socket));
}

}  // namespace ringloop
