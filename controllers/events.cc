#include "controllers/events.h"

#include <nlohmann/json.hpp>

namespace skiff::controllers {

namespace {
constexpr size_t kMaxQueued = 1000;
}  // namespace

ApiEventSink::ApiEventSink(std::shared_ptr<client::ApiClient> api, std::string component,
                           std::string instance)
    : source_{std::move(component), std::move(instance)}, writer_(std::move(api), kMaxQueued) {}

ApiEventSink::~ApiEventSink() { stop(); }

void ApiEventSink::event(const json& obj, const std::string& kind, bool warning,
                         const std::string& reason, const std::string& message) {
  writer_.post_event(daemon::make_event(obj, kind, warning, reason, message, source_,
                                        std::chrono::system_clock::now(), ++seq_));
}

void ApiEventSink::stop() { writer_.stop(); }

int64_t ApiEventSink::dropped() const { return writer_.dropped(); }

}  // namespace skiff::controllers
