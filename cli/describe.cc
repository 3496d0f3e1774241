#include <algorithm>
#include <ctime>
#include <iostream>

#include "cli/commands.h"
#include "cli/cronjob.h"
#include "cli/daemonset.h"
#include "cli/job.h"
#include "cli/describe_writer.h"
#include "cli/printers.h"
#include "cli/services.h"
#include "cli/statefulset.h"
#include "cli/tabwriter.h"
#include "cli/workloads.h"
#include "proto/client/yaml.h"

namespace skiff::cli {
namespace {

// Short names for the shared helpers of cli/describe_writer.h.
using Out = DescribeWriter;
std::string s(const json& o, const char* key, const std::string& def = "") {
  return str_of(o, key, def);
}
const json& obj_at(const json& o, const char* key) { return child(o, key); }
std::optional<std::chrono::system_clock::time_point> parse_time(const std::string& t) {
  return parse_rfc3339(t);
}
std::string format_time(const std::string& t) { return format_describe_time(t); }

void describe_meta(Out& o, const proto::ResourceType& t, const json& obj) {
  const json& md = obj_at(obj, "metadata");
  o.kv(0, "Name", s(md, "name"));
  if (t.namespaced) o.kv(0, "Namespace", s(md, "namespace"));
}

void describe_labels(Out& o, const json& obj) {
  const json& md = obj_at(obj, "metadata");
  o.map(0, "Labels", obj_at(md, "labels"), "=", false);
  o.map(0, "Annotations", obj_at(md, "annotations"), ": ", true);
}

std::string controlled_by(const json& obj) {
  const json& owners = obj_at(obj_at(obj, "metadata"), "ownerReferences");
  if (!owners.is_array()) return "";
  for (const auto& r : owners) {
    if (r.value("controller", false)) return s(r, "kind") + "/" + s(r, "name");
  }
  return "";
}

void describe_container_state(Out& o, const char* label, const json& st) {
  if (!st.is_object() || st.empty()) {
    o.kv(2, label, "Waiting");
    return;
  }
  if (st.contains("running")) {
    o.kv(2, label, "Running");
    o.kv(3, "Started", format_time(s(st["running"], "startedAt")));
  } else if (st.contains("waiting")) {
    o.kv(2, label, "Waiting");
    if (!s(st["waiting"], "reason").empty()) o.kv(3, "Reason", s(st["waiting"], "reason"));
    if (!s(st["waiting"], "message").empty()) o.kv(3, "Message", s(st["waiting"], "message"));
  } else if (st.contains("terminated")) {
    const json& t = st["terminated"];
    o.kv(2, label, "Terminated");
    if (!s(t, "reason").empty()) o.kv(3, "Reason", s(t, "reason"));
    if (!s(t, "message").empty()) o.kv(3, "Message", s(t, "message"));
    o.kv(3, "Exit Code", s(t, "exitCode", "0"));
    if (!s(t, "signal").empty() && s(t, "signal") != "0") o.kv(3, "Signal", s(t, "signal"));
    if (!s(t, "startedAt").empty()) o.kv(3, "Started", format_time(s(t, "startedAt")));
    if (!s(t, "finishedAt").empty()) o.kv(3, "Finished", format_time(s(t, "finishedAt")));
  }
}

void describe_containers(Out& o, const char* title, const json& containers, const json& statuses) {
  if (!containers.is_array() || containers.empty()) return;
  o.line(0, std::string(title) + ":");
  for (const auto& c : containers) {
    std::string name = s(c, "name");
    json status;
    if (statuses.is_array()) {
      for (const auto& st : statuses) {
        if (s(st, "name") == name) status = st;
      }
    }
    o.line(1, name + ":");
    if (!status.is_null()) o.kv(2, "Container ID", s(status, "containerID"));
    o.kv(2, "Image", s(c, "image"));
    if (!status.is_null()) o.kv(2, "Image ID", s(status, "imageID"));
    const json& ports = obj_at(c, "ports");
    std::string port = "<none>", host_port = "<none>";
    if (ports.is_array() && !ports.empty()) {
      port.clear();
      host_port.clear();
      for (const auto& p : ports) {
        std::string proto = s(p, "protocol", "TCP");
        if (!port.empty()) port += ", ", host_port += ", ";
        port += s(p, "containerPort") + "/" + proto;
        host_port += s(p, "hostPort", "0") + "/" + proto;
      }
    }
    o.kv(2, ports.is_array() && ports.size() > 1 ? "Ports" : "Port", port);
    o.kv(2, ports.is_array() && ports.size() > 1 ? "Host Ports" : "Host Port", host_port);
    if (c.contains("command")) {
      o.line(2, "Command:");
      for (const auto& a : c["command"]) o.line(3, a.is_string() ? a.get<std::string>() : a.dump());
    }
    if (c.contains("args")) {
      o.line(2, "Args:");
      for (const auto& a : c["args"]) o.line(3, a.is_string() ? a.get<std::string>() : a.dump());
    }
    if (!status.is_null()) {
      describe_container_state(o, "State", obj_at(status, "state"));
      const json& last = obj_at(status, "lastState");
      if (last.is_object() && !last.empty()) describe_container_state(o, "Last State", last);
      o.kv(2, "Ready", status.value("ready", false) ? "True" : "False");
      o.kv(2, "Restart Count", s(status, "restartCount", "0"));
    }
    const json& res = obj_at(c, "resources");
    for (const char* kind : {"limits", "requests"}) {
      const json& r = obj_at(res, kind);
      if (r.is_object() && !r.empty()) {
        std::string k = kind;
        k[0] = static_cast<char>(std::toupper(k[0]));
        o.line(2, k + ":");
        for (const auto& [rk, rv] : r.items()) {
          o.kv(3, rk, rv.is_string() ? rv.get<std::string>() : rv.dump());
        }
      }
    }
    const json& env = obj_at(c, "env");
    if (!env.is_array() || env.empty()) {
      o.kv(2, "Environment", "<none>");
    } else {
      o.line(2, "Environment:");
      for (const auto& e : env) {
        std::string v =
            e.contains("valueFrom") ? "<set from " + e["valueFrom"].dump() + ">" : s(e, "value");
        o.kv(3, s(e, "name"), v);
      }
    }
    const json& mounts = obj_at(c, "volumeMounts");
    if (!mounts.is_array() || mounts.empty()) {
      o.kv(2, "Mounts", "<none>");
    } else {
      o.line(2, "Mounts:");
      for (const auto& m : mounts) {
        o.line(3, s(m, "mountPath") + " from " + s(m, "name") + " (" +
                      (m.value("readOnly", false) ? "ro" : "rw") + ")");
      }
    }
  }
}

void describe_pod(Out& o, const proto::ResourceType& t, const json& pod) {
  const json& spec = obj_at(pod, "spec");
  const json& status = obj_at(pod, "status");
  describe_meta(o, t, pod);
  o.kv(0, "Priority", s(spec, "priority", "0"));
  std::string node = s(spec, "nodeName");
  o.kv(0, "Node", node.empty() ? "<none>" : node + "/" + s(status, "hostIP"));
  if (!s(status, "startTime").empty()) o.kv(0, "Start Time", format_time(s(status, "startTime")));
  describe_labels(o, pod);
  std::string phase = s(status, "phase");
  if (!s(obj_at(pod, "metadata"), "deletionTimestamp").empty()) phase = "Terminating";
  o.kv(0, "Status", phase);
  if (!s(status, "reason").empty()) o.kv(0, "Reason", s(status, "reason"));
  if (!s(status, "message").empty()) o.kv(0, "Message", s(status, "message"));
  o.kv(0, "IP", s(status, "podIP"));
  const json& ips = obj_at(status, "podIPs");
  if (ips.is_array() && !ips.empty()) {
    o.line(0, "IPs:");
    for (const auto& ip : ips) o.kv(1, "IP", s(ip, "ip"));
  } else {
    o.kv(0, "IPs", "<none>");
  }
  std::string owner = controlled_by(pod);
  if (!owner.empty()) o.kv(0, "Controlled By", owner);
  describe_containers(o, "Init Containers", obj_at(spec, "initContainers"),
                      obj_at(status, "initContainerStatuses"));
  describe_containers(o, "Containers", obj_at(spec, "containers"),
                      obj_at(status, "containerStatuses"));
  const json& conds = obj_at(status, "conditions");
  if (conds.is_array() && !conds.empty()) {
    o.line(0, "Conditions:");
    o.line(1, "Type\tStatus");
    for (const auto& c : conds) o.line(1, s(c, "type") + " \t" + s(c, "status"));
  }
  const json& vols = obj_at(spec, "volumes");
  if (vols.is_array() && !vols.empty()) {
    o.line(0, "Volumes:");
    for (const auto& v : vols) {
      o.line(1, s(v, "name") + ":");
      for (const auto& [k, src] : v.items()) {
        if (k == "name") continue;
        o.kv(2, "Type", k);
        if (src.is_object()) {
          for (const auto& [sk, sv] : src.items()) {
            o.kv(2, sk, sv.is_string() ? sv.get<std::string>() : sv.dump());
          }
        }
      }
    }
  }
  if (!s(status, "qosClass").empty()) o.kv(0, "QoS Class", s(status, "qosClass"));
  o.map(0, "Node-Selectors", obj_at(spec, "nodeSelector"), "=", false);
  const json& tol = obj_at(spec, "tolerations");
  if (!tol.is_array() || tol.empty()) {
    o.kv(0, "Tolerations", "<none>");
  } else {
    bool first = true;
    for (const auto& x : tol) {
      std::string text = s(x, "key");
      if (!s(x, "value").empty()) text += "=" + s(x, "value");
      if (!s(x, "effect").empty()) text += ":" + s(x, "effect");
      if (s(x, "operator") == "Exists" && s(x, "key").empty()) text = "op=Exists";
      if (first)
        o.kv(0, "Tolerations", text);
      else
        o.line(0, "\t" + text);
      first = false;
    }
  }
}

void describe_service_of(Context& ctx, Out& o, const json& svc) {
  const std::string ns = s(obj_at(svc, "metadata"), "namespace");
  const std::string name = s(obj_at(svc, "metadata"), "name");
  // kubectl 1.32 lists the Service's EndpointSlices; a server without discovery.k8s.io (404)
  // gets the Endpoints object instead (kubectl <= 1.31), which says more than kubectl's <none>.
  json slices;
  auto r =
      ctx.rest->request("GET", "/apis/discovery.k8s.io/v1/namespaces/" + ns + "/endpointslices",
                        {{"labelSelector", "kubernetes.io/service-name=" + name}});
  if (r && r->ok()) {
    json list = json::parse(r->body, nullptr, false);
    slices = list.is_object() && obj_at(list, "items").is_array() ? list["items"] : json::array();
  }
  json endpoints;
  if (slices.is_null()) {
    if (const auto* et = proto::Registry::builtin().resolve("endpoints")) {
      auto ep = ctx.api->get(*et, ns, name);
      if (ep) endpoints = std::move(*ep);
    }
  }
  describe_service(o, svc, slices, endpoints);
}

// Kinds without a dedicated describer: metadata, then every other top-level field as YAML.
void describe_generic(Out& o, const proto::ResourceType& t, const json& obj) {
  describe_meta(o, t, obj);
  describe_labels(o, obj);
  for (const auto& [k, v] : obj.items()) {
    if (k == "apiVersion" || k == "kind" || k == "metadata") continue;
    std::string key = k;
    key[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(key[0])));
    if (!v.is_object() && !v.is_array()) {
      o.kv(0, key, cell_text(v));
      continue;
    }
    o.line(0, key + ":");
    std::string y = client::to_yaml(v);
    size_t pos = 0;
    while (pos < y.size()) {
      size_t nl = y.find('\n', pos);
      // YAML's own alignment must not be re-tabbed: it has no tabs, so it passes through.
      o.line(1, y.substr(pos, nl - pos));
      pos = nl + 1;
    }
  }
}

void describe_events(Context& ctx, Out& o, const json& obj, bool namespaced) {
  const json& md = obj_at(obj, "metadata");
  std::string ns = s(md, "namespace");
  std::string fs = "involvedObject.name=" + s(md, "name");
  if (namespaced) fs += ",involvedObject.namespace=" + ns;
  if (!s(md, "uid").empty()) fs += ",involvedObject.uid=" + s(md, "uid");
  std::string path = namespaced ? "/api/v1/namespaces/" + ns + "/events" : "/api/v1/events";
  auto r = ctx.rest->request("GET", path, {{"fieldSelector", fs}});
  json items = json::array();
  if (r && r->ok()) {
    json list = json::parse(r->body, nullptr, false);
    if (list.is_object() && list.contains("items") && list["items"].is_array()) {
      items = list["items"];
    }
  }
  if (items.empty()) {
    o.kv(0, "Events", "<none>");
    return;
  }
  auto when = [](const json& e) {
    for (const char* k : {"lastTimestamp", "eventTime", "firstTimestamp"}) {
      std::string v = s(e, k);
      if (!v.empty()) return v;
    }
    return std::string(s(obj_at(e, "metadata"), "creationTimestamp"));
  };
  std::sort(items.begin(), items.end(),
            [&](const json& a, const json& b) { return when(a) < when(b); });
  o.line(0, "Events:");
  o.line(1, "Type\tReason\tAge\tFrom\tMessage");
  o.line(1, "----\t------\t----\t----\t-------");
  auto now = std::chrono::system_clock::now();
  for (const auto& e : items) {
    std::string age = "<unknown>";
    if (auto tp = parse_time(when(e))) age = proto::human_duration(now - *tp);
    int count = e.value("count", 1);
    if (count > 1) {
      std::string first = s(e, "firstTimestamp");
      if (auto tp = parse_time(first)) {
        age += " (x" + std::to_string(count) + " over " + proto::human_duration(now - *tp) + ")";
      }
    }
    const json& src = obj_at(e, "source");
    std::string from = s(src, "component");
    if (from.empty()) from = s(e, "reportingController");
    if (!s(src, "host").empty()) from += ", " + s(src, "host");
    std::string msg = s(e, "message");
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    o.line(1, s(e, "type") + "\t" + s(e, "reason") + "\t" + age + "\t" + from + "\t" + msg);
  }
}

// A list of `kind` objects in the object's namespace matching its selector; "" and the items,
// or the error text.
std::pair<std::string, json> list_selected(Context& ctx, const char* api_version, const char* kind,
                                           const json& obj) {
  const auto* t = proto::Registry::builtin().by_kind(api_version, kind);
  if (!t) return {std::string("no ") + kind + " type in this skiffctl", json::array()};
  client::ListOptions opts;
  opts.label_selector = selector_query(obj);
  auto list = ctx.api->list(*t, s(obj_at(obj, "metadata"), "namespace"), opts);
  if (!list) return {list.status().message(), json::array()};
  return {"", obj_at(*list, "items").is_array() ? (*list)["items"] : json::array()};
}

void describe_deployment_of(Context& ctx, Out& o, const json& d) {
  auto [error, items] = list_selected(ctx, "apps/v1", "ReplicaSet", d);
  std::vector<json> rses = controlled_replicasets(d, items);
  describe_deployment(o, d, rses);
}

void describe_replicaset_of(Context& ctx, Out& o, const json& rs) {
  auto [error, items] = list_selected(ctx, "v1", "Pod", rs);
  describe_replicaset(o, rs, count_pods(items, s(obj_at(rs, "metadata"), "uid")), error);
}

}  // namespace

