// TlsContext: asyncio's ssl.SSLContext, the settings a TLS connection is made with (role,
// certificates, verification, versions, ciphers, ALPN, SNI, session tickets), shared by every
// connection made from it. A client context verifies the peer's chain against the system CA
// store and its host name by default; turning that off is an explicit call. Copies share one
// OpenSSL SSL_CTX: change the settings before connections use it, not while they do.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

// OpenSSL's own type names (SSL_CTX, SSL, SSL_SESSION are typedefs of these): the public
// headers do not include OpenSSL's.
struct ssl_ctx_st;
struct ssl_st;
struct ssl_session_st;

namespace ringloop {

// A TLS failure: a handshake refused by either side, a record that does not decrypt, a peer
// that ended the stream without close_notify (ssl.SSLError). The message has OpenSSL's reason.
class TlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The peer's certificate did not verify (ssl.SSLCertVerificationError): verify_code is
// OpenSSL's X509_V_ERR_* value, verify_message its text ("certificate has expired",
// "unable to get local issuer certificate", "hostname mismatch").
class TlsCertificateError : public TlsError {
 public:
  TlsCertificateError(const std::string& message, long code, std::string text)
      : TlsError(message), verify_code(code), verify_message(std::move(text)) {}
  long verify_code;
  std::string verify_message;
};

enum class TlsRole : std::uint8_t { client, server };  // ssl.PROTOCOL_TLS_CLIENT / _SERVER
enum class TlsVersion : std::uint8_t { tls1_2, tls1_3 };
// ssl.CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED: whether the peer must present a certificate
// that verifies. A server asks clients for one only when this is optional or required.
enum class VerifyMode : std::uint8_t { none, optional, required };

class TlsContext;

// A client's TLS session, to resume with (TlsOptions::session): fewer round trips and no
// certificate exchange. Empty until the server has sent a ticket (in TLS 1.3, after the
// handshake: the client has it once it has read from the stream).
class TlsSession {
 public:
  TlsSession() = default;
  explicit TlsSession(ssl_session_st* owned) noexcept;  // takes over one reference
  explicit operator bool() const noexcept { return session_ != nullptr; }
  ssl_session_st* native_handle() const noexcept { return session_.get(); }

 private:
  std::shared_ptr<ssl_session_st> session_;
};

class TlsContext {
 public:
  // Chooses the context for a server connection from the name the client asked for (SNI):
  // nullopt keeps this one. What it throws refuses the handshake (an unrecognized_name alert).
  using ServernameCallback = std::function<std::optional<TlsContext>(std::string_view)>;

  // A client context: CERT_REQUIRED, host names checked, the system's CA store loaded
  // (ssl.create_default_context()); or a server context: no client certificate asked for.
  // TLS 1.2 is the minimum version by default.
  explicit TlsContext(TlsRole role);
  static TlsContext client() { return TlsContext(TlsRole::client); }
  static TlsContext server() { return TlsContext(TlsRole::server); }

  TlsRole role() const noexcept;

  // This side's certificate chain (leaf first) and private key, from PEM files (key empty: in
  // the certificate file) or PEM text in memory. Throws TlsError naming the file and reason,
  // and when the key does not match the certificate.
  void load_cert_chain(const std::string& cert_file, const std::string& key_file = "");
  void load_cert_chain_pem(std::string_view cert_chain_pem, std::string_view key_pem);
  // CA certificates to verify the peer with, from a PEM file or PEM text (added to those
  // loaded before); load_default_certs: the system store (done by client()).
  void load_verify_locations(const std::string& ca_file);
  void load_verify_pem(std::string_view ca_pem);
  void load_default_certs();

  // Python's rule: check_hostname needs verification, so verify_mode none is refused while
  // check_hostname is on (turn it off first), and turning it on makes verify_mode required.
  void set_verify_mode(VerifyMode mode);
  VerifyMode verify_mode() const noexcept;
  void set_check_hostname(bool check);
  bool check_hostname() const noexcept;

  void set_minimum_version(TlsVersion version);
  void set_maximum_version(TlsVersion version);
  // OpenSSL cipher lists: set_ciphers for TLS 1.2 ("ECDHE+AESGCM"), set_ciphersuites for
  // TLS 1.3 ("TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"). TlsError when none match.
  void set_ciphers(const std::string& ciphers);
  void set_ciphersuites(const std::string& ciphersuites);
  // ALPN: a client offers these, in order of preference; a server picks the first of its own
  // list the client offers (none in common: the connection goes on without ALPN, as Python's).
  void set_alpn_protocols(const std::vector<std::string>& protocols);
  // Server: the SNI callback (ssl.SSLContext.sni_callback).
  void set_servername_callback(ServernameCallback callback);
  // Server: how many TLS 1.3 session tickets each handshake sends (num_tickets; 2 by
  // default); 0, or set_session_tickets(false), turns resumption by ticket off.
  void set_num_tickets(std::size_t count);
  void set_session_tickets(bool enabled);
  // An EOF without close_notify is a TlsError by default (it may hide a truncation); true
  // makes it a plain end of stream (OpenSSL's SSL_OP_IGNORE_UNEXPECTED_EOF).
  void set_ignore_unexpected_eof(bool ignore);
  bool ignore_unexpected_eof() const noexcept;
  // Whether connections try kernel TLS for their records after the handshake (on by default;
  // they fall back to user-space records where the kernel cannot).
  void set_kernel_tls(bool enabled);
  bool kernel_tls() const noexcept;

  ssl_ctx_st* native_handle() const noexcept;

  struct State;  // the SSL_CTX and what its callbacks need (context.cpp)

 private:
  std::shared_ptr<State> state_;
};

// The options of a TLS handshake (asyncio's ssl_handshake_timeout, ssl_shutdown_timeout).
struct TlsOptions {
  // The handshake must finish within this, or TimeoutError and the connection is closed.
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(60);
  // unwrap() waits this long for the peer's close_notify.
  std::chrono::milliseconds shutdown_timeout = std::chrono::seconds(30);
  // Client: a session to resume.
  TlsSession session;
};

}  // namespace ringloop
