#include "common/daemon/api_writer.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "proto/client/api_client.h"
#include "proto/event.h"
#include "proto/registry.h"
#include "proto/time.h"

namespace skiff::daemon {

namespace {
std::string meta(const nlohmann::json& obj, const char* field) {
  if (!obj.is_object()) return "";
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto f = m->find(field);
  return f != m->end() && f->is_string() ? f->get<std::string>() : "";
}
}  // namespace

ApiWriter::ApiWriter(std::shared_ptr<client::ApiClient> api, size_t max_queued)
    : api_(std::move(api)), max_queued_(max_queued) {
  thread_ = std::thread([this] { run(); });
}

ApiWriter::~ApiWriter() { stop(); }

void ApiWriter::push(Task t) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  if (queue_.size() >= max_queued_) {
    ++dropped_;
    return;
  }
  queue_.push_back(std::move(t));
  cv_.notify_one();
}

void ApiWriter::post_event(nlohmann::json ev) {
  push([ev = std::move(ev)](client::ApiClient& api) {
    static const proto::ResourceType type = proto::event_resource();
    const auto& involved = ev["involvedObject"];
    std::string ns = ev["metadata"]["namespace"].get<std::string>();
    auto r = api.create(type, ns, ev);
    if (r.is_ok()) return true;
    std::string obj_ns = involved.value("namespace", std::string());
    spdlog::warn("posting event {} about {} {}{}: {}", ev["reason"].get<std::string>(),
                 involved["kind"].get<std::string>(), obj_ns.empty() ? "" : obj_ns + "/",
                 involved["name"].get<std::string>(), r.status().to_string());
    return false;
  });
}

void ApiWriter::run() {
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

void ApiWriter::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    while (queue_.size() > 10) {
      queue_.pop_back();
      ++dropped_;
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t ApiWriter::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

int64_t ApiWriter::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

nlohmann::json make_event(const nlohmann::json& obj, const std::string& kind, bool warning,
                          const std::string& reason, const std::string& message,
                          const EventSource& source, std::chrono::system_clock::time_point now,
                          uint64_t seq) {
  std::string name = meta(obj, "name"), obj_ns = meta(obj, "namespace");
  std::string ns = obj_ns.empty() ? "default" : obj_ns;
  char suffix[48];
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::snprintf(suffix, sizeof suffix, ".%llx%03llx", static_cast<unsigned long long>(nanos),
                static_cast<unsigned long long>(seq & 0xfff));
  auto when = proto::Time::at(std::chrono::time_point_cast<std::chrono::seconds>(now)).to_string();
  std::string api_version = "v1";
  if (obj.is_object()) {
    auto it = obj.find("apiVersion");
    if (it != obj.end() && it->is_string()) api_version = it->get<std::string>();
  }
  nlohmann::json involved = {{"kind", kind}, {"apiVersion", api_version}, {"name", name}};
  if (!obj_ns.empty()) involved["namespace"] = obj_ns;
  if (auto uid = meta(obj, "uid"); !uid.empty()) involved["uid"] = uid;
  return {{"apiVersion", "v1"},
          {"kind", "Event"},
          {"metadata", {{"name", name + suffix}, {"namespace", ns}}},
          {"involvedObject", std::move(involved)},
          {"reason", reason},
          {"message", message},
          {"type", warning ? "Warning" : "Normal"},
          {"source", {{"component", source.component}}},
          {"firstTimestamp", when},
          {"lastTimestamp", when},
          {"count", 1},
          {"reportingComponent", source.component},
          {"reportingInstance", source.instance}};
}

}  // namespace skiff::daemon
