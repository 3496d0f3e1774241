#include "controllers/endpoints/endpoints_util.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

#include "controllers/api_util.h"
#include "proto/time.h"

namespace skiff::controllers::endpoints {

namespace {

const json& ready_condition(const json& pod) {
  static const json kNull;
  const json& conds = at(pod, "status", "conditions");
  if (!conds.is_array()) return kNull;
  for (const auto& c : conds)
    if (str(at(c, "type")) == "Ready") return c;
  return kNull;
}

std::string pod_ip(const json& pod) {
  std::string ip = str(at(pod, "status", "podIP"));
  if (!ip.empty()) return ip;
  const json& ips = at(pod, "status", "podIPs");
  if (ips.is_array() && !ips.empty()) return str(at(ips[0], "ip"));
  return "";
}

// Drops nulls, empty strings, empty objects and empty arrays, recursively.
json strip_empty(const json& j) {
  if (j.is_object()) {
    json out = json::object();
    for (auto it = j.begin(); it != j.end(); ++it) {
      json v = strip_empty(it.value());
      if (v.is_null() || (v.is_string() && v.get<std::string>().empty()) ||
          ((v.is_object() || v.is_array()) && v.empty()))
        continue;
      out[it.key()] = std::move(v);
    }
    return out;
  }
  if (j.is_array()) {
    json out = json::array();
    for (const auto& e : j) out.push_back(strip_empty(e));
    return out;
  }
  return j;
}

std::string protocol_of(const json& port) {
  std::string p = str(at(port, "protocol"));
  return p.empty() ? "TCP" : p;
}

// LessEndpointAddress: IP bytes, then a missing targetRef first, then targetRef uid.
bool less_address(const json& a, const json& b) {
  std::string ia = str(at(a, "ip")), ib = str(at(b, "ip"));
  if (ia != ib) return ia < ib;
  const json& ra = at(a, "targetRef");
  const json& rb = at(b, "targetRef");
  if (rb.is_null()) return false;
  if (ra.is_null()) return true;
  return str(at(ra, "uid")) < str(at(rb, "uid"));
}

bool less_port(const json& a, const json& b) {
  auto key = [](const json& p) {
    return std::make_tuple(str(at(p, "name")),
                           at(p, "port").is_number() ? at(p, "port").get<int>() : 0,
                           str(at(p, "protocol")), str(at(p, "appProtocol")));
  };
  return key(a) < key(b);
}

WallTime pod_trigger_time(const json& pod) {
  if (auto t = proto::parse_rfc3339(str(at(ready_condition(pod), "lastTransitionTime")))) return *t;
  return {};
}

}  // namespace

bool manages_endpoints(const json& svc) {
  if (str(at(svc, "spec", "type")) == "ExternalName") return false;
  const json& sel = at(svc, "spec", "selector");
  return sel.is_object() && !sel.empty();
}

bool has_cluster_ip(const json& svc) {
  std::string ip = str(at(svc, "spec", "clusterIP"));
  return !ip.empty() && ip != "None";
}

bool selects(const json& svc, const json& pod) {
  const json& sel = at(svc, "spec", "selector");
  if (!sel.is_object() || sel.empty()) return false;
  const json& labels = at(pod, "metadata", "labels");
  if (!labels.is_object()) return false;
  for (auto it = sel.begin(); it != sel.end(); ++it) {
    auto l = labels.find(it.key());
    if (l == labels.end() || *l != it.value()) return false;
  }
  return true;
}

bool is_pod_ready(const json& pod) { return str(at(ready_condition(pod), "status")) == "True"; }

bool should_be_in_endpoints(const json& pod, bool include_terminating) {
  std::string phase = str(at(pod, "status", "phase"));
  if (phase == "Succeeded" || phase == "Failed") return false;
  if (pod_ip(pod).empty()) return false;
  if (!include_terminating && !at(pod, "metadata", "deletionTimestamp").is_null()) return false;
  return true;
}

std::optional<int> find_port(const json& pod, const json& service_port) {
  const json& target = at(service_port, "targetPort");
  if (target.is_number_integer() && target.get<int>() > 0) return target.get<int>();
  if (!target.is_string() || target.get<std::string>().empty()) {
    // Unset: the API server defaults targetPort to port; be as lenient with an old object.
    const json& port = at(service_port, "port");
    if (port.is_number_integer()) return port.get<int>();
    return std::nullopt;
  }
  const std::string name = target.get<std::string>();
  const std::string proto = protocol_of(service_port);
  auto search = [&](const json& containers, bool sidecars_only) -> std::optional<int> {
    if (!containers.is_array()) return std::nullopt;
    for (const auto& c : containers) {
      if (sidecars_only && str(at(c, "restartPolicy")) != "Always") continue;
      const json& ports = at(c, "ports");
      if (!ports.is_array()) continue;
      for (const auto& p : ports)
        if (str(at(p, "name")) == name && protocol_of(p) == proto &&
            at(p, "containerPort").is_number_integer())
          return at(p, "containerPort").get<int>();
    }
    return std::nullopt;
  };
  if (auto p = search(at(pod, "spec", "containers"), false)) return p;
  return search(at(pod, "spec", "initContainers"), true);
}

json pod_address(const json& svc, const json& pod) {
  json a = {{"ip", pod_ip(pod)}};
  std::string node = str(at(pod, "spec", "nodeName"));
  if (!node.empty()) a["nodeName"] = node;
  a["targetRef"] = {{"kind", "Pod"},
                    {"namespace", str(at(pod, "metadata", "namespace"))},
                    {"name", str(at(pod, "metadata", "name"))},
                    {"uid", str(at(pod, "metadata", "uid"))}};
  std::string hostname = str(at(pod, "spec", "hostname"));
  if (!hostname.empty() && str(at(pod, "spec", "subdomain")) == str(at(svc, "metadata", "name")) &&
      str(at(pod, "metadata", "namespace")) == str(at(svc, "metadata", "namespace")))
    a["hostname"] = hostname;
  return a;
}

DesiredSubsets desired_subsets(const json& svc, const std::vector<json>& pods) {
  DesiredSubsets out;
  const bool tolerate = at(svc, "spec", "publishNotReadyAddresses").is_boolean() &&
                        at(svc, "spec", "publishNotReadyAddresses").get<bool>();
  const json& ports = at(svc, "spec", "ports");
  const bool no_ports = !ports.is_array() || ports.empty();
  json raw = json::array();
  auto add = [&](const json& pod, const json& addr, const json* port) {
    bool ready = tolerate || is_pod_ready(pod);
    json subset = json::object();
    subset[ready ? "addresses" : "notReadyAddresses"] = json::array({addr});
    if (port) subset["ports"] = json::array({*port});
    raw.push_back(std::move(subset));
    ++(ready ? out.ready : out.not_ready);
  };
  for (const auto& pod : pods) {
    if (!should_be_in_endpoints(pod, tolerate)) continue;
    json addr = pod_address(svc, pod);
    if (no_ports) {
      // Only a headless Service may have no ports: its addresses go out without any.
      if (str(at(svc, "spec", "clusterIP")) == "None") add(pod, addr, nullptr);
      continue;
    }
    for (const auto& sp : ports) {
      auto num = find_port(pod, sp);
      if (!num) continue;  // the pod lacks this named port: left out of this port only
      json ep = {{"port", *num}, {"protocol", protocol_of(sp)}};
      if (!str(at(sp, "name")).empty()) ep["name"] = str(at(sp, "name"));
      if (!str(at(sp, "appProtocol")).empty()) ep["appProtocol"] = str(at(sp, "appProtocol"));
      add(pod, addr, &ep);
    }
  }
  out.subsets = repack_subsets(raw);
  return out;
}

json repack_subsets(const json& subsets_in) {
  if (!subsets_in.is_array()) return json::array();
  // Every distinct address (ip + uid), first occurrence kept whole.
  using AddrKey = std::pair<std::string, std::string>;
  std::map<AddrKey, json> all_addrs;
  // Port (as canonical JSON text; "" = the no-port sentinel) -> address -> ready.
  std::map<std::string, std::map<AddrKey, bool>> port_addrs;
  std::map<std::string, json> port_obj;
  auto map_address = [&](const json& addr, const std::string& port, bool ready) {
    AddrKey k{str(at(addr, "ip")), str(at(addr, "targetRef", "uid"))};
    all_addrs.emplace(k, addr);
    auto& set = port_addrs[port];
    auto it = set.find(k);
    // Not ready trumps ready.
    if (it == set.end() || it->second) set[k] = ready;
  };
  for (const auto& raw : subsets_in) {
    json s = strip_empty(raw);
    std::vector<std::string> pkeys;
    const json& ports = at(s, "ports");
    if (!ports.is_array() || ports.empty()) {
      pkeys.push_back("");
    } else {
      for (const auto& p : ports) {
        json pc = p;
        if (!pc.contains("protocol")) pc["protocol"] = "TCP";
        std::string k = pc.dump();
        port_obj.emplace(k, pc);
        pkeys.push_back(k);
      }
    }
    for (const auto& pk : pkeys) {
      // Also ensure the port exists when a subset has ports but no address.
      port_addrs[pk];
      for (const char* field : {"addresses", "notReadyAddresses"}) {
        const json& as = at(s, field);
        if (!as.is_array()) continue;
        for (const auto& a : as) map_address(a, pk, field[0] == 'a');
      }
    }
  }
  // Group the ports by their address sets.
  std::map<std::map<AddrKey, bool>, std::vector<std::string>> groups;
  for (auto& [pk, addrs] : port_addrs) {
    if (addrs.empty()) continue;  // no address at all: nothing to publish
    groups[addrs].push_back(pk);
  }
  std::vector<json> out;
  for (auto& [addrs, pkeys] : groups) {
    json ready = json::array(), not_ready = json::array(), ports = json::array();
    for (auto& [k, r] : addrs) (r ? ready : not_ready).push_back(all_addrs[k]);
    for (const auto& pk : pkeys)
      if (!pk.empty()) ports.push_back(port_obj[pk]);
    std::sort(ready.begin(), ready.end(), less_address);
    std::sort(not_ready.begin(), not_ready.end(), less_address);
    std::sort(ports.begin(), ports.end(), less_port);
    json s = json::object();
    if (!ready.empty()) s["addresses"] = std::move(ready);
    if (!not_ready.empty()) s["notReadyAddresses"] = std::move(not_ready);
    if (!ports.empty()) s["ports"] = std::move(ports);
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const json& a, const json& b) { return a.dump() < b.dump(); });
  return json(out);
}

