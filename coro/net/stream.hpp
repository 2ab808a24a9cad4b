// TCP streams in the spirit of asyncio's start_server / open_connection: listen_tcp() binds a
// listening Socket, serve() runs one task per accepted connection, open_connection() connects,
// and a Stream buffers what it receives for read, read_exactly and read_until, and writes all of
// what it is given. Addresses are numeric IPv4 or IPv6 (plus "localhost"): resolving a name
// would block the loop in getaddrinfo.
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

#include <ringloop/coro/exception_handler.hpp>
#include <ringloop/coro/net/socket.hpp>
#include <ringloop/coro/task/gather.hpp>
#include <ringloop/coro/task/task.hpp>
#include <ringloop/coro/time/sleep.hpp>

namespace ringloop {

// read_exactly or read_until met the end of the stream first; partial holds what had come.
class IncompleteReadError : public std::runtime_error {
 public:
  IncompleteReadError(std::string partial_bytes, std::size_t expected_bytes)
      : std::runtime_error("the stream ended after " + std::to_string(partial_bytes.size()) +
                           " bytes, before " +
                           (expected_bytes == 0 ? std::string("the separator")
                                                : std::to_string(expected_bytes) + " bytes")),
        partial(std::move(partial_bytes)),
        expected(expected_bytes) {}
  std::string partial;
  std::size_t expected;  // 0 for read_until
};

// read_until found no separator within its limit.
class LimitOverrunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const noexcept { return storage.ss_family; }
};

// A numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "[::1]", or "localhost" for 127.0.0.1).
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
                                "resolve names (getaddrinfo would block the loop)");
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

// A listening TCP socket on host:port (port 0: the kernel picks one, see local_port). Made with
// plain system calls: setup, not I/O. SO_REUSEADDR, so a restarted server can bind at once.
inline Socket listen_tcp(std::string_view host, std::uint16_t port, int backlog = 4096) {
  SocketAddress address = make_address(host, port);
  Socket socket(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket) throw std::system_error(errno, std::system_category(), "listen_tcp: socket");
  int one = 1;
  ::setsockopt(socket.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(socket.fd(), address.get(), address.length) != 0)
    throw std::system_error(
        errno, std::system_category(),
        "listen_tcp: bind to " + std::string(host) + " port " + std::to_string(port));
  if (::listen(socket.fd(), backlog) != 0)
    throw std::system_error(errno, std::system_category(), "listen_tcp: listen");
  return socket;
}

// A connected TCP stream with a receive buffer. Its coroutines use the Stream, which must
// outlive them; one reader and one writer at a time.
class Stream {
 public:
  static constexpr std::size_t kReadChunkBytes = 16 * 1024;
  static constexpr std::size_t kDefaultLineLimit = 64 * 1024;

  Stream() = default;
  explicit Stream(Socket socket) noexcept : socket_(std::move(socket)) {}

  Socket& socket() noexcept { return socket_; }

  // Up to max_bytes: what is buffered, else what one recv brings. Empty at end of stream.
  Coro<std::string> read(std::size_t max_bytes = kReadChunkBytes) {
    if (buffered() == 0 && max_bytes != 0) co_await fill();
    co_return take(std::min(max_bytes, buffered()));
  }

  // Exactly n bytes; IncompleteReadError (holding what came) when the stream ends first.
  Coro<std::string> read_exactly(std::size_t n) {
    while (buffered() < n) {
      // Awaited into a variable: g++ 12 miscompiles a co_await inside an if's condition.
      bool more = co_await fill();
      if (!more) throw IncompleteReadError(take(buffered()), n);
    }
    co_return take(n);
  }

  // Up to and including separator ("\n": a line). IncompleteReadError when the stream ends
  // first; LimitOverrunError when limit bytes come without one.
  Coro<std::string> read_until(std::string_view separator = "\n",
                               std::size_t limit = kDefaultLineLimit) {
    if (separator.empty()) throw std::invalid_argument("read_until: empty separator");
    std::size_t searched = 0;
    for (;;) {
      std::string_view data(buffer_.data() + start_, buffered());
      std::size_t found = data.find(separator, searched);
      if (found != std::string_view::npos) co_return take(found + separator.size());
      if (data.size() >= limit)
        throw LimitOverrunError("read_until: no separator in the first " + std::to_string(limit) +
                                " bytes");
      searched = data.size() >= separator.size() ? data.size() - separator.size() + 1 : 0;
      bool more = co_await fill();
      if (!more) throw IncompleteReadError(take(buffered()), 0);
    }
  }