int run_describe(Context& ctx, const std::vector<std::string>& args) {
  if (args.empty()) {
    *ctx.err << "error: You must specify the type of resource to describe.\n";
    return 1;
  }
  std::vector<std::pair<const proto::ResourceType*, std::string>> targets;
  if (args[0].find('/') != std::string::npos) {
    for (const auto& a : args) {
      size_t slash = a.find('/');
      const auto* t = ctx.resolve(a.substr(0, slash));
      if (!t) return 1;
      targets.emplace_back(t, slash == std::string::npos ? "" : a.substr(slash + 1));
    }
  } else {
    const auto* t = ctx.resolve(args[0]);
    if (!t) return 1;
    for (size_t i = 1; i < args.size(); ++i) targets.emplace_back(t, args[i]);
    if (args.size() == 1) targets.emplace_back(t, "");
  }
  int rc = 0;
  std::vector<json> objects;
  std::vector<const proto::ResourceType*> types;
  for (const auto& [t, name] : targets) {
    std::string ns = t->namespaced ? ctx.namespace_ : "";
    if (name.empty()) {
      auto list = ctx.api->list(*t, ctx.flags.all_namespaces ? "" : ns);
      if (!list) {
        ctx.print_error(list.status());
        return 1;
      }
      for (auto& it : (*list)["items"]) {
        objects.push_back(with_type_meta(std::move(it), *t));
        types.push_back(t);
      }
      if ((*list)["items"].empty()) {
        if (t->namespaced && !ctx.flags.all_namespaces) {
          *ctx.err << "No resources found in " << ns << " namespace.\n";
        } else {
          *ctx.err << "No resources found\n";
        }
      }
      continue;
    }
    auto r = ctx.rest->request("GET", client::resource_path(*t, ns, name));
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
      *ctx.err << "error: the server's answer for " << name << " is not a JSON object\n";
      rc = 1;
      continue;
    }
    objects.push_back(std::move(obj));
    types.push_back(t);
  }
  for (size_t i = 0; i < objects.size(); ++i) {
    Out o;
    const auto& t = *types[i];
    if (t.kind == "Pod") {
      describe_pod(o, t, objects[i]);
    } else if (t.kind == "Service") {
      describe_service_of(ctx, o, objects[i]);
    } else if (t.kind == "Deployment") {
      describe_deployment_of(ctx, o, objects[i]);
    } else if (t.kind == "ReplicaSet") {
      describe_replicaset_of(ctx, o, objects[i]);
    } else if (t.kind == "StatefulSet") {
      describe_statefulset_of(ctx, o, objects[i]);
    } else if (t.kind == "DaemonSet") {
      describe_daemonset_of(ctx, o, objects[i]);
    } else if (t.kind == "Job") {
      describe_job(o, objects[i]);
    } else if (t.kind == "CronJob") {
      describe_cronjob(o, objects[i]);
    } else {
      describe_generic(o, t, objects[i]);
    }
    if (t.kind != "Event") describe_events(ctx, o, objects[i], t.namespaced);
    if (i > 0) *ctx.out << "\n\n";
    *ctx.out << o.flush();
  }
  return rc;
}

}  // namespace skiff::cli
