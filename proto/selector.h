// Label and field selectors, with Kubernetes' syntax and semantics.
//
// Label selectors: "a=b,c!=d,e in (x,y),f notin (z),g,!h" (equality and set-based), and the
// structured metav1.LabelSelector {matchLabels, matchExpressions}. Field selectors: "a=b,c!=d"
// (also "=="), matched through a getter the resource type provides. An empty selector matches
// everything. Parsing errors say what was wrong and where. Immutable after parsing; thread-safe.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "proto/codec.h"

namespace skiff::proto {

enum class SelectorOp { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };

struct Requirement {
  std::string key;
  SelectorOp op = SelectorOp::kEquals;
  std::vector<std::string> values;  // sorted; one value for kEquals/kNotEquals
};

class LabelSelector {
 public:
  LabelSelector() = default;  // matches everything
  // Parses the string form (the labelSelector query parameter, kubectl -l).
  static Result<LabelSelector> parse(std::string_view s);
  // From a metav1.LabelSelector JSON object; null or {} selects everything. Errors name the
  // field path under `path` (e.g. "spec.selector").
  static Result<LabelSelector> from_json(const json& j, const std::string& path = "selector");
  // Kubernetes' ValidateLabelSelector on a metav1.LabelSelector JSON value: appends one
  // FieldError per problem under `path` (e.g. spec.selector.matchExpressions[0].values).
  static void validate_json(const json& j, const Path& path, FieldErrors& errs);
  bool matches(const std::map<std::string, std::string>& labels) const;
  bool matches_json(const json& labels_object) const;  // metadata.labels as JSON (or null)
  bool empty() const { return reqs_.empty(); }
  std::string to_string() const;  // canonical string form, e.g. "app=web,tier in (a,b)"
  const std::vector<Requirement>& requirements() const { return reqs_; }

 private:
  std::vector<Requirement> reqs_;
};

class FieldSelector {
 public:
  FieldSelector() = default;
  static Result<FieldSelector> parse(std::string_view s);
  // `get` returns the field's value or nullopt when the type does not support the field;
  // matches() is false then. Use unsupported_field() to reject such selectors up front.
  bool matches(const std::function<std::optional<std::string>(std::string_view)>& get) const;
  // The first field `get` does not support, if any.
  std::optional<std::string> unsupported_field(
      const std::function<std::optional<std::string>(std::string_view)>& get) const;
  bool empty() const { return reqs_.empty(); }
  std::string to_string() const;
  const std::vector<Requirement>& requirements() const { return reqs_; }
  // The value required by "field=value", if the selector has one (for narrowing watches).
  std::optional<std::string> exact(std::string_view field) const;

 private:
  std::vector<Requirement> reqs_;
};

}  // namespace skiff::proto
