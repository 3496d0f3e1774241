#include "controllers/endpointslice/endpointslice_util.h"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "controllers/api_util.h"
#include "proto/endpointslice.h"

namespace skiff::controllers::endpointslice {
namespace {

const proto::DecodeOptions kLenient{.report_unknown = false};

json object_or_empty(const json& j) { return j.is_object() ? j : json::object(); }

// A dotted IPv4 address (leading zeros allowed, as netutils.ParseIPSloppy), or nullopt.
std::optional<std::array<uint8_t, 4>> ipv4(const std::string& s) {
  std::array<uint8_t, 4> out{};
  size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    size_t j = i;
    int v = 0;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9' && j - i < 4) v = v * 10 + (s[j++] - '0');
    if (j == i || v > 255) return std::nullopt;
    out[part] = static_cast<uint8_t>(v);
    if (part < 3) {
      if (j >= s.size() || s[j] != '.') return std::nullopt;
      ++j;
    }
    i = j;
  }
  if (i != s.size()) return std::nullopt;
  return out;
}

// What the EndpointSlice validation refuses (ValidateNonSpecialIP): 0.0.0.0, loopback,
// link-local, link-local multicast.
bool special(const std::array<uint8_t, 4>& b) {
  return (b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0) || b[0] == 127 ||
         (b[0] == 169 && b[1] == 254) || (b[0] == 224 && b[1] == 0 && b[2] == 0);
}

// The endpoint / port as the API server stores it (decoded, defaulted, encoded), so that what we
// want compares equal to what we wrote.
json canon_endpoint(const json& e) {
  proto::FieldErrors ignored;
  return proto::encode(proto::decode<proto::SliceEndpoint>(e, ignored, kLenient));
}

json canon_port(const json& p) {
  proto::FieldErrors ignored;
  auto port = proto::decode<proto::SlicePort>(p, ignored, kLenient);
  if (!port.name) port.name = "";
  if (!port.protocol) port.protocol = "TCP";
  return proto::encode(port);
}

json canon_ports(const json& ports) {
  json out = json::array();
  if (ports.is_array())
    for (const auto& p : ports) out.push_back(canon_port(p));
  return out;
}

// Ports in a stable order (name, port, protocol): the identity of a port set.
json sorted_ports(json ports) {
  std::sort(ports.begin(), ports.end(), [](const json& a, const json& b) {
    return std::make_tuple(str(at(a, "name")), num(at(a, "port")), str(at(a, "protocol"))) <
           std::make_tuple(str(at(b, "name")), num(at(b, "port")), str(at(b, "protocol")));
  });
  return ports;
}

std::string first_address(const json& endpoint) {
  const json& a = at(endpoint, "addresses");
  return a.is_array() && !a.empty() ? str(a[0]) : "";
}

// A slice being planned: an existing one (to update or delete) or a new one.
struct Slot {
  const json* existing = nullptr;
  json ports = json::array();
  std::vector<json> endpoints;
};

}  // namespace

bool should_mirror(const json& ep) {
  // The name becomes the kubernetes.io/service-name label value (at most 63 characters); a
  // Service's name always fits, a longer Endpoints name has no Service and could only fail.
  if (name_of(ep).size() > 63) return false;
  if (str(at(at(ep, "metadata", "labels"), proto::kLabelSkipMirror)) == "true") return false;
  return !at(at(ep, "metadata", "annotations"), kLeaderAnnotation).is_string();
}

bool managed_by_us(const json& slice) {
  return str(at(at(slice, "metadata", "labels"), proto::kLabelManagedBy)) ==
         proto::kEndpointSliceControllerName;
}