bool truncate_subsets(json& subsets, int max_capacity) {
  if (!subsets.is_array()) return false;
  auto count = [](const json& s, const char* f) {
    const json& a = at(s, f);
    return a.is_array() ? static_cast<int>(a.size()) : 0;
  };
  int total_ready = 0, total_not_ready = 0;
  for (const auto& s : subsets) {
    total_ready += count(s, "addresses");
    total_not_ready += count(s, "notReadyAddresses");
  }
  if (total_ready + total_not_ready <= max_capacity) return false;
  bool truncate_ready = total_ready > max_capacity;
  int max = truncate_ready ? max_capacity : max_capacity - total_ready;
  int num_total = truncate_ready ? total_ready : total_not_ready;
  int can_be_added = max;
  for (auto& s : subsets) {
    const char* field = truncate_ready ? "addresses" : "notReadyAddresses";
    int in_subset = count(s, field);
    int to_add =
        num_total == 0
            ? 0
            : static_cast<int>(std::ceil(static_cast<double>(in_subset) / num_total * max));
    to_add = std::min({to_add, can_be_added, in_subset});
    if (in_subset > 0) {
      json& a = s[field];
      a.erase(a.begin() + to_add, a.end());
      if (a.empty()) s.erase(field);
    }
    if (truncate_ready) s.erase("notReadyAddresses");
    can_be_added -= to_add;
  }
  // A subset left without any address is invalid in the API.
  json kept = json::array();
  for (auto& s : subsets)
    if (count(s, "addresses") + count(s, "notReadyAddresses") > 0) kept.push_back(std::move(s));
  subsets = std::move(kept);
  return true;
}

