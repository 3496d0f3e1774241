// create, update, patch, delete, deletecollection and binding, and the admission pipeline
// they share: decode -> normalize (type errors, unknown fields) -> metadata rules ->
// defaults -> validation -> namespace lifecycle -> store.
#include <algorithm>
#include <chrono>
#include <optional>
#include <set>

#include "apiserver/api_impl.h"
#include "apiserver/metrics.h"
#include "apiserver/priority.h"
#include "apiserver/protobuf.h"
#include "apiserver/store/store.h"
#include "proto/patch.h"
#include "proto/registry.h"
#include "proto/time.h"

namespace skiff::apiserver {
namespace {

const std::set<std::string> kProtectedNamespaces = {"default", "kube-system", "kube-public"};

json& meta_of(json& obj) {
  json& m = obj["metadata"];
  if (!m.is_object()) m = json::object();
  return m;
}

bool is_store_conflict(const ApiError& e) { return e.code == 409 && e.reason == "Conflict"; }

// Whether `a` and `b` differ in what metadata.generation tracks.
bool spec_changed(const proto::ResourceType& rt, const json& a, const json& b) {
  if (rt.generation_tracks_annotations) {
    auto annotations = [](const json& o) {
      auto m = o.find("metadata");
      return m != o.end() && m->is_object() ? m->value("annotations", json()) : json();
    };
    if (annotations(a) != annotations(b)) return true;
  }
  if (rt.has_spec) return a.value("spec", json()) != b.value("spec", json());
  json x = a, y = b;
  for (json* o : {&x, &y}) {
    o->erase("metadata");
    o->erase("status");
  }
  return x != y;
}

bool has_subresource(const proto::ResourceType& rt, const char* sub) {
  return std::find(rt.subresources.begin(), rt.subresources.end(), sub) != rt.subresources.end();
}

bool has_finalizers(const json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return false;
  auto f = m->find("finalizers");
  return f != m->end() && f->is_array() && !f->empty();
}

int64_t int_or(const json& j, int64_t def) {
  return j.is_number_integer() ? j.get<int64_t>() : def;
}

constexpr const char* kForegroundFinalizer = "foregroundDeletion";
constexpr const char* kOrphanFinalizer = "orphan";

// Sets the garbage collector's finalizers for a delete with `propagation` (Kubernetes'
// deletionFinalizersForGarbageCollection): Foreground => foregroundDeletion, Orphan => orphan,
// Background => neither, "" => as they are. True when the finalizers changed.
bool set_gc_finalizers(json& obj, const std::string& propagation) {
  if (propagation.empty()) return false;
  json& m = obj["metadata"];
  json old = m.value("finalizers", json::array());
  if (!old.is_array()) old = json::array();
  json now = json::array();
  for (const auto& f : old)
    if (f != kForegroundFinalizer && f != kOrphanFinalizer) now.push_back(f);
  if (propagation == "Foreground") now.push_back(kForegroundFinalizer);
  if (propagation == "Orphan") now.push_back(kOrphanFinalizer);
  auto sorted = [](json a) {
    std::sort(a.begin(), a.end());
    return a;
  };
  if (sorted(old) == sorted(now)) return false;
  if (now.empty())
    m.erase("finalizers");
  else
    m["finalizers"] = std::move(now);
  return true;
}

// The grace period a pod deletion gets: the request's, else spec.terminationGracePeriodSeconds
// (default 30); 0 for a pod no node runs (unbound, or already Succeeded/Failed).
int64_t pod_grace_seconds(const json& pod, int64_t requested) {
  const json* spec = pod.contains("spec") ? &pod["spec"] : nullptr;
  if (spec == nullptr || !spec->value("nodeName", json()).is_string() ||
      spec->value("nodeName", std::string()).empty())
    return 0;
  if (pod.contains("status")) {
    std::string phase = pod["status"].value("phase", json()).is_string()
                            ? pod["status"]["phase"].get<std::string>()
                            : "";
    if (phase == "Succeeded" || phase == "Failed") return 0;
  }
  if (requested >= 0) return requested;
  return int_or(spec->value("terminationGracePeriodSeconds", json()), 30);
}

}  // namespace

// ---- decoding.

ApiResult<json> ApiImpl::normalize(const json& in, const proto::ResourceType& rt,
                                   const WriteOptions& wo, std::vector<std::string>* warnings) {
  if (!in.is_object())
    return errors::bad_request("the object in the request body must be a JSON object, got " +
                               std::string(in.type_name()));
  proto::FieldErrors errs;
  proto::DecodeOptions dopts;
  dopts.report_unknown = wo.field_validation != FieldValidation::kIgnore;
  json out = rt.normalize ? rt.normalize(in, errs, dopts) : in;
  std::string type_errors, unknown;
  std::vector<std::string> unknown_list;
  for (const auto& e : errs) {
    if (e.type == proto::ErrorType::kUnknownField) {
      unknown_list.push_back(e.message());
    } else {
      if (!type_errors.empty()) type_errors += "; ";
      type_errors += e.field + ": " + e.message();
    }
  }
  if (!type_errors.empty())
    return errors::bad_request(rt.kind + " in version \"" + rt.version +
                               "\" cannot be handled as a " + rt.kind + ": " + type_errors);
  if (!unknown_list.empty()) {
    if (wo.field_validation == FieldValidation::kStrict) {
      std::string msg = "strict decoding error: ";
      for (size_t i = 0; i < unknown_list.size(); ++i) msg += (i ? ", " : "") + unknown_list[i];
      return errors::bad_request(msg);
    }
    if (warnings) warnings->insert(warnings->end(), unknown_list.begin(), unknown_list.end());
  }
  return out;
}

std::optional<ApiError> check_json_body(const Request& req) {
  // A missing Content-Type is JSON (kubectl's PUT .../scale sends none). Protobuf bodies
  // (client-go typed clients, e.g. kubectl create configmap) are not decoded yet.
  std::string ct = media_type(req.header("content-type"));
  if (ct.empty() || ct == "application/json" || ct == "*/*") return std::nullopt;
  return errors::unsupported_media_type(req.header("content-type"), "application/json");
}

// A protobuf body of a kind we can decode (kubectl's typed `create deployment|service|...`) as JSON
// text; nullopt for a JSON body, which decode_body then reads in place (every create and update
// passes here: no copy of it); anything else 415.
static ApiResult<std::optional<std::string>> converted_body(const Request& req,
                                                            const proto::ResourceType& rt) {
  if (media_type(req.header("content-type")) == kProtobufMediaType &&
      protobuf_decodable(rt.api_version(), rt.kind)) {
    auto j = decode_protobuf_object(req.body);
    if (!j.ok()) return j.error();
    return std::optional<std::string>(j.value().dump());
  }
  if (auto e = check_json_body(req)) return *e;
  return std::optional<std::string>();
}

Response ApiImpl::review(const Request& req, const ReviewResource& r) {
  if (req.method != "POST") return error_response(errors::method_not_allowed(req.method));
  if (req.body.empty())
    return error_response(
        errors::bad_request(std::string("the request body is empty: expected a ") + r.kind));
  json body;
  if (media_type(req.header("content-type")) == kProtobufMediaType) {
    auto j = decode_protobuf_object(req.body);
    if (!j.ok()) return error_response(j.error());
    body = std::move(j.value());
  } else {
    if (auto e = check_json_body(req)) return error_response(*e);
    body = json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      return error_response(errors::bad_request(std::string("the request body is not valid "
                                                            "JSON: expected a ") +
                                                r.kind));
  }
  auto answer = answer_review(r, body, Requester{req.user, req.groups});
  if (!answer.ok()) return error_response(answer.error());
  return json_response(201, answer.value());
}

ApiResult<json> ApiImpl::decode_body(const std::string& body, const proto::ResourceType& rt,
                                     const WriteOptions& wo, std::vector<std::string>* warnings) {
  if (body.empty()) return errors::bad_request("the request body is empty: expected a " + rt.kind);
  json in;
  try {
    in = json::parse(body);
  } catch (const json::parse_error& e) {
    return errors::bad_request("the request body is not valid JSON: " + std::string(e.what()) +
                               " (at byte " + std::to_string(e.byte) + ")");
  }
  if (!in.is_object())
    return errors::bad_request("the request body must be a JSON object, got " +
                               std::string(in.type_name()));
  if (auto k = in.find("kind");
      k != in.end() && !(k->is_string() && k->get<std::string>().empty())) {
    if (!k->is_string() || k->get<std::string>() != rt.kind)
      return errors::bad_request("the kind of the object in the request body (" +
                                 (k->is_string() ? k->get<std::string>() : k->dump()) +
                                 ") does not match the resource of the URL (" + rt.kind + ")");
  }
  if (auto a = in.find("apiVersion");
      a != in.end() && !(a->is_string() && a->get<std::string>().empty())) {
    if (!a->is_string() || a->get<std::string>() != rt.api_version())
      return errors::bad_request("the apiVersion of the object in the request body (" +
                                 (a->is_string() ? a->get<std::string>() : a->dump()) +
                                 ") does not match the URL (" + rt.api_version() + ")");
  }
  return normalize(in, rt, wo, warnings);
}

std::optional<ApiError> ApiImpl::check_namespace_writable(const std::string& ns) {
  if (namespaces_ == nullptr || namespace_known_active(ns)) return std::nullopt;
  auto kv = timed("get", [&] { return store_->get(object_key(*namespaces_, "", ns)); });
  if (!kv.is_ok()) {
    if (kv.status().code() == Code::kNotFound) return errors::namespace_not_found(ns);
    return errors::from_store(kv.status(), *namespaces_, ns);
  }
  auto obj = read_object(*kv);
  if (obj.ok() && is_terminating(obj.value()))
    return errors::forbidden("unable to create new content in namespace " + ns +
                             " because it is being terminated");
  return std::nullopt;
}

// ---- create.

ApiResult<json> ApiImpl::create_object(const proto::ResourceType& rt, const std::string& url_ns,
                                       json obj, const WriteOptions& wo) {
  json& meta = meta_of(obj);
  std::string ns = meta.value("namespace", "");
  if (rt.namespaced) {
    if (ns.empty()) {
      ns = url_ns;
      meta["namespace"] = ns;
    } else if (!url_ns.empty() && ns != url_ns) {
      return errors::bad_request(
          "the namespace of the provided object does not match the namespace sent on the "
          "request");
    }
  } else {
    meta.erase("namespace");
    ns.clear();
  }
  std::string name = meta.value("name", "");
  std::string generate = meta.value("generateName", "");
  if (name.empty() && generate.empty()) {
    return errors::invalid(
        rt, "",
        {{proto::ErrorType::kRequired, "metadata.name", "name or generateName is required", ""}});
  }
  const bool generated = name.empty();
  meta.erase("resourceVersion");
  meta.erase("deletionTimestamp");
  meta.erase("deletionGracePeriodSeconds");
  meta["uid"] = new_uid();
  meta["creationTimestamp"] = now_rfc3339();
  meta["generation"] = 1;
  if (&rt == namespaces_) obj["status"] = {{"phase", "Active"}};
  if (rt.reset_status_on_create) obj.erase("status");
  if (rt.namespaced) {
    if (auto err = check_namespace_writable(ns)) return *err;
  }
  // As Kubernetes' Store.Create: a generated name is drawn (like the uid) before the strategy's
  // defaults run, which may copy it (a Job's pod labels); a retry after a name collision draws
  // again and defaults again from the object as it was before.
  std::optional<json> undefaulted;
  if (generated) undefaulted = obj;
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    if (generated) {
      if (attempt > 0) obj = *undefaulted;
      name = generate + random_name_suffix();
      meta_of(obj)["name"] = name;
    }
    if (rt.apply_defaults) rt.apply_defaults(obj);
    json& m = meta_of(obj);
    if (&rt == namespaces_) m["labels"]["kubernetes.io/metadata.name"] = name;
    // Kubernetes' Priority admission (mutating, so before validation): a pod's priority from
    // its PriorityClass (or the default one); at most one default PriorityClass.
    if (auto err = admit_priority(rt, obj, nullptr)) return *err;
    if (rt.validate) {
      auto errs = rt.validate(obj, nullptr);
      if (!errs.empty()) return errors::invalid(rt, name, errs);
    }
    // Services: ClusterIP and node ports are taken before the write (so concurrent creates
    // never share one) and given back if the write fails; a dry run records nothing.
    std::optional<AllocTxn> txn;
    json spec_before;
    if (is_service(rt) && svc_alloc_) {
      spec_before = obj.value("spec", json::object());
      auto a = allocate_reserved(obj, ns + "/" + name, wo.dry_run,
                                 [&] { return svc_alloc_->allocate_create(rt, obj, wo.dry_run); });
      if (!a.ok()) return a.error();
      txn = std::move(a.value());
    }
    if (wo.dry_run) return obj;
    auto kv =
        timed("create", [&] { return store_->create(object_key(rt, ns, name), stored_form(obj)); });
    if (kv.is_ok()) {
      obj["metadata"]["resourceVersion"] = std::to_string(kv->mod_revision);
      return obj;
    }
    if (txn) {
      svc_alloc_->revert(*txn);
      if (store_->shared()) unreserve(txn->ips, txn->ports);
      obj["spec"] = std::move(spec_before);
    }
    if (kv.status().code() == Code::kAlreadyExists && generated) continue;  // name collision
    return errors::from_store(kv.status(), rt, name);
  }
  return errors::already_exists(rt, name);
}

