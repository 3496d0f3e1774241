#include "kubelet/events.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "proto/event.h"
#include "proto/time.h"

namespace skiff::kubelet {

namespace {
constexpr size_t kMaxQueue = 1000;
constexpr size_t kMaxSeen = 4096;
}  // namespace

EventRecorder::EventRecorder(std::shared_ptr<client::ApiClient> api, std::string node_name)
    : api_(std::move(api)), node_(std::move(node_name)), thread_([this] { run(); }) {}

EventRecorder::~EventRecorder() { stop(); }

void EventRecorder::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t EventRecorder::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void EventRecorder::record(const PodRef& pod, const std::string& field_path, bool warning,
                           const std::string& reason, const std::string& message) {
  if (warning)
    spdlog::warn("event {}/{} {}: {}", pod.ns, pod.name, reason, message);
  else
    spdlog::debug("event {}/{} {}: {}", pod.ns, pod.name, reason, message);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    if (queue_.size() >= kMaxQueue) {
      ++dropped_;
      return;
    }
    queue_.push_back({pod, field_path, reason, message, warning, std::chrono::system_clock::now()});
  }
  cv_.notify_one();
}

void EventRecorder::run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued was posted
    Item it = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    post(it);
    lock.lock();
  }
}

void EventRecorder::post(const Item& it) {
  auto when = proto::Time::at(std::chrono::time_point_cast<std::chrono::seconds>(it.at));
  std::string key = it.pod.uid + "\x1f" + it.field_path + "\x1f" + it.reason + "\x1f" + it.message;
  auto seen = seen_.find(key);
  if (seen != seen_.end()) {
    int32_t count = seen->second.count + 1;
    proto::json patch = {{"count", count}, {"lastTimestamp", when.to_string()}};
    auto r = api_->patch(proto::event_resource(), it.pod.ns, seen->second.name, patch,
                         client::PatchType::kMerge);
    if (r.is_ok()) {
      seen->second.count = count;
      return;
    }
    seen_.erase(seen);  // gone (expired, deleted): create a fresh one
  }
  proto::Event ev;
  ev.type_meta = {"v1", "Event"};
  char suffix[40];
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(it.at.time_since_epoch()).count();
  std::snprintf(suffix, sizeof suffix, ".%llx%llx", static_cast<unsigned long long>(ns),
                static_cast<unsigned long long>(++seq_ & 0xfff));
  ev.metadata.name = it.pod.name + suffix;
  ev.metadata.namespace_ = it.pod.ns;
  ev.involved_object.kind = "Pod";
  ev.involved_object.api_version = "v1";
  ev.involved_object.namespace_ = it.pod.ns;
  ev.involved_object.name = it.pod.name;
  ev.involved_object.uid = it.pod.uid;
  ev.involved_object.field_path = it.field_path;
  ev.reason = it.reason;
  ev.message = it.message;
  ev.source = {"kubelet", node_};
  ev.first_timestamp = ev.last_timestamp = when;
  ev.count = 1;
  ev.type = it.warning ? "Warning" : "Normal";
  ev.reporting_component = "kubelet";
  ev.reporting_instance = node_;
  auto r = api_->create(proto::event_resource(), it.pod.ns, proto::encode(ev));
  if (!r) {
    spdlog::debug("posting event {} for {}/{}: {}", it.reason, it.pod.ns, it.pod.name,
                  r.status().to_string());
    return;
  }
  if (seen_.size() >= kMaxSeen) seen_.clear();
  seen_[key] = {ev.metadata.name, 1};
}

}  // namespace skiff::kubelet
