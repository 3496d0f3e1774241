// Routing, bootstrap and discovery of the Kubernetes API (see api_impl.h).
#include <algorithm>
#include <chrono>
#include <set>

#include "apiserver/api_impl.h"
#include "apiserver/metrics.h"
#include "apiserver/store/store.h"
#include "proto/registry.h"

namespace skiff::apiserver {

// ---- response helpers.

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

Response error_response(const ApiError& e) { return json_response(e.code, e.to_json()); }

void add_warnings(Response& r, const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) {
    std::string quoted;
    for (char c : w) {
      if (c == '"' || c == '\\') quoted += '\\';
      quoted += c;
    }
    r.headers.emplace_back("Warning", "299 - \"" + quoted + "\"");
  }
}

ApiResult<WriteOptions> write_options(const Request& req) {
  WriteOptions wo;
  for (auto [it, end] = req.query.equal_range("dryRun"); it != end; ++it) {
    if (it->second == "All")
      wo.dry_run = true;
    else if (!it->second.empty())
      return errors::bad_request("Invalid dry run argument: \"" + it->second +
                                 "\": only \"All\" is supported");
  }
  std::string fv = req.q("fieldValidation");
  std::string l;
  for (char c : fv) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "strict")
    wo.field_validation = FieldValidation::kStrict;
  else if (l == "ignore")
    wo.field_validation = FieldValidation::kIgnore;
  else if (l == "warn" || l.empty())
    wo.field_validation = FieldValidation::kWarn;
  else
    return errors::bad_request("fieldValidation parameter unsupported: \"" + fv +
                               "\" (want Ignore, Warn or Strict)");
  return wo;
}

// ---- Api.

std::unique_ptr<Api> Api::create(const ApiOptions& opts, std::string* error) {
  if (opts.store == nullptr) {
    if (error) *error = "ApiOptions.store is null";
    return nullptr;
  }
  auto api = std::make_unique<ApiImpl>(opts);
  if (!api->init(error)) return nullptr;
  return api;
}

ApiImpl::ApiImpl(const ApiOptions& opts)
    : opts_(opts),
      store_(opts.store),
      reg_(proto::Registry::builtin()),
      namespaces_(reg_.find("", "v1", "namespaces")),
      services_(reg_.find("", "v1", "services")),
      endpoints_(reg_.find("", "v1", "endpoints")),
      watch_(opts.store, opts.watch_cache_events, opts.bookmark_interval_ms) {}

ApiImpl::~ApiImpl() { shutdown(); }

void ApiImpl::shutdown() {
  {
    std::lock_guard<std::mutex> lock(k8s_mu_);
    k8s_stop_ = true;
  }
  k8s_cv_.notify_all();
  if (k8s_thread_.joinable() && k8s_thread_.get_id() != std::this_thread::get_id())
    k8s_thread_.join();
  if (follow_sub_ != 0) store_->unsubscribe(std::exchange(follow_sub_, 0));
  watch_.shutdown();
}

bool ApiImpl::init(std::string* error) {
  Status st = watch_.start(reg_);
  if (!st.is_ok()) {
    if (error) *error = "starting the watch cache: " + st.to_string();
    return false;
  }
  if (!init_services(error)) return false;
  if (!init_priority_classes(error)) return false;
  if (namespaces_ == nullptr) return true;
  for (const char* name : {"default", "kube-system", "kube-public"}) {
    auto existing = store_->get(object_key(*namespaces_, "", name));
    if (existing.is_ok()) continue;
    if (existing.status().code() != Code::kNotFound) {
      if (error)
        *error = "reading namespace " + std::string(name) + ": " + existing.status().to_string();
      return false;
    }
    json ns = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}};
    auto norm = normalize(ns, *namespaces_, WriteOptions{}, nullptr);
    if (!norm.ok()) {
      if (error) *error = "creating namespace " + std::string(name) + ": " + norm.error().message;
      return false;
    }
    auto made = create_object(*namespaces_, "", std::move(norm.value()), WriteOptions{});
    if (!made.ok() && made.error().code != 409) {
      if (error) *error = "creating namespace " + std::string(name) + ": " + made.error().message;
      return false;
    }
  }
  return true;
}

Response ApiImpl::handle(const Request& req) {
  auto start = std::chrono::steady_clock::now();
  std::string verb, resource;
  Response r;
  try {
    r = route(req, &verb, &resource);
  } catch (const std::exception& e) {
    // A library exception (nlohmann on an unexpected shape) must not take the server down.
    r = error_response(
        errors::internal(std::string("handling ") + req.method + " " + req.path + ": " + e.what()));
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (verb.empty()) verb = req.method == "GET" ? "get" : req.method;
  metrics::observe_request(verb, resource, r.status, secs);
  return r;
}

namespace {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> segs;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) segs.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return segs;
}

