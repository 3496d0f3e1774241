// The `scale` subresource of deployments and replicasets: an autoscaling/v1 Scale view of the
// parent. GET converts; PUT and PATCH (merge, JSON, strategic) may change only the parent's
// spec.replicas, which then goes through the parent's own update path (validation, generation
// bump, optimistic concurrency), as Kubernetes' scaleREST does.
#include "apiserver/api_impl.h"
#include "apiserver/store/store.h"
#include "proto/patch.h"
#include "proto/registry.h"
#include "proto/scale.h"

namespace skiff::apiserver {
namespace {

// For errors about the Scale itself ("Scale.autoscaling \"web\" is invalid: ...").
const proto::ResourceType& scale_type() {
  static const proto::ResourceType* t = [] {
    auto* rt = new proto::ResourceType();
    rt->group = "autoscaling";
    rt->version = "v1";
    rt->kind = "Scale";
    rt->plural = "scale";
    return rt;
  }();
  return *t;
}

// Decodes a Scale from a request body or a patched document: kind and apiVersion (when given)
// must be autoscaling/v1 Scale, types must fit, unknown fields follow fieldValidation.
ApiResult<proto::Scale> decode_scale(const json& in, const WriteOptions& wo,
                                     std::vector<std::string>* warnings) {
  if (!in.is_object())
    return errors::bad_request("the Scale in the request body must be a JSON object, got " +
                               std::string(in.type_name()));
  for (auto [field, want] :
       {std::pair{"kind", "Scale"}, std::pair{"apiVersion", "autoscaling/v1"}}) {
    auto it = in.find(field);
    if (it == in.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()))
      continue;
    if (!it->is_string() || it->get<std::string>() != want)
      return errors::bad_request(std::string("the ") + field +
                                 " of the object in the request body (" +
                                 (it->is_string() ? it->get<std::string>() : it->dump()) +
                                 ") must be " + want + " for the scale subresource");
  }
  proto::FieldErrors errs;
  proto::DecodeOptions dopts;
  dopts.report_unknown = wo.field_validation != FieldValidation::kIgnore;
  proto::Scale s = proto::decode<proto::Scale>(in, errs, dopts);
  std::string type_errors;
  std::vector<std::string> unknown;
  for (const auto& e : errs) {
    if (e.type == proto::ErrorType::kUnknownField) {
      unknown.push_back(e.message());
    } else {
      if (!type_errors.empty()) type_errors += "; ";
      type_errors += e.field + ": " + e.message();
    }
  }
  if (!type_errors.empty())
    return errors::bad_request("Scale in version \"v1\" cannot be handled as a Scale: " +
                               type_errors);
  if (!unknown.empty()) {
    if (wo.field_validation == FieldValidation::kStrict) {
      std::string msg = "strict decoding error: ";
      for (size_t i = 0; i < unknown.size(); ++i) msg += (i ? ", " : "") + unknown[i];
      return errors::bad_request(msg);
    }
    if (warnings) warnings->insert(warnings->end(), unknown.begin(), unknown.end());
  }
  return s;
}

}  // namespace

