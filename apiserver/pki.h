// The API server's own PKI: a CA, a serving certificate it signs, the admin token and the admin
// kubeconfig, all created on first start under the data dir and reused afterwards.
//
// Layout under <pki_dir>: ca.crt, ca.key, apiserver.crt, apiserver.key, admin.token. Keys and
// the token are mode 0600. Files are written to a temporary name and renamed, so a crash never
// leaves half a key behind. Not thread-safe (called once at start-up).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace skiff::apiserver::pki {

struct PkiFiles {
  std::string ca_cert_file;
  std::string cert_file;   // serving certificate (PEM)
  std::string key_file;    // its private key (PEM)
  std::string ca_pem;      // the CA certificate's PEM text
  std::string admin_token; // the generated admin bearer token
  bool created_ca = false;
  bool created_cert = false;  // serving certificate (re)issued in this call
};

// The subject alternative names the serving certificate carries: localhost, 127.0.0.1, ::1, the
// host name, the in-cluster `kubernetes` service names, 10.96.0.1, then `extra` (deduplicated,
// in that order).
std::vector<std::string> serving_sans(const std::vector<std::string>& extra);

// Creates what is missing under `pki_dir` (made 0700 if absent): the CA (EC P-256, 10 years),
// the serving certificate (EC P-256, 1 year) with serving_sans(extra_sans), and the admin token.
// An existing serving certificate is reissued when its SANs differ from the wanted ones, when it
// is not signed by the CA, or when less than 30 days of validity remain. An unreadable or
// corrupt CA is an error, never silently replaced (clients trust it).
Result<PkiFiles> ensure_pki(const std::string& pki_dir, const std::vector<std::string>& extra_sans);

// Writes a kubeconfig (mode 0600) naming cluster, user and context "skiff": the CA data, the
// server URL ("https://127.0.0.1:6443") and user "admin" with `token`.
[[nodiscard]] Status write_kubeconfig(const std::string& path, const std::string& ca_pem,
                                      const std::string& server_url, const std::string& token);

// The SANs of a PEM certificate file, as text ("DNS:" / "IP:" prefixes dropped, IPs in
// canonical form). For tests and diagnostics.
Result<std::vector<std::string>> certificate_sans(const std::string& cert_file);

}  // namespace skiff::apiserver::pki
