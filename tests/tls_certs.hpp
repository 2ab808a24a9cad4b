// Certificates made at test time with OpenSSL's API (the 6.1 guest has no openssl command): a
// throwaway CA, server certificates for localhost/127.0.0.1/::1 (valid, expired, for another
// name, from an unknown CA) and a client certificate. EC P-256 keys: fast to make. Made once
// per test binary; write_files() puts them in a directory for the interop peers.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace test_tls {

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

struct Certificates {
  KeyPair ca;       // the CA the tests trust
  KeyPair server;   // localhost, 127.0.0.1, ::1; valid
  KeyPair expired;  // the same names, expired yesterday
  KeyPair other;    // other.example only
  KeyPair unknown;  // localhost, from a CA nobody trusts
  KeyPair client;   // CN=ringloop-test-client, for client authentication
  std::string dir;  // write_files(): ca.pem, server.pem, server.key, client.pem, client.key
};

namespace detail {

inline std::string pem_of(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(size));
  BIO_free(bio);
  return pem;
}

inline std::string pem_of(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(size));
  BIO_free(bio);
  return pem;
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (extension == nullptr) throw std::runtime_error("X509V3_EXT_conf_nid failed");
  X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
}

struct Issued {
  X509* cert;
  EVP_PKEY* key;
};

// A certificate for cn (subjectAltName sans, "" for none), valid from now+from_s to now+to_s,
// signed by issuer (self-signed when null).
inline Issued issue(const char* cn, const char* sans, long from_s, long to_s, bool is_ca,
                    const Issued* issuer) {
  static long serial = 1;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert), from_s);
  X509_gmtime_adj(X509_getm_notAfter(cert), to_s);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer->cert : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert));
  if (is_ca) {
    add_extension(cert, issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert, issuer_cert, NID_basic_constraints, "CA:FALSE");
    add_extension(cert, issuer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  add_extension(cert, issuer_cert, NID_subject_key_identifier, "hash");
  if (sans[0] != '\0') add_extension(cert, issuer_cert, NID_subject_alt_name, sans);
  X509_sign(cert, issuer != nullptr ? issuer->key : key, EVP_sha256());
  return {cert, key};
}

inline KeyPair pair_of(const Issued& issued) { return {pem_of(issued.cert), pem_of(issued.key)}; }

inline void free_issued(Issued issued) {
  X509_free(issued.cert);
  EVP_PKEY_free(issued.key);
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

}  // namespace detail

inline const Certificates& certificates() {
  static const Certificates made = [] {
    using detail::issue;
    constexpr long kDay = 24 * 3600;
    const char* local = "DNS:localhost,IP:127.0.0.1,IP:::1";
    Certificates certs;
    detail::Issued ca = issue("ringloop test CA", "", -kDay, 30 * kDay, true, nullptr);
    detail::Issued rogue = issue("ringloop unknown CA", "", -kDay, 30 * kDay, true, nullptr);
    detail::Issued server = issue("localhost", local, -kDay, 30 * kDay, false, &ca);
    detail::Issued expired = issue("localhost", local, -3 * kDay, -kDay, false, &ca);
    detail::Issued other =
        issue("other.example", "DNS:other.example", -kDay, 30 * kDay, false, &ca);
    detail::Issued unknown = issue("localhost", local, -kDay, 30 * kDay, false, &rogue);
    detail::Issued client = issue("ringloop-test-client", "", -kDay, 30 * kDay, false, &ca);
    certs.ca = detail::pair_of(ca);
    certs.server = detail::pair_of(server);
    certs.expired = detail::pair_of(expired);
    certs.other = detail::pair_of(other);
    certs.unknown = detail::pair_of(unknown);
    certs.client = detail::pair_of(client);
    for (detail::Issued issued : {ca, rogue, server, expired, other, unknown, client})
      detail::free_issued(issued);
    char dir[] = "/tmp/ringloop-tls-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
    certs.dir = dir;
    detail::write_file(certs.dir + "/ca.pem", certs.ca.cert_pem);
    detail::write_file(certs.dir + "/server.pem", certs.server.cert_pem);
    detail::write_file(certs.dir + "/server.key", certs.server.key_pem);
    detail::write_file(certs.dir + "/client.pem", certs.client.cert_pem);
    detail::write_file(certs.dir + "/client.key", certs.client.key_pem);
    return certs;
  }();
  return made;
}

}  // namespace test_tls
