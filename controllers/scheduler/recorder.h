// Recorder: the scheduler's writes that nobody waits for — core/v1 Events (source
// "default-scheduler" or the --scheduler-name) and the PodScheduled status patches — done on
// one background thread (a daemon::ApiWriter) so the scheduling loop never waits on the API.
//
// Thread-safe; never blocks. A full queue (API server slow or gone) drops and counts.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "common/daemon/api_writer.h"

namespace skiff::scheduler {

class Recorder {
 public:
  Recorder(std::shared_ptr<client::ApiClient> api, std::string component, std::string instance,
           size_t max_queued = 10'000);
  ~Recorder();  // stop()

  // An Event about a pod (`pod` needs metadata.name/namespace/uid).
  void pod_event(const nlohmann::json& pod, bool warning, const std::string& reason,
                 const std::string& message);
  // Sets the pod's PodScheduled condition to False/Unschedulable with `message` (a strategic
  // merge patch of its status).
  void pod_unschedulable(const std::string& ns, const std::string& name,
                         const std::string& message);
  // Sets the pod's PodScheduled condition to True (after a binding, when it was False).
  void pod_scheduled(const std::string& ns, const std::string& name);
  // Posts what is queued (at most a few), then ends the thread. Idempotent.
  void stop();
  int64_t dropped() const;
  int64_t failed() const;

 private:
  void patch_condition(const std::string& ns, const std::string& name, nlohmann::json condition);

  daemon::EventSource source_;
  std::atomic<uint64_t> seq_{0};
  daemon::ApiWriter writer_;
};

}  // namespace skiff::scheduler
