// Digests, atomic files, config parsing: small helpers of the image store.
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "kubelet/images/internal.h"

namespace skiff::images::internal {

using nlohmann::json;

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::update(const void* data, size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}
std::string Sha256::digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

std::string sha256_digest(std::string_view data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.digest();
}

Result<std::string> sha256_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::io("open " + path);
  Sha256 h;
  static thread_local std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::io("read " + path);
      ::close(fd);
      return st;
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return h.digest();
}

bool valid_digest(std::string_view d) {
  if (d.size() != 71 || d.substr(0, 7) != "sha256:") return false;
  for (char c : d.substr(7)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        remove_tree(path + "/" + e->d_name);
      }
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

namespace {
std::vector<std::string> string_list(const json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}
}  // namespace

Result<ImageConfig> parse_config(std::string_view text, const std::string& what,
                                 std::vector<std::string>* diff_ids) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::invalid(what + ": image config is not a JSON object");
  ImageConfig c;
  if (auto it = j.find("config"); it != j.end() && it->is_object()) {
    const json& cj = *it;
    if (auto e = cj.find("Entrypoint"); e != cj.end()) c.entrypoint = string_list(*e);
    if (auto e = cj.find("Cmd"); e != cj.end()) c.cmd = string_list(*e);
    if (auto e = cj.find("Env"); e != cj.end()) c.env = string_list(*e);
    if (auto e = cj.find("WorkingDir"); e != cj.end() && e->is_string()) {
      c.working_dir = e->get<std::string>();
    }
    if (auto e = cj.find("User"); e != cj.end() && e->is_string()) c.user = e->get<std::string>();
    if (auto e = cj.find("Labels"); e != cj.end() && e->is_object()) {
      for (const auto& [k, v] : e->items()) {
        if (v.is_string()) c.labels[k] = v.get<std::string>();
      }
    }
  }
  diff_ids->clear();
  auto rootfs = j.find("rootfs");
  if (rootfs == j.end() || !rootfs->is_object() || !rootfs->contains("diff_ids") ||
      !(*rootfs)["diff_ids"].is_array()) {
    return Status::invalid(what + ": image config has no rootfs.diff_ids");
  }
  for (const auto& d : (*rootfs)["diff_ids"]) {
    if (!d.is_string() || !valid_digest(d.get<std::string>())) {
      return Status::invalid(what + ": image config has a bad diff_id " + d.dump());
    }
    diff_ids->push_back(d.get<std::string>());
  }
  return c;
}

}  // namespace skiff::images::internal
