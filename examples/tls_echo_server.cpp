// tls_echo_server CERT KEY [port [host]]: the echo server with TLS (issue #17): each connection's
// handshake (10 s at most), then what the client sends comes back, until it sends close_notify
// or stays silent for 30 s. CERT is the PEM chain (leaf first), KEY its private key. Records go
// through the kernel (kTLS) where it can carry them; the first connection says which path it
// took. SIGINT or SIGTERM ends it as echo_server does. Listens on 127.0.0.1:7443 by default.
//
//   python3 -c "import asyncio, ssl; ..."  # asyncio.open_connection(..., ssl=context)
//   openssl s_client -connect 127.0.0.1:7443 -CAfile ca.pem
#include <signal.h>
#include <sys/signalfd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Stream;
using ringloop::TlsContext;
using ringloop::TlsStream;

namespace {

Coro<> echo(Stream stream, TlsContext context, bool& told_path) {
  ringloop::TlsOptions options;
  options.handshake_timeout = 10s;
  TlsStream tls = co_await ringloop::tls_accept(std::move(stream), context, options);
  if (!told_path) {
    told_path = true;
    std::printf("tls_echo_server: %s %s, records in %s\n", tls.version().c_str(),
                tls.cipher().c_str(),
                tls.kernel_tls_send()
                    ? (tls.kernel_tls_receive() ? "the kernel (kTLS)" : "the kernel to send (kTLS)")
                    : "user space (OpenSSL)");
    std::fflush(stdout);
  }
  for (;;) {
    std::string data = co_await ringloop::wait_for(tls.read(), 30s);
    if (data.empty()) break;  // close_notify
    co_await tls.write(data);
  }
  co_await tls.close();
}

Coro<> serve_until_signal(int signal_fd, TlsContext context, std::string host, std::uint16_t port) {
  ringloop::Socket listener = ringloop::listen_tcp(host, port);
  bool told_path = false;
  // A failed handshake (a plain-text client, a bad certificate) ends that connection only;
  // serve() reports it through the loop's exception handler, on stderr.
  auto server = ringloop::create_task(ringloop::serve(listener, [context, &told_path](Stream s) {
    return echo(std::move(s), context, told_path);
  }));
  std::printf("tls_echo_server: listening on %s port %u (kernel TLS %s)\n", host.c_str(),
              static_cast<unsigned>(ringloop::local_port(listener)),
              ringloop::kernel_tls_available() ? "available" : "not available here");
  std::fflush(stdout);
  signalfd_siginfo signal{};
  co_await ringloop::io::read(signal_fd, &signal, sizeof(signal));
  std::printf("tls_echo_server: %s: stopping\n", strsignal(static_cast<int>(signal.ssi_signo)));
  server.cancel();
  try {
    co_await server;
  } catch (const CancelledError&) {
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: tls_echo_server CERT KEY [port (7443)] [host (127.0.0.1)]\n");
    return 2;
  }
  long port = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 7443;
  std::string host = argc > 4 ? argv[4] : "127.0.0.1";
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "tls_echo_server: port %ld is not 0-65535\n", port);
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::perror("tls_echo_server: signalfd");
    return 1;
  }
  try {
    TlsContext context = TlsContext::server();
    context.load_cert_chain(argv[1], argv[2]);
    ringloop::run(serve_until_signal(signal_fd, context, host, static_cast<std::uint16_t>(port)));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "tls_echo_server: %s\n", error.what());
    return 1;
  }
  return 0;
}
