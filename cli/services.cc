#include "cli/services.h"

#include <algorithm>
#include <charconv>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/printers.h"
#include "cli/workloads.h"

namespace skiff::cli {

namespace {

std::string join(const json& list, const char* sep) {
  std::string out;
  if (!list.is_array()) return out;
  for (const auto& v : list) {
    if (!out.empty()) out += sep;
    out += v.is_string() ? v.get<std::string>() : v.dump();
  }
  return out;
}

bool nonempty_array(const json& j) { return j.is_array() && !j.empty(); }

const json& array_or_empty(const json& j) {
  static const json kEmpty = json::array();
  return j.is_array() ? j : kEmpty;
}

std::string join_host_port(const std::string& ip, const std::string& port) {
  if (ip.find(':') != std::string::npos) return "[" + ip + "]:" + port;
  return ip + ":" + port;
}

// generate.MakeLabels: "k=v,k2=v2" sorted by key.
std::string make_labels(const json& m) {
  std::string out;
  if (!m.is_object()) return out;
  for (const auto& [k, v] : m.items()) {
    if (!out.empty()) out += ',';
    out += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

// kubectl expose's parseLabels.
Result<json> parse_labels(const std::string& spec) {
  json out = json::object();
  size_t pos = 0;
  while (true) {
    size_t comma = spec.find(',', pos);
    std::string item = spec.substr(pos, comma == std::string::npos ? comma : comma - pos);
    size_t eq = item.find('=');
    if (eq == std::string::npos || item.find('=', eq + 1) != std::string::npos)
      return Status::invalid("unexpected label spec: " + item);
    if (eq == 0) return Status::invalid("unexpected empty label key");
    out[item.substr(0, eq)] = item.substr(eq + 1);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::optional<int> atoi_strict(const std::string& s) {
  int v = 0;
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || p != e || b == e) return std::nullopt;
  return v;
}

// The pod spec of a Pod, Deployment or ReplicaSet.
const json& pod_spec_of(const json& obj) {
  if (str_of(obj, "kind") == "Pod") return child(obj, "spec");
  return child(child(child(obj, "spec"), "template"), "spec");
}

}  // namespace

std::string format_endpoints_for_port(const json& endpoints, const std::string& port_name) {
  const json& subsets = child(endpoints, "subsets");
  if (!nonempty_array(subsets)) return "<none>";
  std::vector<std::string> list;
  const size_t kMax = 3;
  bool more = false;
  size_t count = 0;
  for (const auto& ss : subsets) {
    const json& addrs = array_or_empty(child(ss, "addresses"));
    const json& ports = child(ss, "ports");
    if (!nonempty_array(ports)) {
      // Headless Services may have no ports.
      count += addrs.size();
      for (const auto& a : addrs) {
        if (list.size() == kMax) {
          more = true;
          break;
        }
        list.push_back(str_of(a, "ip"));
      }
      continue;
    }
    for (const auto& p : ports) {
      if (str_of(p, "name") != port_name) continue;
      count += addrs.size();
      for (const auto& a : addrs) {
        if (list.size() == kMax) {
          more = true;
          break;
        }
        list.push_back(join_host_port(str_of(a, "ip"), str_of(p, "port", "0")));
      }
    }
  }
  std::string ret;
  for (const auto& s : list) ret += (ret.empty() ? "" : ",") + s;
  if (more) ret += " + " + std::to_string(count - kMax) + " more...";
  return ret;
}

std::string format_endpoint_slices_for_port(const json& slices, const std::string& port_name) {
  if (!nonempty_array(slices)) return "<none>";
  std::vector<std::string> list;
  const size_t kMax = 3;
  bool more = false;
  size_t count = 0;
  auto visit = [&](const json& ep, const std::string* port) {
    // kubectl marks "more" on reaching the limit, whether or not this endpoint is ready.
    if (list.size() == kMax) more = true;
    const json& ready = child(child(ep, "conditions"), "ready");
    if (ready.is_boolean() && !ready.get<bool>()) return;
    ++count;
    if (more) return;
    const json& addrs = child(ep, "addresses");
    std::string ip =
        nonempty_array(addrs) && addrs[0].is_string() ? addrs[0].get<std::string>() : "";
    list.push_back(port ? join_host_port(ip, *port) : ip);
  };
  for (const auto& slice : slices) {
    const json& eps = array_or_empty(child(slice, "endpoints"));
    const json& ports = child(slice, "ports");
    if (!nonempty_array(ports)) {
      for (const auto& ep : eps) visit(ep, nullptr);
      continue;
    }
    for (const auto& p : ports) {
      if (str_of(p, "name") != port_name) continue;
      const std::string num = str_of(p, "port", "0");
      for (const auto& ep : eps) visit(ep, &num);
    }
  }
  std::string ret;
  for (const auto& s : list) ret += (ret.empty() ? "" : ",") + s;
  if (more) ret += " + " + std::to_string(count - kMax) + " more...";
  return ret;
}

void describe_service(DescribeWriter& w, const json& svc, const json& slices,
                      const json& endpoints) {
  const json& md = child(svc, "metadata");
  const json& spec = child(svc, "spec");
  w.kv(0, "Name", str_of(md, "name"));
  w.kv(0, "Namespace", str_of(md, "namespace"));
  write_labels(w, "Labels", child(md, "labels"));
  write_annotations(w, "Annotations", child(md, "annotations"));
  w.kv(0, "Selector", labels_text(child(spec, "selector")));
  w.kv(0, "Type", str_of(spec, "type"));
  if (child(spec, "ipFamilyPolicy").is_string())
    w.kv(0, "IP Family Policy", str_of(spec, "ipFamilyPolicy"));
  w.kv(0, "IP Families",
       nonempty_array(child(spec, "ipFamilies")) ? join(child(spec, "ipFamilies"), ",") : "<none>");
  w.kv(0, "IP", str_of(spec, "clusterIP"));
  w.kv(0, "IPs",
       nonempty_array(child(spec, "clusterIPs")) ? join(child(spec, "clusterIPs"), ",") : "<none>");
  if (nonempty_array(child(spec, "externalIPs")))
    w.kv(0, "External IPs", join(child(spec, "externalIPs"), ","));
  // kubectl labels the requested load-balancer address "IP" too.
  if (!str_of(spec, "loadBalancerIP").empty()) w.kv(0, "IP", str_of(spec, "loadBalancerIP"));
  if (str_of(spec, "type") == "ExternalName")
    w.kv(0, "External Name", str_of(spec, "externalName"));
  const json& ingress = child(child(child(svc, "status"), "loadBalancer"), "ingress");
  if (nonempty_array(ingress)) {
    std::string list;
    for (const auto& i : ingress) {
      if (!list.empty()) list += ", ";
      list += !str_of(i, "ip").empty() ? str_of(i, "ip") : str_of(i, "hostname");
    }
    w.kv(0, "LoadBalancer Ingress", list);
  }
  for (const auto& p : array_or_empty(child(spec, "ports"))) {
    std::string name = str_of(p, "name");
    if (name.empty()) name = "<unset>";
    const std::string proto = str_of(p, "protocol");
    w.kv(0, "Port", name + "\t" + str_of(p, "port", "0") + "/" + proto);
    const json& target = child(p, "targetPort");
    // An unset targetPort is intstr's zero value: the number 0.
    w.kv(0, "TargetPort", (target.is_null() ? "0" : str_of(p, "targetPort")) + "/" + proto);
    if (child(p, "nodePort").is_number_integer() && child(p, "nodePort").get<int64_t>() != 0)
      w.kv(0, "NodePort", name + "\t" + str_of(p, "nodePort") + "/" + proto);
    w.kv(0, "Endpoints",
         slices.is_array() ? format_endpoint_slices_for_port(slices, str_of(p, "name"))
                           : format_endpoints_for_port(endpoints, str_of(p, "name")));
  }
  w.kv(0, "Session Affinity", str_of(spec, "sessionAffinity"));
  if (!str_of(spec, "externalTrafficPolicy").empty())
    w.kv(0, "External Traffic Policy", str_of(spec, "externalTrafficPolicy"));
  if (child(spec, "internalTrafficPolicy").is_string())
    w.kv(0, "Internal Traffic Policy", str_of(spec, "internalTrafficPolicy"));
  if (child(spec, "healthCheckNodePort").is_number_integer() &&
      child(spec, "healthCheckNodePort").get<int64_t>() != 0)
    w.kv(0, "HealthCheck NodePort", str_of(spec, "healthCheckNodePort"));
  if (nonempty_array(child(spec, "loadBalancerSourceRanges")))
    w.kv(0, "LoadBalancer Source Ranges", join(child(spec, "loadBalancerSourceRanges"), ","));
}

Result<json> service_for_expose(const json& obj, const ExposeOptions& o) {
  const std::string kind = str_of(obj, "kind");
  const json& md = child(obj, "metadata");
  if (kind != "Pod" && kind != "Deployment" && kind != "ReplicaSet")
    return Status::invalid("cannot expose a " + kind);
  std::string default_name = str_of(md, "name").substr(0, 63);

  // Selector: the flag, else the object's (MapBasedSelectorForObject).
  std::string selector_text = o.selector;
  if (selector_text.empty()) {
    const std::string prefix = "couldn't retrieve selectors via --selector flag or introspection: ";
    if (kind == "Pod") {
      if (!child(md, "labels").is_object() || child(md, "labels").empty())
        return Status::invalid(prefix + "the pod has no labels and cannot be exposed");
      selector_text = make_labels(child(md, "labels"));
    } else {
      const json& sel = child(child(obj, "spec"), "selector");
      if (nonempty_array(child(sel, "matchExpressions")))
        return Status::invalid(prefix + "couldn't convert expressions - \"" +
                               child(sel, "matchExpressions").dump() +
                               "\" to map-based selector format");
      selector_text = make_labels(child(sel, "matchLabels"));
    }
  }
  if (selector_text.empty()) return Status::invalid("selector must be specified");
  auto selector = parse_labels(selector_text);
  if (!selector) return selector.status();

  // Ports: the flag, else every container port (PortsForObject).
  const json& pod_spec = pod_spec_of(obj);
  std::vector<std::string> ports;
  std::map<std::string, std::vector<std::string>> protocols;  // container port -> protocols
  for (const auto& c : array_or_empty(child(pod_spec, "containers"))) {
    for (const auto& p : array_or_empty(child(c, "ports"))) {
      std::string num = str_of(p, "containerPort", "0");
      ports.push_back(num);
      std::string proto = str_of(p, "protocol");
      auto& v = protocols[num];
      if (std::find(v.begin(), v.end(), proto.empty() ? "TCP" : proto) == v.end())
        v.push_back(proto.empty() ? "TCP" : proto);
    }
  }
  const bool headless = o.cluster_ip == "None";
  std::vector<std::string> port_list;
  if (!o.port.empty()) {
    port_list.push_back(o.port);
  } else if (ports.empty()) {
    if (!headless) return Status::invalid("couldn't find port via --port flag or introspection");
  } else {
    port_list = ports;
  }

  json labels;
  std::string labels_text_ = o.labels.empty() ? make_labels(child(md, "labels")) : o.labels;
  if (!labels_text_.empty()) {
    auto l = parse_labels(labels_text_);
    if (!l) return l.status();
    labels = std::move(*l);
  }

  json svc_ports = json::array();
  for (size_t i = 0; i < port_list.size(); ++i) {
    const std::string& ps = port_list[i];
    auto num = atoi_strict(ps);
    if (!num) return Status::invalid("strconv.Atoi: parsing \"" + ps + "\": invalid syntax");
    std::string name = port_list.size() > 1 ? "port-" + std::to_string(i + 1) : "";
    std::string protocol = o.protocol;
    if (protocol.empty()) {
      protocol = "TCP";
      if (auto it = protocols.find(ps); it != protocols.end()) {
        if (it->second.size() == 1) {
          protocol = it->second[0];
        } else {
          for (const auto& proto : it->second) {
            std::string lower = proto;
            std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
            svc_ports.push_back({{"name", "port-" + std::to_string(i + 1) + "-" + lower},
                                 {"port", *num},
                                 {"protocol", proto}});
          }
          continue;
        }
      }
    }
    json p = {{"port", *num}, {"protocol", protocol}};
    if (!name.empty()) p["name"] = name;
    svc_ports.push_back(std::move(p));
  }
  for (auto& p : svc_ports) {
    if (o.target_port.empty()) {
      p["targetPort"] = p["port"];
    } else if (auto n = atoi_strict(o.target_port)) {
      p["targetPort"] = *n;
    } else {
      p["targetPort"] = o.target_port;
    }
  }

  json svc = {{"apiVersion", "v1"}, {"kind", "Service"}};
  svc["metadata"] = {{"name", o.name.empty() ? default_name : o.name}};
  if (str_of(svc["metadata"], "name").empty()) return Status::invalid("name must be specified");
  if (!labels.is_null() && !labels.empty()) svc["metadata"]["labels"] = labels;
  json spec = json::object();
  if (!svc_ports.empty()) spec["ports"] = svc_ports;
  spec["selector"] = *selector;
  if (!o.external_ip.empty()) spec["externalIPs"] = json::array({o.external_ip});
  if (!o.type.empty()) spec["type"] = o.type;
  if (o.type == "LoadBalancer" && !o.load_balancer_ip.empty())
    spec["loadBalancerIP"] = o.load_balancer_ip;
  if (!o.session_affinity.empty()) {
    if (o.session_affinity != "None" && o.session_affinity != "ClientIP")
      return Status::invalid("unknown session affinity: " + o.session_affinity);
    spec["sessionAffinity"] = o.session_affinity;
  }
  if (!o.cluster_ip.empty()) spec["clusterIP"] = o.cluster_ip;
  svc["spec"] = std::move(spec);
  return svc;
}

int run_expose(Context& ctx, const ExposeOptions& o) {
  auto parsed = parse_resource_args(o.args);
  if (!parsed) {
    *ctx.err << "error: " << parsed.status().message() << "\n";
    return 1;
  }
  if (parsed->empty()) {
    *ctx.err << "error: You must provide one or more resources by argument or filename.\n";
    return 1;
  }
  int rc = 0;
  for (const auto& a : *parsed) {
    const auto* t = ctx.resolve(a.type);
    if (!t) return 1;
    if (a.name.empty()) {
      *ctx.err << "error: resource(s) were provided, but no name was specified\n";
      return 1;
    }
    auto r = ctx.rest->request("GET", client::resource_path(*t, ctx.namespace_, a.name));
    if (!r) {
      ctx.print_error(r.status());
      return 1;
    }
    if (!r->ok()) {
      ctx.print_error(*r);
      rc = 1;
      continue;
    }
    json obj = json::parse(r->body, nullptr, false);
    if (!obj.is_object()) {
      *ctx.err << "error: the server's answer for " << a.name << " is not a JSON object\n";
      return 1;
    }
    obj = with_type_meta(std::move(obj), *t);
    auto svc = service_for_expose(obj, o);
    if (!svc) {
      *ctx.err << "error: " << svc.status().message() << "\n";
      // kubectl marks the introspection failures as usage errors.
      if (svc.status().message().find("introspection") != std::string::npos)
        *ctx.err << "See 'skiffctl expose -h' for help and examples\n";
      return 1;
    }
    const auto* st = ctx.resolve("services");
    if (!st) return 1;
    auto cr =
        ctx.rest->request("POST", client::resource_path(*st, ctx.namespace_),
                          {{"fieldManager", "kubectl-expose"}}, svc->dump(), "application/json");
    if (!cr) {
      ctx.print_error(cr.status());
      return 1;
    }
    if (!cr->ok()) {
      ctx.print_error(*cr);
      rc = 1;
      continue;
    }
    *ctx.out << "service/" << str_of(svc->at("metadata"), "name") << " exposed\n";
  }
  return rc;
}

}  // namespace skiff::cli
