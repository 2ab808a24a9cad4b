// The ringloop side of c100k (bench/c100k_driver.cpp drives it): `ringloop_c100k_server
// <multishot|plain>` listens on 127.0.0.1 (a free port, printed as `port=N`), and serves each
// connection with an idle deadline of 60 s, echoing what it reads, until SIGINT or SIGTERM.
// plain: today's path, one accept SQE per connection and a recv into a 16 KiB buffer in each
// connection's frame with a linked timeout. multishot: multishot_accept, and receive_multishot
// through one BufferRing (1,024 x 4 KiB), so an idle connection pins no buffer.
#include <csignal>
#include <cstdio>
#include <cstring>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Socket;

namespace {

// A connection's end (its client left, its deadline passed) ends its task quietly: caught in
// the task's own body, as tokio's and Asio's servers do, not by a wrapping coroutine (a second
// frame per connection).
Coro<> echo_plain(Socket connection) {
  char buffer[16384];
  try {
    for (;;) {
      std::size_t n = co_await ringloop::wait_for(connection.recv(buffer, sizeof buffer), 60s);
      if (n == 0) co_return;
      co_await connection.send(buffer, n);
    }
  } catch (const std::exception&) {
  }
}

// The idle deadline is one Timeout around the connection, pushed back after each message (as
// asyncio's `async with timeout(60) as cm: ... cm.reschedule(loop.time() + 60)`, or tokio's
// `sleep.reset()`): its timer stays in the kernel while it moves later, so a message costs no
// timer SQE or CQE. (A `wait_for` around each `next()` arms and removes a kernel timer per
// message: bench/c100k.sh measured it at ~2x the time to echo on all.)
Coro<> echo_each(Socket& connection,
                 ringloop::MultishotStream<ringloop::detail::RecvMultishotOp>& received,
                 ringloop::Timeout& idle) {
  for (;;) {
    std::optional<ringloop::Buffer> buffer = co_await received.next();
    if (!buffer) co_return;
    idle.reschedule_after(60s);
    co_await connection.send(buffer->data().data(), buffer->size());
  }
}

Coro<> echo_multishot(Socket connection, const ringloop::BufferRing& ring) {
  try {
    auto received = ringloop::receive_multishot(connection, ring);
    ringloop::Timeout idle(60s);
    co_await idle.run(echo_each(connection, received, idle));
  } catch (const std::exception&) {
  }
}

Coro<> serve(bool multishot) {
  Socket listener = ringloop::listen_tcp("127.0.0.1", 0, 65535);
  std::printf("port=%u\n", ringloop::local_port(listener));
  std::fflush(stdout);
  if (multishot) {
    ringloop::BufferRing ring(*ringloop::Loop::current(), 1024, 4096);
    auto accepts = ringloop::multishot_accept(listener);
    for (;;) {
      std::optional<Socket> connection = co_await accepts.next();
      if (connection) ringloop::create_task(echo_multishot(std::move(*connection), ring));
    }
  }
  for (;;) {
    Socket connection = co_await listener.accept();
    ringloop::create_task(echo_plain(std::move(connection)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool multishot = argc > 1 && std::strcmp(argv[1], "multishot") == 0;
  try {
    ringloop::run(serve(multishot));
  } catch (const ringloop::KeyboardInterrupt&) {
  }
  return 0;
}
