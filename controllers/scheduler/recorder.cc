#include "controllers/scheduler/recorder.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include "proto/client/api_client.h"
#include "proto/event.h"
#include "proto/pod.h"
#include "proto/registry.h"
#include "proto/time.h"

namespace skiff::scheduler {

namespace {
std::string meta(const nlohmann::json& obj, const char* field) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto f = m->find(field);
  return f != m->end() && f->is_string() ? f->get<std::string>() : "";
}
std::string now_string() {
  auto now = std::chrono::system_clock::now();
  return proto::Time::at(std::chrono::time_point_cast<std::chrono::seconds>(now)).to_string();
}
}  // namespace

Recorder::Recorder(std::shared_ptr<client::ApiClient> api, std::string component,
                   std::string instance, size_t max_queued)
    : api_(std::move(api)),
      component_(std::move(component)),
      instance_(std::move(instance)),
      max_queued_(max_queued) {
  thread_ = std::thread([this] { run(); });
}

Recorder::~Recorder() { stop(); }

void Recorder::push(Task t) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  if (queue_.size() >= max_queued_) {
    ++dropped_;
    return;
  }
  queue_.push_back(std::move(t));
  cv_.notify_one();
}

void Recorder::pod_event(const nlohmann::json& pod, bool warning, const std::string& reason,
                         const std::string& message) {
  std::string name = meta(pod, "name"), ns = meta(pod, "namespace");
  if (ns.empty()) ns = "default";
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  char suffix[48];
  {
    std::lock_guard lock(mu_);
    std::snprintf(suffix, sizeof suffix, ".%llx%03llx", static_cast<unsigned long long>(nanos),
                  static_cast<unsigned long long>(++seq_ & 0xfff));
  }
  std::string when = now_string();
  nlohmann::json involved = {
      {"kind", "Pod"}, {"apiVersion", "v1"}, {"name", name}, {"namespace", ns}};
  if (auto uid = meta(pod, "uid"); !uid.empty()) involved["uid"] = uid;
  nlohmann::json ev = {{"apiVersion", "v1"},
                       {"kind", "Event"},
                       {"metadata", {{"name", name + suffix}, {"namespace", ns}}},
                       {"involvedObject", std::move(involved)},
                       {"reason", reason},
                       {"message", message},
                       {"type", warning ? "Warning" : "Normal"},
                       {"source", {{"component", component_}}},
                       {"firstTimestamp", when},
                       {"lastTimestamp", when},
                       {"count", 1},
                       {"reportingComponent", component_},
                       {"reportingInstance", instance_}};
  push([ev = std::move(ev), ns](client::ApiClient& api) {
    static const proto::ResourceType type = proto::event_resource();
    auto r = api.create(type, ns, ev);
    if (r.is_ok()) return true;
    spdlog::warn("posting event {} about pod {}/{}: {}", ev["reason"].get<std::string>(), ns,
                 ev["involvedObject"]["name"].get<std::string>(), r.status().to_string());
    return false;
  });
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
  push([patch = std::move(patch), ns, name, what](client::ApiClient& api) {
    static const proto::ResourceType type = proto::pod_resource();
    auto r = api.patch(type, ns, name, patch, client::PatchType::kStrategic, "status");
    if (r.is_ok() || r.status().code() == Code::kNotFound) return true;  // gone: nothing to say
    spdlog::warn("{} on pod {}/{}: {}", what, ns, name, r.status().to_string());
    return false;
  });
}

void Recorder::run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and drained
    Task t = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    bool ok = t(*api_);
    lock.lock();
    if (!ok) ++failed_;
  }
}

void Recorder::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    // Bounded: a few queued writes are worth delaying the shutdown for, not thousands.
    while (queue_.size() > 10) {
      queue_.pop_back();
      ++dropped_;
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t Recorder::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}
int64_t Recorder::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

}  // namespace skiff::scheduler
