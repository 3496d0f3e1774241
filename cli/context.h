// What every skiffctl command shares: the global flags, the API connection made from them, the
// namespace to use, error printing the way kubectl prints it, and manifest reading.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "proto/client/api_client.h"
#include "proto/registry.h"

namespace skiff::cli {

using json = nlohmann::json;

struct GlobalFlags {
  std::string kubeconfig;
  std::string context;
  std::string server;
  std::string token;
  std::string certificate_authority;
  bool insecure_skip_tls_verify = false;
  std::string namespace_;
  bool all_namespaces = false;
  int request_timeout_s = 0;
};

// Table responses as kubectl asks for them.
inline constexpr const char* kTableAccept =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
    "g=meta.k8s.io,application/json";

struct Context {
  GlobalFlags flags;
  std::istream* in = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  std::string namespace_ = "default";  // resolved: -n, then the kubeconfig context, then default
  bool namespace_explicit = false;
  std::shared_ptr<client::RestClient> rest;
  std::unique_ptr<client::ApiClient> api;

  // Builds the client from the flags and kubeconfig. On failure prints `error: ...` and
  // returns false.
  bool connect();

  // Resolves a user-typed resource name ("po", "deploy", "services"); prints kubectl's error
  // and returns nullptr when unknown.
  const proto::ResourceType* resolve(const std::string& name);

  // Prints a server error as kubectl does ("Error from server (NotFound): ...");
  // `doing` is e.g. `error when creating "web.yaml": ` (may be empty).
  void print_error(const client::Response& r, const std::string& doing = "");
  // Prints a transport or local error.
  void print_error(const Status& s);

  // Namespace for an object of type t in a manifest: its own, else the default. Returns "" for
  // cluster-scoped types.
  std::string namespace_for(const proto::ResourceType& t, const json& obj) const;
};

// One object read from a manifest source.
struct Manifest {
  std::string source;  // file name, or "STDIN"
  json object;
};

// Reads -f arguments: files, directories (their .yaml/.yml/.json files, sorted, not
// recursive), or "-" for stdin; YAML multi-document or JSON; `kind: List` (any *List kind
// with items) is flattened.
[[nodiscard]] Result<std::vector<Manifest>> read_manifests(const std::vector<std::string>& paths,
                                                           std::istream& in);

}  // namespace skiff::cli
