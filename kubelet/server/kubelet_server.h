// KubeletServer: the kubelet's HTTPS endpoint (default port 10250), reached by the API server's
// pods/log and pods/exec proxy, and by monitoring.
//
//   GET /healthz                                  "ok" (no auth)
//   GET /metrics                                  Prometheus text from Options::metrics
//   GET /containerLogs/{ns}/{pod}/{container}     ?follow ?previous ?tailLines ?timestamps
//                                                 ?sinceSeconds ?limitBytes (as the kubelet)
//   GET /exec/{ns}/{pod}/{container}?command=..&stdin=..&stdout=..&stderr=..&tty=..
//        WebSocket upgrade, subprotocols v5/v4.channel.k8s.io (Kubernetes' remotecommand
//        channel protocol: 0 stdin, 1 stdout, 2 stderr, 3 error/status JSON, 4 resize, 255 close)
//
// Everything but /healthz needs `Authorization: Bearer <client_token>` (the token the API server
// presents). Thread-safe; start/stop from one thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace skiff::runtime {
class ContainerRuntime;
}

namespace skiff::kubelet {

struct LocatedContainer {
  std::string container_id;       // current (or last) instance; "" when never started
  std::string log_path;           // its log file
  std::string previous_log_path;  // the instance before it ("" when none)
  bool running = false;
};

// Implemented by the kubelet core: maps a pod's container to what runs on this node.
class PodLocator {
 public:
  virtual ~PodLocator() = default;
  // `container` empty: the pod's only container (Invalid, listing the names, when it has several).
  // NotFound when the pod or container is unknown on this node.
  [[nodiscard]] virtual Result<LocatedContainer> locate(const std::string& ns,
                                                        const std::string& pod,
                                                        const std::string& container) = 0;
};

class KubeletServer {
 public:
  struct Options {
    std::string listen = "0.0.0.0:10250";
    std::string cert_file;   // empty: a self-signed pair is made under cert_dir
    std::string key_file;
    std::string cert_dir;
    std::string client_token;  // required bearer token; empty refuses all but /healthz
    std::function<std::string()> metrics;
  };
  KubeletServer(Options opts, PodLocator& pods, runtime::ContainerRuntime& runtime);
  ~KubeletServer();
  [[nodiscard]] Status start();  // binds; the bound port is then port()
  int port() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skiff::kubelet
