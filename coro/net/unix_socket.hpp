// Unix domain stream sockets: start_unix_server and open_unix_connection (asyncio's names). A
// path names a socket file, or, when it starts with '\0' (as in Python), a name in Linux's
// abstract namespace, which has no file and vanishes with the last socket bound to it.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/net/address.hpp>
#include <ringloop/coro/net/server.hpp>
#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

// The longest path sun_path holds: 107 bytes and the terminating NUL; an abstract name (no NUL
// needed) may use all 108.
inline constexpr std::size_t kMaxUnixPathBytes = sizeof(sockaddr_un::sun_path) - 1;

// Whether path names the abstract namespace (a leading '\0').
inline bool is_abstract_unix_path(std::string_view path) noexcept {
  return !path.empty() && path.front() == '\0';
}

// path as a person reads it: an abstract name with '@' for its leading NUL, as ss(8) shows it.
inline std::string printable_unix_path(std::string_view path) {
  if (is_abstract_unix_path(path)) return "@" + std::string(path.substr(1));
  return std::string(path);
}

// The sockaddr_un for path; std::invalid_argument when it does not fit or is not a path.
inline SocketAddress unix_address(std::string_view path) {
  bool abstract = is_abstract_unix_path(path);
  if (path.empty() || (abstract && path.size() == 1))
    throw std::invalid_argument("unix socket path is empty");
  if (!abstract && path.find('\0') != std::string_view::npos)
    throw std::invalid_argument("unix socket path '" + printable_unix_path(path) +
                                "' holds a NUL byte (only an abstract name may, at its start)");
  std::size_t capacity = abstract ? kMaxUnixPathBytes + 1 : kMaxUnixPathBytes;
  if (path.size() > capacity)
    throw std::invalid_argument("unix socket path is " + std::to_string(path.size()) +
                                " bytes long; sun_path holds at most " + std::to_string(capacity) +
                                (abstract ? " for an abstract name" : " and a terminating NUL") +
                                " (bind a shorter path, or chdir and bind a relative one)");
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  SocketAddress address;
  std::memcpy(&address.storage, &un, sizeof(un));
  // An abstract name's length is exact: its bytes after the name would be part of it.
  address.length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return address;
}

namespace detail {

// A listening Unix socket at path, the file's identity recorded for close(). asyncio's rules: a
// socket file left at path (a server that died) is removed first; anything else there is refused.
inline Listener bind_unix_listener(const std::string& path, const ServerOptions& options) {
  SocketAddress address = unix_address(path);
  std::string description = "unix socket '" + printable_unix_path(path) + "'";
  bool abstract = is_abstract_unix_path(path);
  struct stat status {};
  if (!abstract && ::stat(path.c_str(), &status) == 0) {
    if (!S_ISSOCK(status.st_mode))
      throw std::system_error(EADDRINUSE, std::system_category(),
                              "start_unix_server: '" + path + "' exists and is not a socket");
    ::unlink(path.c_str());
  }
  Listener listener{bind_stream_socket(address, options, description)};
  if (!abstract && ::stat(path.c_str(), &status) == 0) {
    listener.unix_path = path;
    listener.device = status.st_dev;
    listener.inode = status.st_ino;
  }
  return listener;
}

}  // namespace detail

// asyncio's start_unix_server: a Server (see server.hpp) on the Unix socket at path. close()
// removes the socket file, if it is still the one bound here (asyncio 3.13's cleanup_socket).
// The TCP options of ServerOptions do not apply; backlog, buffer sizes and start_serving do.
template <class Handler>
Coro<Server> start_unix_server(Handler handler, std::string path, ServerOptions options = {}) {
  std::vector<detail::Listener> listeners;
  listeners.push_back(detail::bind_unix_listener(path, options));
  co_return detail::make_server(std::move(handler), std::move(listeners), std::move(options));
}

// asyncio's open_unix_connection: a Stream connected to the Unix socket at path.
inline Coro<Stream> open_unix_connection(std::string path) {
  SocketAddress address = unix_address(path);
  int fd = co_await ringloop::io::socket(AF_UNIX, SOCK_STREAM);
  Socket socket(fd);
  try {
    co_await socket.connect(address.get(), address.length);
  } catch (const std::system_error& error) {
    throw std::system_error(error.code(),
                            "connect to unix socket '" + printable_unix_path(path) + "' failed");
  }
  co_return Stream(std::move(socket));
}

}  // namespace ringloop