Response text_response(const std::string& body) {
  Response r;
  r.content_type = "text/plain; charset=utf-8";
  r.body = body;
  return r;
}

}  // namespace

Response ApiImpl::route(const Request& req, std::string* verb, std::string* resource) {
  const std::string& p = req.path;
  auto segs = split_path(p);
  bool get = req.method == "GET" || req.method == "HEAD";

  if (!segs.empty() && (segs[0] == "healthz" || segs[0] == "readyz" || segs[0] == "livez")) {
    if (!get) return error_response(errors::method_not_allowed(req.method));
    // As kube-apiserver: readiness and health include the store (etcd answering); liveness is
    // the process alone, so a supervisor does not restart servers while etcd is down.
    if (segs[0] != "livez") {
      if (Status st = store_->health(); !st) {
        Response r = text_response("[+]ping ok\n[-]etcd failed: " + st.message() + "\n" +
                                   segs[0] + " check failed\n");
        r.status = 500;
        return r;
      }
    }
    return text_response("ok");
  }
  if (segs.size() == 1 && segs[0] == "version") {
    if (!get) return error_response(errors::method_not_allowed(req.method));
    return version_info();
  }
  if (segs.size() == 1 && segs[0] == "metrics") {
    if (!get) return error_response(errors::method_not_allowed(req.method));
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics::render();
    return r;
  }
  if (!segs.empty() && segs[0] == "openapi") {
    // An empty protobuf document: kubectl create/apply need /openapi/v2 to answer, and an
    // empty spec makes its client-side validation pass (kubectl-compat.md §3).
    if (segs.size() == 2 && segs[1] == "v2" && get) {
      Response r;
      r.content_type = "application/octet-stream";
      return r;
    }
    return error_response(errors::not_found_path());
  }
  if (!segs.empty() && segs[0] == "api") {
    if (segs.size() == 1) {
      if (!get) return error_response(errors::method_not_allowed(req.method));
      return discovery_core_versions(req);
    }
    if (segs[1] != "v1") return error_response(errors::not_found_path());
    if (segs.size() == 2) {
      if (!get) return error_response(errors::method_not_allowed(req.method));
      return discovery_resources("", "v1");
    }
    return route_resource(req, "", "v1", {segs.begin() + 2, segs.end()}, verb, resource);
  }
  if (!segs.empty() && segs[0] == "apis") {
    if (segs.size() <= 3 && !get) return error_response(errors::method_not_allowed(req.method));
    if (segs.size() == 1) return discovery_groups();
    if (segs.size() == 2) return discovery_group(segs[1]);
    if (segs.size() == 3) return discovery_resources(segs[1], segs[2]);
    if (const ReviewResource* r =
            segs.size() == 4 ? find_review(segs[1], segs[2], segs[3]) : nullptr) {
      *verb = "create";
      *resource = r->plural;
      return review(req, *r);
    }
    return route_resource(req, segs[1], segs[2], {segs.begin() + 3, segs.end()}, verb, resource);
  }
  return error_response(errors::not_found_path());
}

bool handled_quickly(const Request& req) {
  const std::string& p = req.path;
  if (!p.starts_with("/api/") && !p.starts_with("/apis/")) return false;
  if (p.find("/watch/") != std::string::npos || query_bool(req, "watch")) return false;
  if (p.find("/proxy") != std::string::npos) return false;
  for (std::string_view slow : {"/log", "/exec", "/attach", "/portforward"}) {
    if (p.ends_with(slow)) return false;
  }
  return true;
}