Response ApiImpl::create(const Request& req, const Target& t) {
  auto converted = converted_body(req, *t.rt);
  if (!converted.ok()) return error_response(converted.error());
  auto wo = write_options(req);
  if (!wo.ok()) return error_response(wo.error());
  std::vector<std::string> warnings;
  auto obj =
      decode_body(converted.value() ? *converted.value() : req.body, *t.rt, wo.value(), &warnings);
  if (!obj.ok()) return error_response(obj.error());
  auto made = create_object(*t.rt, t.ns, std::move(obj.value()), wo.value());
  if (!made.ok()) return error_response(made.error());
  Response r = json_response(201, made.value());
  add_warnings(r, warnings);
  return r;
}

// ---- update.

ApiResult<json> ApiImpl::update_object(const proto::ResourceType& rt, const std::string& sub,
                                       json candidate, const json& old, int64_t old_rev,
                                       const WriteOptions& wo) {
  json obj;
  if (sub == "status") {
    // A status write changes only status.
    obj = old;
    if (candidate.contains("status"))
      obj["status"] = candidate["status"];
    else
      obj.erase("status");
  } else {
    obj = std::move(candidate);
    if (has_subresource(rt, "status")) {
      // The main resource does not change status when status is a subresource.
      if (old.contains("status"))
        obj["status"] = old["status"];
      else
        obj.erase("status");
    }
  }
  const json& om = old.at("metadata");
  json& meta = meta_of(obj);
  for (const char* k : {"name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                        "deletionGracePeriodSeconds"}) {
    if (om.contains(k))
      meta[k] = om[k];
    else
      meta.erase(k);
  }
  meta.erase("resourceVersion");
  const std::string name = om.value("name", "");
  const std::string ns = om.value("namespace", "");
  if (&rt == namespaces_) meta["labels"]["kubernetes.io/metadata.name"] = name;
  if (rt.apply_defaults) rt.apply_defaults(obj);
  const bool svc_alloc = is_service(rt) && svc_alloc_ && sub != "status";
  // A Service manifest without its allocated values keeps them; values its new type no
  // longer needs are dropped (before validation, as Kubernetes does).
  if (svc_alloc) ServiceAllocator::prepare_update(obj, old);
  if (sub.empty()) {
    if (auto err = admit_priority(rt, obj, &old)) return *err;
  }
  if (rt.validate) {
    auto errs = rt.validate(obj, &old);
    if (!errs.empty()) return errors::invalid(rt, name, errs);
  }
  int64_t gen = int_or(om.value("generation", json()), 1);
  if (spec_changed(rt, old, obj)) ++gen;
  obj["metadata"]["generation"] = gen;

  const std::string key = object_key(rt, ns, name);
  // The last finalizer of an object being deleted is gone: finish the deletion.
  if (&rt != namespaces_ && obj["metadata"].contains("deletionTimestamp") && has_finalizers(old) &&
      !has_finalizers(obj)) {
    if (wo.dry_run) return obj;
    auto kv = timed("delete", [&] { return store_->remove(key, old_rev); });
    if (!kv.is_ok()) return errors::from_store(kv.status(), rt, name);
    if (is_service(rt) && svc_alloc_) release_service_values(old);
    obj["metadata"]["resourceVersion"] = std::to_string(kv->mod_revision);
    if (rt.namespaced && namespaces_ != nullptr) {
      // The last object of a terminating namespace may be this one.
      auto nskv = store_->get(object_key(*namespaces_, "", ns));
      if (nskv.is_ok()) {
        auto nsobj = read_object(*nskv);
        if (nsobj.ok() && is_terminating(nsobj.value())) sweep_namespace(ns);
      }
    }
    return obj;
  }
  json unchanged = old;
  unchanged["metadata"].erase("resourceVersion");
  if (obj == unchanged) return old;  // Kubernetes writes nothing and keeps the resourceVersion
  std::optional<AllocTxn> txn;
  if (svc_alloc) {
    auto a = allocate_reserved(obj, ns + "/" + name, wo.dry_run, [&] {
      return svc_alloc_->allocate_update(rt, obj, old, wo.dry_run);
    });
    if (!a.ok()) return a.error();
    txn = std::move(a.value());
  }
  if (wo.dry_run) {
    obj["metadata"]["resourceVersion"] = std::to_string(old_rev);
    return obj;
  }
  auto kv = timed("update", [&] { return store_->update(key, stored_form(obj), old_rev); });
  if (!kv.is_ok()) {
    if (txn) {
      svc_alloc_->revert(*txn);
      if (store_->shared()) unreserve(txn->ips, txn->ports);
    }
    return errors::from_store(kv.status(), rt, name);
  }
  if (txn) {
    svc_alloc_->commit(*txn);
    if (store_->shared()) unreserve(txn->release_ips, txn->release_ports);
  }
  obj["metadata"]["resourceVersion"] = std::to_string(kv->mod_revision);
  // A terminating namespace whose own finalizers are now gone can finish.
  if (&rt == namespaces_ && obj["metadata"].contains("deletionTimestamp") && !has_finalizers(obj))
    sweep_namespace(name);
  return obj;
}

Response ApiImpl::update(const Request& req, const Target& t) {
  auto converted = converted_body(req, *t.rt);
  if (!converted.ok()) return error_response(converted.error());
  auto wo = write_options(req);
  if (!wo.ok()) return error_response(wo.error());
  std::vector<std::string> warnings;
  auto body =
      decode_body(converted.value() ? *converted.value() : req.body, *t.rt, wo.value(), &warnings);
  if (!body.ok()) return error_response(body.error());
  json& in = body.value();
  json& meta = meta_of(in);
  std::string bname = meta.value("name", "");
  if (bname.empty())
    meta["name"] = t.name;
  else if (bname != t.name)
    return error_response(errors::bad_request("the name of the object (" + bname +
                                              ") does not match the name on the URL (" + t.name +
                                              ")"));
  if (t.rt->namespaced) {
    std::string bns = meta.value("namespace", "");
    if (!bns.empty() && bns != t.ns)
      return error_response(errors::bad_request(
          "the namespace of the provided object does not match the namespace sent on the "
          "request"));
  }
  const std::string want_rv = meta.value("resourceVersion", "");
  const std::string key = object_key(*t.rt, t.ns, t.name);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto kv = timed("get", [&] { return store_->get(key); });
    if (!kv.is_ok()) return error_response(errors::from_store(kv.status(), *t.rt, t.name));
    if (!want_rv.empty() && want_rv != std::to_string(kv->mod_revision))
      return error_response(errors::conflict(*t.rt, t.name));
    auto old = read_object(*kv);
    if (!old.ok()) return error_response(old.error());
    auto res = update_object(*t.rt, t.subresource, in, old.value(), kv->mod_revision, wo.value());
    if (!res.ok()) {
      if (is_store_conflict(res.error()) && want_rv.empty()) continue;
      return error_response(res.error());
    }
    Response r = json_response(200, res.value());
    add_warnings(r, warnings);
    return r;
  }
  return error_response(errors::conflict(*t.rt, t.name));
}

