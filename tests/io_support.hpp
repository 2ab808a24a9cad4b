// Helpers for the I/O tests: a connected pair of sockets owned by ringloop's Socket type.
#pragma once

#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <ringloop/coro/net/socket.hpp>

namespace test_support {

struct SocketPair {
  ringloop::Socket a;
  ringloop::Socket b;
  SocketPair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    a = ringloop::Socket(fds[0]);
    b = ringloop::Socket(fds[1]);
  }
};

}  // namespace test_support
