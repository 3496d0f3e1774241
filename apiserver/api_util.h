// Small pieces the API logic shares (private to apiserver/): store key layout, object
// metadata helpers (uid, timestamps, generated names), query parsing, media type negotiation
// and the rendering of objects into List, Table and watch-event JSON.
// All functions are pure or use thread-local state; thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "apiserver/errors.h"
#include "apiserver/http.h"
#include "proto/codec.h"

namespace skiff::proto {
struct ResourceType;
}
namespace skiff::store {
struct KeyValue;
}

namespace skiff::apiserver {

// ---- store layout: /registry/<group or core>/<plural>/<ns>/<name> (cluster-scoped: no ns).
std::string resource_prefix(const proto::ResourceType& rt);  // "/registry/core/pods/"
// All objects of rt in `ns` ("" = every namespace, or a cluster-scoped type).
std::string list_prefix(const proto::ResourceType& rt, const std::string& ns);
std::string object_key(const proto::ResourceType& rt, const std::string& ns,
                       const std::string& name);

// Parses a stored value and sets metadata.resourceVersion to the revision. Error on bad JSON.
ApiResult<json> read_object(const store::KeyValue& kv);
// Parses a stored value and sets metadata.resourceVersion to `revision` (delete events).
ApiResult<json> read_object_at(const std::string& value, int64_t revision);
// The stored form: compact JSON without metadata.resourceVersion.
std::string stored_form(const json& obj);

// ---- metadata helpers.
std::string rfc3339(std::chrono::system_clock::time_point t);
std::string now_rfc3339();
std::string new_uid();  // random v4 UUID
std::string random_name_suffix();  // 5 chars from Kubernetes' alphabet
// metadata.<field> as a string, or "" when absent / not a string.
std::string meta_string(const json& obj, const char* field);
// A deletionTimestamp is set, or (a Namespace) status.phase is Terminating.
bool is_terminating(const json& obj);

// ---- query parameters.
// "1", "true", "True", "TRUE", ... are true; anything else false.
bool parse_bool(std::string_view v);
bool query_bool(const Request& req, const std::string& name);

// ---- media types.
enum class IncludeObject { kNone, kMetadata, kObject };
struct Encoding {
  bool table = false;
  std::string table_version = "v1";  // meta.k8s.io/<this>
  IncludeObject include = IncludeObject::kMetadata;
  std::string cache_key() const;  // distinguishes serialized forms ("j", "t:v1:m", ...)
};
// Picks the first Accept alternative we can produce (JSON or a meta.k8s.io Table). 406 when
// none is acceptable. `includeObject` comes from the query.
ApiResult<Encoding> negotiate(const Request& req);
// "application/merge-patch+json; charset=utf-8" -> "application/merge-patch+json".
std::string media_type(std::string_view content_type);

// ---- rendering.
// A Table (meta.k8s.io) of `objs` with `list_meta` as its metadata.
json render_table(const proto::ResourceType& rt, const std::vector<const json*>& objs,
                  const Encoding& enc, json list_meta);
// {"type":T,"object":O}\n with O rendered as `enc` asks (a one-row Table or the object).
std::string watch_line(const proto::ResourceType& rt, const char* type, const json& obj,
                       const Encoding& enc);
// A watch ERROR line carrying `err` as a Status.
std::string error_line(const ApiError& err);
// A BOOKMARK line at `revision`.
std::string bookmark_line(const proto::ResourceType& rt, int64_t revision);

// ---- continue tokens: opaque base64 of the list revision and the last key returned.
std::string encode_continue(int64_t revision, const std::string& last_key_rel);
bool decode_continue(const std::string& token, int64_t* revision, std::string* last_key_rel);

}  // namespace skiff::apiserver
