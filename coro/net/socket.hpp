// Socket: an owning socket fd (move-only) with its operations as methods, each one SQE as in
// coro/io/io.hpp. Closed exactly once: `co_await socket.close()`, or on destruction (through the
// ring when a loop runs on this thread, else ::close).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <span>

#include <ringloop/coro/detail/owned_fd.hpp>
#include <ringloop/coro/io/io.hpp>

namespace ringloop {

class Socket;

namespace detail {
struct AcceptedSocket : NewFdResult {
  static Socket convert(std::int32_t result) noexcept;
};
}  // namespace detail

class Socket : public detail::OwnedFd {
 public:
  using OwnedFd::OwnedFd;

  auto recv(void* data, std::size_t size, int flags = 0) const noexcept {
    return ringloop::io::recv(fd(), data, size, flags);
  }
  auto recv(std::span<std::byte> buffer, int flags = 0) const noexcept {
    return ringloop::io::recv(fd(), buffer.data(), buffer.size(), flags);
  }
  auto send(const void* data, std::size_t size, int flags = MSG_NOSIGNAL) const noexcept {
    return ringloop::io::send(fd(), data, size, flags);
  }
  auto send(std::span<const std::byte> buffer, int flags = MSG_NOSIGNAL) const noexcept {
    return ringloop::io::send(fd(), buffer.data(), buffer.size(), flags);
  }
  // Accepts a connection on this listening socket; the result is a Socket.
  detail::OpAwaiter<detail::AcceptPrep, detail::AcceptedSocket> accept(
      int flags = SOCK_CLOEXEC) const noexcept {
    return detail::OpAwaiter<detail::AcceptPrep, detail::AcceptedSocket>(
        {fd(), nullptr, nullptr, flags});
  }
  auto connect(const sockaddr* address, socklen_t length) const {
    return ringloop::io::connect(fd(), address, length);
  }
  auto shutdown(int how) const noexcept { return ringloop::io::shutdown(fd(), how); }
  auto poll(unsigned events) const noexcept { return ringloop::io::poll(fd(), events); }
};

inline Socket detail::AcceptedSocket::convert(std::int32_t result) noexcept {
  return Socket(result);
}

}  // namespace ringloop
