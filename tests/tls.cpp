// TLS over loopback between ringloop's own client and server: verification and its failures
// (wrong name, expired, unknown CA, client certificate missing), bad peers (plain text,
// garbage, silence, a reset mid-record), a 16 MiB write to a slow reader, close_notify both
// ways, STARTTLS and unwrap, ALPN, SNI and session resumption. Certificates: tests/tls_certs.hpp.
#include <catch2/catch.hpp>

#include <openssl/x509_vfy.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdlib>
#include <span>

#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"
#include "tests/tls_certs.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Socket;
using ringloop::Stream;
using ringloop::TlsContext;
using ringloop::TlsStream;

namespace {

TlsContext server_context(const test_tls::KeyPair& pair = test_tls::certificates().server) {
  TlsContext context = TlsContext::server();
  context.load_cert_chain_pem(pair.cert_pem, pair.key_pem);
  return context;
}

// A client that trusts the test CA only (the system store is loaded too, harmlessly).
TlsContext client_context() {
  TlsContext context = TlsContext::client();
  context.load_verify_pem(test_tls::certificates().ca.cert_pem);
  return context;
}

// A connected pair of plain streams over loopback: {client, server}.
Coro<std::pair<Stream, Stream>> tcp_pair() {
  Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
  Stream client = co_await ringloop::open_connection("127.0.0.1", ringloop::local_port(listener));
  Stream server(co_await listener.accept());
  co_return std::pair<Stream, Stream>(std::move(client), std::move(server));
}

// The client's handshake result (or its error) and the server's, run side by side.
struct Handshakes {
  std::optional<TlsStream> client;
  std::optional<TlsStream> server;
  std::string client_error;
  std::string server_error;
};

Coro<> accept_into(Stream stream, TlsContext context, Handshakes& out) {
  try {
    out.server.emplace(co_await ringloop::tls_accept(std::move(stream), context));
  } catch (const std::exception& error) {
    out.server_error = error.what();
  }
}

Coro<Handshakes> handshake_pair(TlsContext client, TlsContext server, std::string name) {
  auto [client_stream, server_stream] = co_await tcp_pair();
  Handshakes out;
  auto server_task =
      ringloop::create_task(accept_into(std::move(server_stream), std::move(server), out));
  try {
    out.client.emplace(
        co_await ringloop::tls_connect(std::move(client_stream), std::move(client), name));
  } catch (const std::exception& error) {
    out.client_error = error.what();
  }
  co_await server_task;
  co_return out;
}

}  // namespace

TEST_CASE("a TLS client and server echo over loopback with the server's certificate verified",
          "[tls]") {
  ringloop::run([]() -> Coro<> {
    Handshakes h = co_await handshake_pair(client_context(), server_context(), "localhost");
    REQUIRE(h.client_error.empty());
    REQUIRE(h.server_error.empty());
    TlsStream& client = *h.client;
    TlsStream& server = *h.server;
    CHECK(client.version() == "TLSv1.3");
    CHECK(client.peer_certificate_subject() == "/CN=localhost");
    CHECK(server.server_name() == "localhost");
    CHECK(server.peer_certificate_subject().empty());
    CHECK(client.kernel_tls_send() == ringloop::kernel_tls_available());
    co_await client.write("hello over TLS\n");
    std::string line = co_await server.read_until("\n");
    CHECK(line == "hello over TLS\n");
    co_await server.write(line);
    std::string echoed = co_await client.read_exactly(line.size());
    CHECK(echoed == line);
    // close_notify from the client: the server reads a clean end of stream, then answers.
    co_await client.write_eof();
    std::string end = co_await server.read();
    CHECK(end.empty());
    co_await server.write("bye");
    co_await server.close();
    std::string last = co_await client.read_exactly(3);
    CHECK(last == "bye");
    std::string client_end = co_await client.read();
    CHECK(client_end.empty());
  }());
}

