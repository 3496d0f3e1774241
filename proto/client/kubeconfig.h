// KubeConfig: where the API server is and how to authenticate to it, read from a kubeconfig
// file (the format kubectl uses) and resolved for one context.
//
// File resolution order (find_kubeconfig): an explicit path (--kubeconfig), the first file of
// $KUBECONFIG, ~/.kube/config, then the admin kubeconfig the API server writes
// (/var/lib/skiff/apiserver/admin.kubeconfig). Relative file references inside a kubeconfig
// (certificate-authority, tokenFile, ...) are relative to the kubeconfig's directory, as in
// kubectl. Value type; pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/base64.h"
#include "common/status.h"

namespace skiff::client {

inline constexpr const char* kAdminKubeconfigPath = "/var/lib/skiff/apiserver/admin.kubeconfig";

struct KubeConfig {
  std::string source;   // the file it came from ("" when built from flags only)
  std::string context;  // the context used
  std::string server;   // "https://127.0.0.1:6443"
  std::string tls_server_name;
  std::string ca_pem;  // CA certificate(s), PEM: from certificate-authority-data or -file
  bool insecure_skip_tls_verify = false;
  std::string token;            // bearer token (tokenFile already read)
  std::string client_cert_pem;  // client-certificate(-data)
  std::string client_key_pem;   // client-key(-data)
  std::string namespace_;       // the context's namespace, "" when not set
};

// The kubeconfig file to use: `explicit_path` when not empty, else $KUBECONFIG's first entry,
// else ~/.kube/config if it exists, else the admin kubeconfig. Returns "" when none exists
// (and none was named explicitly).
std::string find_kubeconfig(const std::string& explicit_path);

// Parses kubeconfig YAML text and resolves `context` (the current-context when empty).
// `base_dir` anchors relative file paths. On failure: Invalid naming the missing or malformed
// entry (e.g. `context "prod" not found`), or the error reading a referenced file.
[[nodiscard]] Result<KubeConfig> parse_kubeconfig(std::string_view yaml,
                                                  const std::string& context = "",
                                                  const std::string& base_dir = ".");

// Reads and parses a kubeconfig file. On failure: the read error or parse error, prefixed
// with the file name.
[[nodiscard]] Result<KubeConfig> load_kubeconfig(const std::string& path,
                                                 const std::string& context = "");

}  // namespace skiff::client
