// TlsStream over OpenSSL 3 with a BIO over two buffers (as asyncio's sslproto.py does with its
// two memory BIOs): OpenSSL reads ciphertext from the receive buffer (what the stream's recv put
// there) and appends the records it makes to buffers_.out (what the stream must send); the
// coroutines here move them with the stream's own SQEs. Every SSL_* call is synchronous and
// finishes before the next await, so the reader and the writer can share the SSL object on the
// loop's thread; only the sending of the records is serialized (send_lock_), so that the records
// of two flushes never interleave.
#include <ringloop/coro/tls/tls_stream.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <utility>

#include <ringloop/coro/errors.hpp>
#include <ringloop/coro/net/open_connection.hpp>
#include <ringloop/coro/sync/lock.hpp>
#include <ringloop/coro/task/wait_for.hpp>
#include <ringloop/coro/tls/detail/ktls.hpp>
#include <ringloop/coro/tls/detail/openssl_error.hpp>
#include <ringloop/loop/assert.hpp>

namespace ringloop::detail {

namespace {

int connection_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

bool is_ip_address(const std::string& name) {
  unsigned char address[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, name.c_str(), address) == 1 ||
         ::inet_pton(AF_INET6, name.c_str(), address) == 1;
}

}  // namespace

// The BIO between OpenSSL and a TlsConnection's two buffers. A pair of memory BIOs (asyncio's
// way) costs two copies more per record, one in and one out, and zero-fills as it grows: a
// fifth of a 16 KiB echo server's CPU went to memmove and memset through them. Here OpenSSL
// reads straight from the buffer the ring's recv filled, and the string it appends its records
// to is moved, not copied, into the stream's send queue.
class ConnectionBio {
 public:
  // What the BIO reads from and writes to; it belongs to the TlsConnection.
  struct Buffers {
    char* in = nullptr;  // received ciphertext, [in_begin, in_end) not yet read by OpenSSL
    std::size_t in_begin = 0;
    std::size_t in_end = 0;
    std::string out;  // records made, not yet handed to the stream
  };

  // A new BIO over buffers (which must outlive it); nullptr when OpenSSL cannot allocate.
  static BIO* make(Buffers& buffers) {
    if (method() == nullptr) return nullptr;
    BIO* bio = BIO_new(method());
    if (bio != nullptr) {
      BIO_set_data(bio, &buffers);
      BIO_set_init(bio, 1);
    }
    return bio;
  }

 private:
  static const BIO_METHOD* method() {
    static const BIO_METHOD* const kMethod = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringloop");
      if (m == nullptr) return static_cast<BIO_METHOD*>(nullptr);
      BIO_meth_set_read_ex(m, &read);
      BIO_meth_set_write_ex(m, &write);
      BIO_meth_set_ctrl(m, &ctrl);
      return m;
    }();
    return kMethod;
  }

  static Buffers& of(BIO* bio) { return *static_cast<Buffers*>(BIO_get_data(bio)); }

  // Nothing received yet is "retry later" (SSL_ERROR_WANT_READ), never an EOF: the EOF is the
  // stream's, and the TlsConnection handles it.
  static int read(BIO* bio, char* data, std::size_t size, std::size_t* done) {
    Buffers& b = of(bio);
    BIO_clear_retry_flags(bio);
    std::size_t n = std::min(size, b.in_end - b.in_begin);
    *done = n;
    if (n == 0) {
      BIO_set_retry_read(bio);
      return 0;
    }
    std::memcpy(data, b.in + b.in_begin, n);
    b.in_begin += n;
    return 1;
  }

  static int write(BIO* bio, const char* data, std::size_t size, std::size_t* done) {
    BIO_clear_retry_flags(bio);
    try {
      of(bio).out.append(data, size);
    } catch (const std::bad_alloc&) {  // OpenSSL reports the failed write; it cannot take a throw
      *done = 0;
      return 0;
    }
    *done = size;
    return 1;
  }