TEST_CASE("TlsStream::read_into decrypts into the caller's buffer, after what is buffered too",
          "[tls]") {
  // With kTLS receiving (the 6.1 guest) the records come through the stream's buffer instead.
  ringloop::run([]() -> Coro<> {
    Handshakes h = co_await handshake_pair(client_context(), server_context(), "localhost");
    REQUIRE(h.server);
    std::string message(40000, '\0');
    for (std::size_t i = 0; i < message.size(); ++i) message[i] = static_cast<char>(i * 13 + 1);
    co_await h.client->write(message);
    co_await h.client->write_eof();
    TlsStream& server = *h.server;
    std::string got = co_await server.read_exactly(10);  // leaves the record's rest buffered
    std::array<std::byte, 1000> buffer{};
    std::size_t from_empty = co_await server.read_into(std::span<std::byte>(buffer.data(), 0));
    CHECK(from_empty == 0);
    for (;;) {
      std::size_t n = co_await server.read_into(buffer);
      if (n == 0) break;
      REQUIRE(n <= buffer.size());
      got.append(reinterpret_cast<const char*>(buffer.data()), n);
    }
    CHECK(got.size() == message.size());
    CHECK(got == message);
    std::size_t after_end = co_await server.read_into(buffer);
    CHECK(after_end == 0);  // the end stays the end
  }());
}

TEST_CASE("TLS verifies by IP address, and certificates load from PEM files", "[tls]") {
  const auto& certs = test_tls::certificates();
  ringloop::run([&certs]() -> Coro<> {
    TlsContext server = TlsContext::server();
    server.load_cert_chain(certs.dir + "/server.pem", certs.dir + "/server.key");
    TlsContext client = TlsContext::client();
    client.load_verify_locations(certs.dir + "/ca.pem");
    Handshakes h = co_await handshake_pair(client, server, "127.0.0.1");
    CHECK(h.client_error.empty());
    CHECK(h.server_error.empty());
  }());
  CHECK_THROWS_WITH(TlsContext::server().load_cert_chain("/nonexistent.pem"),
                    Catch::Contains("/nonexistent.pem"));
  CHECK_THROWS_WITH(
      TlsContext::server().load_cert_chain_pem(certs.server.cert_pem, certs.client.key_pem),
      Catch::Contains("does not match"));
}