  // Sends all of data, in as many sends as it takes.
  Coro<> write(std::string_view data) {
    while (!data.empty()) {
      std::size_t sent = co_await socket_.send(data.data(), data.size());
      data.remove_prefix(sent);
    }
  }

  // Shuts down the sending side (the peer reads end of stream); receiving goes on.
  auto write_eof() noexcept { return socket_.shutdown(SHUT_WR); }
  auto close() noexcept { return socket_.close(); }

 private:
  std::size_t buffered() const noexcept { return buffer_.size() - start_; }

  std::string take(std::size_t n) {
    std::string out(buffer_, start_, n);
    start_ += n;
    if (start_ == buffer_.size()) {
      buffer_.clear();
      start_ = 0;
    }
    return out;
  }

  // One recv appended to the buffer; false at end of stream.
  Coro<bool> fill() {
    if (start_ > 0) {
      buffer_.erase(0, start_);
      start_ = 0;
    }
    std::size_t old_size = buffer_.size();
    buffer_.resize(old_size + kReadChunkBytes);
    std::size_t received = 0;
    try {
      received = co_await socket_.recv(buffer_.data() + old_size, kReadChunkBytes);
    } catch (...) {
      buffer_.resize(old_size);
      throw;
    }
    buffer_.resize(old_size + received);
    co_return received != 0;
  }

  Socket socket_;
  std::string buffer_;
  std::size_t start_ = 0;  // buffer_[start_, size) is received and not yet read
};

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

namespace detail {

// asyncio logs what a connection handler throws rather than stopping the server: through the
// loop's exception handler. Called inside the catch block.
inline void report_server_error(const char* what) noexcept {
  try {
    report_exception(Loop::current(), {what, std::current_exception(), ""});
  } catch (...) {  // out of memory building the context
  }
}

template <class Handler>
Coro<> run_connection(Handler& handler, Stream stream) {
  try {
    co_await handler(std::move(stream));
  } catch (const std::exception&) {  // a CancelledError is no std::exception: it goes on
    report_server_error("a connection handler failed");
  }
}

// accept failures that concern one connection or a passing shortage, not the listener.
inline bool accept_error_is_transient(int error) noexcept {
  switch (error) {
    case ECONNABORTED:
    case EPERM:
    case EPROTO:
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      return true;
    default:
      return false;
  }
}

}  // namespace detail

// Accepts connections on listener and runs co_await handler(Stream) as one task per
// connection, until cancelled (asyncio's start_server + serve_forever, with a TaskGroup's
// rule): then it stops accepting, cancels the connection tasks, waits for them, and ends with
// CancelledError. The handler lives in serve's frame, which outlives every connection task, so
// a lambda handler may capture. What a handler throws is reported on stderr.
template <class Handler>
Coro<> serve(const Socket& listener, Handler handler) {
  // Shortages (EMFILE...) pass: waiting a little beats spinning on the failing accept.
  constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(10);
  std::vector<Task<>> connections;
  std::size_t prune_at = 64;
  bool cancelled = false;
  while (!cancelled) {
    bool back_off = false;
    try {
      Socket connection = co_await listener.accept();
      connections.push_back(
          create_task(detail::run_connection(handler, Stream(std::move(connection)))));
    } catch (const CancelledError&) {
      cancelled = true;
      continue;
    } catch (const std::system_error& error) {
      if (!detail::accept_error_is_transient(error.code().value())) throw;
      detail::report_server_error("accept failed");
      back_off = true;
    }
    if (connections.size() >= prune_at) {  // amortized: finished tasks go in batches
      std::erase_if(connections, [](const Task<>& task) { return task.done(); });
      prune_at = std::max<std::size_t>(64, 2 * connections.size());
    }
    if (back_off) co_await sleep(kAcceptRetryDelay);
  }
  for (Task<>& connection : connections) connection.cancel();
  co_await gather(return_exceptions, connections);
  throw CancelledError();
}

}  // namespace ringloop
