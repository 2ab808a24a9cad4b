// A blocking TCP client connected to 127.0.0.1:port, for tests that need a peer without awaiting
// one (the listener's backlog completes the handshake before any accept).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

#include <catch2/catch.hpp>
#include <ringloop/ringloop.hpp>

namespace test_support {

inline ringloop::Socket connect_to(std::uint16_t port) {
  ringloop::Socket client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(client.fd() >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(client.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  return client;
}

}  // namespace test_support
