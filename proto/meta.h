// Object metadata shared by every API type (apimachinery's meta/v1): TypeMeta, ObjectMeta,
// ListMeta, OwnerReference, the structured label selector, the Status error body,
// DeleteOptions and ObjectReference; plus the metadata validation every kind runs.
//
// Naming: the metav1 Status type is ApiStatus here and metav1.LabelSelector is
// LabelSelectorSpec, so they cannot be confused with skiff::Status and the parsed
// proto::LabelSelector of selector.h. Value types; functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/codec.h"
#include "proto/time.h"

namespace skiff::proto {

// Embedded inline in every top-level object: call `type_meta.visit(v)` from the object's visit.
struct TypeMeta {
  std::string api_version;
  std::string kind;
  template <class V>
  void visit(V& v) {
    v("apiVersion", api_version);
    v("kind", kind);
  }
};

struct OwnerReference {
  std::string api_version, kind, name, uid;
  std::optional<bool> controller;
  std::optional<bool> block_owner_deletion;
  template <class V>
  void visit(V& v) {
    v("apiVersion", api_version, kAlways);
    v("kind", kind, kAlways);
    v("name", name, kAlways);
    v("uid", uid, kAlways);
    v("controller", controller);
    v("blockOwnerDeletion", block_owner_deletion);
  }
};

struct ManagedFieldsEntry {
  std::string manager, operation, api_version, fields_type, subresource;
  std::optional<Time> time;
  json fields_v1;  // the field set, kept opaque
  template <class V>
  void visit(V& v) {
    v("manager", manager);
    v("operation", operation);
    v("apiVersion", api_version);
    v("time", time);
    v("fieldsType", fields_type);
    v("fieldsV1", fields_v1);
    v("subresource", subresource);
  }
};

struct ObjectMeta {
  std::string name;
  std::string generate_name;
  std::string namespace_;
  std::string self_link;
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
  std::optional<Time> creation_timestamp;
  std::optional<Time> deletion_timestamp;
  std::optional<int64_t> deletion_grace_period_seconds;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<OwnerReference> owner_references;
  std::vector<std::string> finalizers;
  std::vector<ManagedFieldsEntry> managed_fields;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("generateName", generate_name);
    v("namespace", namespace_);
    v("selfLink", self_link);
    v("uid", uid);
    v("resourceVersion", resource_version);
    v("generation", generation);
    v("creationTimestamp", creation_timestamp);
    v("deletionTimestamp", deletion_timestamp);
    v("deletionGracePeriodSeconds", deletion_grace_period_seconds);
    v("labels", labels);
    v("annotations", annotations);
    v("ownerReferences", owner_references, merge_by("uid"));
    v("finalizers", finalizers, kMergeSet);
    v("managedFields", managed_fields);
  }
};

struct ListMeta {
  std::string self_link;
  std::string resource_version;
  std::string continue_;
  std::optional<int64_t> remaining_item_count;
  template <class V>
  void visit(V& v) {
    v("selfLink", self_link);
    v("resourceVersion", resource_version);
    v("continue", continue_);
    v("remainingItemCount", remaining_item_count);
  }
};

struct LabelSelectorRequirement {
  std::string key;
  std::string op;  // In, NotIn, Exists, DoesNotExist
  std::vector<std::string> values;
  template <class V>
  void visit(V& v) {
    v("key", key, kAlways);
    v("operator", op, kAlways);
    v("values", values);
  }
};

// The condition shape without lastUpdateTime/lastProbeTime: ReplicaSet, StatefulSet, DaemonSet
// and Namespace each have their own Go type of this one shape.
struct WorkloadCondition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  Time last_transition_time;
  std::string reason, message;
  template <class V>
  void visit(V& v) {
    v("type", type, kAlways);
    v("status", status, kAlways);
    v("lastTransitionTime", last_transition_time);
    v("reason", reason);
    v("message", message);
  }
};

// metav1.LabelSelector; selector.h's LabelSelector::from_json parses it for matching.
struct LabelSelectorSpec {
  std::map<std::string, std::string> match_labels;
  std::vector<LabelSelectorRequirement> match_expressions;
  template <class V>
  void visit(V& v) {
    v("matchLabels", match_labels);
    v("matchExpressions", match_expressions);
  }
};

struct StatusCause {
  std::string reason, message, field;
  template <class V>
  void visit(V& v) {
    v("reason", reason);
    v("message", message);
    v("field", field);
  }
};

struct StatusDetails {
  std::string name, group, kind, uid;
  std::vector<StatusCause> causes;
  int32_t retry_after_seconds = 0;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("group", group);
    v("kind", kind);
    v("uid", uid);
    v("causes", causes);
    v("retryAfterSeconds", retry_after_seconds);
  }
};

// metav1.Status: the body of every API error ("kind":"Status").
struct ApiStatus {
  TypeMeta type_meta{"v1", "Status"};
  ListMeta metadata;
  std::string status;  // "Success" or "Failure"
  std::string message;
  std::string reason;  // "NotFound", "AlreadyExists", "Invalid", ...
  std::optional<StatusDetails> details;
  int32_t code = 0;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("status", status);
    v("message", message);
    v("reason", reason);
    v("details", details);
    v("code", code);
  }
};

struct Preconditions {
  std::optional<std::string> uid;
  std::optional<std::string> resource_version;
  template <class V>
  void visit(V& v) {
    v("uid", uid);
    v("resourceVersion", resource_version);
  }
};

struct DeleteOptions {
  TypeMeta type_meta;
  std::optional<int64_t> grace_period_seconds;
  std::optional<Preconditions> preconditions;
  std::optional<bool> orphan_dependents;
  std::optional<std::string> propagation_policy;  // Orphan, Background, Foreground
  std::vector<std::string> dry_run;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("gracePeriodSeconds", grace_period_seconds);
    v("preconditions", preconditions);
    v("orphanDependents", orphan_dependents);
    v("propagationPolicy", propagation_policy);
    v("dryRun", dry_run);
  }
};

struct ObjectReference {
  std::string kind, namespace_, name, uid, api_version, resource_version, field_path;
  template <class V>
  void visit(V& v) {
    v("kind", kind);
    v("namespace", namespace_);
    v("name", name);
    v("uid", uid);
    v("apiVersion", api_version);
    v("resourceVersion", resource_version);
    v("fieldPath", field_path);
  }
};

// corev1.LocalObjectReference (imagePullSecrets, configMapRef, ...).
struct LocalObjectReference {
  std::string name;
  template <class V>
  void visit(V& v) {
    v("name", name);
  }
};

// ---------------------------------------------------------------------------------------------
// Validation shared by all kinds.

// A name rule: is_dns1123_subdomain, is_dns1123_label or is_dns1035_label (validation.h).
using NameRule = std::vector<std::string> (*)(std::string_view);

// A string rendered as Kubernetes renders a bad value in a message: "\"Foo_bar\"".
std::string quote_value(std::string_view s);

// apimachinery's ValidateObjectMeta: name (or generateName) by `name_rule`, namespace required
// iff `namespaced`, generation, labels, annotations, ownerReferences, finalizers.
void validate_object_meta(const ObjectMeta& meta, bool namespaced, NameRule name_rule,
                          FieldErrors& errs);
// ValidateObjectMetaUpdate: name, namespace, uid and creationTimestamp are immutable.
void validate_object_meta_update(const ObjectMeta& meta, const ObjectMeta& old, FieldErrors& errs);

}  // namespace skiff::proto
