#include "proto/workload_util.h"

#include <cctype>
#include <string>

#include "proto/kind_util.h"
#include "proto/selector.h"

namespace skiff::proto {

std::string go_string_map(const std::map<std::string, std::string>& m) {
  if (m.empty()) return "map[string]string(nil)";
  std::string out = "map[string]string{";
  bool first = true;
  for (const auto& [k, v] : m) {
    out += (first ? "" : ", ") + go_quote(k) + ":" + go_quote(v);
    first = false;
  }
  return out + "}";
}

std::string go_label_selector(const LabelSelectorSpec& s) {
  std::string exprs = "[]v1.LabelSelectorRequirement(nil)";
  if (!s.match_expressions.empty()) {
    exprs = "[]v1.LabelSelectorRequirement{";
    for (size_t i = 0; i < s.match_expressions.size(); ++i) {
      const auto& r = s.match_expressions[i];
      exprs += (i ? ", " : "") + std::string("v1.LabelSelectorRequirement{Key:") + go_quote(r.key) +
               ", Operator:" + go_quote(r.op) + ", Values:" + go_string_slice(r.values) + "}";
    }
    exprs += "}";
  }
  return "v1.LabelSelector{MatchLabels:" + go_string_map(s.match_labels) +
         ", MatchExpressions:" + exprs + "}";
}

void validate_workload_selector(const std::optional<LabelSelectorSpec>& sel, const Path& path,
                                FieldErrors& errs) {
  if (!sel) {
    errs.push_back({ErrorType::kRequired, path.str(), "", ""});
    return;
  }
  LabelSelector::validate_json(encode(*sel), path, errs);
  if (sel->match_labels.empty() && sel->match_expressions.empty())
    // Kubernetes says "deployment" for ReplicaSets too.
    errs.push_back({ErrorType::kInvalid, path.str(), "empty selector is invalid for deployment",
                    go_label_selector(*sel)});
}

void validate_template_for_replicas(const PodTemplateSpec& t,
                                    const std::optional<LabelSelectorSpec>& sel, const Path& spec,
                                    FieldErrors& errs) {
  const Path path = spec.field("template");
  // No selector selects nothing (labels.Nothing()), so it matches no template either, and
  // Kubernetes reports the mismatch next to the missing selector.
  bool matches = false, check = true;
  if (sel) {
    auto parsed = LabelSelector::from_json(encode(*sel));
    if (!parsed.is_ok()) {
      errs.push_back({ErrorType::kInvalid, spec.field("selector").str(), "invalid label selector",
                      go_label_selector(*sel)});
      return;
    }
    check = !parsed->empty();
    matches = parsed->matches(t.metadata.labels);
  }
  if (check && !matches)
    errs.push_back({ErrorType::kInvalid, path.field("metadata").field("labels").str(),
                    "`selector` does not match template `labels`",
                    go_string_map(t.metadata.labels)});
  validate_pod_template(t, path, errs);
  if (t.spec.restart_policy != "Always")
    not_supported(errs, path.field("spec").field("restartPolicy"), t.spec.restart_policy,
                  {"Always"});
  if (t.spec.active_deadline_seconds)
    errs.push_back({ErrorType::kForbidden, path.field("spec").field("activeDeadlineSeconds").str(),
                    "activeDeadlineSeconds in ReplicaSet is not Supported", ""});
}

void validate_selector_immutable(const std::optional<LabelSelectorSpec>& now,
                                 const std::optional<LabelSelectorSpec>& before, const Path& path,
                                 FieldErrors& errs) {
  json a = now ? encode(*now) : json(), b = before ? encode(*before) : json();
  if (a == b) return;
  errs.push_back({ErrorType::kInvalid, path.str(), "field is immutable",
                  now ? go_label_selector(*now) : "null"});
}

std::string container_names(const PodTemplateSpec& t) {
  std::string out;
  for (size_t i = 0; i < t.spec.containers.size(); ++i)
    out += (i ? "," : "") + t.spec.containers[i].name;
  return out;
}

std::string container_images(const PodTemplateSpec& t) {
  std::string out;
  for (size_t i = 0; i < t.spec.containers.size(); ++i)
    out += (i ? "," : "") + t.spec.containers[i].image;
  return out;
}

void validate_status_at_most(const Path& status, const char* field, int32_t v, int32_t limit,
                             const char* why, FieldErrors& errs) {
  if (v > limit)
    errs.push_back({ErrorType::kInvalid, status.field(field).str(), why, std::to_string(v)});
}

std::string go_int_or_string(const IntOrString& v) {
  return "intstr.IntOrString{Type:" + std::string(v.is_string ? "1" : "0") +
         ", IntVal:" + std::to_string(v.int_val) + ", StrVal:\"" + v.str_val + "\"}";
}

// "25%" -> 25; nullopt when `v` is not a percentage string (validation's getPercentValue).
std::optional<int> percent_value(const IntOrString& v) {
  if (!v.is_string || v.str_val.size() < 2 || v.str_val.back() != '%') return std::nullopt;
  int n = 0;
  for (size_t i = 0; i + 1 < v.str_val.size(); ++i) {
    char c = v.str_val[i];
    if (!std::isdigit(static_cast<unsigned char>(c)) || n > 100000) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

// getIntOrPercentValue: a percentage's number, an int's value, 0 for anything else.
int int_or_percent_value(const IntOrString& v) {
  if (auto p = percent_value(v)) return *p;
  if (!v.is_string) return v.int_val;
  try {
    return std::stoi(v.str_val);
  } catch (const std::exception&) {
    return 0;
  }
}

void validate_positive_int_or_percent(const IntOrString& v, const Path& p, FieldErrors& errs) {
  if (v.is_string) {
    if (!percent_value(v))
      errs.push_back({ErrorType::kInvalid, p.str(),
                      "a valid percent string must be a numeric string followed by an ending "
                      "'%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                      go_int_or_string(v)});
  } else {
    non_negative(errs, p, v.int_val);
  }
}

void not_more_than_100_percent(const IntOrString& v, const Path& p, FieldErrors& errs) {
  if (auto pct = percent_value(v); pct && *pct > 100)
    errs.push_back(
        {ErrorType::kInvalid, p.str(), "must not be greater than 100%", go_int_or_string(v)});
}

}  // namespace skiff::proto
