// TlsStream: a Stream with TLS on it (asyncio's SSL transport under a StreamReader/Writer pair):
// tls_connect / tls_accept / start_tls run the handshake over the stream, then read and write
// carry plaintext. OpenSSL works on in-memory buffers only; the ciphertext goes through the
// stream's own send and recv SQEs: no socket BIO, no thread, no blocking call. After the handshake
// the records go through the kernel (kTLS) where it can (kernel_tls_send/receive say so), else
// through OpenSSL in user space; the API is the same either way.
//
// One reader and one writer at a time, as for Stream; the TlsStream must outlive them.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/tls/context.hpp>

namespace ringloop {

namespace detail {
class TlsConnection;
}

class TlsStream {
 public:
  static constexpr std::size_t kReadChunkBytes = 16 * 1024;  // a TLS record's plaintext
  static constexpr std::size_t kDefaultLineLimit = Stream::kDefaultLineLimit;

  TlsStream() noexcept;
  explicit TlsStream(std::unique_ptr<detail::TlsConnection> connection) noexcept;
  TlsStream(TlsStream&&) noexcept;
  TlsStream& operator=(TlsStream&&) noexcept;
  ~TlsStream();

  // As Stream's: up to max_bytes (empty at end of stream: the peer's close_notify); exactly
  // n (IncompleteReadError when the stream ends first); up to and including a separator. An
  // EOF without close_notify is a TlsError unless the context ignores unexpected EOFs.
  Coro<std::string> read(std::size_t max_bytes = kReadChunkBytes);
  // Up to out.size() bytes of plaintext into the caller's memory (as Stream::read_into): what is
  // buffered, else one record decrypted straight into it. 0 at end of stream (or for an empty
  // span). A server that echoes or proxies reads so into one buffer: no string per record.
  Coro<std::size_t> read_into(std::span<std::byte> out);
  Coro<std::string> read_exactly(std::size_t n);
  Coro<std::string> read_until(std::string_view separator = "\n",
                               std::size_t limit = kDefaultLineLimit);
  // Encrypts and sends all of data.
  Coro<> write(std::string_view data);
  // Sends close_notify: the peer reads end of stream; this side may still read (TLS 1.3
  // allows the half-close; a TLS 1.2 peer usually answers with its own close_notify).
  Coro<> write_eof();
  // Sends close_notify (once) and closes the connection; no wait for the peer's.
  Coro<> close();
  // Ends TLS on the connection: sends close_notify, reads until the peer's (within the
  // shutdown timeout; TimeoutError otherwise) and returns the plain Stream (asyncio's unwrap).
  Coro<Stream> unwrap();

  // What the handshake agreed: "TLSv1.3", "TLS_AES_256_GCM_SHA384", the ALPN protocol ("" if
  // none), the peer certificate's subject ("" if none was sent, as on most client sides).
  std::string version() const;
  std::string cipher() const;
  std::string selected_alpn_protocol() const;
  std::string peer_certificate_subject() const;
  // Client: the name asked for with SNI; server: the name the client asked for ("" if none).
  std::string server_name() const;
  // The session to resume with (a client's, once the server's ticket has been read), and
  // whether this connection resumed one.
  TlsSession session() const;
  bool session_reused() const;
  // Which path the records take: the kernel's (kTLS) or OpenSSL's in user space, per direction.
  bool kernel_tls_send() const noexcept;
  bool kernel_tls_receive() const noexcept;

  Stream& stream() noexcept;  // the connection underneath (ciphertext: do not read or write it)
  ssl_st* native_handle() const noexcept;

 private:
  std::size_t buffered() const noexcept { return buffer_.size() - start_; }
  std::string take(std::size_t n);
  void consume(std::size_t n) noexcept;  // n buffered bytes were read
  Coro<bool> fill();  // one record's plaintext appended to the buffer; false at end of stream
  detail::TlsConnection& connection() const;

  std::unique_ptr<detail::TlsConnection> connection_;
  std::string buffer_;
  std::size_t start_ = 0;  // buffer_[start_, size) is decrypted and not yet read
};

// The client's handshake over stream: server_name goes out with SNI and, when the context
// checks host names, the certificate must be valid for it (a DNS name or an IP address).
// Throws TlsCertificateError (expired, unknown CA, hostname mismatch), TlsError (the server
// refused), TimeoutError (past options.handshake_timeout; the connection is closed).
Coro<TlsStream> tls_connect(Stream stream, TlsContext context, std::string server_name,
                            TlsOptions options = {});
// The server's handshake over stream (an accepted connection). The same errors; a client that
// speaks something else than TLS is a TlsError.
Coro<TlsStream> tls_accept(Stream stream, TlsContext context, TlsOptions options = {});
// asyncio's open_connection(host, port, ssl=context): the TCP connection, then tls_connect with
// server_name (host when empty, as asyncio's server_hostname defaults to it).
Coro<TlsStream> open_connection(std::string host, std::uint16_t port, TlsContext context,
                                std::string server_name = "", TlsOptions options = {});

// Whether this kernel can carry TLS records (the TLS ULP attaches to a TCP socket: Linux >= 4.13
// with the tls module loaded, or loadable by a process with CAP_NET_ADMIN).
bool kernel_tls_available() noexcept;

// asyncio's start_tls: upgrades a live connection (STARTTLS) on the context's side. Bytes the
// stream has buffered already are taken as the start of the handshake.
Coro<TlsStream> start_tls(Stream stream, TlsContext context, std::string server_name = "",
                          TlsOptions options = {});

}  // namespace ringloop
