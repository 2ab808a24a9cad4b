// Kernel TLS (kTLS) for a TlsStream's records once the handshake is done (not installed: the
// TLS sources' own). TLS 1.3 only, with AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305: the
// application traffic secrets come from OpenSSL's keylog callback (OpenSSL 3.0 exports no
// other way to them without a socket BIO), the keys and IVs are derived from them (RFC 8446 7.3)
// and handed to the socket with setsockopt(SOL_TLS, TLS_TX / TLS_RX). From then on the stream's
// plain send and recv SQEs carry the records and the kernel encrypts and decrypts them.
//
// The record sequence numbers must match what OpenSSL already used: the client has sent and
// received no application-key record when its handshake ends; the server has sent its session
// tickets (the records of its last handshake step) and received none. Ciphertext OpenSSL holds
// unread keeps receiving in user space (the kernel would not know those records). Control
// records (an alert, a NewSessionTicket, a KeyUpdate) reach a kTLS receiver through recvmsg's
// TLS_GET_RECORD_TYPE cmsg: close_notify ends the stream, tickets are dropped (a kTLS-receive
// client cannot resume), a KeyUpdate is an error (Linux 6.1 cannot change receive keys).
#pragma once

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/tls/context.hpp>

namespace ringloop::detail {

class KernelTls {
 public:
  // OpenSSL's keylog line for this connection: the TLS 1.3 application secrets are kept.
  void on_keylog(const char* line);
  // Counts the records OpenSSL wrote in this handshake step (records, not yet sent): the
  // server's last step's are its tickets, sent with the application key.
  void count_handshake_output(std::string_view records) noexcept;
  // After the handshake: hands the keys to the kernel where it can. receive_too is false when
  // ciphertext is waiting in OpenSSL's buffer. Never throws: where the kernel refuses, the
  // records stay in user space.
  void try_enable(SSL* ssl, Stream& stream, const TlsContext& context, bool receive_too) noexcept;

  bool send_enabled() const noexcept { return send_; }
  bool receive_enabled() const noexcept { return receive_; }

  // Appends up to max_bytes of decrypted application data to buffer; false at close_notify
  // (or at the stream's end, when the context ignores an unexpected EOF).
  Coro<bool> receive(Stream& stream, std::string& buffer, std::size_t max_bytes,
                     bool ignore_unexpected_eof);
  // An alert record (close_notify) through sendmsg with a TLS_SET_RECORD_TYPE cmsg.
  Coro<> send_close_notify(Stream& stream);

 private:
  std::vector<unsigned char> client_secret_;
  std::vector<unsigned char> server_secret_;
  std::uint64_t last_step_records_ = 0;
  bool send_ = false;
  bool receive_ = false;
};

// Whether this kernel attaches the TLS ULP to a TCP socket (the tls module is there, or loads).
bool kernel_tls_available() noexcept;

}  // namespace ringloop::detail