Response ApiImpl::route_resource(const Request& req, const std::string& group,
                                 const std::string& version, std::vector<std::string> segs,
                                 std::string* verb, std::string* resource) {
  Target t;
  if (!segs.empty() && segs[0] == "watch") {
    t.legacy_watch = true;
    segs.erase(segs.begin());
  }
  if (segs.empty()) return error_response(errors::not_found_path());
  if (segs.size() >= 3 && segs[0] == "namespaces") {
    const auto* rt = reg_.find(group, version, segs[2]);
    if (rt != nullptr && rt->namespaced) {
      t.rt = rt;
      t.ns = segs[1];
      segs.erase(segs.begin(), segs.begin() + 3);
    }
  }
  if (t.rt == nullptr) {
    t.rt = reg_.find(group, version, segs[0]);
    if (t.rt == nullptr) return error_response(errors::not_found_path());
    segs.erase(segs.begin());
    // A namespaced type without a namespace: only the all-namespaces collection exists.
    if (t.rt->namespaced && !segs.empty()) return error_response(errors::not_found_path());
  }
  if (segs.size() > 2) return error_response(errors::not_found_path());
  if (!segs.empty()) t.name = segs[0];
  if (segs.size() == 2) {
    t.subresource = segs[1];
    const auto& subs = t.rt->subresources;
    if (std::find(subs.begin(), subs.end(), t.subresource) == subs.end())
      return error_response(errors::not_found_path());
    if (t.subresource == "log" || t.subresource == "exec") {
      if (t.rt->plural != "pods") return error_response(errors::not_found_path());
      *resource = "pods/" + t.subresource;
      *verb = req.method == "GET" ? "get" : "create";
      return pod_proxy(req, t);
    }
    if (t.subresource == "scale") {
      if (t.name.empty()) return error_response(errors::not_found_path());
      *resource = t.rt->plural + "/scale";
      *verb = req.method == "GET" || req.method == "HEAD" ? "get"
              : req.method == "PUT"                       ? "update"
                                                          : "patch";
      return scale(req, t);
    }
    if (t.subresource == "eviction") {
      if (t.rt->plural != "pods" || !t.rt->group.empty())
        return error_response(errors::not_found_path());
      *resource = "pods/eviction";
      *verb = "create";
      return evict(req, t);
    }
    if (t.subresource != "status" && t.subresource != "binding")
      return error_response(errors::not_found_path());
  }
  *resource = t.rt->plural + (t.subresource.empty() ? "" : "/" + t.subresource);

  const std::string& m = req.method;
  bool collection = t.name.empty();
  bool want_watch = t.legacy_watch || query_bool(req, "watch");
  if (m == "GET" || m == "HEAD") {
    if (t.subresource == "binding") return error_response(errors::method_not_allowed(m));
    if (want_watch) {
      *verb = "watch";
      return watch(req, t);
    }
    *verb = collection ? "list" : "get";
    return collection ? list(req, t) : get(req, t);
  }
  if (t.legacy_watch) return error_response(errors::method_not_allowed(m));
  if (m == "POST") {
    if (collection) {
      *verb = "create";
      return create(req, t);
    }
    if (t.subresource == "binding") {
      *verb = "create";
      return bind(req, t);
    }
    return error_response(errors::method_not_allowed(m));
  }
  if ((m == "PUT" || m == "PATCH") && !collection && t.subresource != "binding") {
    *verb = m == "PUT" ? "update" : "patch";
    return m == "PUT" ? update(req, t) : patch(req, t);
  }
  if (m == "DELETE" && t.subresource.empty()) {
    *verb = collection ? "deletecollection" : "delete";
    return collection ? remove_collection(req, t) : remove(req, t);
  }
  return error_response(errors::method_not_allowed(m));
}

// ---- discovery.

namespace {

const std::vector<std::string> kResourceVerbs = {"create", "delete", "deletecollection", "get",
                                                 "list",   "patch",  "update",           "watch"};

// Group versions that hold no resource of ours but whose kinds we serve: autoscaling/v1 Scale
// (the scale subresources). /apis/<group> and /apis/<group>/<version> answer (the latter with
// an empty resource list) for clients that look the Scale's group version up, but /apis does
// not list them: client-go's discovery treats an empty resource list as a failed group
// ("unable to retrieve the complete list of server APIs") and then caches nothing.
const std::vector<std::pair<std::string, std::string>> kKindOnlyGroupVersions = {
    {"autoscaling", "v1"}};

json resource_entry(const proto::ResourceType& rt) {
  std::vector<std::string> verbs = kResourceVerbs;
  if (rt.plural == "namespaces")  // Kubernetes offers no deletecollection on namespaces
    std::erase(verbs, std::string("deletecollection"));
  json e = {{"name", rt.plural},
            {"singularName", rt.singular},
            {"namespaced", rt.namespaced},
            {"kind", rt.kind},
            {"verbs", verbs}};
  if (!rt.short_names.empty()) e["shortNames"] = rt.short_names;
  if (!rt.categories.empty()) e["categories"] = rt.categories;
  return e;
}

json subresource_entry(const proto::ResourceType& rt, const std::string& sub) {
  json e = {{"name", rt.plural + "/" + sub}, {"singularName", ""}, {"namespaced", rt.namespaced}};
  if (sub == "binding") {
    e["kind"] = "Binding";
    e["verbs"] = {"create"};
  } else if (sub == "log") {
    e["kind"] = "Pod";
    e["verbs"] = {"get"};
  } else if (sub == "exec") {
    e["kind"] = "PodExecOptions";
    e["verbs"] = {"create", "get"};
  } else if (sub == "eviction") {
    // As Kubernetes lists it; kubectl drain evicts (instead of deleting) when it finds this.
    e["group"] = "policy";
    e["version"] = "v1";
    e["kind"] = "Eviction";
    e["verbs"] = {"create"};
  } else if (sub == "scale") {
    // kubectl scale's discovery-based resolver reads the Scale's group and version here.
    e["group"] = "autoscaling";
    e["version"] = "v1";
    e["kind"] = "Scale";
    e["verbs"] = {"get", "patch", "update"};
  } else {
    e["kind"] = rt.kind;
    e["verbs"] = {"get", "patch", "update"};
  }
  return e;
}

}  // namespace