Groups desired_groups(const json& ep) {
  struct Group {
    json ports;
    std::map<std::array<uint8_t, 4>, std::pair<bool, json>>
        endpoints;  // by address: ready, endpoint
  };
  std::map<std::string, Group> by_ports;
  Groups out;
  const json& subsets = at(ep, "subsets");
  if (!subsets.is_array()) return out;
  for (const auto& ss : subsets) {
    json ports = sorted_ports(canon_ports(at(ss, "ports")));
    Group& g = by_ports[ports.dump()];
    g.ports = ports;
    auto add = [&](const json& addr, bool ready) {
      const std::string ip = str(at(addr, "ip"));
      auto b = ipv4(ip);
      if (!b || special(*b)) {
        ++out.skipped;
        return;
      }
      auto it = g.endpoints.find(*b);
      if (it != g.endpoints.end() && (it->second.first || !ready)) return;  // ready wins
      json e = {{"addresses", {ip}},
                {"conditions", {{"ready", ready}, {"serving", ready}, {"terminating", false}}}};
      if (!str(at(addr, "hostname")).empty()) e["hostname"] = at(addr, "hostname");
      if (!str(at(addr, "nodeName")).empty()) e["nodeName"] = at(addr, "nodeName");
      if (at(addr, "targetRef").is_object()) e["targetRef"] = at(addr, "targetRef");
      g.endpoints[*b] = {ready, canon_endpoint(e)};
    };
    for (const char* field : {"addresses", "notReadyAddresses"}) {
      const json& list = at(ss, field);
      if (!list.is_array()) continue;
      for (const auto& a : list) add(a, std::string_view(field) == "addresses");
    }
  }
  for (auto& [key, g] : by_ports) {
    if (g.endpoints.empty()) continue;
    PortGroup pg;
    pg.ports = std::move(g.ports);
    for (auto& [addr, e] : g.endpoints) pg.endpoints.push_back(std::move(e.second));
    out.groups.push_back(std::move(pg));
  }
  return out;
}

std::vector<std::string> slices_to_remove(const std::vector<json>& existing) {
  std::vector<std::string> names;
  for (const auto& s : existing)
    if (managed_by_us(s)) names.push_back(name_of(s));
  std::sort(names.begin(), names.end());
  return names;
}

