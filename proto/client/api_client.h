// ApiClient: typed CRUD on top of RestClient for any registered resource type, with objects as
// JSON. Every non-2xx answer becomes a Status carrying the server's message, with the code
// mapped from the HTTP status (see to_status in rest_client.h).
//
// Thread-safe (it only forwards to RestClient). Same threading rule as RestClient: do not call
// it from the RestClient's I/O thread.
#pragma once

#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include "proto/client/rest_client.h"
#include "proto/registry.h"

namespace skiff::client {

using json = nlohmann::json;

// "/api/v1/namespaces/ns/pods/name/status"; `ns` is ignored for cluster-scoped types and an
// empty `ns` on a namespaced type means all namespaces (lists and watches only).
std::string resource_path(const proto::ResourceType& t, std::string_view ns,
                          std::string_view name = "", std::string_view subresource = "");

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;  // lists: "0" = any (cache); watches: start after this
  int64_t limit = 0;
  std::string continue_token;
  int timeout_seconds = 0;  // watches: the server ends the stream after this long
  bool allow_bookmarks = false;
  // Watches, on the client's side: Timeout when nothing arrives for this long (see
  // RestClient::watch); not sent to the server. 0: none.
  std::chrono::milliseconds idle_timeout{0};
  Query to_query() const;
};

enum class PatchType { kStrategic, kMerge, kJson };
const char* content_type_of(PatchType p);

class ApiClient {
 public:
  explicit ApiClient(std::shared_ptr<RestClient> rest) : rest_(std::move(rest)) {}
  RestClient& rest() { return *rest_; }

  [[nodiscard]] Result<json> get(const proto::ResourceType& t, std::string_view ns,
                                 std::string_view name);
  // The list object ({"kind":"PodList","metadata":{"resourceVersion":..},"items":[..]}).
  // Follows `continue` tokens until the list is complete unless opts.limit is set.
  [[nodiscard]] Result<json> list(const proto::ResourceType& t, std::string_view ns,
                                  const ListOptions& opts = {});
  // POST; `ns` empty means the object's metadata.namespace (or "default").
  [[nodiscard]] Result<json> create(const proto::ResourceType& t, std::string_view ns,
                                    const json& obj);
  // PUT of the whole object (or its status subresource), addressed by its own metadata. The
  // object's resourceVersion makes it conditional: Conflict when stale.
  [[nodiscard]] Result<json> update(const proto::ResourceType& t, const json& obj);
  [[nodiscard]] Result<json> update_status(const proto::ResourceType& t, const json& obj);
  [[nodiscard]] Result<json> patch(const proto::ResourceType& t, std::string_view ns,
                                   std::string_view name, const json& patch, PatchType type,
                                   std::string_view subresource = "");
  // DELETE with DeleteOptions {"propagationPolicy": propagation}. NotFound when absent.
  [[nodiscard]] Status remove(const proto::ResourceType& t, std::string_view ns,
                              std::string_view name, std::string_view propagation = "Background");
  // Watch (see RestClient::watch); watch=true is added.
  [[nodiscard]] Status watch(const proto::ResourceType& t, std::string_view ns,
                             const ListOptions& opts,
                             const std::function<bool(const json& event)>& on_event,
                             std::stop_token stop = {});

 private:
  [[nodiscard]] Result<json> call(std::string method, std::string path, Query query,
                                  const json* body, std::string content_type);
  std::shared_ptr<RestClient> rest_;
};

}  // namespace skiff::client