std::pair<bool, bool> pod_endpoints_changed(const json& old_pod, const json& pod) {
  bool membership = at(old_pod, "metadata", "labels") != at(pod, "metadata", "labels") ||
                    at(old_pod, "spec", "hostname") != at(pod, "spec", "hostname") ||
                    at(old_pod, "spec", "subdomain") != at(pod, "spec", "subdomain");
  bool changed =
      at(old_pod, "metadata", "deletionTimestamp") != at(pod, "metadata", "deletionTimestamp") ||
      is_pod_ready(old_pod) != is_pod_ready(pod) || pod_ip(old_pod) != pod_ip(pod) ||
      at(old_pod, "status", "podIPs") != at(pod, "status", "podIPs") ||
      at(old_pod, "spec", "nodeName") != at(pod, "spec", "nodeName") ||
      at(old_pod, "status", "phase") != at(pod, "status", "phase");
  return {changed, membership};
}

TriggerTimeTracker::Computed TriggerTimeTracker::compute(const std::string& key, const json& svc,
                                                         const std::vector<json>& pods) const {
  std::optional<State> prev;
  {
    std::lock_guard l(mu_);
    if (auto it = states_.find(key); it != states_.end()) prev = it->second;
  }
  Computed c;
  std::optional<WallTime> min_changed;
  auto consider = [&](WallTime t) {
    if (!min_changed || t < *min_changed) min_changed = t;
  };
  for (const auto& pod : pods) {
    WallTime t = pod_trigger_time(pod);
    if (t == WallTime{}) continue;
    std::string name = str(at(pod, "metadata", "name"));
    c.next.pods[name] = t;
    WallTime before{};
    if (prev)
      if (auto it = prev->pods.find(name); it != prev->pods.end()) before = it->second;
    if (t > before) consider(t);
  }
  auto created = proto::parse_rfc3339(str(at(svc, "metadata", "creationTimestamp")));
  c.next.service = created.value_or(WallTime{});
  if (!prev) {
    if (created) c.time = *created;  // a new Service: its creation triggered the Endpoints
    return c;
  }
  if (c.next.service > prev->service) consider(c.next.service);
  c.time = min_changed;
  return c;
}

void TriggerTimeTracker::commit(const std::string& key, State next) {
  std::lock_guard l(mu_);
  states_[key] = std::move(next);
}

void TriggerTimeTracker::forget(const std::string& key) {
  std::lock_guard l(mu_);
  states_.erase(key);
}

}  // namespace skiff::controllers::endpoints