SlicePlan plan_slices(const json& ep, const json* service, const std::vector<json>& existing,
                      size_t max_per_slice) {
  if (max_per_slice < 1) max_per_slice = 1;
  SlicePlan plan;
  Groups groups = desired_groups(ep);
  plan.skipped = groups.skipped;
  const bool placeholder = groups.groups.empty();
  if (placeholder) groups.groups.emplace_back();  // ports [], no endpoints

  // Ours, IPv4, by name; other address types cannot become IPv4 (immutable): deleted.
  std::vector<const json*> mine;
  for (const auto& s : existing) {
    if (!managed_by_us(s)) continue;
    if (str(at(s, "addressType")) != "IPv4")
      plan.remove.push_back(name_of(s));
    else
      mine.push_back(&s);
  }
  std::sort(mine.begin(), mine.end(),
            [](const json* a, const json* b) { return name_of(*a) < name_of(*b); });
  std::set<std::string> wanted_keys;
  for (const auto& g : groups.groups) wanted_keys.insert(g.ports.dump());
  std::map<std::string, std::vector<const json*>> by_key;
  std::vector<const json*> leftovers;  // slices whose port set is no longer wanted
  for (const json* s : mine) {
    std::string key = sorted_ports(canon_ports(at(*s, "ports"))).dump();
    if (wanted_keys.count(key))
      by_key[key].push_back(s);
    else
      leftovers.push_back(s);
  }
  size_t next_leftover = 0;

  std::vector<Slot> slots;
  for (const auto& g : groups.groups) {
    std::map<std::string, const json*> wanted;  // address -> endpoint
    for (const auto& e : g.endpoints) wanted[first_address(e)] = &e;
    std::set<std::string> placed;
    const size_t first = slots.size();
    // Endpoints stay where they are.
    for (const json* s : by_key[g.ports.dump()]) {
      Slot slot{s, g.ports, {}};
      const json& eps = at(*s, "endpoints");
      if (eps.is_array())
        for (const auto& e : eps) {
          std::string a = first_address(e);
          auto it = wanted.find(a);
          if (it != wanted.end() && placed.insert(a).second) slot.endpoints.push_back(*it->second);
        }
      slots.push_back(std::move(slot));
    }
    // New ones fill slices with room, then reuse leftovers, then new slices.
    size_t fill = first;
    for (const auto& e : g.endpoints) {
      if (placed.count(first_address(e))) continue;
      while (fill < slots.size() && slots[fill].endpoints.size() >= max_per_slice) ++fill;
      if (fill == slots.size()) {
        const json* reuse = next_leftover < leftovers.size() ? leftovers[next_leftover++] : nullptr;
        slots.push_back(Slot{reuse, g.ports, {}});
      }
      slots[fill].endpoints.push_back(e);
    }
    if (placeholder && slots.size() == first) {
      const json* reuse = next_leftover < leftovers.size() ? leftovers[next_leftover++] : nullptr;
      slots.push_back(Slot{reuse, g.ports, {}});
    }
    // Empty slices go, except the one placeholder.
    for (size_t i = first; i < slots.size(); ++i) {
      bool keep = !slots[i].endpoints.empty() || (placeholder && i == first);
      if (!keep && slots[i].existing) plan.remove.push_back(name_of(*slots[i].existing));
      if (!keep) slots[i].existing = nullptr, slots[i].ports = nullptr;  // marked dropped
    }
  }
  for (; next_leftover < leftovers.size(); ++next_leftover)
    plan.remove.push_back(name_of(*leftovers[next_leftover]));

  // Metadata every slice of this Service carries.
  const std::string name = name_of(ep), ns = ns_of(ep);
  json labels = object_or_empty(at(ep, "metadata", "labels"));
  labels.erase(proto::kLabelSkipMirror);
  labels[proto::kLabelServiceName] = name;
  labels[proto::kLabelManagedBy] = proto::kEndpointSliceControllerName;
  json owners;
  if (service)
    owners = json::array({{{"apiVersion", "v1"},
                           {"kind", "Service"},
                           {"name", name_of(*service)},
                           {"uid", uid_of(*service)},
                           {"controller", true},
                           {"blockOwnerDeletion", true}}});
  const json& trigger = at(at(ep, "metadata", "annotations"), kTriggerTimeAnnotation);

  for (auto& slot : slots) {
    if (slot.ports.is_null()) continue;  // dropped above
    json eps = json::array();
    for (auto& e : slot.endpoints) eps.push_back(std::move(e));
    json obj;
    if (slot.existing) {
      const json& cur = *slot.existing;
      const json& md = at(cur, "metadata");
      json cur_eps = json::array();
      if (at(cur, "endpoints").is_array())
        for (const auto& e : at(cur, "endpoints")) cur_eps.push_back(canon_endpoint(e));
      bool same = canon_ports(at(cur, "ports")) == slot.ports && cur_eps == eps &&
                  object_or_empty(at(md, "labels")) == labels &&
                  at(md, "ownerReferences") == (owners.is_null() ? json() : owners);
      if (same) continue;
      obj = cur;
    } else {
      obj = {{"apiVersion", "discovery.k8s.io/v1"},
             {"kind", "EndpointSlice"},
             {"metadata", {{"generateName", name + "-"}, {"namespace", ns}}}};
    }
    json& md = obj["metadata"];
    md["labels"] = labels;
    if (owners.is_null())
      md.erase("ownerReferences");
    else
      md["ownerReferences"] = owners;
    if (trigger.is_string()) md["annotations"][kTriggerTimeAnnotation] = trigger;
    obj["addressType"] = "IPv4";
    obj["ports"] = slot.ports;
    obj["endpoints"] = std::move(eps);
    (slot.existing ? plan.update : plan.create).push_back(std::move(obj));
  }
  std::sort(plan.remove.begin(), plan.remove.end());
  return plan;
}

}  // namespace skiff::controllers::endpointslice