// ---- patch.

Response ApiImpl::patch(const Request& req, const Target& t) {
  auto wo = write_options(req);
  if (!wo.ok()) return error_response(wo.error());
  const std::string raw_ct = req.header("content-type");
  const std::string ct = media_type(raw_ct);
  enum { kMerge, kJsonPatch, kStrategic } kind;
  if (ct == "application/merge-patch+json")
    kind = kMerge;
  else if (ct == "application/json-patch+json")
    kind = kJsonPatch;
  else if (ct == "application/strategic-merge-patch+json")
    kind = kStrategic;
  else
    return error_response(
        errors::unsupported_media_type(raw_ct,
                                       "application/json-patch+json, application/merge-patch+json, "
                                       "application/strategic-merge-patch+json"));

  json patch_doc;
  try {
    patch_doc = json::parse(req.body);
  } catch (const json::parse_error& e) {
    return error_response(
        errors::bad_request("the patch is not valid JSON: " + std::string(e.what()) + " (at byte " +
                            std::to_string(e.byte) + ")"));
  }
  if (kind == kJsonPatch ? !patch_doc.is_array() : !patch_doc.is_object())
    return error_response(errors::bad_request(kind == kJsonPatch
                                                  ? "a JSON patch must be an array of operations"
                                                  : "a merge patch must be a JSON object"));

  std::vector<std::string> warnings;
  const std::string key = object_key(*t.rt, t.ns, t.name);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto kv = timed("get", [&] { return store_->get(key); });
    if (!kv.is_ok()) return error_response(errors::from_store(kv.status(), *t.rt, t.name));
    auto old = read_object(*kv);
    if (!old.ok()) return error_response(old.error());
    Result<json> patched =
        kind == kMerge       ? proto::apply_merge_patch(old.value(), patch_doc)
        : kind == kJsonPatch ? proto::apply_json_patch(old.value(), patch_doc)
        : t.rt->schema ? proto::apply_strategic_merge_patch(old.value(), patch_doc, *t.rt->schema)
                       : proto::apply_merge_patch(old.value(), patch_doc);
    if (!patched.is_ok()) return error_response({422, "Invalid", patched.status().message(), {}});
    json& p = *patched;
    if (!p.is_object())
      return error_response({422, "Invalid", "the patched object is not a JSON object", {}});
    for (const char* k : {"kind", "apiVersion"}) {
      if (p.value(k, json()) != old.value().value(k, json()))
        return error_response(errors::bad_request(std::string("a patch may not change ") + k));
    }
    std::string pname = meta_string(p, "name"), pns = meta_string(p, "namespace");
    if (pname != t.name)
      return error_response(errors::bad_request("the name of the object (" + pname +
                                                ") does not match the name on the URL (" + t.name +
                                                ")"));
    if (t.rt->namespaced && pns != t.ns)
      return error_response(errors::bad_request(
          "the namespace of the provided object does not match the namespace sent on the "
          "request"));
    // A resourceVersion in the patch is a precondition.
    std::string want_rv = meta_string(p, "resourceVersion");
    if (!want_rv.empty() && want_rv != std::to_string(kv->mod_revision))
      return error_response(errors::conflict(*t.rt, t.name));
    warnings.clear();
    auto norm = normalize(p, *t.rt, wo.value(), &warnings);
    if (!norm.ok()) return error_response(norm.error());
    auto res = update_object(*t.rt, t.subresource, std::move(norm.value()), old.value(),
                             kv->mod_revision, wo.value());
    if (!res.ok()) {
      if (is_store_conflict(res.error())) continue;  // raced: re-apply on the new version
      return error_response(res.error());
    }
    Response r = json_response(200, res.value());
    add_warnings(r, warnings);
    return r;
  }
  return error_response(errors::conflict(*t.rt, t.name));
}

