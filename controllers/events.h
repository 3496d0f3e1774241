// ApiEventSink: posts core/v1 Events for the controllers (source component
// "skiff-controller-manager") from a background thread, so a sync never waits on it. Events
// about cluster-scoped objects (Nodes) go to the "default" namespace, as Kubernetes does.
//
// Thread-safe. A full queue (API server unreachable) drops events and counts them.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "controllers/controller.h"

namespace skiff::controllers {

class ApiEventSink : public EventSink {
 public:
  ApiEventSink(std::shared_ptr<client::ApiClient> api, std::string component, std::string instance);
  ~ApiEventSink() override;  // stop()

  void event(const json& obj, const std::string& kind, bool warning, const std::string& reason,
             const std::string& message) override;
  // Posts what is queued (bounded wait), then ends the thread. Idempotent.
  void stop();
  int64_t dropped() const;

 private:
  void run();

  std::shared_ptr<client::ApiClient> api_;
  std::string component_, instance_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<json> queue_;  // ready-to-post Event objects
  bool stopping_ = false;
  int64_t dropped_ = 0;
  uint64_t seq_ = 0;
  std::thread thread_;
};

}  // namespace skiff::controllers
