// Registry: everything the API server and the clients know about each resource type.
//
// Adding a resource is one type file (the struct with visit(), defaulting, validation, table
// columns, field-selector fields) plus one `register_*` line in registry.cc.
//
// Objects cross this interface as JSON (nlohmann::json); the functions decode into the typed
// struct inside. Thread-safety: the registry is built once and immutable afterwards.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/codec.h"

namespace skiff::proto {

// A server-side Table column (meta.k8s.io/v1 TableColumnDefinition).
struct Column {
  std::string name;         // "Name", "Ready", "Status", ...
  std::string type;         // "string", "integer", "date", "number", "boolean"
  std::string format;       // "name" for the Name column, else ""
  std::string description;
  int priority = 0;         // 1 = shown only with -o wide
};

struct ResourceType {
  std::string group;      // "" for the core group, "apps", "coordination.k8s.io"
  std::string version;    // "v1"
  std::string kind;       // "Pod"
  std::string list_kind;  // "PodList"
  std::string plural;     // "pods"
  std::string singular;   // "pod"
  bool namespaced = true;
  std::vector<std::string> short_names;   // {"po"}
  std::vector<std::string> categories;    // {"all"}
  std::vector<std::string> subresources;  // {"status", "binding"}
  bool has_spec = true;   // generation is bumped when .spec changes (when false: on any change
                          // outside metadata and status)
  // Annotation changes bump the generation too (Deployment: they are copied to its RSes).
  bool generation_tracks_annotations = false;
  // Create drops any status the client sent (Kubernetes' PrepareForCreate for workloads).
  bool reset_status_on_create = false;
  const Schema* schema = nullptr;  // the typed schema, for strategic merge patch

  // "v1" or "apps/v1".
  std::string api_version() const { return group.empty() ? version : group + "/" + version; }

  // Decodes `in` into the typed struct and encodes it back: type errors and (with
  // opts.report_unknown) unknown fields go to `errs`; Go omission rules applied; apiVersion and
  // kind set to this type's.
  std::function<json(const json& in, FieldErrors& errs, const DecodeOptions& opts)> normalize;

  // Sets defaults on a normalized object, in place (e.g. ports' protocol: TCP).
  std::function<void(json& obj)> apply_defaults;

  // Validates a normalized, defaulted object, including its metadata (name, labels,
  // annotations, ...). `old` is the stored object on update (for immutable fields), nullptr on
  // create. Every error carries its field path.
  std::function<FieldErrors(const json& obj, const json* old)> validate;

  // Table columns (kubectl's, priority 1 for -o wide) and the cells of one row.
  std::vector<Column> columns;
  std::function<json(const json& obj, std::chrono::system_clock::time_point now)> row_cells;

  // The value of a field for field selectors ("metadata.name", "spec.nodeName", ...), or
  // nullopt when this type does not support selecting on that field.
  std::function<std::optional<std::string>(const json& obj, std::string_view field)> field_value;
};

class Registry {
 public:
  // The built-in types: Namespace, Pod, Node, Service, Endpoints, ConfigMap, Secret, Event,
  // Lease, ReplicaSet, Deployment (and more as features land).
  static const Registry& builtin();

  // By group ("" for core), version and plural; nullptr if unknown.
  const ResourceType* find(std::string_view group, std::string_view version,
                           std::string_view plural) const;
  // By apiVersion ("v1", "apps/v1") and kind; nullptr if unknown.
  const ResourceType* by_kind(std::string_view api_version, std::string_view kind) const;
  // By any name a user may type: plural, singular, short name, kind, "pods.apps"-style
  // plural.group, case-insensitive. nullptr if unknown.
  const ResourceType* resolve(std::string_view name) const;
  const std::vector<ResourceType>& all() const { return types_; }

  void add(ResourceType t) { types_.push_back(std::move(t)); }

 private:
  std::vector<ResourceType> types_;
};

// Generic Table helpers shared by every type: "5m", "3d4h", "<none>", ... as kubectl prints.
std::string human_duration(std::chrono::system_clock::duration d);
// Age cell from metadata.creationTimestamp ("<unknown>" when absent).
std::string age_of(const json& obj, std::chrono::system_clock::time_point now);

}  // namespace skiff::proto