// ---- delete.

ApiResult<json> ApiImpl::delete_object(const proto::ResourceType& rt, const std::string& ns,
                                       const std::string& name, const json& preconditions,
                                       int64_t grace_seconds, const WriteOptions& wo,
                                       const std::string& propagation) {
  if (&rt == namespaces_) return delete_namespace(name, preconditions, wo);
  const std::string key = object_key(rt, ns, name);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto kv = timed("get", [&] { return store_->get(key); });
    if (!kv.is_ok()) return errors::from_store(kv.status(), rt, name);
    auto old = read_object(*kv);
    if (!old.ok()) return old.error();
    json& obj = old.value();
    if (preconditions.is_object()) {
      std::string uid = preconditions.value("uid", json()).is_string()
                            ? preconditions["uid"].get<std::string>()
                            : "";
      std::string rv = preconditions.value("resourceVersion", json()).is_string()
                           ? preconditions["resourceVersion"].get<std::string>()
                           : "";
      if (!uid.empty() && uid != meta_string(obj, "uid"))
        return errors::conflict(rt, name,
                                "Precondition failed: UID in precondition: " + uid +
                                    ", UID in object meta: " + meta_string(obj, "uid"));
      if (!rv.empty() && rv != std::to_string(kv->mod_revision))
        return errors::conflict(
            rt, name,
            "Precondition failed: ResourceVersion in precondition: " + rv +
                ", ResourceVersion in object meta: " + std::to_string(kv->mod_revision));
    }
    // Foreground/Orphan: the garbage collector finishes the deletion (it deletes or releases
    // the dependents, then removes its finalizer), so the object is only marked below.
    const bool gc_changed = set_gc_finalizers(obj, propagation);
    if (rt.kind == "Pod" && rt.group.empty()) {
      // A pod bound to a node ends gracefully: the API only marks it (deletionTimestamp = now +
      // grace) and the node's kubelet stops its containers, then deletes it with grace 0
      // (Kubernetes' pkg/registry/core/pod/strategy.go CheckGracefulDelete).
      int64_t grace = pod_grace_seconds(obj, grace_seconds);
      if (grace > 0) {
        const json& m = obj["metadata"];
        if (m.contains("deletionTimestamp") &&
            int_or(m.value("deletionGracePeriodSeconds", json()), 0) <= grace && !gc_changed)
          return obj;  // already terminating at least as fast
        if (!m.contains("deletionTimestamp") ||
            int_or(m.value("deletionGracePeriodSeconds", json()), 0) > grace) {
          obj["metadata"]["deletionTimestamp"] =
              rfc3339(proto::plus_seconds(std::chrono::system_clock::now(), grace));
          obj["metadata"]["deletionGracePeriodSeconds"] = grace;
        }
        if (wo.dry_run) return obj;
        auto up = timed("update",
                        [&] { return store_->update(key, stored_form(obj), kv->mod_revision); });
        if (!up.is_ok()) {
          if (up.status().code() == Code::kConflict) continue;
          return errors::from_store(up.status(), rt, name);
        }
        obj["metadata"]["resourceVersion"] = std::to_string(up->mod_revision);
        return obj;
      }
      grace_seconds = 0;
    }
    if (has_finalizers(obj)) {
      // Finalizers hold the object: mark it and let their owners finish the job.
      const bool marked = !meta_string(obj, "deletionTimestamp").empty();
      if (marked && !gc_changed) return obj;
      if (!marked) {
        obj["metadata"]["deletionTimestamp"] = now_rfc3339();
        obj["metadata"]["deletionGracePeriodSeconds"] = grace_seconds < 0 ? 0 : grace_seconds;
      }
      if (wo.dry_run) return obj;
      auto up =
          timed("update", [&] { return store_->update(key, stored_form(obj), kv->mod_revision); });
      if (!up.is_ok()) {
        if (up.status().code() == Code::kConflict) continue;
        return errors::from_store(up.status(), rt, name);
      }
      obj["metadata"]["resourceVersion"] = std::to_string(up->mod_revision);
      return obj;
    }
    if (wo.dry_run) return obj;
    auto rm = timed("delete", [&] { return store_->remove(key, kv->mod_revision); });
    if (!rm.is_ok()) {
      if (rm.status().code() == Code::kConflict) continue;
      return errors::from_store(rm.status(), rt, name);
    }
    if (is_service(rt) && svc_alloc_) release_service_values(obj);
    obj["metadata"]["resourceVersion"] = std::to_string(rm->mod_revision);
    return obj;
  }
  return errors::conflict(rt, name);
}

