#include "common/http/certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <sstream>

namespace skiff::web::certs {

// The OpenSSL error queue as text, prefixed with what we were doing; the queue is emptied.
Status ssl_error(const std::string& what) {
  std::string msg = what;
  unsigned long e;
  const char* sep = ": ";
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    msg += sep;
    msg += buf;
    sep = "; ";
  }
  return Status::internal(msg);
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

Result<PkeyPtr> generate_key() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return ssl_error("generate EC P-256 key");
  return key;
}

Result<std::string> key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return ssl_error("encode private key");
  char* p = nullptr;
  long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

Result<std::string> cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return ssl_error("encode certificate");
  char* p = nullptr;
  long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

Result<X509Ptr> load_cert(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.status();
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return ssl_error("parse certificate " + path);
  return cert;
}

Result<PkeyPtr> load_key(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.status();
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return ssl_error("parse private key " + path);
  return key;
}

// "10.96.0.1" / "::1" in canonical form, or "" if `s` is not an IP address.
std::string canonical_ip(const std::string& s) {
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) return inet_ntop(AF_INET, buf, out, sizeof(out));
  std::string v = s;
  if (v.size() > 2 && v.front() == '[' && v.back() == ']') v = v.substr(1, v.size() - 2);
  if (inet_pton(AF_INET6, v.c_str(), buf) == 1) return inet_ntop(AF_INET6, buf, out, sizeof(out));
  return "";
}

std::string normalize_san(const std::string& s) {
  std::string ip = canonical_ip(s);
  if (!ip.empty()) return ip;
  std::string d = s;
  std::transform(d.begin(), d.end(), d.begin(), [](unsigned char c) { return std::tolower(c); });
  return d;
}

static Status add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext) return ssl_error("make certificate extension " + std::string(OBJ_nid2sn(nid)));
  if (X509_add_ext(cert, ext.get(), -1) != 1) return ssl_error("add certificate extension");
  return Status::ok();
}

// Issues a certificate for `key` signed by `issuer_key` (self-signed when issuer is null).
Result<X509Ptr> issue(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                      int days, bool is_ca, const std::vector<std::string>& sans) {
  X509Ptr cert(X509_new());
  if (!cert) return ssl_error("allocate certificate");
  X509_set_version(cert.get(), X509_VERSION_3);
  BnPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))) {
    return ssl_error("make certificate serial number");
  }
  // Back-date by an hour so a client whose clock is slightly behind accepts a fresh certificate.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  if (is_ca) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("skiff"), -1, -1, 0);
  }
  X509* iss = issuer ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(iss));
  if (is_ca) {
    SKIFF_RETURN_IF_ERROR(add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:TRUE"));
    SKIFF_RETURN_IF_ERROR(
        add_ext(cert.get(), iss, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign"));
  } else {
    SKIFF_RETURN_IF_ERROR(add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:FALSE"));
    SKIFF_RETURN_IF_ERROR(
        add_ext(cert.get(), iss, NID_key_usage, "critical,digitalSignature,keyEncipherment"));
    SKIFF_RETURN_IF_ERROR(add_ext(cert.get(), iss, NID_ext_key_usage, "serverAuth"));
  }
  SKIFF_RETURN_IF_ERROR(add_ext(cert.get(), iss, NID_subject_key_identifier, "hash"));
  if (issuer) {
    SKIFF_RETURN_IF_ERROR(add_ext(cert.get(), iss, NID_authority_key_identifier, "keyid:always"));
  }
  if (!sans.empty()) {
    std::string v;
    for (const auto& s : sans) {
      if (!v.empty()) v += ",";
      v += canonical_ip(s).empty() ? "DNS:" + s : "IP:" + canonical_ip(s);
    }
    SKIFF_RETURN_IF_ERROR(add_ext(cert.get(), iss, NID_subject_alt_name, v));
  }
  if (X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) == 0) {
    return ssl_error("sign certificate " + cn);
  }
  return cert;
}

std::vector<std::string> sans_of(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS) {
      const ASN1_STRING* s = gn->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* s = gn->d.iPAddress;
      char buf[INET6_ADDRSTRLEN];
      int len = ASN1_STRING_length(s);
      int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (af && inet_ntop(af, ASN1_STRING_get0_data(s), buf, sizeof(buf))) out.emplace_back(buf);
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string random_token() {
  unsigned char raw[32];
  SKIFF_CHECK(RAND_bytes(raw, sizeof(raw)) == 1);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

Result<CertPair> ensure_self_signed(const std::string& dir, const std::string& name,
                                    const std::string& cn, const std::vector<std::string>& sans) {
  CertPair p{dir + "/" + name + ".crt", dir + "/" + name + ".key", false};
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::io("mkdir " + dir);
  if (exists(p.cert_file) && exists(p.key_file)) {
    auto cert = load_cert(p.cert_file);
    auto key = load_key(p.key_file);
    time_t soon = time(nullptr) + 30 * 86400;
    if (cert && key && X509_check_private_key(cert->get(), key->get()) == 1 &&
        X509_cmp_time(X509_get0_notAfter(cert->get()), &soon) > 0) {
      return p;
    }
    ERR_clear_error();
  }
  auto key = generate_key();
  if (!key) return key.status();
  auto cert = issue(cn, key->get(), nullptr, nullptr, 365, false, sans);
  if (!cert) return cert.status();
  auto kp = key_pem(key->get());
  if (!kp) return kp.status();
  auto cp = cert_pem(cert->get());
  if (!cp) return cp.status();
  SKIFF_RETURN_IF_ERROR(write_file_atomic(p.key_file, *kp, 0600));
  SKIFF_RETURN_IF_ERROR(write_file_atomic(p.cert_file, *cp, 0644));
  p.created = true;
  return p;
}

}  // namespace skiff::web::certs
