// Kernel TLS: keys from OpenSSL's TLS 1.3 secrets to setsockopt(SOL_TLS), and the record I/O
// that then differs from plain send/recv (control records). See detail/ktls.hpp.
#include <ringloop/coro/tls/detail/ktls.hpp>

#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string_view>

#include <ringloop/coro/io/io.hpp>
#include <ringloop/coro/tls/tls_stream.hpp>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace ringloop::detail {

namespace {

// The kernel has no "tls" ULP (CONFIG_TLS unset, module absent): seen once, never tried again,
// since each try costs a failed module load (~50 us) on every handshake.
std::atomic<bool> tls_ulp_missing{false};

bool attach_tls_ulp(int fd) noexcept {
  if (::setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0) return true;
  if (errno == ENOENT) tls_ulp_missing.store(true, std::memory_order_relaxed);
  return false;
}

constexpr unsigned char kRecordAlert = 21;
constexpr unsigned char kRecordHandshake = 22;
constexpr unsigned char kRecordApplicationData = 23;
constexpr unsigned char kHandshakeNewSessionTicket = 4;
constexpr unsigned char kHandshakeKeyUpdate = 24;

std::vector<unsigned char> from_hex(std::string_view hex) {
  std::vector<unsigned char> bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(
        static_cast<unsigned char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return bytes;
}

// HKDF-Expand-Label(secret, label, "", length) of RFC 8446 7.1, for length <= the hash's
// size: one HMAC block.
bool expand_label(const EVP_MD* md, const std::vector<unsigned char>& secret, const char* label,
                  unsigned char* out, std::size_t length) {
  std::string full = std::string("tls13 ") + label;
  std::string info;
  info += static_cast<char>(length >> 8);
  info += static_cast<char>(length & 0xff);
  info += static_cast<char>(full.size());
  info += full;
  info += '\0';    // empty context
  info += '\x01';  // HKDF-Expand's block counter
  unsigned char block[EVP_MAX_MD_SIZE];
  unsigned block_length = 0;
  if (HMAC(md, secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(info.data()), info.size(), block,
           &block_length) == nullptr ||
      block_length < length)
    return false;
  std::memcpy(out, block, length);
  return true;
}

// The crypto_info for one direction; empty when the cipher is not one kTLS takes.
std::vector<unsigned char> crypto_info(std::uint16_t suite,
                                       const std::vector<unsigned char>& secret,
                                       std::uint64_t sequence) {
  const EVP_MD* md = suite == 0x1302 ? EVP_sha384() : EVP_sha256();
  std::size_t key_length = suite == 0x1301 ? 16 : 32;
  unsigned char key[32];
  unsigned char iv[12];
  if (secret.empty() || !expand_label(md, secret, "key", key, key_length) ||
      !expand_label(md, secret, "iv", iv, sizeof(iv)))
    return {};
  unsigned char rec_seq[8];
  for (int i = 0; i < 8; ++i) rec_seq[i] = static_cast<unsigned char>(sequence >> (56 - 8 * i));
  std::vector<unsigned char> out;
  // Every kernel crypto_info starts with the version and cipher, then the key, (salt,) iv and
  // the record sequence; AES-GCM splits TLS 1.3's 12-byte IV into the kernel's salt (4 bytes)
  // and iv (8), ChaCha20-Poly1305 takes it whole.
  auto fill = [&](auto info, unsigned short cipher) {
    info.info.version = TLS_1_3_VERSION;
    info.info.cipher_type = cipher;
    std::memcpy(info.key, key, sizeof(info.key));
    if constexpr (requires { info.salt; }) {
      std::memcpy(info.salt, iv, sizeof(info.salt));
      std::memcpy(info.iv, iv + sizeof(info.salt), sizeof(info.iv));
    } else {
      std::memcpy(info.iv, iv, sizeof(info.iv));
    }
    std::memcpy(info.rec_seq, rec_seq, sizeof(info.rec_seq));
    const auto* bytes = reinterpret_cast<const unsigned char*>(&info);
    out.assign(bytes, bytes + sizeof(info));
    OPENSSL_cleanse(&info, sizeof(info));
  };
  if (suite == 0x1301)
    fill(tls12_crypto_info_aes_gcm_128{}, TLS_CIPHER_AES_GCM_128);
  else if (suite == 0x1302)
    fill(tls12_crypto_info_aes_gcm_256{}, TLS_CIPHER_AES_GCM_256);
  else if (suite == 0x1303)
    fill(tls12_crypto_info_chacha20_poly1305{}, TLS_CIPHER_CHACHA20_POLY1305);
  OPENSSL_cleanse(key, sizeof(key));
  OPENSSL_cleanse(iv, sizeof(iv));
  return out;
}

}  // namespace

void KernelTls::on_keylog(const char* line) {
  std::string_view text(line);
  std::vector<unsigned char>* into = nullptr;
  if (text.starts_with("CLIENT_TRAFFIC_SECRET_0 "))
    into = &client_secret_;
  else if (text.starts_with("SERVER_TRAFFIC_SECRET_0 "))
    into = &server_secret_;
  if (into == nullptr) return;
  std::size_t last_space = text.rfind(' ');
  *into = from_hex(text.substr(last_space + 1));
}

void KernelTls::count_handshake_output(std::string_view data) noexcept {
  std::size_t size = data.size();
  std::uint64_t records = 0;
  for (std::size_t at = 0; at + 5 <= size; ++records) {
    auto length = static_cast<std::size_t>((static_cast<unsigned char>(data[at + 3]) << 8) |
                                           static_cast<unsigned char>(data[at + 4]));
    at += 5 + length;
  }
  last_step_records_ = records;
}

void KernelTls::try_enable(SSL* ssl, Stream& stream, const TlsContext& context,
                           bool receive_too) noexcept {
  bool usable = context.kernel_tls() && stream.kind() == StreamKind::socket &&
                SSL_version(ssl) == TLS1_3_VERSION && !client_secret_.empty() &&
                !server_secret_.empty();
  if (usable) {
    try {
      bool server = SSL_is_server(ssl) == 1;
      std::uint16_t suite = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(ssl));
      std::vector<unsigned char> tx = crypto_info(suite, server ? server_secret_ : client_secret_,
                                                  server ? last_step_records_ : 0);
      std::vector<unsigned char> rx =
          crypto_info(suite, server ? client_secret_ : server_secret_, 0);
      int fd = stream.socket().fd();
      if (!tx.empty() && !tls_ulp_missing.load(std::memory_order_relaxed) && attach_tls_ulp(fd)) {
        send_ =
            ::setsockopt(fd, SOL_TLS, TLS_TX, tx.data(), static_cast<socklen_t>(tx.size())) == 0;
        if (send_ && receive_too)
          receive_ =
              ::setsockopt(fd, SOL_TLS, TLS_RX, rx.data(), static_cast<socklen_t>(rx.size())) == 0;
      }
      OPENSSL_cleanse(tx.data(), tx.size());
      OPENSSL_cleanse(rx.data(), rx.size());
    } catch (...) {  // out of memory: user-space records
    }
  }
  OPENSSL_cleanse(client_secret_.data(), client_secret_.size());
  OPENSSL_cleanse(server_secret_.data(), server_secret_.size());
  client_secret_.clear();
  server_secret_.clear();
}

