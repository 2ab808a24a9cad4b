// asio_tls_echo CERT KEY PORT: Asio's TLS echo server for the tls_* scenarios
// (bench/tls/tls_peer.sh): Asio 1.22 (Debian libasio-dev) `ssl::stream<tcp::socket>` over
// OpenSSL, on the io_uring backend like asio_peer.cpp (-DASIO_HAS_IO_URING
// -DASIO_DISABLE_EPOLL), one io_context on one thread, C++20 awaitable/co_spawn; a session per
// connection: the handshake, then what the client sends comes back until it closes. PORT 0
// takes a free port; the first line on stdout is "listening on port N". Runs until killed.
#include <asio.hpp>
#include <asio/ssl.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

namespace {

awaitable<void> session(asio::ssl::stream<tcp::socket> stream) {
  try {
    co_await stream.async_handshake(asio::ssl::stream_base::server, use_awaitable);
    char data[64 * 1024];
    for (;;) {
      std::size_t n = co_await stream.async_read_some(asio::buffer(data), use_awaitable);
      co_await asio::async_write(stream, asio::buffer(data, n), use_awaitable);
    }
  } catch (const std::exception&) {
    // The client's close_notify (asio::error::eof) or a reset: the session ends.
  }
}

awaitable<void> accept_loop(tcp::acceptor& acceptor, asio::ssl::context& context) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(),
                   session(asio::ssl::stream<tcp::socket>(std::move(socket), context)),
                   asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: asio_tls_echo CERT KEY PORT\n");
    return 2;
  }
  try {
    asio::io_context io(1);
    asio::ssl::context context(asio::ssl::context::tls_server);
    context.use_certificate_chain_file(argv[1]);
    context.use_private_key_file(argv[2], asio::ssl::context::pem);
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                             static_cast<unsigned short>(std::atoi(argv[3]))));
    std::printf("listening on port %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    asio::co_spawn(io, accept_loop(acceptor, context), asio::detached);
    io.run();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "asio_tls_echo: %s\n", error.what());
    return 1;
  }
  return 0;
}