ApiResult<json> ApiImpl::delete_namespace(const std::string& name, const json& preconditions,
                                          const WriteOptions& wo) {
  const auto& rt = *namespaces_;
  if (kProtectedNamespaces.count(name))
    return errors::forbidden("namespaces \"" + name +
                             "\" is forbidden: this namespace may not "
                             "be deleted");
  const std::string key = object_key(rt, "", name);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto kv = timed("get", [&] { return store_->get(key); });
    if (!kv.is_ok()) return errors::from_store(kv.status(), rt, name);
    auto old = read_object(*kv);
    if (!old.ok()) return old.error();
    json obj = old.value();
    if (preconditions.is_object() && preconditions.value("uid", json()).is_string() &&
        preconditions["uid"] != obj["metadata"].value("uid", json()))
      return errors::conflict(
          rt, name,
          "Precondition failed: UID in precondition: " + preconditions["uid"].get<std::string>() +
              ", UID in object meta: " + meta_string(obj, "uid"));
    if (meta_string(obj, "deletionTimestamp").empty()) {
      obj["metadata"]["deletionTimestamp"] = now_rfc3339();
      obj["metadata"]["deletionGracePeriodSeconds"] = 0;
      obj["status"]["phase"] = "Terminating";
      if (wo.dry_run) return obj;
      auto up =
          timed("update", [&] { return store_->update(key, stored_form(obj), kv->mod_revision); });
      if (!up.is_ok()) {
        if (up.status().code() == Code::kConflict) continue;
        return errors::from_store(up.status(), rt, name);
      }
      obj["metadata"]["resourceVersion"] = std::to_string(up->mod_revision);
    } else if (wo.dry_run) {
      return obj;
    }
    sweep_namespace(name);
    return obj;
  }
  return errors::conflict(rt, name);
}