Response ApiImpl::discovery_core_versions(const Request& req) {
  json j = {{"kind", "APIVersions"}, {"versions", {"v1"}}};
  std::string host = req.header("host");
  if (!host.empty())
    j["serverAddressByClientCIDRs"] = {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", host}}};
  return json_response(200, j);
}

Response ApiImpl::discovery_groups() {
  // Groups in registration order, each with its versions (the first is preferred).
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::string>> versions;
  auto add = [&](const std::string& group, const std::string& version) {
    auto& vs = versions[group];
    if (vs.empty()) order.push_back(group);
    if (std::find(vs.begin(), vs.end(), version) == vs.end()) vs.push_back(version);
  };
  for (const auto& rt : reg_.all())
    if (!rt.group.empty()) add(rt.group, rt.version);
  for (const auto& r : review_resources()) add(r.group, r.version);
  json groups = json::array();
  for (const auto& g : order) {
    json vs = json::array();
    for (const auto& v : versions[g]) vs.push_back({{"groupVersion", g + "/" + v}, {"version", v}});
    groups.push_back({{"name", g}, {"versions", vs}, {"preferredVersion", vs[0]}});
  }
  return json_response(200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}});
}

Response ApiImpl::discovery_group(const std::string& group) {
  json vs = json::array();
  std::set<std::string> seen;
  for (const auto& rt : reg_.all()) {
    if (rt.group != group || !seen.insert(rt.version).second) continue;
    vs.push_back({{"groupVersion", group + "/" + rt.version}, {"version", rt.version}});
  }
  for (const auto& r : review_resources())
    if (r.group == group && seen.insert(r.version).second)
      vs.push_back({{"groupVersion", group + "/" + r.version}, {"version", r.version}});
  for (const auto& [g, v] : kKindOnlyGroupVersions)
    if (g == group && seen.insert(v).second)
      vs.push_back({{"groupVersion", g + "/" + v}, {"version", v}});
  if (vs.empty()) return error_response(errors::not_found_path());
  return json_response(200, {{"kind", "APIGroup"},
                             {"apiVersion", "v1"},
                             {"name", group},
                             {"versions", vs},
                             {"preferredVersion", vs[0]}});
}

Response ApiImpl::discovery_resources(const std::string& group, const std::string& version) {
  json resources = json::array();
  for (const auto& rt : reg_.all()) {
    if (rt.group != group || rt.version != version) continue;
    resources.push_back(resource_entry(rt));
    for (const auto& sub : rt.subresources) resources.push_back(subresource_entry(rt, sub));
  }
  for (const auto& r : review_resources()) {
    if (r.group != group || r.version != version) continue;
    resources.push_back({{"name", r.plural},
                         {"singularName", ""},
                         {"namespaced", false},
                         {"kind", r.kind},
                         {"verbs", {"create"}}});
  }
  bool kind_only = std::find(kKindOnlyGroupVersions.begin(), kKindOnlyGroupVersions.end(),
                             std::pair{group, version}) != kKindOnlyGroupVersions.end();
  if (resources.empty() && !kind_only) return error_response(errors::not_found_path());
  return json_response(200, {{"kind", "APIResourceList"},
                             {"apiVersion", "v1"},
                             {"groupVersion", group.empty() ? version : group + "/" + version},
                             {"resources", resources}});
}

Response ApiImpl::version_info() {
  std::string gv = opts_.git_version;  // "v1.32.0"
  std::string major = "1", minor = "32";
  if (gv.size() > 1 && gv[0] == 'v') {
    auto dot1 = gv.find('.');
    auto dot2 = gv.find('.', dot1 == std::string::npos ? gv.size() : dot1 + 1);
    if (dot1 != std::string::npos) {
      major = gv.substr(1, dot1 - 1);
      minor = gv.substr(dot1 + 1, (dot2 == std::string::npos ? gv.size() : dot2) - dot1 - 1);
    }
  }
  return json_response(200, {{"major", major},
                             {"minor", minor},
                             {"gitVersion", gv},
                             {"gitCommit", "skiff"},
                             {"gitTreeState", "clean"},
                             {"buildDate", "2025-01-01T00:00:00Z"},
                             {"goVersion", "go1.23.0"},
                             {"compiler", "gc"},
                             {"platform", "linux/amd64"}});
}

}  // namespace skiff::apiserver
