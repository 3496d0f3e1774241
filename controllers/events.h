// ApiEventSink: posts core/v1 Events for the controllers (source component
// "skiff-controller-manager") through a daemon::ApiWriter, so a sync never waits on it. Events
// about cluster-scoped objects (Nodes) go to the "default" namespace, as Kubernetes does.
//
// Thread-safe. A full queue (API server unreachable) drops events and counts them.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/daemon/api_writer.h"
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
  daemon::EventSource source_;
  std::atomic<uint64_t> seq_{0};
  daemon::ApiWriter writer_;
};

}  // namespace skiff::controllers
