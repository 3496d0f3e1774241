#include "apiserver/pki.h"

#include "common/base64.h"
#include "common/http/certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

namespace skiff::apiserver::pki {
namespace {

using namespace skiff::web::certs;


constexpr int kCaDays = 3650;
constexpr int kServingDays = 365;
constexpr int kRenewBeforeDays = 30;

// Why the existing serving certificate must be reissued, or "" if it is good.
std::string serving_cert_problem(X509* cert, EVP_PKEY* key, EVP_PKEY* ca_key,
                                 const std::vector<std::string>& want) {
  if (X509_check_private_key(cert, key) != 1) {
    ERR_clear_error();
    return "its key does not match";
  }
  if (X509_verify(cert, ca_key) != 1) {
    ERR_clear_error();
    return "it is not signed by the CA";
  }
  time_t soon = time(nullptr) + static_cast<time_t>(kRenewBeforeDays) * 86400;
  if (X509_cmp_time(X509_get0_notAfter(cert), &soon) <= 0) return "it expires within 30 days";
  std::set<std::string> have, wanted;
  for (const auto& s : sans_of(cert)) have.insert(normalize_san(s));
  for (const auto& s : want) wanted.insert(normalize_san(s));
  if (have != wanted) return "its subject alternative names differ from the wanted ones";
  return "";
}

Status ensure_ca(const std::string& dir, PkiFiles& f, PkeyPtr& ca_key, X509Ptr& ca_cert) {
  std::string key_file = dir + "/ca.key";
  f.ca_cert_file = dir + "/ca.crt";
  bool have_key = exists(key_file), have_cert = exists(f.ca_cert_file);
  if (have_key != have_cert) {
    return Status::invalid("incomplete CA in " + dir + ": " +
                           (have_key ? f.ca_cert_file : key_file) +
                           " is missing; restore it or remove the pki directory to start over "
                           "(clients will then need the new admin kubeconfig)");
  }
  if (have_key) {
    auto k = load_key(key_file);
    if (!k) return k.status();
    auto c = load_cert(f.ca_cert_file);
    if (!c) return c.status();
    if (X509_check_private_key(c->get(), k->get()) != 1) {
      ERR_clear_error();
      return Status::invalid(f.ca_cert_file + " does not match " + key_file);
    }
    ca_key = std::move(*k);
    ca_cert = std::move(*c);
  } else {
    auto k = generate_key();
    if (!k) return k.status();
    auto c = issue("skiff-ca", k->get(), nullptr, nullptr, kCaDays, true, {});
    if (!c) return c.status();
    auto kp = key_pem(k->get());
    if (!kp) return kp.status();
    auto cp = cert_pem(c->get());
    if (!cp) return cp.status();
    SKIFF_RETURN_IF_ERROR(write_file_atomic(key_file, *kp, 0600));
    SKIFF_RETURN_IF_ERROR(write_file_atomic(f.ca_cert_file, *cp, 0644));
    ca_key = std::move(*k);
    ca_cert = std::move(*c);
    f.created_ca = true;
  }
  auto pem = cert_pem(ca_cert.get());
  if (!pem) return pem.status();
  f.ca_pem = *pem;
  return Status::ok();
}

Status ensure_serving(const std::string& dir, const std::vector<std::string>& sans, PkiFiles& f,
                      EVP_PKEY* ca_key, X509* ca_cert) {
  f.cert_file = dir + "/apiserver.crt";
  f.key_file = dir + "/apiserver.key";
  if (exists(f.cert_file) && exists(f.key_file)) {
    auto k = load_key(f.key_file);
    auto c = load_cert(f.cert_file);
    std::string problem = !k ? k.status().message()
                          : !c ? c.status().message()
                               : serving_cert_problem(c->get(), k->get(), ca_key, sans);
    if (problem.empty()) return Status::ok();
    spdlog::info("reissuing the serving certificate {}: {}", f.cert_file, problem);
  }
  auto k = generate_key();
  if (!k) return k.status();
  auto c = issue("skiff-apiserver", k->get(), ca_cert, ca_key, kServingDays, false, sans);
  if (!c) return c.status();
  auto kp = key_pem(k->get());
  if (!kp) return kp.status();
  auto cp = cert_pem(c->get());
  if (!cp) return cp.status();
  // Key first: a crash between the two renames leaves a mismatched pair, which the next start
  // detects ("its key does not match") and reissues.
  SKIFF_RETURN_IF_ERROR(write_file_atomic(f.key_file, *kp, 0600));
  SKIFF_RETURN_IF_ERROR(write_file_atomic(f.cert_file, *cp, 0644));
  f.created_cert = true;
  return Status::ok();
}

Status ensure_token(const std::string& dir, PkiFiles& f) {
  std::string path = dir + "/admin.token";
  if (exists(path)) {
    auto t = read_file(path);
    if (!t) return t.status();
    std::string tok = *t;
    while (!tok.empty() && (tok.back() == '\n' || tok.back() == '\r' || tok.back() == ' '))
      tok.pop_back();
    if (tok.size() >= 16) {
      f.admin_token = tok;
      return Status::ok();
    }
    spdlog::warn("{} holds no usable token (under 16 characters); generating a new one", path);
  }
  f.admin_token = random_token();
  return write_file_atomic(path, f.admin_token + "\n", 0600);
}

}  // namespace

std::vector<std::string> serving_sans(const std::vector<std::string>& extra) {
  std::vector<std::string> out = {"localhost", "127.0.0.1", "::1"};
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') out.emplace_back(host);
  for (const char* s : {"kubernetes", "kubernetes.default", "kubernetes.default.svc",
                        "kubernetes.default.svc.cluster.local", "10.96.0.1"}) {
    out.emplace_back(s);
  }
  for (const auto& s : extra) {
    if (!s.empty()) out.push_back(s);
  }
  std::vector<std::string> dedup;
  std::set<std::string> seen;
  for (const auto& s : out) {
    if (seen.insert(normalize_san(s)).second) dedup.push_back(s);
  }
  return dedup;
}

Result<PkiFiles> ensure_pki(const std::string& pki_dir, const std::vector<std::string>& extra) {
  if (::mkdir(pki_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::io("create PKI directory " + pki_dir);
  }
  PkiFiles f;
  PkeyPtr ca_key;
  X509Ptr ca_cert;
  SKIFF_RETURN_IF_ERROR(ensure_ca(pki_dir, f, ca_key, ca_cert));
  SKIFF_RETURN_IF_ERROR(
      ensure_serving(pki_dir, serving_sans(extra), f, ca_key.get(), ca_cert.get()));
  SKIFF_RETURN_IF_ERROR(ensure_token(pki_dir, f));
  return f;
}

Status write_kubeconfig(const std::string& path, const std::string& ca_pem,
                        const std::string& server_url, const std::string& token) {
  std::string y;
  y += "apiVersion: v1\n";
  y += "kind: Config\n";
  y += "clusters:\n";
  y += "- name: skiff\n";
  y += "  cluster:\n";
  y += "    certificate-authority-data: " + base64_encode(ca_pem) + "\n";
  y += "    server: " + server_url + "\n";
  y += "users:\n";
  y += "- name: admin\n";
  y += "  user:\n";
  y += "    token: " + token + "\n";
  y += "contexts:\n";
  y += "- name: skiff\n";
  y += "  context:\n";
  y += "    cluster: skiff\n";
  y += "    user: admin\n";
  y += "    namespace: default\n";
  y += "current-context: skiff\n";
  y += "preferences: {}\n";
  return write_file_atomic(path, y, 0600);
}

Result<std::vector<std::string>> certificate_sans(const std::string& cert_file) {
  auto c = load_cert(cert_file);
  if (!c) return c.status();
  return sans_of(c->get());
}

}  // namespace skiff::apiserver::pki
