// Small helpers the controllers share for reading API objects held as JSON (informer caches,
// API answers), for the built-in resource types they watch, and for API errors they treat
// specially. Header-only; included by controller .cc files only (it pulls in nlohmann/json).
#pragma once

#include <charconv>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/json_path.h"
#include "common/status.h"
#include "proto/registry.h"

namespace skiff::controllers {

// obj[a], or a null json when absent or obj is not an object: a missing field never throws
// (objects come from the network), and two absent fields compare equal. A reference-returning
// layer over find_path (common/json_path.h).
inline const nlohmann::json& at(const nlohmann::json& obj, const char* a) {
  static const nlohmann::json kNull;
  const nlohmann::json* v = find_path(obj, {a});
  return v ? *v : kNull;
}
// obj[a][b], or a null json when either step is absent.
inline const nlohmann::json& at(const nlohmann::json& obj, const char* a, const char* b) {
  return at(at(obj, a), b);
}
// The string `j` holds, or "" when it is not a string.
inline std::string str(const nlohmann::json& j) {
  return j.is_string() ? j.get<std::string>() : "";
}

// An integer field, or `dflt` when it is absent or not an integer.
inline int64_t num(const nlohmann::json& j, int64_t dflt = 0) {
  return j.is_number_integer() ? j.get<int64_t>() : dflt;
}
inline std::string name_of(const nlohmann::json& o) { return str(at(o, "metadata", "name")); }
inline std::string ns_of(const nlohmann::json& o) { return str(at(o, "metadata", "namespace")); }
inline std::string uid_of(const nlohmann::json& o) { return str(at(o, "metadata", "uid")); }

// The metadata.ownerReferences entry with controller: true, or nullptr.
inline const nlohmann::json* controller_ref(const nlohmann::json& obj) {
  const nlohmann::json& refs = at(obj, "metadata", "ownerReferences");
  if (!refs.is_array()) return nullptr;
  for (const auto& r : refs)
    if (at(r, "controller") == true) return &r;
  return nullptr;
}

// One process-wide copy of a built-in type (proto::pod_resource, ...): building a ResourceType
// allocates, and controllers name their types on every request.
template <proto::ResourceType (*Make)()>
const proto::ResourceType& resource_type() {
  static const proto::ResourceType t = Make();
  return t;
}

// A resourceVersion as a number; nullopt when it is not one (versions are opaque to clients;
// skiff's grow, which lets a controller tell a cache that has not seen its write yet).
inline std::optional<uint64_t> rv_number(const std::string& rv) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(rv.data(), rv.data() + rv.size(), v);
  if (rv.empty() || ec != std::errc() || p != rv.data() + rv.size()) return std::nullopt;
  return v;
}

// The API server refuses new objects in a namespace being deleted ("... because it is being
// terminated"); Kubernetes' controllers neither report nor retry that.
inline bool namespace_terminating(const Status& st) {
  return st.code() == Code::kForbidden &&
         st.message().find("because it is being terminated") != std::string::npos;
}

}  // namespace skiff::controllers
