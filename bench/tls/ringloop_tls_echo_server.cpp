// ringloop_tls_echo_server CERT KEY PORT: ringloop's server in the tls_* scenarios
// (bench/tls/tls_peer.sh), written as a user would with the public API: start_server with a
// TlsContext (asyncio's start_server(..., ssl=context)), a handler that reads what the client
// sends and writes it back until close_notify. The peers do the same (node_tls_echo.js,
// python_tls_echo.py, bench/peers/asio/asio_tls_echo.cpp): no idle timeout, the library's
// defaults. PORT 0 takes a free port; the first line on stdout is "listening on port N".
// Records go through OpenSSL in user space unless the kernel has kTLS (this VM's has not; the
// first connection says which path on stderr). Runs until killed.
#include <array>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <ringloop/ringloop.hpp>

namespace {

// Reads into one buffer per connection and writes it back, as the Asio peer does
// (async_read_some into an array): read_into decrypts a record (16 KiB at most) straight into it.
ringloop::Coro<> echo(ringloop::TlsStream tls) {
  std::array<std::byte, ringloop::TlsStream::kReadChunkBytes> buffer;
  for (;;) {
    std::size_t n = co_await tls.read_into(buffer);
    if (n == 0) break;  // close_notify
    co_await tls.write(std::string_view(reinterpret_cast<const char*>(buffer.data()), n));
  }
  co_await tls.close();
}

ringloop::Coro<> serve(ringloop::TlsContext context, std::uint16_t port) {
  bool told = false;
  auto handler = [&told](ringloop::TlsStream tls) {
    if (!told) {
      told = true;
      std::fprintf(stderr, "ringloop_tls_echo_server: %s %s, records in %s\n",
                   tls.version().c_str(), tls.cipher().c_str(),
                   tls.kernel_tls_send() ? "the kernel (kTLS)" : "user space (OpenSSL)");
    }
    return echo(std::move(tls));
  };
  ringloop::Server server = co_await ringloop::start_server(handler, "127.0.0.1", port, context);
  std::printf("listening on port %u\n",
              static_cast<unsigned>(ringloop::local_port(server.sockets().front())));
  std::fflush(stdout);
  co_await server.serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: ringloop_tls_echo_server CERT KEY PORT\n");
    return 2;
  }
  long port = std::strtol(argv[3], nullptr, 10);
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "ringloop_tls_echo_server: port %ld is not 0-65535\n", port);
    return 2;
  }
  try {
    ringloop::TlsContext context = ringloop::TlsContext::server();
    context.load_cert_chain(argv[1], argv[2]);
    ringloop::run(serve(context, static_cast<std::uint16_t>(port)));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "ringloop_tls_echo_server: %s\n", error.what());
    return 1;
  }
  return 0;
}
