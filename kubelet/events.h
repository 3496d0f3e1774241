// EventRecorder: posts core/v1 Events about pods (source component "kubelet", host = node)
// from a background thread, so recording never slows a pod's sync. Repeats of the same
// (object, reason, message) within the recorder's memory bump `count` and `lastTimestamp` of the
// first Event instead of creating new ones, as Kubernetes' event correlator does.
//
// Thread-safe. A full queue (API server unreachable) drops events and counts the drops.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proto/client/api_client.h"

namespace skiff::kubelet {

struct PodRef {
  std::string ns, name, uid;
};

class EventRecorder {
 public:
  EventRecorder(std::shared_ptr<client::ApiClient> api, std::string node_name);
  ~EventRecorder();  // stop()

  // `field_path` is "spec.containers{name}" / "spec.initContainers{name}" or "".
  void record(const PodRef& pod, const std::string& field_path, bool warning,
              const std::string& reason, const std::string& message);
  void stop();
  int64_t dropped() const;

 private:
  struct Item {
    PodRef pod;
    std::string field_path, reason, message;
    bool warning = false;
    std::chrono::system_clock::time_point at;
  };
  void run();
  void post(const Item& it);

  std::shared_ptr<client::ApiClient> api_;
  std::string node_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  int64_t dropped_ = 0;
  struct Seen {
    std::string name;
    int32_t count = 0;
  };
  std::map<std::string, Seen> seen_;  // only touched by the thread
  uint64_t seq_ = 0;
  std::thread thread_;
};

}  // namespace skiff::kubelet