  static long ctrl(BIO* bio, int command, long, void*) {
    Buffers& b = of(bio);
    switch (command) {
      case BIO_CTRL_PENDING:
        return static_cast<long>(b.in_end - b.in_begin);
      case BIO_CTRL_WPENDING:
        return static_cast<long>(b.out.size());
      case BIO_CTRL_FLUSH:  // the records go out when the connection flushes
        return 1;
      default:
        return 0;
    }
  }
};

class TlsConnection {
 public:
  // A receive takes this much ciphertext at most; one write hands OpenSSL this much plaintext
  // before the records go out (bounding buffers_.out's growth under a large write).
  static constexpr std::size_t kReceiveBytes = 64 * 1024;
  static constexpr std::size_t kWriteChunkBytes = 256 * 1024;
  // A record's plaintext at most, and what encrypting adds to it at most (TLS 1.2 CBC with its
  // IV, MAC and padding is the largest: 5 + 16 + 48 + 256).
  static constexpr std::size_t kMaxRecordPlaintext = 16 * 1024;
  static constexpr std::size_t kRecordOverhead = 5 + 16 + 48 + 256;

  TlsConnection(Stream stream, TlsContext context, TlsOptions options)
      : stream_(std::move(stream)), context_(std::move(context)), options_(std::move(options)) {
    // The stream keeps the storage of the records it sent, for the next ones (StreamState::spare).
    // First: it throws for an empty Stream, before anything here needs freeing.
    stream_.state().keep_spare = true;
    ssl_ = SSL_new(context_.native_handle());
    if (ssl_ == nullptr) throw_openssl_error("SSL_new");
    BIO* bio = ConnectionBio::make(buffers_);
    if (bio == nullptr) {
      SSL_free(ssl_);
      throw_openssl_error("BIO_new");
    }
    // TCP_NODELAY, as asyncio sets on every TCP transport: a flush is whole records, and Nagle
    // would hold a reply behind the ACK of the session tickets just sent (a 40 ms delayed-ACK
    // stall per request was measured on accepted sockets). Harmless on a non-TCP socket.
    if (stream_.kind() == StreamKind::socket) {
      int one = 1;
      ::setsockopt(stream_.socket().fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    SSL_set_bio(ssl_, bio, bio);  // the SSL owns it from here (one reference for both ends)
    SSL_set_ex_data(ssl_, connection_index(), this);
  }
  TlsConnection(const TlsConnection&) = delete;
  ~TlsConnection() { SSL_free(ssl_); }

  static TlsConnection& of(SSL* ssl) {
    auto* connection = static_cast<TlsConnection*>(SSL_get_ex_data(ssl, connection_index()));
    RINGLOOP_ASSERT(connection != nullptr, "an SSL without its TlsConnection");
    return *connection;
  }

  void start_client(const std::string& server_name) {
    SSL_set_connect_state(ssl_);
    server_name_ = server_name;
    if (server_name.empty()) {
      if (context_.check_hostname())
        throw std::invalid_argument(
            "tls_connect: the context checks host names (check_hostname), so it needs the "
            "server's name; pass it, or set_check_hostname(false)");
    } else {
      bool ip = is_ip_address(server_name);
      // SNI carries DNS names only (RFC 6066).
      if (!ip) SSL_set_tlsext_host_name(ssl_, server_name.c_str());
      if (context_.check_hostname()) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
        if (ip) {
          X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str());
        } else {
          X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          SSL_set1_host(ssl_, server_name.c_str());
        }
      }
    }
    if (options_.session) SSL_set_session(ssl_, options_.session.native_handle());
  }

  void start_server() { SSL_set_accept_state(ssl_); }