void ApiImpl::sweep_namespace(const std::string& ns) {
  if (namespaces_ == nullptr) return;
  size_t remaining = 0;
  for (const auto& rt : reg_.all()) {
    if (!rt.namespaced) continue;
    auto page = store_->list(list_prefix(rt, ns), 0, 0, "");
    if (!page.is_ok()) {
      ++remaining;
      continue;
    }
    for (const auto& kv : page->items) {
      std::string name = kv.key.substr(list_prefix(rt, ns).size());
      auto res = delete_object(rt, ns, name, json(), 0, WriteOptions{});
      if (res.ok() && has_finalizers(res.value()))
        ++remaining;
      else if (!res.ok() && res.error().code != 404)
        ++remaining;
    }
  }
  if (remaining > 0) return;
  // Empty: the namespace itself goes, unless its own finalizers hold it.
  const std::string key = object_key(*namespaces_, "", ns);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto kv = store_->get(key);
    if (!kv.is_ok()) return;
    auto obj = read_object(*kv);
    if (!obj.ok() || !is_terminating(obj.value()) || has_finalizers(obj.value())) return;
    auto rm = store_->remove(key, kv->mod_revision);
    if (rm.is_ok() || rm.status().code() != Code::kConflict) return;
  }
}

ApiResult<DeleteParams> parse_delete_options(const json& opts, const std::string& go_path) {
  DeleteParams p;
  // A field of the wrong JSON type is refused as Go's decoder refuses it: a body meant as a dry
  // run must never delete because its dryRun was a string, nor a grace period of "30" delete
  // at once.
  auto wrong_type = [&](const char* field, const json& v, const char* go_type) {
    return errors::bad_request("json: cannot unmarshal " + std::string(v.type_name()) +
                               " into Go struct field " + go_path + field + " of type " + go_type);
  };
  const json& dry = opts.value("dryRun", json());
  if (!dry.is_null() && !dry.is_array()) return wrong_type("dryRun", dry, "[]string");
  if (dry.is_array())
    for (const auto& v : dry) {
      if (v != "All")
        return errors::bad_request("dryRun: Unsupported value: " + v.dump() +
                                   ": supported values: \"All\"");
      p.dry_run = true;
    }
  const json& pre = opts.value("preconditions", json());
  if (!pre.is_null() && !pre.is_object())
    return wrong_type("preconditions", pre, "v1.Preconditions");
  if (pre.is_object()) {
    for (const char* k : {"uid", "resourceVersion"}) {
      const json& v = pre.value(k, json());
      if (!v.is_null() && !v.is_string()) return wrong_type(k, v, "string");
    }
    p.preconditions = pre;
  }
  const json& g = opts.value("gracePeriodSeconds", json());
  if (!g.is_null() && !g.is_number_integer()) return wrong_type("gracePeriodSeconds", g, "int64");
  if (g.is_number_integer()) p.grace = g.get<int64_t>();
  const json& pp = opts.value("propagationPolicy", json());
  if (!pp.is_null() && !pp.is_string()) return wrong_type("propagationPolicy", pp, "string");
  if (pp.is_string()) {
    std::string v = pp.get<std::string>();
    if (v != "Background" && v != "Foreground" && v != "Orphan")
      return errors::bad_request("propagationPolicy: Unsupported value: \"" + v + "\"");
    p.propagation = v;
  }
  // The deprecated orphanDependents: true is Orphan, false Background.
  const json& orphan = opts.value("orphanDependents", json());
  if (!orphan.is_null() && !orphan.is_boolean())
    return wrong_type("orphanDependents", orphan, "bool");
  if (p.propagation.empty() && orphan.is_boolean())
    p.propagation = orphan.get<bool>() ? "Orphan" : "Background";
  return p;
}

