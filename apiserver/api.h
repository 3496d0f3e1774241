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
  // Service address allocation (see README "Services"): ClusterIPs and NodePorts.
  std::string service_cluster_ip_range = "10.96.0.0/16";
  std::string service_node_port_range = "30000-32767";
  int kubernetes_service_interval_ms = 10000;  // repair cadence of the `kubernetes` Service
};

class Api : public Handler {
 public:
  // Creates the API over opts.store: makes the `default`, `kube-system` and `kube-public`
  // namespaces if absent and starts the watch cache. Error if the store fails.
  static std::unique_ptr<Api> create(const ApiOptions& opts, std::string* error);
  // Ends every open watch cleanly (their streams are closed) and refuses new ones. Idempotent.
  virtual void shutdown() = 0;
  // Creates the `kubernetes` Service in `default` (ClusterIP = the range's first address,
  // https 443/TCP -> `port`) and its Endpoints (`advertise_ip`:`port`), then repairs both every
  // kubernetes_service_interval_ms until shutdown(). Call once the server's port is known.
  virtual void start_kubernetes_service(const std::string& advertise_ip, int port) = 0;
};

// Whether `req` is a plain read or write of stored objects, which the transport may handle on
// its I/O thread (ServerOptions::run_inline): not a watch, and not a subresource that talks to a
// kubelet (log, exec, attach, portforward, proxy).
bool handled_quickly(const Request& req);

}  // namespace skiff::apiserver