  Coro<> run_handshake() {
    bool timed_out = false;
    try {
      co_await wait_for(handshake(), options_.handshake_timeout);
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    if (timed_out)
      throw TimeoutError("TLS handshake is taking longer than " +
                         std::to_string(options_.handshake_timeout.count()) +
                         " ms: aborting the connection");
    // Unread ciphertext keeps the receive side in user space: the kernel would start its record
    // count after bytes it never saw.
    ktls_.try_enable(ssl_, stream_, context_, buffers_.in_begin == buffers_.in_end);
  }

  // Appends at most max_bytes of plaintext to buffer; false at end of stream.
  Coro<bool> read_into(std::string& buffer, std::size_t max_bytes) {
    // After the end, every read is the end at once (OpenSSL says so by itself; a kernel TLS
    // socket would wait for records that never come).
    if (ended_) co_return false;
    if (ktls_.receive_enabled()) {
      bool more =
          co_await ktls_.receive(stream_, buffer, max_bytes, context_.ignore_unexpected_eof());
      ended_ = !more;
      co_return more;
    }
    // Decrypted into a scratch area and appended: growing the string by max_bytes first would
    // zero-fill 16 KiB before every record however short (a tenth of a small echo's CPU).
    if (!plain_scratch_) plain_scratch_ = std::make_unique<char[]>(TlsStream::kReadChunkBytes);
    std::size_t got =
        co_await read_some(plain_scratch_.get(), std::min(max_bytes, TlsStream::kReadChunkBytes));
    buffer.append(plain_scratch_.get(), got);
    co_return got > 0;
  }

  // Records in user space only: up to size (> 0) bytes of plaintext decrypted straight into
  // out; 0 at end of stream (the peer's close_notify).
  Coro<std::size_t> read_some(char* out, std::size_t size) {
    RINGLOOP_ASSERT(!ktls_.receive_enabled() && size > 0, "read_some: kTLS, or an empty buffer");
    if (ended_) co_return 0;
    for (;;) {
      std::size_t got = 0;
      clear_openssl_errors();
      int result = SSL_read_ex(ssl_, out, size, &got);
      if (result == 1) co_return got;
      int error = SSL_get_error(ssl_, result);
      if (error == SSL_ERROR_ZERO_RETURN) {  // the peer's close_notify
        ended_ = true;
        co_return 0;
      }
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE)
        co_await fail("TLS read failed", error);
      // A read may have made records to send: a TLS 1.3 KeyUpdate's answer. With the kernel
      // sending, OpenSSL's record numbers are stale: such an answer cannot go out.
      if (ktls_.send_enabled() && !buffers_.out.empty())
        throw TlsError(
            "TLS read failed: the peer asked for an answer (a KeyUpdate) that a kernel TLS "
            "sender cannot make (TlsContext::set_kernel_tls(false) keeps records in user space)");
      co_await flush();
      if (error == SSL_ERROR_WANT_READ) {
        bool more = co_await receive_ciphertext();
        if (!more) {
          if (context_.ignore_unexpected_eof()) {
            ended_ = true;
            co_return 0;
          }
          throw TlsError(
              "TLS read failed: the peer ended the connection without close_notify (the data "
              "may be truncated; TlsContext::set_ignore_unexpected_eof(true) accepts it)");
        }
      }
    }
  }

  Coro<> write(std::string_view data) {
    if (close_notify_sent_)
      throw std::logic_error("TlsStream::write after write_eof or close: close_notify was sent");
    if (ktls_.send_enabled()) {
      co_await stream_.write(data);
      co_return;
    }
    while (!data.empty()) {
      std::size_t written = 0;
      std::size_t chunk = std::min(data.size(), kWriteChunkBytes);
      // Room for the records at once (each adds at most kRecordOverhead to its plaintext):
      // appended record by record, the string would reallocate and copy as it doubled.
      std::size_t records = chunk / kMaxRecordPlaintext + 1;
      buffers_.out.reserve(buffers_.out.size() + chunk + records * kRecordOverhead);
      clear_openssl_errors();
      int result = SSL_write_ex(ssl_, data.data(), chunk, &written);
      if (result == 1) {
        data.remove_prefix(written);
      } else {
        int error = SSL_get_error(ssl_, result);
        if (error != SSL_ERROR_WANT_WRITE && error != SSL_ERROR_WANT_READ)
          co_await fail("TLS write failed", error);
      }
      co_await flush();
    }
  }

