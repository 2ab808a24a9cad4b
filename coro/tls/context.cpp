// TlsContext over OpenSSL 3's SSL_CTX. The callbacks (ALPN selection, SNI) get the context's
// State as their argument; it lives as long as the SSL_CTX, which it frees.
#include <ringloop/coro/tls/context.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <ringloop/coro/tls/detail/openssl_error.hpp>
#include <ringloop/loop/assert.hpp>

namespace ringloop {

struct TlsContext::State {
  SSL_CTX* ctx = nullptr;
  TlsRole role = TlsRole::client;
  bool check_hostname = false;
  bool ignore_unexpected_eof = false;
  bool kernel_tls = true;
  std::string alpn_wire;  // ALPN's wire format: each name prefixed by its length
  ServernameCallback servername_callback;
  ~State() { SSL_CTX_free(ctx); }
};

namespace {

int version_number(TlsVersion version) {
  return version == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

// The server picks the first of its protocols that the client offers.
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_length,
                const unsigned char* offered, unsigned offered_length, void* arg) {
  auto& state = *static_cast<TlsContext::State*>(arg);
  const auto* ours = reinterpret_cast<const unsigned char*>(state.alpn_wire.data());
  unsigned char* chosen = nullptr;
  int result =
      SSL_select_next_proto(&chosen, out_length, ours,
                            static_cast<unsigned>(state.alpn_wire.size()), offered, offered_length);
  if (result != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// SNI: the user's callback may hand over another context, whose certificate the connection
// then uses. The chosen context is kept alive by the connection (detail::keep_context_alive).
int on_servername(SSL* ssl, int* alert, void* arg) {
  auto& state = *static_cast<TlsContext::State*>(arg);
  if (!state.servername_callback) return SSL_TLSEXT_ERR_OK;
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  try {
    std::optional<TlsContext> chosen = state.servername_callback(name != nullptr ? name : "");
    if (chosen) {
      SSL_set_SSL_CTX(ssl, chosen->native_handle());
      detail::keep_context_alive(ssl, *chosen);
    }
    return SSL_TLSEXT_ERR_OK;
  } catch (...) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
}

}  // namespace

TlsSession::TlsSession(ssl_session_st* owned) noexcept : session_(owned, &SSL_SESSION_free) {}

TlsContext::TlsContext(TlsRole role) : state_(std::make_shared<State>()) {
  State& state = *state_;
  state.role = role;
  state.ctx = SSL_CTX_new(role == TlsRole::client ? TLS_client_method() : TLS_server_method());
  if (state.ctx == nullptr) detail::throw_openssl_error("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(state.ctx, TLS1_2_VERSION);
  // Renegotiation (TLS 1.2) would have a read write and a write read; nobody needs it.
  SSL_CTX_set_options(state.ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(state.ctx, SSL_MODE_RELEASE_BUFFERS);
  // The TLS 1.3 traffic secrets, for kernel TLS: OpenSSL 3.0 hands them out no other way.
  SSL_CTX_set_keylog_callback(state.ctx, &detail::on_keylog);
  if (role == TlsRole::client) {
    state.check_hostname = true;
    SSL_CTX_set_verify(state.ctx, SSL_VERIFY_PEER, nullptr);
    load_default_certs();
  } else {
    SSL_CTX_set_verify(state.ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_tlsext_servername_callback(state.ctx, &on_servername);
    SSL_CTX_set_tlsext_servername_arg(state.ctx, &state);
  }
}

TlsRole TlsContext::role() const noexcept { return state_->role; }
ssl_ctx_st* TlsContext::native_handle() const noexcept { return state_->ctx; }

void TlsContext::load_cert_chain(const std::string& cert_file, const std::string& key_file) {
  SSL_CTX* ctx = state_->ctx;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
    detail::throw_openssl_error("load_cert_chain: the certificate file '" + cert_file + "'");
  const std::string& key = key_file.empty() ? cert_file : key_file;
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
    detail::throw_openssl_error("load_cert_chain: the key file '" + key +
                                "' (unreadable, or it does not match the certificate)");
  if (SSL_CTX_check_private_key(ctx) != 1)
    detail::throw_openssl_error("load_cert_chain: the key does not match the certificate");
}

namespace {
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
BioPtr memory_bio(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) detail::throw_openssl_error("BIO_new_mem_buf");
  return bio;
}
}  // namespace

void TlsContext::load_cert_chain_pem(std::string_view cert_chain_pem, std::string_view key_pem) {
  SSL_CTX* ctx = state_->ctx;
  BioPtr certs = memory_bio(cert_chain_pem);
  X509* leaf = PEM_read_bio_X509_AUX(certs.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr) detail::throw_openssl_error("load_cert_chain_pem: no certificate");
  int used = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (used != 1) detail::throw_openssl_error("load_cert_chain_pem: the certificate");
  SSL_CTX_clear_chain_certs(ctx);
  while (X509* extra = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      detail::throw_openssl_error("load_cert_chain_pem: a chain certificate");
    }
  }
  ERR_clear_error();  // the end of the PEM text reads as "no start line"
  BioPtr key_bio = memory_bio(key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) detail::throw_openssl_error("load_cert_chain_pem: no private key");
  used = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (used != 1)
    detail::throw_openssl_error(
        "load_cert_chain_pem: the key is unusable or does not match the certificate");
  if (SSL_CTX_check_private_key(ctx) != 1)
    detail::throw_openssl_error("load_cert_chain_pem: the key does not match the certificate");
}

void TlsContext::load_verify_locations(const std::string& ca_file) {
  if (SSL_CTX_load_verify_locations(state_->ctx, ca_file.c_str(), nullptr) != 1)
    detail::throw_openssl_error("load_verify_locations: '" + ca_file + "'");
}

void TlsContext::load_verify_pem(std::string_view ca_pem) {
  BioPtr bio = memory_bio(ca_pem);
  X509_STORE* store = SSL_CTX_get_cert_store(state_->ctx);
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    int ok = X509_STORE_add_cert(store, cert);
    X509_free(cert);
    if (ok != 1) detail::throw_openssl_error("load_verify_pem: a certificate");
    ++added;
  }
  ERR_clear_error();
  if (added == 0) throw TlsError("load_verify_pem: no PEM certificate in the text given");
}

void TlsContext::load_default_certs() {
  if (SSL_CTX_set_default_verify_paths(state_->ctx) != 1)
    detail::throw_openssl_error("load_default_certs");
}

void TlsContext::set_verify_mode(VerifyMode mode) {
  if (mode == VerifyMode::none && state_->check_hostname)
    throw std::invalid_argument(
        "set_verify_mode(none) while check_hostname is on: call set_check_hostname(false) "
        "first (Python's rule)");
  int flags = SSL_VERIFY_NONE;
  if (mode != VerifyMode::none) flags = SSL_VERIFY_PEER;
  if (mode == VerifyMode::required && state_->role == TlsRole::server)
    flags |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(state_->ctx, flags, nullptr);
}

VerifyMode TlsContext::verify_mode() const noexcept {
  int flags = SSL_CTX_get_verify_mode(state_->ctx);
  if ((flags & SSL_VERIFY_PEER) == 0) return VerifyMode::none;
  if (state_->role == TlsRole::client || (flags & SSL_VERIFY_FAIL_IF_NO_PEER_CERT) != 0)
    return VerifyMode::required;
  return VerifyMode::optional;
}

void TlsContext::set_check_hostname(bool check) {
  if (check && verify_mode() == VerifyMode::none) set_verify_mode(VerifyMode::required);
  state_->check_hostname = check;
}
bool TlsContext::check_hostname() const noexcept { return state_->check_hostname; }

void TlsContext::set_minimum_version(TlsVersion version) {
  SSL_CTX_set_min_proto_version(state_->ctx, version_number(version));
}
void TlsContext::set_maximum_version(TlsVersion version) {
  SSL_CTX_set_max_proto_version(state_->ctx, version_number(version));
}

void TlsContext::set_ciphers(const std::string& ciphers) {
  if (SSL_CTX_set_cipher_list(state_->ctx, ciphers.c_str()) != 1)
    detail::throw_openssl_error("set_ciphers: no cipher matches '" + ciphers + "'");
}
void TlsContext::set_ciphersuites(const std::string& ciphersuites) {
  if (SSL_CTX_set_ciphersuites(state_->ctx, ciphersuites.c_str()) != 1)
    detail::throw_openssl_error("set_ciphersuites: no suite matches '" + ciphersuites + "'");
}

void TlsContext::set_alpn_protocols(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& protocol : protocols) {
    if (protocol.empty() || protocol.size() > 255)
      throw std::invalid_argument("set_alpn_protocols: a protocol name is 1 to 255 bytes");
    wire += static_cast<char>(protocol.size());
    wire += protocol;
  }
  state_->alpn_wire = std::move(wire);
  SSL_CTX* ctx = state_->ctx;
  if (state_->role == TlsRole::client) {
    // SSL_CTX_set_alpn_protos returns 0 on success.
    if (SSL_CTX_set_alpn_protos(ctx,
                                reinterpret_cast<const unsigned char*>(state_->alpn_wire.data()),
                                static_cast<unsigned>(state_->alpn_wire.size())) != 0)
      detail::throw_openssl_error("set_alpn_protocols");
  } else {
    SSL_CTX_set_alpn_select_cb(ctx, &select_alpn, state_.get());
  }
}

void TlsContext::set_servername_callback(ServernameCallback callback) {
  if (state_->role != TlsRole::server)
    throw std::invalid_argument("set_servername_callback: only a server context has one");
  state_->servername_callback = std::move(callback);
}

void TlsContext::set_num_tickets(std::size_t count) { SSL_CTX_set_num_tickets(state_->ctx, count); }

void TlsContext::set_session_tickets(bool enabled) {
  if (enabled)
    SSL_CTX_clear_options(state_->ctx, SSL_OP_NO_TICKET);
  else
    SSL_CTX_set_options(state_->ctx, SSL_OP_NO_TICKET);
  if (!enabled) SSL_CTX_set_num_tickets(state_->ctx, 0);
}

void TlsContext::set_ignore_unexpected_eof(bool ignore) { state_->ignore_unexpected_eof = ignore; }
bool TlsContext::ignore_unexpected_eof() const noexcept { return state_->ignore_unexpected_eof; }
void TlsContext::set_kernel_tls(bool enabled) { state_->kernel_tls = enabled; }
bool TlsContext::kernel_tls() const noexcept { return state_->kernel_tls; }

}  // namespace ringloop
