// TCP servers in the spirit of asyncio's start_server: listen_tcp() binds a listening Socket and
// serve() runs one task per accepted connection until cancelled.
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
#include <ringloop/coro/net/address.hpp>
#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/task/gather.hpp>
#include <ringloop/coro/task/task.hpp>
#include <ringloop/coro/time/sleep.hpp>

namespace ringloop {

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