  Coro<> send_close_notify() {
    if (close_notify_sent_ || !SSL_is_init_finished(ssl_)) co_return;
    close_notify_sent_ = true;
    if (ktls_.send_enabled()) {
      co_await ktls_.send_close_notify(stream_);
      co_return;
    }
    clear_openssl_errors();
    SSL_shutdown(ssl_);
    co_await flush();
  }

  Coro<> close() {
    std::exception_ptr failure;
    try {
      co_await send_close_notify();
    } catch (const std::exception&) {  // a reset peer: closing goes on
      failure = std::current_exception();
    }
    co_await stream_.close();
  }

  Coro<Stream> unwrap() {
    // Linux cannot take the TLS layer off a socket again: plain text would be encrypted.
    if (ktls_.send_enabled())
      throw std::logic_error(
          "TlsStream::unwrap: the kernel carries this connection's records (kTLS) and cannot "
          "return it to plain text; use a context with set_kernel_tls(false) where a "
          "connection is unwrapped");
    co_await send_close_notify();
    bool timed_out = false;
    try {
      co_await wait_for(read_until_close_notify(), options_.shutdown_timeout);
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    if (timed_out)
      throw TimeoutError("TLS unwrap: no close_notify from the peer within " +
                         std::to_string(options_.shutdown_timeout.count()) + " ms");
    stream_.state().keep_spare = false;  // a plain Stream again: it keeps no spare chunk
    stream_.state().spare = std::string();
    co_return std::move(stream_);
  }

  SSL* ssl() const noexcept { return ssl_; }
  Stream& stream() noexcept { return stream_; }
  const std::string& server_name() const noexcept { return server_name_; }
  KernelTls& ktls() noexcept { return ktls_; }
  const KernelTls& ktls() const noexcept { return ktls_; }
  void keep(const TlsContext& context) { sni_context_ = context; }

 private:
  Coro<> handshake() {
    for (;;) {
      clear_openssl_errors();
      int result = SSL_do_handshake(ssl_);
      int error = result == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, result);
      if (error != SSL_ERROR_NONE && error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE)
        co_await fail("TLS handshake failed", error);
      ktls_.count_handshake_output(buffers_.out);
      co_await flush();
      if (error == SSL_ERROR_NONE) co_return;
      if (error == SSL_ERROR_WANT_READ) {
        bool more = co_await receive_ciphertext();
        if (!more)
          throw TlsError(
              "TLS handshake failed: the peer closed the connection before the handshake "
              "finished");
      }
    }
  }

  Coro<> read_until_close_notify() {
    std::string discarded;
    for (;;) {
      discarded.clear();
      bool more = co_await read_into(discarded, TlsStream::kReadChunkBytes);
      if (!more) co_return;
    }
  }

  // One receive's ciphertext appended to receive_buffer_; false at the stream's end. The first
  // goes through the Stream, which hands over what it had buffered (start_tls); the later ones
  // recv into the buffer directly.
  Coro<bool> receive_ciphertext() {
    if (!stream_drained_ || stream_.kind() != StreamKind::socket) {
      std::string bytes = co_await stream_.read(stream_drained_ ? kReceiveBytes : SIZE_MAX);
      stream_drained_ = true;
      if (bytes.empty()) co_return false;
      char* room = receive_room(bytes.size());
      std::memcpy(room, bytes.data(), bytes.size());
      buffers_.in_end += bytes.size();
      co_return true;
    }
    char* room = receive_room(kReceiveBytes);
    std::size_t got = co_await stream_.socket().recv(room, kReceiveBytes);
    if (got == 0) co_return false;
    buffers_.in_end += got;
    co_return true;
  }

