// What the TLS sources share and users do not see (not installed: it includes OpenSSL's
// headers): OpenSSL's error queue turned into TlsError messages, and the per-connection link
// that keeps a context chosen by SNI alive.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string>

#include <ringloop/coro/tls/context.hpp>

namespace ringloop::detail {

// The oldest error in this thread's OpenSSL queue ("error:0A000086:SSL routines::certificate
// verify failed"), or "" when it is empty; the queue is cleared.
inline std::string take_openssl_error() {
  unsigned long code = ERR_get_error();
  std::string text;
  if (code != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    const char* reason = ERR_reason_error_string(code);
    text = reason != nullptr ? std::string(reason) + " (" + buffer + ")" : std::string(buffer);
  }
  ERR_clear_error();
  return text;
}

// Empties this thread's OpenSSL error queue before an SSL_* call, as SSL_get_error needs (it
// reads the queue to tell a library error from the others). ERR_clear_error walks every slot of
// the queue whatever it holds (3% of a 64-byte TLS echo server's CPU); the queue is almost
// always empty, which ERR_peek_error sees without the walk, and which is all SSL_get_error asks.
inline void clear_openssl_errors() noexcept {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

[[noreturn]] inline void throw_openssl_error(const std::string& what) {
  std::string reason = take_openssl_error();
  throw TlsError(what + (reason.empty() ? "" : ": " + reason));
}

// Stores a copy of context in the SSL's connection state (tls_stream.cpp).
void keep_context_alive(SSL* ssl, const TlsContext& context);
// OpenSSL's keylog callback: the TLS 1.3 secrets go to the connection's kernel TLS setup.
void on_keylog(const SSL* ssl, const char* line);

}  // namespace ringloop::detail
