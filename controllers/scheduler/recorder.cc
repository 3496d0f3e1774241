#include "controllers/scheduler/recorder.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "proto/client/api_client.h"
#include "proto/pod.h"
#include "proto/registry.h"
#include "proto/time.h"

namespace skiff::scheduler {

namespace {
std::string now_string() {
  auto now = std::chrono::system_clock::now();
  return proto::Time::at(std::chrono::time_point_cast<std::chrono::seconds>(now)).to_string();
}
}  // namespace

Recorder::Recorder(std::shared_ptr<client::ApiClient> api, std::string component,
                   std::string instance, size_t max_queued)
    : source_{std::move(component), std::move(instance)}, writer_(std::move(api), max_queued) {}

Recorder::~Recorder() { stop(); }

void Recorder::pod_event(const nlohmann::json& pod, bool warning, const std::string& reason,
                         const std::string& message) {
  writer_.post_event(daemon::make_event(pod, "Pod", warning, reason, message, source_,
                                        std::chrono::system_clock::now(), ++seq_));
}

void Recorder::pod_unschedulable(const std::string& ns, const std::string& name,
                                 const std::string& message) {
  patch_condition(ns, name,
                  {{"type", "PodScheduled"},
                   {"status", "False"},
                   {"reason", "Unschedulable"},
                   {"message", message},
                   {"lastProbeTime", nullptr},
                   {"lastTransitionTime", now_string()}});
}

void Recorder::pod_scheduled(const std::string& ns, const std::string& name) {
  // reason and message are cleared explicitly: a strategic merge keeps fields not mentioned.
  patch_condition(ns, name,
                  {{"type", "PodScheduled"},
                   {"status", "True"},
                   {"reason", nullptr},
                   {"message", nullptr},
                   {"lastProbeTime", nullptr},
                   {"lastTransitionTime", now_string()}});
}

void Recorder::patch_condition(const std::string& ns, const std::string& name,
                               nlohmann::json condition) {
  std::string what = "setting PodScheduled=" + condition["status"].get<std::string>();
  nlohmann::json patch = {
      {"status", {{"conditions", nlohmann::json::array({std::move(condition)})}}}};
  writer_.push([patch = std::move(patch), ns, name, what](client::ApiClient& api) {
    static const proto::ResourceType type = proto::pod_resource();
    auto r = api.patch(type, ns, name, patch, client::PatchType::kStrategic, "status");
    if (r.is_ok() || r.status().code() == Code::kNotFound) return true;  // gone: nothing to say
    spdlog::warn("{} on pod {}/{}: {}", what, ns, name, r.status().to_string());
    return false;
  });
}

void Recorder::stop() { writer_.stop(); }

int64_t Recorder::dropped() const { return writer_.dropped(); }

int64_t Recorder::failed() const { return writer_.failed(); }

}  // namespace skiff::scheduler