ApiResult<json> ApiImpl::scale_parent(const proto::ResourceType& rt, const Target& t,
                                      const json& patch_doc, int patch_kind,
                                      const proto::Scale* put, const WriteOptions& wo,
                                      std::vector<std::string>* warnings) {
  const std::string key = object_key(rt, t.ns, t.name);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto kv = timed("get", [&] { return store_->get(key); });
    if (!kv.is_ok()) return errors::from_store(kv.status(), rt, t.name);
    auto old = read_object(*kv);
    if (!old.ok()) return old.error();
    const json current = proto::encode(proto::scale_of(old.value()));

    proto::Scale want;
    if (put != nullptr) {
      want = *put;
    } else {
      Result<json> patched = patch_kind == 0 ? proto::apply_merge_patch(current, patch_doc)
                             : patch_kind == 1
                                 ? proto::apply_json_patch(current, patch_doc)
                                 : proto::apply_strategic_merge_patch(
                                       current, patch_doc, proto::schema_of<proto::Scale>());
      if (!patched.is_ok()) return ApiError{422, "Invalid", patched.status().message(), {}};
      if (warnings) warnings->clear();
      auto s = decode_scale(*patched, wo, warnings);
      if (!s.ok()) return s.error();
      want = std::move(s.value());
    }
    if (!want.metadata.name.empty() && want.metadata.name != t.name)
      return errors::bad_request("the name of the object (" + want.metadata.name +
                                 ") does not match the name on the URL (" + t.name + ")");
    if (!want.metadata.namespace_.empty() && want.metadata.namespace_ != t.ns)
      return errors::bad_request(
          "the namespace of the provided object does not match the namespace sent on the "
          "request");
    auto verrs = proto::validate_scale(want);
    if (!verrs.empty()) return errors::invalid(scale_type(), t.name, verrs);
    // A resourceVersion the client gave is a precondition on the parent: the PUT body's, or
    // one the patch sets (a patch is applied to the current Scale, which carries the current
    // resourceVersion; that one is no precondition, so a racing write is retried).
    std::string want_rv = want.metadata.resource_version;
    if (put == nullptr) {
      if (patch_doc.is_object()) {
        json md = patch_doc.value("metadata", json());
        json rv = md.is_object() ? md.value("resourceVersion", json()) : json();
        want_rv = rv.is_string() ? rv.get<std::string>() : "";
      } else if (want_rv == meta_string(current, "resourceVersion")) {
        want_rv.clear();  // a JSON patch that left it alone
      }
    }
    if (!want_rv.empty() && want_rv != std::to_string(kv->mod_revision))
      return errors::conflict(rt, t.name);

    json parent = old.value();
    parent["spec"]["replicas"] = want.spec.replicas;
    auto res = update_object(rt, "", std::move(parent), old.value(), kv->mod_revision, wo);
    if (!res.ok()) {
      if (res.error().code == 409 && res.error().reason == "Conflict" && want_rv.empty())
        continue;  // raced with another writer: apply the change to the new version
      return res.error();
    }
    return proto::encode(proto::scale_of(res.value()));
  }
  return errors::conflict(rt, t.name);
}

Response ApiImpl::scale(const Request& req, const Target& t) {
  const std::string& m = req.method;
  if (m == "GET" || m == "HEAD") {
    auto kv = timed("get", [&] { return store_->get(object_key(*t.rt, t.ns, t.name)); });
    if (!kv.is_ok()) return error_response(errors::from_store(kv.status(), *t.rt, t.name));
    auto obj = read_object(*kv);
    if (!obj.ok()) return error_response(obj.error());
    return json_response(200, proto::encode(proto::scale_of(obj.value())));
  }
  if (m != "PUT" && m != "PATCH") return error_response(errors::method_not_allowed(m));
  auto wo = write_options(req);
  if (!wo.ok()) return error_response(wo.error());
  std::vector<std::string> warnings;
  ApiResult<json> res = json();
  if (m == "PUT") {
    if (auto e = check_json_body(req)) return error_response(*e);
    if (req.body.empty())
      return error_response(errors::bad_request("the request body is empty: expected a Scale"));
    json in = json::parse(req.body, nullptr, false);
    if (in.is_discarded())
      return error_response(errors::bad_request("the request body is not valid JSON"));
    auto s = decode_scale(in, wo.value(), &warnings);
    if (!s.ok()) return error_response(s.error());
    res = scale_parent(*t.rt, t, json(), 0, &s.value(), wo.value(), &warnings);
  } else {
    const std::string raw_ct = req.header("content-type");
    const std::string ct = media_type(raw_ct);
    int kind;
    if (ct == "application/merge-patch+json")
      kind = 0;
    else if (ct == "application/json-patch+json")
      kind = 1;
    else if (ct == "application/strategic-merge-patch+json")
      kind = 2;
    else
      return error_response(errors::unsupported_media_type(
          raw_ct,
          "application/json-patch+json, application/merge-patch+json, "
          "application/strategic-merge-patch+json"));
    json doc = json::parse(req.body, nullptr, false);
    if (doc.is_discarded())
      return error_response(errors::bad_request("the patch is not valid JSON"));
    if (kind == 1 ? !doc.is_array() : !doc.is_object())
      return error_response(errors::bad_request(kind == 1
                                                    ? "a JSON patch must be an array of operations"
                                                    : "a merge patch must be a JSON object"));
    res = scale_parent(*t.rt, t, doc, kind, nullptr, wo.value(), &warnings);
  }
  if (!res.ok()) return error_response(res.error());
  Response r = json_response(200, res.value());
  add_warnings(r, warnings);
  return r;
}

}  // namespace skiff::apiserver
