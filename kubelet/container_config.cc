#include "kubelet/container_config.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

namespace skiff::kubelet {

std::string expand_vars(std::string_view in,
                        const std::function<const std::string*(const std::string&)>& lookup) {
  std::string out;
  out.reserve(in.size());
  size_t checkpoint = 0;
  for (size_t cursor = 0; cursor < in.size(); ++cursor) {
    if (in[cursor] != '$' || cursor + 1 >= in.size()) continue;
    out.append(in.substr(checkpoint, cursor - checkpoint));
    std::string_view rest = in.substr(cursor + 1);
    size_t advance = 1;
    if (rest[0] == '$') {
      out.push_back('$');
    } else if (rest[0] == '(') {
      size_t close = rest.find(')', 1);
      if (close == std::string_view::npos) {
        out.append("$(");  // not a reference: kept, scanning goes on after the "("
      } else {
        std::string name(rest.substr(1, close - 1));
        const std::string* v = lookup(name);
        if (v)
          out.append(*v);
        else
          out.append("$(").append(name).append(")");
        advance = close + 1;
      }
    } else {
      out.push_back('$');
      out.push_back(rest[0]);
    }
    cursor += advance;
    checkpoint = cursor + 1;
  }
  if (checkpoint < in.size()) out.append(in.substr(checkpoint));
  return out;
}

namespace {

// "metadata.labels['app']" -> "app" for prefix "metadata.labels".
bool subscript(const std::string& path, std::string_view prefix, std::string& key) {
  if (path.size() < prefix.size() + 4 || path.compare(0, prefix.size(), prefix) != 0) return false;
  std::string_view rest = std::string_view(path).substr(prefix.size());
  if (rest.front() != '[' || rest.back() != ']') return false;
  rest = rest.substr(1, rest.size() - 2);
  if (rest.size() < 2 || (rest.front() != '\'' && rest.front() != '"') ||
      rest.back() != rest.front())
    return false;
  key = std::string(rest.substr(1, rest.size() - 2));
  return true;
}

// Kubernetes' IsEnvVarName (C identifier-ish, also '-' and '.', not starting
// with a digit).
bool valid_env_name(const std::string& n) {
  if (n.empty() || (n[0] >= '0' && n[0] <= '9')) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

const proto::Container* find_container(const proto::Pod& pod, const std::string& name) {
  for (const auto& c : pod.spec.containers)
    if (c.name == name) return &c;
  for (const auto& c : pod.spec.init_containers)
    if (c.name == name) return &c;
  return nullptr;
}

// ceil(a / b) for positive b.
int64_t ceil_div(int64_t a, int64_t b) { return b <= 0 ? a : (a + b - 1) / b; }

Result<std::string> resource_field_value(const proto::Pod& pod, const proto::Container& self,
                                         const proto::ResourceFieldSelector& sel,
                                         const EnvContext& ctx) {
  const proto::Container* c = &self;
  if (!sel.container_name.empty()) {
    c = find_container(pod, sel.container_name);
    if (!c) return Status::invalid("resourceFieldRef: no container \"" + sel.container_name + "\"");
  }
  auto get = [](const proto::ResourceList& l, const char* k) -> const proto::Quantity* {
    auto it = l.find(k);
    return it == l.end() ? nullptr : &it->second;
  };
  const std::string& r = sel.resource;
  bool cpu = r == "limits.cpu" || r == "requests.cpu";
  bool mem = r == "limits.memory" || r == "requests.memory";
  if (!cpu && !mem) return Status::invalid("resourceFieldRef: unsupported resource \"" + r + "\"");
  bool limit = r.rfind("limits.", 0) == 0;
  const proto::Quantity* q =
      get(limit ? c->resources.limits : c->resources.requests, cpu ? "cpu" : "memory");
  if (!q && !limit) q = get(c->resources.limits, cpu ? "cpu" : "memory");  // request defaults
  if (cpu) {
    int64_t millis = q ? q->milli_value() : (limit ? ctx.node_cpu_millis : 0);
    int64_t div = sel.divisor.is_zero() ? 1000 : sel.divisor.milli_value();
    return std::to_string(ceil_div(millis, div));
  }
  int64_t bytes = q ? q->value() : (limit ? ctx.node_memory_bytes : 0);
  int64_t div = sel.divisor.is_zero() ? 1 : sel.divisor.value();
  return std::to_string(ceil_div(bytes, div));
}

Result<std::map<std::string, std::string>> fetch(
    const std::function<Result<std::map<std::string, std::string>>(const std::string&,
                                                                   const std::string&)>& f,
    const std::string& ns, const std::string& name, const char* kind) {
  if (!f) return Status::unavailable(std::string("no ") + kind + " source");
  return f(ns, name);
}

}  // namespace

Result<std::string> field_ref_value(const proto::Pod& pod, const std::string& path,
                                    const EnvContext& ctx) {
  const auto& m = pod.metadata;
  if (path == "metadata.name") return m.name;
  if (path == "metadata.namespace") return m.namespace_;
  if (path == "metadata.uid") return m.uid;
  if (path == "spec.nodeName")
    return pod.spec.node_name.empty() ? ctx.node_name : pod.spec.node_name;
  if (path == "spec.serviceAccountName") return pod.spec.service_account_name;
  if (path == "status.podIP" || path == "status.podIPs") return ctx.pod_ip;
  if (path == "status.hostIP" || path == "status.hostIPs") return ctx.host_ip;
  std::string key;
  if (subscript(path, "metadata.labels", key)) {
    auto it = m.labels.find(key);
    return it == m.labels.end() ? std::string() : it->second;
  }
  if (subscript(path, "metadata.annotations", key)) {
    auto it = m.annotations.find(key);
    return it == m.annotations.end() ? std::string() : it->second;
  }
  return Status::invalid("unsupported fieldRef fieldPath \"" + path + "\"");
}

Result<EnvList> container_env(const proto::Pod& pod, const proto::Container& c,
                              const EnvContext& ctx) {
  const std::string& ns = pod.metadata.namespace_;
  EnvList out;
  std::map<std::string, size_t> index;  // name -> position in out
  auto set = [&](const std::string& k, std::string v) {
    auto it = index.find(k);
    if (it != index.end()) {
      out[it->second].second = std::move(v);
    } else {
      index[k] = out.size();
      out.emplace_back(k, std::move(v));
    }
  };

  for (const auto& from : c.env_from) {
    const proto::EnvRefSource* ref = from.config_map_ref
                                         ? &*from.config_map_ref
                                         : (from.secret_ref ? &*from.secret_ref : nullptr);
    if (!ref) continue;
    bool is_cm = from.config_map_ref.has_value();
    auto data = is_cm ? fetch(ctx.sources.config_map, ns, ref->name, "configmap")
                      : fetch(ctx.sources.secret, ns, ref->name, "secret");
    if (!data) {
      if (data.status().code() == Code::kNotFound && ref->optional.value_or(false)) continue;
      if (data.status().code() == Code::kNotFound)
        return Status::not_found(std::string(is_cm ? "configmap" : "secret") + " \"" + ref->name +
                                 "\" not found");
      return data.status();
    }
    for (const auto& [k, v] : *data) {
      std::string name = from.prefix + k;
      if (!valid_env_name(name)) continue;  // Kubernetes skips (and reports) invalid names
      set(name, v);
    }
  }

  std::map<std::string, std::string> defined;  // for $(VAR): what is defined so far
  for (const auto& [k, v] : out) defined[k] = v;
  auto lookup = [&](const std::string& n) -> const std::string* {
    auto it = defined.find(n);
    return it == defined.end() ? nullptr : &it->second;
  };

  for (const auto& e : c.env) {
    std::string value;
    if (!e.value_from) {
      value = expand_vars(e.value, lookup);
    } else if (e.value_from->field_ref) {
      auto v = field_ref_value(pod, e.value_from->field_ref->field_path, ctx);
      if (!v) return v.status();
      value = *v;
    } else if (e.value_from->resource_field_ref) {
      auto v = resource_field_value(pod, c, *e.value_from->resource_field_ref, ctx);
      if (!v) return v.status();
      value = *v;
    } else if (e.value_from->config_map_key_ref || e.value_from->secret_key_ref) {
      bool is_cm = e.value_from->config_map_key_ref.has_value();
      const proto::KeySelector& sel =
          is_cm ? *e.value_from->config_map_key_ref : *e.value_from->secret_key_ref;
      bool optional = sel.optional.value_or(false);
      auto data = is_cm ? fetch(ctx.sources.config_map, ns, sel.name, "configmap")
                        : fetch(ctx.sources.secret, ns, sel.name, "secret");
      if (!data) {
        if (data.status().code() != Code::kNotFound) return data.status();
        if (optional) continue;
        return Status::not_found(std::string(is_cm ? "configmap" : "secret") + " \"" + sel.name +
                                 "\" not found");
      }
      auto it = data->find(sel.key);
      if (it == data->end()) {
        if (optional) continue;
        return Status::not_found("couldn't find key " + sel.key + " in " +
                                 (is_cm ? "ConfigMap " : "Secret ") + ns + "/" + sel.name);
      }
      value = it->second;
    }
    defined[e.name] = value;
    set(e.name, std::move(value));
  }
  return out;
}

std::vector<std::string> container_argv(const proto::Container& c, const images::ImageConfig& img,
                                        const EnvList& env) {
  std::map<std::string, std::string> vars(env.begin(), env.end());
  auto lookup = [&](const std::string& n) -> const std::string* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : &it->second;
  };
  std::vector<std::string> argv;
  auto add = [&](const std::vector<std::string>& v, bool expand) {
    for (const auto& a : v) argv.push_back(expand ? expand_vars(a, lookup) : a);
  };
  if (!c.command.empty()) {
    add(c.command, true);
    add(c.args, true);  // the image's Cmd is dropped when command is given
  } else {
    add(img.entrypoint, false);
    if (!c.args.empty())
      add(c.args, true);
    else
      add(img.cmd, false);
  }
  return argv;
}

std::vector<std::string> merge_env(const std::vector<std::string>& image_env, const EnvList& env) {
  std::vector<std::string> out = image_env;
  std::map<std::string, size_t> pos;
  for (size_t i = 0; i < out.size(); ++i) pos[out[i].substr(0, out[i].find('='))] = i;
  for (const auto& [k, v] : env) {
    auto it = pos.find(k);
    if (it != pos.end()) {
      out[it->second] = k + "=" + v;
    } else {
      pos[k] = out.size();
      out.push_back(k + "=" + v);
    }
  }
  return out;
}

namespace {

const proto::Quantity* find_q(const proto::ResourceList& l, const char* k) {
  auto it = l.find(k);
  return it == l.end() ? nullptr : &it->second;
}

}  // namespace

cgroups::Resources container_resources(const proto::Container& c) {
  cgroups::Resources r;
  const auto& lim = c.resources.limits;
  const auto& req = c.resources.requests;
  if (auto* q = find_q(req, "cpu"))
    r.cpu_request_millis = q->milli_value();
  else if (auto* q2 = find_q(lim, "cpu"))
    r.cpu_request_millis = q2->milli_value();  // a limit alone is also the request
  if (auto* q = find_q(lim, "cpu")) r.cpu_limit_millis = q->milli_value();
  if (auto* q = find_q(lim, "memory")) r.memory_limit_bytes = q->value();
  return r;
}

cgroups::Resources pod_resources(const proto::Pod& pod) {
  cgroups::Resources r;
  int64_t req = 0, cpu_lim = 0, mem_lim = 0;
  bool all_cpu = !pod.spec.containers.empty(), all_mem = all_cpu, any_req = false;
  for (const auto& c : pod.spec.containers) {
    auto cr = container_resources(c);
    if (cr.cpu_request_millis) {
      req += *cr.cpu_request_millis;
      any_req = true;
    }
    if (cr.cpu_limit_millis)
      cpu_lim += *cr.cpu_limit_millis;
    else
      all_cpu = false;
    if (cr.memory_limit_bytes)
      mem_lim += *cr.memory_limit_bytes;
    else
      all_mem = false;
  }
  // An init container runs alone: the pod needs at least the largest init
  // limit.
  for (const auto& c : pod.spec.init_containers) {
    auto cr = container_resources(c);
    if (all_cpu && cr.cpu_limit_millis) cpu_lim = std::max(cpu_lim, *cr.cpu_limit_millis);
    if (all_mem && cr.memory_limit_bytes) mem_lim = std::max(mem_lim, *cr.memory_limit_bytes);
    if (!cr.cpu_limit_millis) all_cpu = false;
    if (!cr.memory_limit_bytes) all_mem = false;
  }
  if (any_req) r.cpu_request_millis = req;
  if (all_cpu) r.cpu_limit_millis = cpu_lim;
  if (all_mem) r.memory_limit_bytes = mem_lim;
  return r;
}

std::string container_hash(const proto::Container& c) {
  // FNV-1a over the canonical JSON encoding: stable across processes (std::hash
  // is not guaranteed to be), so a restarted kubelet computes the same value.
  std::string s = proto::encode(c).dump();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string effective_pull_policy(const proto::Container& c) {
  if (!c.image_pull_policy.empty()) return c.image_pull_policy;
  const std::string& img = c.image;
  if (img.find('@') != std::string::npos) return "IfNotPresent";
  size_t slash = img.rfind('/');
  size_t colon = img.rfind(':');
  bool has_tag = colon != std::string::npos && (slash == std::string::npos || colon > slash);
  if (!has_tag || img.substr(colon + 1) == "latest") return "Always";
  return "IfNotPresent";
}

}  // namespace skiff::kubelet
