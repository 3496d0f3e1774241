// pods/{name}/log and pods/{name}/exec: Kubernetes' checks against the Pod object (its
// containers, its node), then the connection is handed to the kubelet proxy (proxy.h).
#include <algorithm>

#include "apiserver/api_impl.h"
#include "apiserver/proxy.h"
#include "apiserver/store/store.h"
#include "proto/registry.h"

namespace skiff::apiserver {

namespace {

std::vector<std::string> names_of(const json& pod, const char* field) {
  std::vector<std::string> out;
  const json& spec = pod.contains("spec") ? pod["spec"] : json::object();
  if (spec.contains(field) && spec[field].is_array()) {
    for (const auto& c : spec[field]) {
      if (c.is_object() && c.contains("name") && c["name"].is_string()) out.push_back(c["name"]);
    }
  }
  return out;
}

std::string bracketed(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : " ") + n;
  return "[" + s + "]";
}

// The container's status from status.containerStatuses / initContainerStatuses, or null.
const json* container_status(const json& pod, const std::string& name) {
  if (!pod.contains("status") || !pod["status"].is_object()) return nullptr;
  for (const char* f : {"containerStatuses", "initContainerStatuses"}) {
    const json& st = pod["status"];
    if (!st.contains(f) || !st[f].is_array()) continue;
    for (const auto& cs : st[f]) {
      if (cs.is_object() && cs.value("name", "") == name) return &cs;
    }
  }
  return nullptr;
}

// Why the container has no log to serve yet ("" when it has one): Kubernetes' kubelet says
// `container "c" in pod "p" is waiting to start: <reason>`.
std::string waiting_reason(const json& pod, const std::string& name) {
  const json* cs = container_status(pod, name);
  if (cs == nullptr) return "ContainerCreating";
  auto has = [](const json& o, const char* k) { return o.contains(k) && o[k].is_object(); };
  if (has(*cs, "state") && (has((*cs)["state"], "running") || has((*cs)["state"], "terminated")))
    return "";
  if (has(*cs, "lastState") && has((*cs)["lastState"], "terminated")) return "";
  if (has(*cs, "state") && has((*cs)["state"], "waiting")) {
    std::string r = (*cs)["state"]["waiting"].value("reason", "");
    return r.empty() ? "ContainerCreating" : r;
  }
  return "ContainerCreating";
}

}  // namespace

Response ApiImpl::pod_proxy(const Request& req, const Target& t) {
  const bool exec = t.subresource == "exec";
  if (exec ? (req.method != "GET" && req.method != "POST") : req.method != "GET") {
    return error_response(errors::method_not_allowed(req.method));
  }
  auto kv = timed("get", [&] { return store_->get(object_key(*t.rt, t.ns, t.name)); });
  if (!kv.is_ok()) return error_response(errors::from_store(kv.status(), *t.rt, t.name));
  auto obj = read_object(*kv);
  if (!obj.ok()) return error_response(obj.error());
  const json& pod = obj.value();

  // The container: named, or the pod's only one.
  auto containers = names_of(pod, "containers");
  auto inits = names_of(pod, "initContainers");
  std::string container = req.q("container");
  if (container.empty()) {
    if (containers.size() == 1 && inits.empty()) {
      container = containers[0];
    } else {
      std::string msg = "a container name must be specified for pod " + t.name +
                        ", choose one of: " + bracketed(containers);
      if (!inits.empty()) msg += " or one of the init containers: " + bracketed(inits);
      return error_response(errors::bad_request(msg));
    }
  }
  if (std::find(containers.begin(), containers.end(), container) == containers.end() &&
      std::find(inits.begin(), inits.end(), container) == inits.end()) {
    return error_response(
        errors::bad_request("container " + container + " is not valid for pod " + t.name));
  }

  std::string node = pod.contains("spec") ? pod["spec"].value("nodeName", "") : "";
  if (!exec && !query_bool(req, "previous")) {
    std::string why = node.empty() ? "ContainerCreating" : waiting_reason(pod, container);
    if (!why.empty()) {
      return error_response(errors::bad_request("container \"" + container + "\" in pod \"" +
                                                t.name + "\" is waiting to start: " + why));
    }
  }
  if (node.empty()) {
    return error_response(errors::bad_request("pod " + t.name + " does not have a host assigned"));
  }

  // The node's kubelet endpoint.
  const auto* nodes = reg_.find("", "v1", "nodes");
  auto nkv = timed("get", [&] { return store_->get(object_key(*nodes, "", node)); });
  if (!nkv.is_ok()) return error_response(errors::from_store(nkv.status(), *nodes, node));
  auto nobj = read_object(*nkv);
  if (!nobj.ok()) return error_response(nobj.error());
  const json& n = nobj.value();
  KubeletRequest kr;
  const json status =
      n.contains("status") && n["status"].is_object() ? n["status"] : json::object();
  if (status.contains("addresses") && status["addresses"].is_array()) {
    for (const auto& a : status["addresses"]) {
      if (!a.is_object() || !a.contains("address") || !a["address"].is_string()) continue;
      if (kr.host.empty() || a.value("type", "") == "InternalIP") {
        kr.host = a["address"];
        if (a.value("type", "") == "InternalIP") break;
      }
    }
  }
  if (kr.host.empty()) {
    return error_response(
        errors::internal("node " + node + " has no address to reach its kubelet"));
  }
  if (status.contains("daemonEndpoints") && status["daemonEndpoints"].is_object()) {
    const json& de = status["daemonEndpoints"];
    if (de.contains("kubeletEndpoint") && de["kubeletEndpoint"].is_object()) {
      int p = de["kubeletEndpoint"].value("Port", 0);
      if (p > 0 && p < 65536) kr.port = p;
    }
  }
  kr.token = opts_.kubelet_token;

  std::string base =
      "/" + query_escape(t.ns) + "/" + query_escape(t.name) + "/" + query_escape(container);
  std::string q;
  auto add = [&q](const std::string& k, const std::string& v) {
    q += (q.empty() ? "?" : "&") + k + "=" + query_escape(v);
  };
  if (exec) {
    std::string upgrade = req.header("upgrade");
    std::transform(upgrade.begin(), upgrade.end(), upgrade.begin(), ::tolower);
    if (upgrade != "websocket") {
      return error_response(errors::bad_request(
          "exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not "
          "supported"));
    }
    for (auto [it, end] = req.query.equal_range("command"); it != end; ++it)
      add("command", it->second);
    for (const char* k : {"stdin", "stdout", "stderr", "tty"}) {
      if (req.has_q(k)) add(k, req.q(k));
    }
    kr.target = "/exec" + base + q;
    kr.upgrade = true;
    kr.headers = {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}};
    for (const char* h : {"sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol"}) {
      if (!req.header(h).empty()) kr.headers.emplace_back(h, req.header(h));
    }
  } else {
    for (const char* k :
         {"follow", "previous", "timestamps", "tailLines", "sinceSeconds", "limitBytes"}) {
      if (req.has_q(k)) add(k, req.q(k));
    }
    kr.target = "/containerLogs" + base + q;
  }
  return proxy_to_kubelet(std::move(kr));
}

}  // namespace skiff::apiserver
