// ControllerManager: runs the controllers of skiff-controller-manager. It owns the shared
// informers (one per resource type), the event sink, the leader election and the HTTP endpoint
// (/healthz, /metrics on plain HTTP).
//
// With leader election on, the controllers (and their informers) start only once this process
// holds the Lease, and stop when it loses it; run() then returns 1 so the process exits and is
// restarted, as kube-controller-manager does. A stop request (SIGTERM) stops the controllers,
// releases the Lease and makes run() return 0.
//
// Thread-safety: add() before run(); metrics_text() and healthy() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "controllers/controller.h"

namespace skiff::controllers {

struct ManagerOptions {
  bool leader_elect = true;
  std::chrono::milliseconds lease_duration{10'000};  // as the flags' defaults (daemon/flags.h)
  std::chrono::milliseconds renew_deadline{8'000};
  std::chrono::milliseconds retry_period{2'000};
  std::string lease_namespace = "kube-system";
  std::string lease_name = "skiff-controller-manager";
  std::string identity;  // REQUIRED
  std::chrono::milliseconds informer_sync_timeout{60'000};
};

class ControllerManager {
 public:
  ControllerManager(std::shared_ptr<client::ApiClient> api, ManagerOptions opts);
  ~ControllerManager();

  void add(std::unique_ptr<Controller> c);
  // The client for the Lease (default: the controllers' client). Give it short request
  // timeouts so a hung API server cannot hold a renewal past the renew deadline, and its own
  // connections so renewals never queue behind controller traffic.
  void set_lease_client(std::shared_ptr<client::ApiClient> api) { lease_api_ = std::move(api); }
  // Blocks until `stop` (returns 0) or until leadership is lost or start-up fails (returns 1).
  int run(std::stop_token stop);

  // Prometheus text: leader status, per-controller work queue depth, retries, syncs and sync
  // time.
  std::string metrics_text() const;
  bool is_leader() const;

 private:
  class Informers;
  // Runs the controllers until `stop`. false when they could not start.
  bool run_controllers(std::stop_token stop);

  std::shared_ptr<client::ApiClient> api_, lease_api_;
  ManagerOptions opts_;
  std::vector<std::unique_ptr<Controller>> controllers_;
  std::unique_ptr<EventSink> events_;
  std::atomic<bool> leading_{false};
};

}  // namespace skiff::controllers