Coro<bool> KernelTls::receive(Stream& stream, std::string& buffer, std::size_t max_bytes,
                              bool ignore_unexpected_eof) {
  for (;;) {
    std::size_t old_size = buffer.size();
    buffer.resize(old_size + max_bytes);
    iovec vector{buffer.data() + old_size, max_bytes};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(unsigned char))] = {};
    msghdr message{};
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    int fd = stream.socket().fd();
    std::int32_t result = co_await ringloop::io::submit(
        [&](io_uring_sqe& sqe) { io_uring_prep_recvmsg(&sqe, fd, &message, 0); });
    std::size_t got = result > 0 ? static_cast<std::size_t>(result) : 0;
    buffer.resize(old_size + got);
    if (result < 0)
      throw std::system_error(-result, std::system_category(), "TLS read (kernel TLS recvmsg)");
    if (result == 0) {
      if (ignore_unexpected_eof) co_return false;
      throw TlsError(
          "TLS read failed: the peer ended the connection without close_notify (the data may "
          "be truncated; TlsContext::set_ignore_unexpected_eof(true) accepts it)");
    }
    unsigned char type = kRecordApplicationData;
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
         header = CMSG_NXTHDR(&message, header))
      if (header->cmsg_level == SOL_TLS && header->cmsg_type == TLS_GET_RECORD_TYPE)
        type = *CMSG_DATA(header);
    if (type == kRecordApplicationData) co_return true;
    std::string record = buffer.substr(old_size);
    buffer.resize(old_size);
    if (type == kRecordAlert && record.size() >= 2) {
      if (record[1] == 0) co_return false;  // close_notify
      auto description = static_cast<unsigned char>(record[1]);
      // OpenSSL 3.0 has no text for TLS 1.3's certificate_required.
      std::string text =
          description == 116 ? "certificate required" : SSL_alert_desc_string_long(description);
      throw TlsError("TLS read failed: the peer sent alert " + std::to_string(description) + " (" +
                     text + ")");
    }
    if (type == kRecordHandshake && !record.empty() &&
        static_cast<unsigned char>(record[0]) == kHandshakeNewSessionTicket)
      continue;
    if (type == kRecordHandshake && !record.empty() &&
        static_cast<unsigned char>(record[0]) == kHandshakeKeyUpdate)
      throw TlsError(
          "TLS read failed: the peer sent a KeyUpdate, which this kernel's TLS cannot follow "
          "(TlsContext::set_kernel_tls(false) keeps the records in user space)");
    throw TlsError("TLS read failed: an unexpected record of type " + std::to_string(type) +
                   " on a kernel TLS stream");
  }
}

Coro<> KernelTls::send_close_notify(Stream& stream) {
  unsigned char alert[2] = {1, 0};  // warning, close_notify
  iovec vector{alert, sizeof(alert)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(unsigned char))] = {};
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_TLS;
  header->cmsg_type = TLS_SET_RECORD_TYPE;
  header->cmsg_len = CMSG_LEN(sizeof(unsigned char));
  *CMSG_DATA(header) = kRecordAlert;
  int fd = stream.socket().fd();
  std::int32_t result = co_await ringloop::io::submit(
      [&](io_uring_sqe& sqe) { io_uring_prep_sendmsg(&sqe, fd, &message, MSG_NOSIGNAL); });
  if (result < 0)
    throw std::system_error(-result, std::system_category(), "TLS close_notify (kernel TLS)");
}

}  // namespace ringloop::detail

namespace ringloop {

bool kernel_tls_available() noexcept {
  // The ULP attaches only to an established TCP socket: a loopback pair.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool available = false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listener >= 0 && client >= 0 &&
      ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::listen(listener, 1) == 0 &&
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0 &&
      ::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0)
    available = ::setsockopt(client, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
  if (client >= 0) ::close(client);
  if (listener >= 0) ::close(listener);
  return available;
}

}  // namespace ringloop
