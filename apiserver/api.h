// Api: the Kubernetes REST API on top of a Store — routing, verbs, admission (decode, default,
// validate), metadata rules, watch cache, discovery, OpenAPI stub, Tables and Status errors.
// The transport (http_server.h) calls it through the Handler interface. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "apiserver/http.h"

namespace skiff::store {
class Store;
}

namespace skiff::apiserver {

struct ApiOptions {
  store::Store* store = nullptr;       // not owned; outlives the Api
  std::string git_version = "v1.32.0"; // the Kubernetes version /version reports
  size_t watch_buffer_bytes = 4 << 20; // per-watcher bound before it is cut off (Stream does it)
  int64_t watch_cache_events = 10000;  // per-resource history window of the watch cache
  int bookmark_interval_ms = 5000;     // BOOKMARK cadence for watches that allow them
  std::string kubelet_token;           // presented to kubelets by the pods/log, pods/exec proxy
};

class Api : public Handler {
 public:
  // Creates the API over opts.store: makes the `default`, `kube-system` and `kube-public`
  // namespaces if absent and starts the watch cache. Error if the store fails.
  static std::unique_ptr<Api> create(const ApiOptions& opts, std::string* error);
  // Ends every open watch cleanly (their streams are closed) and refuses new ones. Idempotent.
  virtual void shutdown() = 0;
};

}  // namespace skiff::apiserver
