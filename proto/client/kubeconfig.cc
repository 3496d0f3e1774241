#include "proto/client/kubeconfig.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "proto/client/yaml.h"

namespace skiff::client {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io("open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::io("read " + path);
  return ss.str();
}

std::string resolve_path(const std::string& p, const std::string& base_dir) {
  if (p.empty() || p[0] == '/') return p;
  if (p.rfind("~/", 0) == 0) {
    if (const char* home = std::getenv("HOME")) return std::string(home) + p.substr(1);
  }
  return (fs::path(base_dir) / p).string();
}

// Finds the entry named `name` in a kubeconfig list such as `clusters` and returns its `key`
// member ("cluster", "user", "context").
const json* find_named(const json& root, const char* list, const std::string& name,
                       const char* key) {
  auto it = root.find(list);
  if (it == root.end() || !it->is_array()) return nullptr;
  for (const auto& e : *it) {
    if (e.is_object() && e.value("name", "") == name) {
      auto v = e.find(key);
      if (v != e.end() && v->is_object()) return &*v;
      static const json kEmpty = json::object();
      return &kEmpty;
    }
  }
  return nullptr;
}

std::string str(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

bool boolean(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string()) return it->get<std::string>() == "true";
  return false;
}

// "-data" (base64) wins over the file form, as in client-go.
Result<std::string> data_or_file(const json& o, const char* data_key, const char* file_key,
                                 const std::string& base_dir, const std::string& what) {
  std::string data = str(o, data_key);
  if (!data.empty()) {
    auto decoded = base64_decode(data);
    if (!decoded) return decoded.status().with_context(what + " " + data_key);
    return decoded;
  }
  std::string file = str(o, file_key);
  if (file.empty()) return std::string();
  auto content = read_file(resolve_path(file, base_dir));
  if (!content) return content.status().with_context(what + " " + file_key);
  return content;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

}  // namespace

std::string find_kubeconfig(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  std::error_code ec;
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    std::string list = env;
    // kubectl merges all files; we take the first one that exists.
    size_t pos = 0;
    while (pos <= list.size()) {
      size_t colon = list.find(':', pos);
      std::string p =
          list.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos);
      if (!p.empty() && fs::exists(p, ec)) return p;
      if (colon == std::string::npos) break;
      pos = colon + 1;
    }
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    std::string p = std::string(home) + "/.kube/config";
    if (fs::exists(p, ec)) return p;
  }
  if (fs::exists(kAdminKubeconfigPath, ec)) return kAdminKubeconfigPath;
  return "";
}

Result<KubeConfig> parse_kubeconfig(std::string_view yaml, const std::string& context,
                                    const std::string& base_dir) {
  auto docs = parse_yaml_documents(yaml);
  if (!docs) return docs.status();
  if (docs->empty() || !(*docs)[0].is_object()) {
    return Status::invalid("kubeconfig is empty or not a mapping");
  }
  const json& root = (*docs)[0];
  KubeConfig kc;
  kc.context = context.empty() ? str(root, "current-context") : context;
  if (kc.context.empty()) return Status::invalid("kubeconfig has no current-context");
  const json* ctx = find_named(root, "contexts", kc.context, "context");
  if (!ctx) return Status::invalid("context \"" + kc.context + "\" not found in kubeconfig");
  kc.namespace_ = str(*ctx, "namespace");

  std::string cluster_name = str(*ctx, "cluster");
  const json* cluster = find_named(root, "clusters", cluster_name, "cluster");
  if (!cluster) return Status::invalid("cluster \"" + cluster_name + "\" not found in kubeconfig");
  kc.server = str(*cluster, "server");
  if (kc.server.empty()) {
    return Status::invalid("cluster \"" + cluster_name + "\" has no server");
  }
  kc.tls_server_name = str(*cluster, "tls-server-name");
  kc.insecure_skip_tls_verify = boolean(*cluster, "insecure-skip-tls-verify");
  auto ca = data_or_file(*cluster, "certificate-authority-data", "certificate-authority", base_dir,
                         "cluster \"" + cluster_name + "\"");
  if (!ca) return ca.status();
  kc.ca_pem = std::move(*ca);

  std::string user_name = str(*ctx, "user");
  if (!user_name.empty()) {
    const json* user = find_named(root, "users", user_name, "user");
    if (!user) return Status::invalid("user \"" + user_name + "\" not found in kubeconfig");
    std::string what = "user \"" + user_name + "\"";
    kc.token = str(*user, "token");
    std::string token_file = str(*user, "tokenFile");
    if (kc.token.empty() && !token_file.empty()) {
      auto t = read_file(resolve_path(token_file, base_dir));
      if (!t) return t.status().with_context(what + " tokenFile");
      kc.token = trim(*t);
    }
    auto cert =
        data_or_file(*user, "client-certificate-data", "client-certificate", base_dir, what);
    if (!cert) return cert.status();
    kc.client_cert_pem = std::move(*cert);
    auto key = data_or_file(*user, "client-key-data", "client-key", base_dir, what);
    if (!key) return key.status();
    kc.client_key_pem = std::move(*key);
  }
  return kc;
}

Result<KubeConfig> load_kubeconfig(const std::string& path, const std::string& context) {
  auto text = read_file(path);
  if (!text) return text.status().with_context("load kubeconfig");
  std::string dir = fs::path(path).parent_path().string();
  auto kc = parse_kubeconfig(*text, context, dir.empty() ? "." : dir);
  if (!kc) return kc.status().with_context("kubeconfig " + path);
  kc->source = path;
  return kc;
}


}  // namespace skiff::client