  // Room for size more bytes after the unread ones: the buffer starts over when OpenSSL has
  // read it all (the usual case: it asks for more only then), moves what is left to the front
  // otherwise, and grows only for a start_tls's larger first hand-over.
  char* receive_room(std::size_t size) {
    std::size_t unread = buffers_.in_end - buffers_.in_begin;
    if (unread + size > receive_capacity_) {
      std::size_t capacity = std::max(kReceiveBytes, unread + size);
      // Zeroed once per connection (not for_overwrite): the ring's recv fills it without a
      // system call valgrind sees, and memcheck would call every byte uninitialised.
      auto bigger = std::make_unique<char[]>(capacity);
      if (unread > 0) std::memcpy(bigger.get(), buffers_.in + buffers_.in_begin, unread);
      receive_buffer_ = std::move(bigger);
      receive_capacity_ = capacity;
    } else if (buffers_.in_begin > 0 && unread > 0 && buffers_.in_end + size > receive_capacity_) {
      std::memmove(receive_buffer_.get(), buffers_.in + buffers_.in_begin, unread);
    } else if (unread > 0) {
      return buffers_.in + buffers_.in_end;
    }
    buffers_.in = receive_buffer_.get();
    buffers_.in_begin = 0;
    buffers_.in_end = unread;
    return buffers_.in + unread;
  }

  // Sends the records OpenSSL has made, in order, one flush at a time. The string goes to the
  // stream's queue by move (no copy of the ciphertext in user space), and the storage of one
  // the stream has sent comes back to be filled next (no allocation per record either).
  Coro<> flush() {
    if (buffers_.out.empty()) co_return;
    auto guard = co_await send_lock_.scoped();
    while (!buffers_.out.empty()) {
      std::string records = std::exchange(buffers_.out, stream_.state().take_spare());
      co_await stream_.write(std::move(records));
    }
  }

  // Throws the TlsError for a failed SSL call, after sending the alert OpenSSL wrote (so the
  // peer learns why). A coroutine: the alert goes out with an await.
  Coro<> fail(const char* during, int ssl_error) {
    std::exception_ptr error = make_error(during, ssl_error);
    try {
      co_await flush();
    } catch (const std::exception&) {  // the peer is gone: the first error is the one to tell
    }
    std::rethrow_exception(error);
  }

  std::exception_ptr make_error(const char* during, int ssl_error) {
    unsigned long code = ERR_peek_error();
    if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
        ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      long verify = SSL_get_verify_result(ssl_);
      std::string text = X509_verify_cert_error_string(verify);
      std::string message = std::string(during) + ": certificate verify failed: " + text;
      if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
        message += ", the certificate is not valid for '" + server_name_ + "'";
      ERR_clear_error();
      return std::make_exception_ptr(TlsCertificateError(message, verify, text));
    }
    std::string reason = take_openssl_error();
    if (reason.empty())
      reason = ssl_error == SSL_ERROR_SYSCALL ? "the connection failed"
                                              : "OpenSSL error " + std::to_string(ssl_error);
    return std::make_exception_ptr(TlsError(std::string(during) + ": " + reason));
  }

  SSL* ssl_ = nullptr;
  ConnectionBio::Buffers buffers_;  // what ssl_'s BIO reads and writes
  Stream stream_;
  TlsContext context_;
  std::optional<TlsContext> sni_context_;  // the one the SNI callback chose, kept alive
  TlsOptions options_;
  std::string server_name_;
  Lock send_lock_;
  std::unique_ptr<char[]> receive_buffer_;  // buffers_.in points into it
  std::size_t receive_capacity_ = 0;
  std::unique_ptr<char[]> plain_scratch_;  // read_into's plaintext, kReadChunkBytes
  KernelTls ktls_;
  bool stream_drained_ = false;
  bool close_notify_sent_ = false;
  bool ended_ = false;  // a read returned the end of stream
};

