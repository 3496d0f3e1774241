#include "controllers/statefulset/identity.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include "controllers/api_util.h"
#include "proto/time.h"

namespace skiff::controllers::statefulset {

namespace {


std::string phase(const json& pod) { return str(at(pod, "status", "phase")); }

// The Ready condition's status and lastTransitionTime.
const json* ready_condition(const json& pod) {
  const json& conds = at(pod, "status", "conditions");
  if (!conds.is_array()) return nullptr;
  for (const auto& c : conds)
    if (str(at(c, "type")) == "Ready") return &c;
  return nullptr;
}

bool is_ready(const json& pod) {
  const json* c = ready_condition(pod);
  return c && str(at(*c, "status")) == "True";
}

std::optional<WallTime> ready_since(const json& pod) {
  const json* c = ready_condition(pod);
  if (!c || str(at(*c, "status")) != "True") return std::nullopt;
  auto t = proto::parse_rfc3339(str(at(*c, "lastTransitionTime")));
  if (!t) return std::nullopt;
  return std::chrono::time_point_cast<WallTime::duration>(*t);
}

std::string policy_of(const json& set, const char* which) {
  std::string p = str(at(at(set, "spec", "persistentVolumeClaimRetentionPolicy"), which));
  return p == "Delete" ? "Delete" : "Retain";  // unknown is treated as Retain, as Kubernetes
}

bool refers_to(const json& ref, const json& owner) {
  return str(at(ref, "uid")) == uid_of(owner) && !uid_of(owner).empty();
}

// setOwnerRef / removeOwnerRef on a claim; true when changed.
bool set_owner_ref(json& claim, const json& owner, const char* api_version, const char* kind) {
  if (uid_of(owner).empty()) return false;  // not created yet: nothing to refer to
  json& refs = claim["metadata"]["ownerReferences"];
  if (!refs.is_array()) refs = json::array();
  for (const auto& r : refs)
    if (refers_to(r, owner)) return false;
  refs.push_back(owner_ref(owner, api_version, kind, false));
  return true;
}

bool remove_owner_ref(json& claim, const json& owner) {
  json& md = claim["metadata"];
  auto it = md.find("ownerReferences");
  if (it == md.end() || !it->is_array()) return false;
  size_t before = it->size();
  json kept = json::array();
  for (auto& r : *it)
    if (!refers_to(r, owner)) kept.push_back(r);
  if (kept.size() == before) return false;
  if (kept.empty())
    md.erase("ownerReferences");
  else
    *it = std::move(kept);
  return true;
}

}  // namespace

std::optional<ParentOrdinal> parse_pod_name(const std::string& name) {
  auto dash = name.rfind('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == name.size()) return std::nullopt;
  std::string digits = name.substr(dash + 1);
  if (digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::nullopt;
  return ParentOrdinal{name.substr(0, dash), std::atoi(digits.c_str())};
}

int get_ordinal(const json& pod) {
  auto p = parse_pod_name(name_of(pod));
  return p ? p->ordinal : -1;
}

std::string pod_name(const json& set, int ordinal) {
  return name_of(set) + "-" + std::to_string(ordinal);
}

int start_ordinal(const json& set) {
  return static_cast<int>(num(at(at(set, "spec", "ordinals"), "start")));
}
int replicas_of(const json& set) { return static_cast<int>(num(at(set, "spec", "replicas"), 1)); }
int end_ordinal(const json& set) { return start_ordinal(set) + replicas_of(set) - 1; }

bool in_ordinal_range(const json& pod, const json& set) {
  int o = get_ordinal(pod);
  return o >= start_ordinal(set) && o <= end_ordinal(set);
}

bool is_member_of(const json& set, const json& pod) {
  auto p = parse_pod_name(name_of(pod));
  return p && p->parent == name_of(set);
}

bool identity_matches(const json& set, const json& pod) {
  int o = get_ordinal(pod);
  const json& labels = at(pod, "metadata", "labels");
  return o >= 0 && is_member_of(set, pod) && name_of(pod) == pod_name(set, o) &&
         ns_of(pod) == ns_of(set) && str(at(labels, kPodNameLabel)) == name_of(pod) &&
         str(at(labels, kPodIndexLabel)) == std::to_string(o);
}

void update_identity(const json& set, json& pod) {
  int o = get_ordinal(pod);
  pod["metadata"]["namespace"] = ns_of(set);
  json& labels = pod["metadata"]["labels"];
  if (!labels.is_object()) labels = json::object();
  labels[kPodNameLabel] = name_of(pod);
  labels[kPodIndexLabel] = std::to_string(o);
}

std::vector<std::pair<std::string, json>> claims_for(const json& set, int ordinal) {
  std::vector<std::pair<std::string, json>> out;
  const json& templates = at(set, "spec", "volumeClaimTemplates");
  if (!templates.is_array()) return out;
  const json& match = at(at(set, "spec", "selector"), "matchLabels");
  for (const auto& t : templates) {
    std::string tname = str(at(t, "metadata", "name"));
    if (tname.empty()) continue;
    json claim = t;
    claim.erase("status");
    claim["apiVersion"] = "v1";
    claim["kind"] = "PersistentVolumeClaim";
    json& md = claim["metadata"];
    md["name"] = tname + "-" + name_of(set) + "-" + std::to_string(ordinal);
    md["namespace"] = ns_of(set);
    if (match.is_object() && !match.empty()) {
      if (!md["labels"].is_object()) md["labels"] = json::object();
      for (auto it = match.begin(); it != match.end(); ++it) md["labels"][it.key()] = it.value();
    }
    out.emplace_back(tname, std::move(claim));
  }
  return out;
}

bool storage_matches(const json& set, const json& pod) {
  int o = get_ordinal(pod);
  if (o < 0) return false;
  const json& volumes = at(pod, "spec", "volumes");
  for (const auto& [tname, claim] : claims_for(set, o)) {
    bool found = false;
    if (volumes.is_array()) {
      for (const auto& v : volumes) {
        if (str(at(v, "name")) != tname) continue;
        found = str(at(at(v, "persistentVolumeClaim"), "claimName")) ==
                str(at(claim, "metadata", "name"));
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

void update_storage(const json& set, json& pod) {
  auto claims = claims_for(set, get_ordinal(pod));
  if (claims.empty()) return;
  json volumes = json::array();
  std::set<std::string> names;
  for (const auto& [tname, claim] : claims) {
    names.insert(tname);
    volumes.push_back(
        {{"name", tname},
         {"persistentVolumeClaim", {{"claimName", str(at(claim, "metadata", "name"))}}}});
  }
  const json& current = at(pod, "spec", "volumes");
  if (current.is_array())
    for (const auto& v : current)
      if (!names.count(str(at(v, "name")))) volumes.push_back(v);
  pod["spec"]["volumes"] = std::move(volumes);
}


json owner_ref(const json& owner, const char* api_version, const char* kind, bool controller) {
  json r = {{"apiVersion", api_version},
            {"kind", kind},
            {"name", name_of(owner)},
            {"uid", uid_of(owner)}};
  if (controller) {
    r["controller"] = true;
    r["blockOwnerDeletion"] = true;
  }
  return r;
}

json new_pod(const json& set, int ordinal) {
  const json& tmpl = at(set, "spec", "template");
  json md = {{"name", pod_name(set, ordinal)},
             {"namespace", ns_of(set)},
             {"ownerReferences", json::array({owner_ref(set, "apps/v1", "StatefulSet", true)})}};
  for (const char* k : {"labels", "annotations", "finalizers"})
    if (const json& v = at(tmpl, "metadata", k); !v.is_null() && !v.empty()) md[k] = v;
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", std::move(md)}};
  pod["spec"] = at(tmpl, "spec").is_object() ? at(tmpl, "spec") : json::object();
  update_identity(set, pod);
  pod["spec"]["hostname"] = pod_name(set, ordinal);
  std::string service = str(at(set, "spec", "serviceName"));
  if (!service.empty()) pod["spec"]["subdomain"] = service;
  update_storage(set, pod);
  return pod;
}

std::string pod_revision(const json& pod) {
  return str(at(at(pod, "metadata", "labels"), kRevisionLabel));
}

void set_pod_revision(json& pod, const std::string& revision) {
  json& labels = pod["metadata"]["labels"];
  if (!labels.is_object()) labels = json::object();
  labels[kRevisionLabel] = revision;
}

bool is_terminating(const json& obj) {
  const json& d = at(obj, "metadata", "deletionTimestamp");
  return !d.is_null() && !(d.is_string() && d.get<std::string>().empty());
}
bool is_failed(const json& pod) { return phase(pod) == "Failed"; }
bool is_succeeded(const json& pod) { return phase(pod) == "Succeeded"; }
bool is_pending(const json& pod) { return phase(pod) == "Pending"; }
bool is_running_and_ready(const json& pod) { return phase(pod) == "Running" && is_ready(pod); }

bool is_running_and_available(const json& pod, int min_ready_seconds, WallTime now) {
  if (!is_running_and_ready(pod)) return false;
  if (min_ready_seconds <= 0) return true;
  auto since = ready_since(pod);
  return since && *since + std::chrono::seconds(min_ready_seconds) < now;
}

bool is_healthy(const json& pod) { return is_running_and_ready(pod) && !is_terminating(pod); }

std::optional<std::chrono::nanoseconds> time_until_available(const json& pod, int min_ready_seconds,
                                                             WallTime now) {
  if (min_ready_seconds <= 0 || !is_running_and_ready(pod)) return std::nullopt;
  auto since = ready_since(pod);
  if (!since) return std::nullopt;
  auto at_time = *since + std::chrono::seconds(min_ready_seconds);
  if (at_time < now) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(at_time - now);
}

json revision_data(const json& set) {
  json tmpl = at(set, "spec", "template");
  if (!tmpl.is_object()) tmpl = json::object();
  tmpl["$patch"] = "replace";
  return {{"spec", {{"template", std::move(tmpl)}}}};
}

json apply_revision(const json& set, const json& data) {
  json out = set;
  json tmpl = at(at(data, "spec"), "template");
  if (!tmpl.is_object()) return out;
  tmpl.erase("$patch");
  out["spec"]["template"] = std::move(tmpl);
  return out;
}

bool update_claim_owner_refs(json& claim, const json& set, const json& pod) {
  const bool deleted = policy_of(set, "whenDeleted") == "Delete";
  const bool scaled = policy_of(set, "whenScaled") == "Delete";
  const bool scaled_down = !in_ordinal_range(pod, set);
  bool changed = false;
  auto own = [&](const json& owner, const char* av, const char* kind, bool want) {
    changed =
        (want ? set_owner_ref(claim, owner, av, kind) : remove_owner_ref(claim, owner)) || changed;
  };
  if (!deleted && !scaled) {
    own(set, "apps/v1", "StatefulSet", false);
    own(pod, "v1", "Pod", false);
  } else if (deleted && !scaled) {
    own(set, "apps/v1", "StatefulSet", true);
    own(pod, "v1", "Pod", false);
  } else if (!deleted && scaled) {
    own(set, "apps/v1", "StatefulSet", false);
    own(pod, "v1", "Pod", scaled_down);
  } else {
    own(set, "apps/v1", "StatefulSet", !scaled_down);
    own(pod, "v1", "Pod", scaled_down);
  }
  return changed;
}

bool has_stale_owner_ref(const json& claim, const json& pod) {
  const json& refs = at(claim, "metadata", "ownerReferences");
  if (!refs.is_array()) return false;
  for (const auto& r : refs)
    if (str(at(r, "kind")) == "Pod" && str(at(r, "name")) == name_of(pod) &&
        str(at(r, "uid")) != uid_of(pod))
      return true;
  return false;
}

}  // namespace skiff::controllers::statefulset
