#include "controllers/events.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "proto/client/api_client.h"
#include "proto/event.h"
#include "proto/registry.h"
#include "proto/time.h"

namespace skiff::controllers {

namespace {
constexpr size_t kMaxQueued = 1000;

std::string meta(const json& obj, const char* field) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto f = m->find(field);
  return f != m->end() && f->is_string() ? f->get<std::string>() : "";
}
}  // namespace

ApiEventSink::ApiEventSink(std::shared_ptr<client::ApiClient> api, std::string component,
                           std::string instance)
    : api_(std::move(api)), component_(std::move(component)), instance_(std::move(instance)) {
  thread_ = std::thread([this] { run(); });
}

ApiEventSink::~ApiEventSink() { stop(); }

void ApiEventSink::event(const json& obj, const std::string& kind, bool warning,
                         const std::string& reason, const std::string& message) {
  auto now = std::chrono::system_clock::now();
  std::string name = meta(obj, "name"), obj_ns = meta(obj, "namespace");
  std::string ns = obj_ns.empty() ? "default" : obj_ns;
  std::lock_guard lock(mu_);
  if (stopping_) return;
  if (queue_.size() >= kMaxQueued) {
    ++dropped_;
    return;
  }
  char suffix[48];
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::snprintf(suffix, sizeof suffix, ".%llx%03llx", static_cast<unsigned long long>(nanos),
                static_cast<unsigned long long>(++seq_ & 0xfff));
  auto when = proto::Time::at(std::chrono::time_point_cast<std::chrono::seconds>(now)).to_string();
  json involved = {
      {"kind", kind}, {"apiVersion", obj.value("apiVersion", std::string("v1"))}, {"name", name}};
  if (!obj_ns.empty()) involved["namespace"] = obj_ns;
  if (auto uid = meta(obj, "uid"); !uid.empty()) involved["uid"] = uid;
  queue_.push_back({{"apiVersion", "v1"},
                    {"kind", "Event"},
                    {"metadata", {{"name", name + suffix}, {"namespace", ns}}},
                    {"involvedObject", involved},
                    {"reason", reason},
                    {"message", message},
                    {"type", warning ? "Warning" : "Normal"},
                    {"source", {{"component", component_}}},
                    {"firstTimestamp", when},
                    {"lastTimestamp", when},
                    {"count", 1},
                    {"reportingComponent", component_},
                    {"reportingInstance", instance_}});
  cv_.notify_one();
}

void ApiEventSink::run() {
  static const proto::ResourceType type = proto::event_resource();
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and drained
    json ev = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    std::string ns = ev["metadata"]["namespace"].get<std::string>();
    auto r = api_->create(type, ns, ev);
    if (!r)
      spdlog::warn("posting event {} about {}: {}", ev["reason"].get<std::string>(),
                   ev["involvedObject"]["name"].get<std::string>(), r.status().to_string());
    lock.lock();
  }
}

void ApiEventSink::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    // Bounded: at most a few queued events are worth delaying the shutdown for.
    while (queue_.size() > 10) {
      queue_.pop_back();
      ++dropped_;
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t ApiEventSink::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

}  // namespace skiff::controllers