TEST_CASE("a TLS client refuses a certificate for another name, an expired one, an unknown CA",
          "[tls]") {
  struct Case {
    const test_tls::KeyPair* pair;
    long code;
    const char* text;
  };
  const auto& certs = test_tls::certificates();
  const Case cases[] = {
      {&certs.other, X509_V_ERR_HOSTNAME_MISMATCH, "hostname mismatch"},
      {&certs.expired, X509_V_ERR_CERT_HAS_EXPIRED, "certificate has expired"},
      {&certs.unknown, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
       "unable to get local issuer certificate"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    ringloop::run([](Case one) -> Coro<> {
      auto [client_stream, server_stream] = co_await tcp_pair();
      Handshakes out;
      auto server_task = ringloop::create_task(
          accept_into(std::move(server_stream), server_context(*one.pair), out));
      long code = 0;
      std::string message;
      try {
        TlsStream tls =
            co_await ringloop::tls_connect(std::move(client_stream), client_context(), "localhost");
      } catch (const ringloop::TlsCertificateError& error) {
        code = error.verify_code;
        message = error.what();
      }
      CHECK(code == one.code);
      CHECK_THAT(message,
                 Catch::Contains(one.text) && Catch::Contains("certificate verify failed"));
      co_await server_task;
      // The client's alert reached the server, whose handshake failed naming it.
      CHECK_THAT(out.server_error, Catch::Contains("alert"));
    }(c));
  }
  // Verification off is explicit, and then the same certificate is accepted.
  ringloop::run([]() -> Coro<> {
    TlsContext lax = TlsContext::client();
    CHECK_THROWS_AS(lax.set_verify_mode(ringloop::VerifyMode::none), std::invalid_argument);
    lax.set_check_hostname(false);
    lax.set_verify_mode(ringloop::VerifyMode::none);
    Handshakes h =
        co_await handshake_pair(lax, server_context(test_tls::certificates().unknown), "localhost");
    CHECK(h.client_error.empty());
  }());
}

TEST_CASE("a TLS server that requires a client certificate refuses a client without one", "[tls]") {
  ringloop::run([]() -> Coro<> {
    TlsContext server = server_context();
    server.load_verify_pem(test_tls::certificates().ca.cert_pem);
    server.set_verify_mode(ringloop::VerifyMode::required);
    Handshakes h = co_await handshake_pair(client_context(), server, "localhost");
    CHECK_THAT(h.server_error, Catch::Contains("peer did not return a certificate"));
    // TLS 1.3: the client's handshake ends before the server has looked; its first read gets
    // the server's alert.
    if (h.client) {
      std::string error;
      try {
        std::string data = co_await h.client->read();
      } catch (const ringloop::TlsError& e) {
        error = e.what();
      }
      CHECK_THAT(error, Catch::Contains("certificate required"));
    }
    // With the client's certificate, the server sees who it is.
    TlsContext client = client_context();
    const auto& certs = test_tls::certificates();
    client.load_cert_chain_pem(certs.client.cert_pem, certs.client.key_pem);
    Handshakes ok = co_await handshake_pair(client, server, "localhost");
    REQUIRE(ok.server_error.empty());
    CHECK(ok.server->peer_certificate_subject() == "/CN=ringloop-test-client");
  }());
}

namespace {

// A TLS echo server on serve(): each connection's handshake (a 2 s timeout: long enough for a real
// handshake under QEMU's emulation), then lines echoed. What a handler throws is reported through
// the loop's exception handler.
struct EchoServer {
  Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
  TlsContext context = server_context();
  std::uint16_t port() const { return ringloop::local_port(listener); }
};

Coro<> tls_echo(Stream stream, TlsContext context) {
  ringloop::TlsOptions options;
  options.handshake_timeout = 2s;
  TlsStream tls = co_await ringloop::tls_accept(std::move(stream), context, options);
  for (;;) {
    std::string data = co_await tls.read();
    if (data.empty()) break;
    co_await tls.write(data);
  }
  co_await tls.close();
}

// Sends bytes on a raw TCP connection, then reads until the server closes it; returns what
// came back and whether the server closed (recv 0) rather than reset.
Coro<std::pair<std::string, bool>> raw_exchange(std::uint16_t port, std::string bytes) {
  Stream raw = co_await ringloop::open_connection("127.0.0.1", port);
  if (!bytes.empty()) co_await raw.write(bytes);
  std::string got;
  bool closed = false;
  try {
    for (;;) {
      std::string chunk = co_await raw.read();
      if (chunk.empty()) break;
      got += chunk;
    }
    closed = true;
  } catch (const std::system_error&) {  // a reset counts as closed too
    closed = true;
  }
  co_return std::pair<std::string, bool>(got, closed);
}

}  // namespace

TEST_CASE(
    "a TLS server reports and closes a plain-text client, garbage and a silent client, "
    "and serves the others",
    "[tls]") {
  std::vector<std::string> reports;
  ringloop::run([&reports]() -> Coro<> {
    ringloop::Loop::current()->set_exception_handler(
        [&reports](ringloop::Loop&, const ringloop::ExceptionContext& context) {
          try {
            std::rethrow_exception(context.exception);
          } catch (const std::exception& error) {
            reports.push_back(error.what());
          }
        });
    EchoServer echo;
    TlsContext context = echo.context;
    auto server = ringloop::create_task(ringloop::serve(
        echo.listener, [context](Stream s) { return tls_echo(std::move(s), context); }));
    auto start = std::chrono::steady_clock::now();
    // Plain text: an HTTP request. The server answers with an alert and closes.
    auto plain = co_await raw_exchange(echo.port(), "GET / HTTP/1.0\r\n\r\n");
    CHECK(plain.second);
    // Garbage: bytes that are no TLS record.
    std::string garbage(300, '\0');
    for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 7 + 3);
    auto junk = co_await raw_exchange(echo.port(), garbage);
    CHECK(junk.second);
    // A client that stops mid-handshake: half a ClientHello's record header, then nothing. The
    // handshake timeout (2 s) closes it.
    auto silent_start = std::chrono::steady_clock::now();
    auto silent = co_await raw_exchange(echo.port(), std::string("\x16\x03\x01", 3));
    double silent_s = test_support::seconds_since(silent_start);
    CHECK(silent.second);
    CHECK(silent.first.empty());
    CHECK(silent_s >= 1.99);
    CHECK(silent_s < 5);
    // A real client is served all along.
    // open_connection with a TlsContext: the host name is the name verified.
    TlsStream tls = co_await ringloop::open_connection("localhost", echo.port(), client_context());
    CHECK(tls.server_name() == "localhost");
    co_await tls.write("still serving");
    std::string echoed = co_await tls.read_exactly(13);
    CHECK(echoed == "still serving");
    co_await tls.close();
    server.cancel();
    try {
      co_await server;
    } catch (const ringloop::CancelledError&) {
    }
    CHECK(test_support::seconds_since(start) < 10);
  }());
  REQUIRE(reports.size() == 3);
  CHECK_THAT(reports[0],
             Catch::Contains("TLS handshake failed") &&
                 (Catch::Contains("http request") || Catch::Contains("wrong version number")));
  CHECK_THAT(reports[1], Catch::Contains("TLS handshake failed"));
  CHECK_THAT(reports[2], Catch::Contains("TLS handshake is taking longer than 2000 ms"));
}

