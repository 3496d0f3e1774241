#include "proto/client/api_client.h"

namespace skiff::client {

std::string resource_path(const proto::ResourceType& t, std::string_view ns, std::string_view name,
                          std::string_view subresource) {
  std::string p = t.group.empty() ? "/api/" + t.version : "/apis/" + t.group + "/" + t.version;
  if (t.namespaced && !ns.empty()) {
    p += "/namespaces/";
    p += ns;
  }
  p += "/" + t.plural;
  if (!name.empty()) {
    p += '/';
    p += name;
    if (!subresource.empty()) {
      p += '/';
      p += subresource;
    }
  }
  return p;
}

Query ListOptions::to_query() const {
  Query q;
  if (!label_selector.empty()) q.emplace_back("labelSelector", label_selector);
  if (!field_selector.empty()) q.emplace_back("fieldSelector", field_selector);
  if (!resource_version.empty()) q.emplace_back("resourceVersion", resource_version);
  if (limit > 0) q.emplace_back("limit", std::to_string(limit));
  if (!continue_token.empty()) q.emplace_back("continue", continue_token);
  if (timeout_seconds > 0) q.emplace_back("timeoutSeconds", std::to_string(timeout_seconds));
  if (allow_bookmarks) q.emplace_back("allowWatchBookmarks", "true");
  return q;
}

const char* content_type_of(PatchType p) {
  switch (p) {
    case PatchType::kStrategic:
      return "application/strategic-merge-patch+json";
    case PatchType::kMerge:
      return "application/merge-patch+json";
    case PatchType::kJson:
      return "application/json-patch+json";
  }
  return "application/json";
}

Result<json> ApiClient::call(std::string method, std::string path, Query query, const json* body,
                             std::string content_type) {
  Request req;
  req.method = std::move(method);
  req.path = std::move(path);
  req.query = std::move(query);
  if (body) {
    req.body = body->dump();
    req.content_type = std::move(content_type);
  }
  auto resp = rest_->request(req);
  if (!resp) return resp.status();
  if (!resp->ok()) return to_status(*resp);
  if (resp->body.empty()) return json::object();
  json j = json::parse(resp->body, nullptr, false);
  if (j.is_discarded()) {
    return Status::internal(req.method + " " + req.path + ": the server's answer is not JSON");
  }
  return j;
}

Result<json> ApiClient::get(const proto::ResourceType& t, std::string_view ns,
                            std::string_view name) {
  return call("GET", resource_path(t, ns, name), {}, nullptr, "");
}

Result<json> ApiClient::list(const proto::ResourceType& t, std::string_view ns,
                             const ListOptions& opts) {
  ListOptions o = opts;
  auto first = call("GET", resource_path(t, ns), o.to_query(), nullptr, "");
  if (!first || opts.limit > 0) return first;
  json out = std::move(*first);
  if (!out.contains("items") || out["items"].is_null()) out["items"] = json::array();
  // Without a limit the server should not page, but follow `continue` in case it does.
  for (int pages = 0; pages < 100000; ++pages) {
    std::string cont;
    if (auto md = out.find("metadata"); md != out.end() && md->is_object()) {
      cont = md->value("continue", "");
    }
    if (cont.empty()) break;
    o.continue_token = cont;
    auto next = call("GET", resource_path(t, ns), o.to_query(), nullptr, "");
    if (!next) return next;
    for (auto& item : (*next)["items"]) out["items"].push_back(std::move(item));
    out["metadata"] = (*next)["metadata"];
  }
  return out;
}

namespace {
std::string meta_str(const json& obj, const char* key) {
  auto md = obj.find("metadata");
  if (md == obj.end() || !md->is_object()) return "";
  auto v = md->find(key);
  return v != md->end() && v->is_string() ? v->get<std::string>() : "";
}
}  // namespace

Result<json> ApiClient::create(const proto::ResourceType& t, std::string_view ns, const json& obj) {
  std::string n(ns);
  if (n.empty()) n = meta_str(obj, "namespace");
  if (n.empty()) n = "default";
  return call("POST", resource_path(t, n), {}, &obj, "application/json");
}

Result<json> ApiClient::update(const proto::ResourceType& t, const json& obj) {
  std::string ns = meta_str(obj, "namespace");
  if (ns.empty()) ns = "default";
  return call("PUT", resource_path(t, ns, meta_str(obj, "name")), {}, &obj, "application/json");
}

Result<json> ApiClient::update_status(const proto::ResourceType& t, const json& obj) {
  std::string ns = meta_str(obj, "namespace");
  if (ns.empty()) ns = "default";
  return call("PUT", resource_path(t, ns, meta_str(obj, "name"), "status"), {}, &obj,
              "application/json");
}

Result<json> ApiClient::patch(const proto::ResourceType& t, std::string_view ns,
                              std::string_view name, const json& patch, PatchType type,
                              std::string_view subresource) {
  return call("PATCH", resource_path(t, ns, name, subresource), {}, &patch, content_type_of(type));
}

Status ApiClient::remove(const proto::ResourceType& t, std::string_view ns, std::string_view name,
                         std::string_view propagation) {
  json opts = json::object();
  if (!propagation.empty()) opts["propagationPolicy"] = std::string(propagation);
  auto r = call("DELETE", resource_path(t, ns, name), {}, &opts, "application/json");
  return r.status();
}

Status ApiClient::watch(const proto::ResourceType& t, std::string_view ns, const ListOptions& opts,
                        const std::function<bool(const json&)>& on_event, std::stop_token stop) {
  Query q = opts.to_query();
  q.emplace_back("watch", "true");
  return rest_->watch(resource_path(t, ns), q, on_event, stop, "application/json",
                      opts.idle_timeout);
}

}  // namespace skiff::client
