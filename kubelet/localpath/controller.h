// LocalPathController: runs the node's Provisioner (provisioner.h) against the API server.
// Informers on PersistentVolumeClaims (all namespaces) and PersistentVolumes enqueue keys
// ("pvc/<ns>/<name>", "pv/<name>"); one worker thread syncs them; a failed sync is retried with
// the work queue's rate limit (5 ms doubling to 5 min); every `resync_period` every cached
// object is queued again so nothing waits on an event that was missed.
//
// Events on PVCs and PVs carry source component "skiff.io/local-path_<node>", like an external
// provisioner's. Thread-safe start()/stop().
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "kubelet/localpath/provisioner.h"
#include "proto/client/informer.h"
#include "proto/client/workqueue.h"

namespace skiff::localpath {

struct ControllerOptions {
  ProvisionerOptions provisioner;
  std::chrono::seconds resync_period{30};
};

class LocalPathController {
 public:
  LocalPathController(std::shared_ptr<client::ApiClient> api, ControllerOptions opts);
  ~LocalPathController();  // stop()
  LocalPathController(const LocalPathController&) = delete;
  LocalPathController& operator=(const LocalPathController&) = delete;

  // Starts the informers and the worker; returns at once.
  void start();
  // Stops the worker and informers. Idempotent.
  void stop();

 private:
  class ApiStorage;
  void run(std::stop_token stop);
  void resync_loop(std::stop_token stop);
  void enqueue_all();

  std::shared_ptr<client::ApiClient> api_;
  ControllerOptions opts_;
  std::unique_ptr<client::Informer> pvcs_, pvs_;
  std::unique_ptr<ApiStorage> storage_;
  std::unique_ptr<Provisioner> provisioner_;
  std::unique_ptr<client::WorkQueue> queue_;
  std::jthread worker_, resync_;
};

}  // namespace skiff::localpath