void keep_context_alive(SSL* ssl, const TlsContext& context) {
  TlsConnection::of(ssl).keep(context);
}

void on_keylog(const SSL* ssl, const char* line) {
  TlsConnection::of(const_cast<SSL*>(ssl)).ktls().on_keylog(line);
}

}  // namespace ringloop::detail

namespace ringloop {

TlsStream::TlsStream() noexcept = default;
TlsStream::TlsStream(std::unique_ptr<detail::TlsConnection> connection) noexcept
    : connection_(std::move(connection)) {}
TlsStream::TlsStream(TlsStream&&) noexcept = default;
TlsStream& TlsStream::operator=(TlsStream&&) noexcept = default;
TlsStream::~TlsStream() = default;

detail::TlsConnection& TlsStream::connection() const {
  if (!connection_) throw std::logic_error("TlsStream: used after a move or unwrap");
  return *connection_;
}

std::string TlsStream::take(std::size_t n) {
  // All of it (a read() of a whole record, the usual case): the string itself, not a copy. The
  // next record then goes into a new allocation, as the copy would have needed one.
  if (start_ == 0 && n == buffer_.size() && n > 0) return std::exchange(buffer_, std::string());
  std::string out(buffer_, start_, n);
  consume(n);
  return out;
}

void TlsStream::consume(std::size_t n) noexcept {
  start_ += n;
  if (start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  }
}

Coro<bool> TlsStream::fill() {
  if (start_ > 0) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  bool more = co_await connection().read_into(buffer_, kReadChunkBytes);
  co_return more;
}

Coro<std::string> TlsStream::read(std::size_t max_bytes) {
  if (buffered() == 0 && max_bytes != 0) {
    // Several records may come and go before one holds data (tickets, key updates).
    for (;;) {
      bool more = co_await fill();
      if (!more || buffered() > 0) break;
    }
  }
  co_return take(std::min(max_bytes, buffered()));
}

Coro<std::size_t> TlsStream::read_into(std::span<std::byte> out) {
  if (out.empty()) co_return 0;
  if (buffered() == 0 && !connection().ktls().receive_enabled()) {
    std::size_t got =
        co_await connection().read_some(reinterpret_cast<char*>(out.data()), out.size());
    co_return got;
  }
  while (buffered() == 0) {
    bool more = co_await fill();
    if (!more) co_return 0;
  }
  std::size_t n = std::min(out.size(), buffered());
  std::memcpy(out.data(), buffer_.data() + start_, n);
  consume(n);
  co_return n;
}

Coro<std::string> TlsStream::read_exactly(std::size_t n) {
  while (buffered() < n) {
    bool more = co_await fill();
    if (!more) throw IncompleteReadError(take(buffered()), n);
  }
  co_return take(n);
}

Coro<std::string> TlsStream::read_until(std::string_view separator, std::size_t limit) {
  if (separator.empty()) throw std::invalid_argument("read_until: empty separator");
  std::size_t searched = 0;
  for (;;) {
    std::string_view data(buffer_.data() + start_, buffered());
    std::size_t found = data.find(separator, searched);
    if (found != std::string_view::npos) co_return take(found + separator.size());
    if (data.size() >= limit)
      throw LimitOverrunError("read_until: no separator in the first " + std::to_string(limit) +
                              " bytes");
    searched = data.size() >= separator.size() ? data.size() - separator.size() + 1 : 0;
    bool more = co_await fill();
    if (!more) throw IncompleteReadError(take(buffered()), 0);
  }
}

Coro<> TlsStream::write(std::string_view data) { return connection().write(data); }
Coro<> TlsStream::write_eof() { return connection().send_close_notify(); }
Coro<> TlsStream::close() { return connection().close(); }

Coro<Stream> TlsStream::unwrap() {
  Stream stream = co_await connection().unwrap();
  connection_.reset();
  co_return stream;
}

std::string TlsStream::version() const { return SSL_get_version(connection().ssl()); }

std::string TlsStream::cipher() const {
  const char* name = SSL_get_cipher_name(connection().ssl());
  return name != nullptr ? name : "";
}

std::string TlsStream::selected_alpn_protocol() const {
  const unsigned char* data = nullptr;
  unsigned length = 0;
  SSL_get0_alpn_selected(connection().ssl(), &data, &length);
  return data != nullptr ? std::string(reinterpret_cast<const char*>(data), length) : "";
}

std::string TlsStream::peer_certificate_subject() const {
  X509* peer = SSL_get0_peer_certificate(connection().ssl());
  if (peer == nullptr) return "";
  char* line = X509_NAME_oneline(X509_get_subject_name(peer), nullptr, 0);
  std::string subject = line != nullptr ? line : "";
  OPENSSL_free(line);
  return subject;
}

std::string TlsStream::server_name() const {
  SSL* ssl = connection().ssl();
  if (SSL_is_server(ssl) == 0) return connection().server_name();
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? name : "";
}

TlsSession TlsStream::session() const {
  SSL_SESSION* session = SSL_get1_session(connection().ssl());
  if (session != nullptr && SSL_SESSION_is_resumable(session) == 0) {
    SSL_SESSION_free(session);
    session = nullptr;
  }
  return TlsSession(session);
}

bool TlsStream::session_reused() const { return SSL_session_reused(connection().ssl()) == 1; }
bool TlsStream::kernel_tls_send() const noexcept {
  return connection_ && connection_->ktls().send_enabled();
}
bool TlsStream::kernel_tls_receive() const noexcept {
  return connection_ && connection_->ktls().receive_enabled();
}
Stream& TlsStream::stream() noexcept { return connection().stream(); }
ssl_st* TlsStream::native_handle() const noexcept {
  return connection_ ? connection_->ssl() : nullptr;
}

namespace {

Coro<TlsStream> handshake(std::unique_ptr<detail::TlsConnection> connection) {
  co_await connection->run_handshake();
  co_return TlsStream(std::move(connection));
}

}  // namespace

Coro<TlsStream> tls_connect(Stream stream, TlsContext context, std::string server_name,
                            TlsOptions options) {
  if (context.role() != TlsRole::client)
    throw std::invalid_argument(
        "tls_connect: the context is a server's; make it with TlsContext::client()");
  auto connection =
      std::make_unique<detail::TlsConnection>(std::move(stream), context, std::move(options));
  connection->start_client(server_name);
  TlsStream tls = co_await handshake(std::move(connection));
  co_return tls;
}

Coro<TlsStream> tls_accept(Stream stream, TlsContext context, TlsOptions options) {
  if (context.role() != TlsRole::server)
    throw std::invalid_argument(
        "tls_accept: the context is a client's; make it with TlsContext::server()");
  auto connection =
      std::make_unique<detail::TlsConnection>(std::move(stream), context, std::move(options));
  connection->start_server();
  TlsStream tls = co_await handshake(std::move(connection));
  co_return tls;
}

Coro<TlsStream> open_connection(std::string host, std::uint16_t port, TlsContext context,
                                std::string server_name, TlsOptions options) {
  Stream stream = co_await open_connection(host, port);
  if (server_name.empty()) server_name = host;
  TlsStream tls = co_await tls_connect(std::move(stream), std::move(context),
                                       std::move(server_name), std::move(options));
  co_return tls;
}

Coro<TlsStream> start_tls(Stream stream, TlsContext context, std::string server_name,
                          TlsOptions options) {
  if (context.role() == TlsRole::client) {
    TlsStream tls = co_await tls_connect(std::move(stream), std::move(context),
                                         std::move(server_name), std::move(options));
    co_return tls;
  }
  TlsStream tls = co_await tls_accept(std::move(stream), std::move(context), std::move(options));
  co_return tls;
}

}  // namespace ringloop
