// Socket addresses: SocketAddress holds a sockaddr of any family; make_address parses a numeric
// IPv4 or IPv6 address on the spot (a host name goes through getaddrinfo, resolve.hpp, which
// awaits); local_port reads the port a socket is bound to.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

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

#include <ringloop/coro/net/socket.hpp>

namespace ringloop {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const noexcept { return storage.ss_family; }
  // The port, in host byte order (0 for a family without ports).
  std::uint16_t port() const noexcept {
    if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(storage).sin_port);
    if (family() == AF_INET6)
      return ntohs(reinterpret_cast<const sockaddr_in6&>(storage).sin6_port);
    return 0;
  }
};

// A numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "[::1]", or "localhost" for 127.0.0.1),
// parsed on the spot; a host name takes getaddrinfo (coro/net/resolve.hpp), which awaits.
inline SocketAddress make_address(std::string_view host, std::uint16_t port) {
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  std::string text(host);
  SocketAddress address;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    address.length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    address.length = sizeof(sockaddr_in6);
  } else {
    throw std::invalid_argument("'" + text +
                                "' is not a numeric IPv4 or IPv6 address; ringloop does not "
                                "resolve names here: co_await getaddrinfo(host, port) does "
                                "(coro/net/resolve.hpp)");
  }
  return address;
}

// The port a socket is bound to (the one the kernel chose, after binding port 0).
inline std::uint16_t local_port(const Socket& socket) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  if (::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&storage), &length) != 0)
    throw std::system_error(errno, std::system_category(), "getsockname");
  if (storage.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<sockaddr_in6&>(storage).sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in&>(storage).sin_port);
}

namespace detail {

// "127.0.0.1", "::1": the numeric host of an IPv4 or IPv6 address, without its port.
inline std::string host_text(const SocketAddress& address) {
  char text[INET6_ADDRSTRLEN] = "?";
  const void* raw = address.family() == AF_INET6
                        ? static_cast<const void*>(
                              &reinterpret_cast<const sockaddr_in6&>(address.storage).sin6_addr)
                        : static_cast<const void*>(
                              &reinterpret_cast<const sockaddr_in&>(address.storage).sin_addr);
  ::inet_ntop(address.family(), raw, text, sizeof text);
  return text;
}

}  // namespace detail

// "127.0.0.1:8080", "[::1]:8080", a Unix socket's path ("@name" for an abstract one), "" for an
// empty address (a pipe's, say): what asyncio's peername tuple says, as one string.
inline std::string to_string(const SocketAddress& address) {
  if (address.family() == AF_INET)
    return detail::host_text(address) + ":" + std::to_string(address.port());
  if (address.family() == AF_INET6)
    return "[" + detail::host_text(address) + "]:" + std::to_string(address.port());
  if (address.family() == AF_UNIX) {
    const auto& un = reinterpret_cast<const sockaddr_un&>(address.storage);
    std::size_t offset = offsetof(sockaddr_un, sun_path);
    if (address.length <= offset) return "";  // unnamed (a socketpair's end)
    std::size_t size = address.length - offset;
    if (un.sun_path[0] == '\0') return "@" + std::string(un.sun_path + 1, size - 1);
    return std::string(un.sun_path, ::strnlen(un.sun_path, size));
  }
  return "";
}

}  // namespace ringloop
