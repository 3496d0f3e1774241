// TLS certificate helpers shared by the API server's PKI (apiserver/pki.h) and the kubelet's
// self-signed serving certificate: EC P-256 keys, X.509 issuing, PEM files written atomically.
// Stateless; safe from any thread (OpenSSL's error queue is per thread).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/status.h"

namespace skiff::web::certs {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

// The OpenSSL error queue as text, prefixed with what we were doing; the queue is emptied.
Status ssl_error(const std::string& what);
using files::read_file;  // common/files.h
bool exists(const std::string& path);
using files::write_file_atomic;

Result<PkeyPtr> generate_key();  // EC P-256
Result<std::string> key_pem(EVP_PKEY* key);
Result<std::string> cert_pem(X509* cert);
Result<X509Ptr> load_cert(const std::string& path);
Result<PkeyPtr> load_key(const std::string& path);

// "10.96.0.1" / "::1" in canonical form, or "" if `s` is not an IP address.
std::string canonical_ip(const std::string& s);
// A SAN for comparison: canonical IP, or the lower-cased DNS name.
std::string normalize_san(const std::string& s);
// Issues a certificate for `key` signed by `issuer_key` (self-signed when issuer is null); a
// non-CA certificate is for serverAuth. `sans`: DNS names and IP addresses.
Result<X509Ptr> issue(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                      int days, bool is_ca, const std::vector<std::string>& sans);
// The certificate's subject alternative names ("DNS:"/"IP:" dropped).
std::vector<std::string> sans_of(X509* cert);
// 32 random bytes as 64 hex characters.
std::string random_token();

struct CertPair {
  std::string cert_file;
  std::string key_file;
  bool created = false;
};
// A self-signed serving certificate <dir>/<name>.crt + <name>.key (key 0600, dir made 0700 if
// absent) for `cn` with `sans`, valid a year; reused while it parses, matches its key and has
// more than 30 days left, else made anew.
Result<CertPair> ensure_self_signed(const std::string& dir, const std::string& name,
                                    const std::string& cn, const std::vector<std::string>& sans);

}  // namespace skiff::web::certs
