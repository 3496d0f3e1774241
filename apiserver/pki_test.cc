#include "apiserver/pki.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace pki = skiff::apiserver::pki;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/skiff-pki-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

mode_t mode_of(const std::string& p) {
  struct stat st {};
  stat(p.c_str(), &st);
  return st.st_mode & 0777;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

TEST_CASE("first start creates CA, serving cert and token; later starts reuse them", "[pki]") {
  TempDir t;
  std::string dir = t.path + "/pki";
  auto first = pki::ensure_pki(dir, {"api.example.test", "192.0.2.7"});
  REQUIRE(first.is_ok());
  CHECK(first->created_ca);
  CHECK(first->created_cert);
  CHECK(first->admin_token.size() == 64);
  CHECK(first->ca_pem.find("BEGIN CERTIFICATE") != std::string::npos);
  CHECK(mode_of(dir + "/ca.key") == 0600);
  CHECK(mode_of(dir + "/apiserver.key") == 0600);
  CHECK(mode_of(dir + "/admin.token") == 0600);
  CHECK(mode_of(dir) == 0700);

  auto sans = pki::certificate_sans(first->cert_file);
  REQUIRE(sans.is_ok());
  for (const char* want : {"localhost", "127.0.0.1", "::1", "kubernetes", "kubernetes.default",
                           "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                           "10.96.0.1", "api.example.test", "192.0.2.7"}) {
    INFO(want);
    CHECK(has(*sans, want));
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  CHECK(has(*sans, host));

  std::string cert_before = slurp(first->cert_file);
  auto second = pki::ensure_pki(dir, {"192.0.2.7", "api.example.test"});  // same set
  REQUIRE(second.is_ok());
  CHECK_FALSE(second->created_ca);
  CHECK_FALSE(second->created_cert);
  CHECK(second->admin_token == first->admin_token);
  CHECK(second->ca_pem == first->ca_pem);
  CHECK(slurp(second->cert_file) == cert_before);

  // A changed SAN list reissues the serving certificate under the same CA.
  auto third = pki::ensure_pki(dir, {"other.example.test"});
  REQUIRE(third.is_ok());
  CHECK_FALSE(third->created_ca);
  CHECK(third->created_cert);
  CHECK(third->ca_pem == first->ca_pem);
  auto sans3 = pki::certificate_sans(third->cert_file);
  REQUIRE(sans3.is_ok());
  CHECK(has(*sans3, "other.example.test"));
  CHECK_FALSE(has(*sans3, "api.example.test"));
}

TEST_CASE("a half-present CA is an error, not silently replaced", "[pki]") {
  TempDir t;
  std::string dir = t.path + "/pki";
  REQUIRE(pki::ensure_pki(dir, {}).is_ok());
  fs::remove(dir + "/ca.key");
  auto r = pki::ensure_pki(dir, {});
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("ca.key") != std::string::npos);
}

TEST_CASE("a serving cert not signed by the CA is reissued", "[pki]") {
  TempDir a, b;
  auto pa = pki::ensure_pki(a.path + "/pki", {});
  auto pb = pki::ensure_pki(b.path + "/pki", {});
  REQUIRE(pa.is_ok());
  REQUIRE(pb.is_ok());
  fs::copy_file(pb->cert_file, pa->cert_file, fs::copy_options::overwrite_existing);
  fs::copy_file(pb->key_file, pa->key_file, fs::copy_options::overwrite_existing);
  auto again = pki::ensure_pki(a.path + "/pki", {});
  REQUIRE(again.is_ok());
  CHECK(again->created_cert);
}

TEST_CASE("kubeconfig", "[pki]") {
  TempDir t;
  auto p = pki::ensure_pki(t.path + "/pki", {});
  REQUIRE(p.is_ok());
  std::string path = t.path + "/admin.kubeconfig";
  REQUIRE(pki::write_kubeconfig(path, p->ca_pem, "https://127.0.0.1:6443", p->admin_token)
              .is_ok());
  CHECK(mode_of(path) == 0600);
  std::string y = slurp(path);
  CHECK(y.find("server: https://127.0.0.1:6443\n") != std::string::npos);
  CHECK(y.find("token: " + p->admin_token + "\n") != std::string::npos);
  CHECK(y.find("certificate-authority-data: LS0tLS1CRUdJTi") != std::string::npos);
  CHECK(y.find("current-context: skiff") != std::string::npos);
  CHECK(y.find("- name: admin") != std::string::npos);
}