namespace {

// The DeleteOptions of the body: JSON, or protobuf from typed clients (`kubectl drain`).
ApiResult<json> delete_options(const Request& req) {
  if (media_type(req.header("content-type")) == kProtobufMediaType)
    return decode_protobuf_delete_options(req.body);
  json opts = json::parse(req.body, nullptr, false);
  if (opts.is_discarded() || !opts.is_object())
    return errors::bad_request("the DeleteOptions in the request body are not a JSON object");
  return opts;
}

ApiResult<DeleteParams> delete_params(const Request& req) {
  DeleteParams p;
  if (!req.body.empty()) {
    auto parsed = delete_options(req);
    if (!parsed.ok()) return parsed.error();
    auto body = parse_delete_options(parsed.value(), "DeleteOptions.");
    if (!body.ok()) return body.error();
    p = std::move(body.value());
  }
  if (req.has_q("gracePeriodSeconds")) {
    try {
      p.grace = std::stoll(req.q("gracePeriodSeconds"));
    } catch (const std::exception&) {
      return errors::bad_request("invalid gracePeriodSeconds: \"" + req.q("gracePeriodSeconds") +
                                 "\"");
    }
  }
  std::string pp = req.q("propagationPolicy");
  if (!pp.empty() && pp != "Background" && pp != "Foreground" && pp != "Orphan")
    return errors::bad_request("propagationPolicy: Unsupported value: \"" + pp + "\"");
  if (!pp.empty()) p.propagation = pp;
  if (p.propagation.empty() && req.has_q("orphanDependents"))
    p.propagation = req.q("orphanDependents") == "true" ? "Orphan" : "Background";
  return p;
}

}  // namespace

