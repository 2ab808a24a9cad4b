// Asio's side of c100k (bench/c100k_driver.cpp drives it; bench/c100k.sh starts it), on the
// io_uring backend as asio_peer.cpp is built (-DASIO_HAS_IO_URING -DASIO_DISABLE_EPOLL): listens
// on 127.0.0.1 (a free port, printed as `port=N`) in one thread and serves each connection in a
// coroutine: a pending read under a 60 s idle deadline, echoing what it reads, until killed.
//
// The deadline is Asio's own idiom (its cpp20 example echo_server_with_deadline.cpp): the echo
// loop pushes a shared deadline forward before each read, and a watchdog coroutine on one
// steady_timer per connection, run beside it with `||`, ends the connection when it passes.
// An idle connection holds no buffer, as none does on ringloop's multishot path: the echo loop
// waits for readability (`async_wait(wait_read)`, Asio's reactor-style operation, a poll on the
// ring), then reads what is there into a 1 KiB buffer made for that message. (With
// `async_read_some` into a buffer in the frame, Asio's cpp20 echo_server.cpp, each idle
// connection is that much larger.)
#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

constexpr auto kIdle = std::chrono::seconds(60);

static awaitable<void> echo(tcp::socket& socket, Clock::time_point& deadline) {
  socket.non_blocking(true);
  for (;;) {
    deadline = Clock::now() + kIdle;
    co_await socket.async_wait(tcp::socket::wait_read, use_awaitable);
    std::vector<char> data(1024);
    asio::error_code ec;
    std::size_t n = socket.read_some(asio::buffer(data), ec);
    if (ec == asio::error::would_block) continue;  // readiness can be spurious
    if (ec) throw asio::system_error(ec);          // EOF (the client closed) or a reset
    co_await asio::async_write(socket, asio::buffer(data.data(), n), use_awaitable);
  }
}

static awaitable<void> watchdog(Clock::time_point& deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto now = Clock::now();
  while (deadline > now) {
    timer.expires_at(deadline);
    co_await timer.async_wait(use_awaitable);
    now = Clock::now();
  }
  // Returning ends the `||`, which cancels the read: the connection is closed with its socket.
}

static awaitable<void> serve(tcp::socket socket) {
  Clock::time_point deadline{};
  try {
    co_await (echo(socket, deadline) || watchdog(deadline));
  } catch (const std::exception&) {
    // EOF or a reset: the connection's end.
  }
}

static awaitable<void> accept_all(tcp::acceptor& acceptor) {
  for (;;) {
    asio::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      // EMFILE and the like: say so (the driver then counts what was not served), back off.
      std::fprintf(stderr, "asio_c100k_server: accept: %s\n", ec.message().c_str());
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(10));
      co_await pause.async_wait(use_awaitable);
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
  }
}

int main() {
  asio::io_context context(1);  // one thread runs this loop
  tcp::acceptor acceptor(context);
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  acceptor.open(endpoint.protocol());
  acceptor.bind(endpoint);
  acceptor.listen(65535);  // the backlog ringloop's and Node's servers ask for (somaxconn caps it)
  std::printf("port=%u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  asio::co_spawn(context, accept_all(acceptor), asio::detached);
  context.run();
  return 0;
}
