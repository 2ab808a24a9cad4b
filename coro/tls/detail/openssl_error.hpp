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

[[noreturn]] inline void throw_openssl_error(const std::string& what) {
  std::string reason = take_openssl_error();
  throw TlsError(what + (reason.empty() ? "" : ": " + reason));
}

// Stores a copy of context in the SSL's connection state (tls_stream.cpp).
void keep_context_alive(SSL* ssl, const TlsContext& context);
// OpenSSL's keylog callback: the TLS 1.3 secrets go to the connection's kernel TLS setup.
void on_keylog(const SSL* ssl, const char* line);

}  // namespace ringloop::detail