Response ApiImpl::remove(const Request& req, const Target& t) {
  auto wo = write_options(req);
  if (!wo.ok()) return error_response(wo.error());
  auto dp = delete_params(req);
  if (!dp.ok()) return error_response(dp.error());
  if (dp.value().dry_run) wo.value().dry_run = true;
  if (is_priorityclass_resource(*t.rt)) {  // the built-ins stay (Kubernetes' storage Delete)
    if (auto err = check_priorityclass_delete(t.name)) return error_response(*err);
  }
  auto res = delete_object(*t.rt, t.ns, t.name, dp.value().preconditions, dp.value().grace,
                           wo.value(), dp.value().propagation);
  if (!res.ok()) return error_response(res.error());
  return json_response(200, res.value());
}

Response ApiImpl::remove_collection(const Request& req, const Target& t) {
  if (t.rt == namespaces_) return error_response(errors::method_not_allowed(req.method));
  auto wo = write_options(req);
  if (!wo.ok()) return error_response(wo.error());
  auto dp = delete_params(req);
  if (!dp.ok()) return error_response(dp.error());
  if (dp.value().dry_run) wo.value().dry_run = true;
  auto filter = filter_from(req, t);
  if (!filter.ok()) return error_response(filter.error());
  const std::string prefix = list_prefix(*t.rt, filter.value().ns);
  auto page = timed("list", [&] { return store_->list(prefix, 0, 0, ""); });
  if (!page.is_ok()) return error_response(errors::from_store(page.status(), *t.rt, ""));
  json items = json::array();
  for (const auto& kv : page->items) {
    auto obj = read_object(kv);
    if (!obj.ok() || !filter.value().matches(obj.value())) continue;
    auto res = delete_object(*t.rt, meta_string(obj.value(), "namespace"),
                             meta_string(obj.value(), "name"), json(), dp.value().grace, wo.value(),
                             dp.value().propagation);
    if (res.ok())
      items.push_back(std::move(res.value()));
    else if (res.error().code != 404)
      return error_response(res.error());
  }
  return json_response(200, {{"kind", t.rt->list_kind},
                             {"apiVersion", t.rt->api_version()},
                             {"metadata", {{"resourceVersion", std::to_string(page->revision)}}},
                             {"items", std::move(items)}});
}

// ---- binding.

Response ApiImpl::bind(const Request& req, const Target& t) {
  if (auto e = check_json_body(req)) return error_response(*e);
  auto wo = write_options(req);
  if (!wo.ok()) return error_response(wo.error());
  json in = json::parse(req.body, nullptr, false);
  if (in.is_discarded() || !in.is_object())
    return error_response(
        errors::bad_request("the Binding in the request body is not a JSON "
                            "object"));
  std::string node;
  if (in.contains("target") && in["target"].is_object() && in["target"].contains("name") &&
      in["target"]["name"].is_string())
    node = in["target"]["name"].get<std::string>();
  proto::ResourceType binding_rt = *t.rt;
  binding_rt.kind = "Binding";
  binding_rt.plural = t.rt->plural + "/binding";
  if (node.empty())
    return error_response(errors::invalid(binding_rt, t.name,
                                          {{proto::ErrorType::kRequired, "target.name", "", ""}}));
  const std::string key = object_key(*t.rt, t.ns, t.name);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto kv = timed("get", [&] { return store_->get(key); });
    if (!kv.is_ok()) return error_response(errors::from_store(kv.status(), *t.rt, t.name));
    auto old = read_object(*kv);
    if (!old.ok()) return error_response(old.error());
    json obj = old.value();
    std::string bound =
        obj.contains("spec") && obj["spec"].is_object() ? obj["spec"].value("nodeName", "") : "";
    if (!bound.empty())
      return error_response(errors::conflict(
          binding_rt, t.name, "pod " + t.name + " is already assigned to node \"" + bound + "\""));
    if (!meta_string(obj, "deletionTimestamp").empty())
      return error_response(errors::conflict(
          binding_rt, t.name, "pod " + t.name + " is being deleted, cannot be assigned to a host"));
    obj["spec"]["nodeName"] = node;
    if (!wo.value().dry_run) {
      auto up =
          timed("update", [&] { return store_->update(key, stored_form(obj), kv->mod_revision); });
      if (!up.is_ok()) {
        if (up.status().code() == Code::kConflict) continue;
        return error_response(errors::from_store(up.status(), *t.rt, t.name));
      }
    }
    return json_response(201, {{"kind", "Status"},
                               {"apiVersion", "v1"},
                               {"metadata", json::object()},
                               {"status", "Success"},
                               {"code", 201}});
  }
  return error_response(errors::conflict(binding_rt, t.name));
}

}  // namespace skiff::apiserver
