// Process-wide Prometheus metrics of the API server, rendered by /metrics. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace skiff::apiserver::metrics {

// One finished API request: verb as Kubernetes names it ("get", "list", "watch", "create",
// "update", "patch", "delete", "deletecollection"), resource ("pods", "pods/status", or "" for
// non-resource paths), HTTP code, and latency. Feeds apiserver_request_total and
// apiserver_request_duration_seconds (histogram).
void observe_request(std::string_view verb, std::string_view resource, int code, double seconds);
// Open watches by resource (apiserver_registered_watchers).
void watch_opened(std::string_view resource);
void watch_closed(std::string_view resource);
// A store operation ("get", "list", "create", "update", "delete") and its latency
// (skiff_store_duration_seconds histogram).
void observe_store(std::string_view op, double seconds);
// The Prometheus text exposition of everything above, plus process metrics (RSS, open fds).
std::string render();

}  // namespace skiff::apiserver::metrics