TEST_CASE("a TLS peer that resets mid-record is an error, not a hang", "[tls]") {
  ringloop::run([]() -> Coro<> {
    TlsContext client = client_context();
    client.set_kernel_tls(false);  // the raw bytes below must not be encrypted by the kernel
    Handshakes h = co_await handshake_pair(client, server_context(), "localhost");
    REQUIRE(h.client);
    REQUIRE(h.server);
    // The client sends a record header announcing 1,000 bytes and 10 of them, then resets.
    Socket& raw = h.client->stream().socket();
    std::string partial("\x17\x03\x03\x03\xe8", 5);
    partial += std::string(10, 'x');
    std::size_t sent = co_await raw.send(partial.data(), partial.size());
    CHECK(sent == partial.size());
    linger reset{1, 0};
    ::setsockopt(raw.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    h.client.reset();  // closes the socket: with linger 0, an RST
    std::string error;
    try {
      std::string data = co_await ringloop::wait_for(h.server->read(), 5s);
    } catch (const std::exception& e) {
      error = e.what();
    }
    CHECK_THAT(error, Catch::Contains("reset") || Catch::Contains("without close_notify"));
  }());
}

TEST_CASE("an EOF without close_notify is a TlsError unless the context ignores it", "[tls]") {
  for (bool ignore : {false, true}) {
    INFO(ignore);
    ringloop::run([](bool ignore_eof) -> Coro<> {
      TlsContext server = server_context();
      server.set_ignore_unexpected_eof(ignore_eof);
      Handshakes h = co_await handshake_pair(client_context(), server, "localhost");
      REQUIRE(h.server);
      // The client reads first (the server's session tickets come with it): a socket closed
      // with unread data sends a reset, not the FIN this test is about.
      co_await h.server->write("x");
      std::string x = co_await h.client->read();
      CHECK(x == "x");
      co_await h.client->stream().close();  // TCP FIN, no close_notify
      std::string error;
      std::string data;
      try {
        data = co_await h.server->read();
      } catch (const ringloop::TlsError& e) {
        error = e.what();
      }
      if (ignore_eof) {
        CHECK(error.empty());
        CHECK(data.empty());
      } else {
        CHECK_THAT(error, Catch::Contains("without close_notify"));
      }
    }(ignore));
  }
}

TEST_CASE("a 16 MiB TLS write reaches a slow reader whole and in order", "[tls]") {
  ringloop::run([]() -> Coro<> {
    Handshakes h = co_await handshake_pair(client_context(), server_context(), "localhost");
    REQUIRE(h.server);
    constexpr std::size_t kBytes = 16u << 20;
    std::string big(kBytes, '\0');
    for (std::size_t i = 0; i < kBytes; ++i) big[i] = static_cast<char>((i * 131) >> 8);
    auto writer = ringloop::create_task([](TlsStream& tls, const std::string& data) -> Coro<> {
      co_await tls.write(data);
      co_await tls.write_eof();
    }(*h.server, big));
    std::string got;
    int pauses = 0;
    for (;;) {
      std::string chunk = co_await h.client->read(64 * 1024);
      if (chunk.empty()) break;
      got += chunk;
      if (++pauses % 16 == 0) co_await ringloop::sleep(1ms);  // a slow reader
    }
    co_await writer;
    CHECK(got.size() == kBytes);
    CHECK(got == big);
  }());
}

// Forwards from one plain stream to the other in pieces of `piece` bytes, each sent on its own
// loop iteration, until the end of stream (passed on with write_eof).
Coro<> trickle(Stream& from, Stream& to, std::size_t piece) {
  for (;;) {
    std::string bytes = co_await from.read(64 * 1024);
    if (bytes.empty()) break;
    for (std::size_t at = 0; at < bytes.size(); at += piece) {
      co_await to.write(std::string_view(bytes).substr(at, piece));
      co_await ringloop::sleep(0ms);
    }
  }
  co_await to.write_eof();
}

TEST_CASE("TLS records that arrive a few bytes at a time are put together whole", "[tls]") {
  // The receive buffer under OpenSSL is refilled only when OpenSSL has read all of it; split
  // records (a 5-byte header in two receives, a body in hundreds) must come out whole, in
  // the handshake and after it. User-space records on both sides, on every kernel.
  ringloop::run([]() -> Coro<> {
    auto [client_stream, proxy_near] = co_await tcp_pair();
    auto [proxy_far, server_stream] = co_await tcp_pair();
    auto up = ringloop::create_task(trickle(proxy_near, proxy_far, 3));
    auto down = ringloop::create_task(trickle(proxy_far, proxy_near, 61));
    TlsContext client = client_context();
    TlsContext server = server_context();
    client.set_kernel_tls(false);
    server.set_kernel_tls(false);
    auto accepted = ringloop::create_task(ringloop::tls_accept(std::move(server_stream), server));
    TlsStream tls_client =
        co_await ringloop::tls_connect(std::move(client_stream), client, "localhost");
    TlsStream tls_server = co_await std::move(accepted);
    std::string message(40 * 1024, '\0');
    for (std::size_t i = 0; i < message.size(); ++i) message[i] = static_cast<char>(i * 7);
    co_await tls_client.write(message);
    std::string got = co_await tls_server.read_exactly(message.size());
    CHECK(got == message);
    co_await tls_server.write(got);
    std::string echoed = co_await tls_client.read_exactly(message.size());
    CHECK(echoed == message);
    co_await tls_client.close();
    std::string end = co_await tls_server.read();
    CHECK(end.empty());
    co_await tls_server.close();
    co_await up;
    co_await down;
  }());
}

TEST_CASE("start_tls upgrades a plain connection and unwrap returns it to plain text", "[tls]") {
  ringloop::run([]() -> Coro<> {
    auto [client_stream, server_stream] = co_await tcp_pair();
    // Unwrapping needs the records in user space: Linux cannot take kTLS off a socket.
    TlsContext server_tls = server_context();
    server_tls.set_kernel_tls(false);
    TlsContext client_tls = client_context();
    client_tls.set_kernel_tls(false);
    auto server = ringloop::create_task([](Stream plain, TlsContext context) -> Coro<std::string> {
      std::string command = co_await plain.read_until("\n");
      CHECK(command == "STARTTLS\n");
      co_await plain.write("GO\n");
      TlsStream tls = co_await ringloop::start_tls(std::move(plain), context);
      std::string secret = co_await tls.read_until("\n");
      Stream back = co_await tls.unwrap();
      std::string after = co_await back.read_until("\n");
      co_return secret + after;
    }(std::move(server_stream), server_tls));
    co_await client_stream.write("STARTTLS\n");
    std::string go = co_await client_stream.read_until("\n");
    CHECK(go == "GO\n");
    TlsStream tls = co_await ringloop::start_tls(std::move(client_stream), client_tls, "localhost");
    co_await tls.write("secret\n");
    Stream plain = co_await tls.unwrap();
    co_await plain.write("plain again\n");
    std::string seen = co_await server;
    CHECK(seen == "secret\nplain again\n");
  }());
}

TEST_CASE("TLS: ALPN picks the server's first common protocol, SNI chooses the certificate",
          "[tls]") {
  ringloop::run([]() -> Coro<> {
    TlsContext other = server_context(test_tls::certificates().other);
    TlsContext server = server_context();
    server.set_alpn_protocols({"h2", "http/1.1"});
    std::vector<std::string> asked;
    server.set_servername_callback(
        [&asked, other](std::string_view name) -> std::optional<TlsContext> {
          asked.emplace_back(name);
          if (name == "other.example") return other;
          return std::nullopt;
        });
    TlsContext client = client_context();
    client.set_alpn_protocols({"http/1.1", "h2"});
    Handshakes local = co_await handshake_pair(client, server, "localhost");
    REQUIRE(local.client);
    CHECK(local.client->selected_alpn_protocol() == "h2");
    CHECK(local.client->peer_certificate_subject() == "/CN=localhost");
    Handshakes named = co_await handshake_pair(client, server, "other.example");
    REQUIRE(named.client);
    CHECK(named.client->peer_certificate_subject() == "/CN=other.example");
    CHECK(asked == std::vector<std::string>{"localhost", "other.example"});
  }());
}

TEST_CASE("a TLS client resumes its session with the server's ticket", "[tls]") {
  ringloop::run([]() -> Coro<> {
    TlsContext server = server_context();
    TlsContext client = client_context();
    // A kTLS-receiving client drops the tickets (OpenSSL cannot take them from the kernel).
    client.set_kernel_tls(false);
    Handshakes first = co_await handshake_pair(client, server, "localhost");
    REQUIRE(first.client);
    CHECK_FALSE(first.client->session_reused());
    // TLS 1.3 tickets come after the handshake: the client has them once it has read.
    co_await first.server->write("x");
    std::string x = co_await first.client->read();
    ringloop::TlsSession session = first.client->session();
    REQUIRE(session);
    auto [client_stream, server_stream] = co_await tcp_pair();
    Handshakes second;
    auto server_task = ringloop::create_task(accept_into(std::move(server_stream), server, second));
    ringloop::TlsOptions options;
    options.session = session;
    TlsStream resumed =
        co_await ringloop::tls_connect(std::move(client_stream), client, "localhost", options);
    co_await server_task;
    CHECK(resumed.session_reused());
    REQUIRE(second.server);
    CHECK(second.server->session_reused());
  }());
}

TEST_CASE(
    "with kernel TLS, records go through the kernel for each cipher, in both directions, "
    "and interoperate with user-space records",
    "[tls][ktls]") {
  if (!ringloop::kernel_tls_available()) {
    WARN(
        "this kernel has no kTLS (no tls module): only the user-space path is tested here; "
        "RINGLOOP_CONFIGS=kernel-6.1 scripts/test \"[tls]\" runs this case");
    return;
  }
  struct Case {
    const char* suite;
    bool client_kernel;
    bool server_kernel;
  };
  const Case cases[] = {
      {"TLS_AES_128_GCM_SHA256", true, true},       {"TLS_AES_256_GCM_SHA384", true, true},
      {"TLS_CHACHA20_POLY1305_SHA256", true, true}, {"TLS_AES_128_GCM_SHA256", false, true},
      {"TLS_AES_256_GCM_SHA384", true, false},
  };
  for (const Case& c : cases) {
    INFO(c.suite << " client kTLS " << c.client_kernel << " server kTLS " << c.server_kernel);
    ringloop::run([](Case one) -> Coro<> {
      TlsContext server = server_context();
      server.set_ciphersuites(one.suite);
      server.set_kernel_tls(one.server_kernel);
      TlsContext client = client_context();
      client.set_kernel_tls(one.client_kernel);
      Handshakes h = co_await handshake_pair(client, server, "localhost");
      REQUIRE(h.client);
      REQUIRE(h.server);
      CHECK(h.client->cipher() == one.suite);
      CHECK(h.client->kernel_tls_send() == one.client_kernel);
      CHECK(h.client->kernel_tls_receive() == one.client_kernel);
      CHECK(h.server->kernel_tls_send() == one.server_kernel);
      CHECK(h.server->kernel_tls_receive() == one.server_kernel);
      // The server's first records follow its session tickets: its send sequence starts there.
      co_await h.server->write("hello from the server\n");
      std::string line = co_await h.client->read_until("\n");
      CHECK(line == "hello from the server\n");
      std::string big(1 << 20, '\0');
      for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
      auto writer = ringloop::create_task([](TlsStream& tls, const std::string& data) -> Coro<> {
        co_await tls.write(data);
        co_await tls.write_eof();  // close_notify, through a kernel alert record on kTLS
      }(*h.client, big));
      std::string got;
      for (;;) {
        std::string chunk = co_await h.server->read(256 * 1024);
        if (chunk.empty()) break;
        got += chunk;
      }
      co_await writer;
      CHECK(got == big);
      co_await h.server->write("bye");
      co_await h.server->close();
      std::string bye = co_await h.client->read_exactly(3);
      CHECK(bye == "bye");
      std::string end = co_await h.client->read();
      CHECK(end.empty());
    }(c));
  }
}

TEST_CASE("sendfile sends a range of a file through TLS, spliced when the kernel encrypts",
          "[tls][ktls]") {
  ringloop::run([]() -> Coro<> {
    std::string content((3u << 20) + 123, '\0');
    for (std::size_t i = 0; i < content.size(); ++i)
      content[i] = static_cast<char>(i * 13 + i / 4096);
    char path[] = "/tmp/ringloop-sendfile-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    ::unlink(path);
    ringloop::File file(fd);
    Handshakes h = co_await handshake_pair(client_context(), server_context(), "localhost");
    REQUIRE(h.server);
    CHECK(h.server->kernel_tls_send() == ringloop::kernel_tls_available());
    auto sender = ringloop::create_task(
        [](TlsStream& tls, const ringloop::File& f, std::size_t size) -> Coro<std::size_t> {
          std::size_t range = co_await ringloop::sendfile(tls, f, 1000, 2u << 20);
          // The default count: to the end of the file.
          std::size_t rest = co_await ringloop::sendfile(tls, f, size - 5000);
          co_await tls.write_eof();
          co_return range + rest;
        }(*h.server, file, content.size()));
    std::string got;
    for (;;) {
      std::string chunk = co_await h.client->read(256 * 1024);
      if (chunk.empty()) break;
      got += chunk;
    }
    std::size_t sent = co_await sender;
    CHECK(sent == (2u << 20) + 5000);
    CHECK(got.size() == sent);
    CHECK(got == content.substr(1000, 2u << 20) + content.substr(content.size() - 5000));
  }());
}
