#include "apiserver/errors.h"

#include "proto/registry.h"

namespace skiff::apiserver {

json ApiError::to_json() const {
  json j = {{"kind", "Status"},
            {"apiVersion", "v1"},
            {"metadata", json::object()},
            {"status", "Failure"},
            {"message", message},
            {"reason", reason}};
  if (details.is_object() && !details.empty()) j["details"] = details;
  j["code"] = code;
  return j;
}

namespace errors {
namespace {

json details_of(const proto::ResourceType& rt, const std::string& name) {
  json d = json::object();
  if (!name.empty()) d["name"] = name;
  if (!rt.group.empty()) d["group"] = rt.group;
  d["kind"] = rt.plural;
  return d;
}

}  // namespace

std::string qualified(const proto::ResourceType& rt) {
  return rt.group.empty() ? rt.plural : rt.plural + "." + rt.group;
}

ApiError bad_request(std::string message) { return {400, "BadRequest", std::move(message), {}}; }

ApiError not_found_path() {
  return {404, "NotFound", "the server could not find the requested resource", {}};
}

ApiError not_found(const proto::ResourceType& rt, const std::string& name) {
  return {404, "NotFound", qualified(rt) + " \"" + name + "\" not found", details_of(rt, name)};
}

ApiError namespace_not_found(const std::string& ns) {
  return {404, "NotFound", "namespaces \"" + ns + "\" not found",
          {{"name", ns}, {"kind", "namespaces"}}};
}

ApiError already_exists(const proto::ResourceType& rt, const std::string& name) {
  return {409, "AlreadyExists", qualified(rt) + " \"" + name + "\" already exists",
          details_of(rt, name)};
}

ApiError conflict(const proto::ResourceType& rt, const std::string& name,
                  const std::string& why) {
  return {409, "Conflict",
          "Operation cannot be fulfilled on " + qualified(rt) + " \"" + name + "\": " + why,
          details_of(rt, name)};
}

ApiError invalid(const proto::ResourceType& rt, const std::string& name,
                 const proto::FieldErrors& errs) {
  json causes = json::array();
  std::string list;
  for (const auto& e : errs) {
    std::string body = e.message();
    causes.push_back({{"reason", e.reason()}, {"message", body}, {"field", e.field}});
    if (!list.empty()) list += ", ";
    // kUnknownField's message already names the field.
    list += e.type == proto::ErrorType::kUnknownField ? body : e.field + ": " + body;
  }
  if (errs.size() > 1) list = "[" + list + "]";
  json d = json::object();
  if (!name.empty()) d["name"] = name;
  if (!rt.group.empty()) d["group"] = rt.group;
  d["kind"] = rt.kind;
  d["causes"] = causes;
  // Kubernetes names the kind with its group: `Deployment.apps "web" is invalid: ...`.
  std::string kind = rt.group.empty() ? rt.kind : rt.kind + "." + rt.group;
  return {422, "Invalid", kind + " \"" + name + "\" is invalid: " + list, d};
}

ApiError forbidden(std::string message) { return {403, "Forbidden", std::move(message), {}}; }

ApiError method_not_allowed(const std::string& method) {
  return {405, "MethodNotAllowed",
          "the server does not allow this method on the requested resource (" + method + ")",
          {}};
}

ApiError unsupported_media_type(const std::string& content_type, const std::string& accepted) {
  return {415, "UnsupportedMediaType",
          "the body of the request was in an unknown format (\"" + content_type +
              "\") - accepted media types include: " + accepted,
          {}};
}

ApiError not_acceptable(const std::string& accept) {
  return {406, "NotAcceptable",
          "only the following media types are accepted: application/json, "
          "application/json;as=Table;v=v1;g=meta.k8s.io (got \"" + accept + "\")",
          {}};
}

ApiError expired(std::string message) { return {410, "Expired", std::move(message), {}}; }

ApiError internal(std::string message) {
  return {500, "InternalError", "Internal error occurred: " + message, {}};
}

ApiError unavailable(std::string message) {
  return {503, "ServiceUnavailable", std::move(message), {}};
}

ApiError from_store(const Status& s, const proto::ResourceType& rt, const std::string& name) {
  switch (s.code()) {
    case Code::kNotFound: return not_found(rt, name);
    case Code::kAlreadyExists: return already_exists(rt, name);
    case Code::kConflict: return conflict(rt, name);
    case Code::kGone: return expired(s.message());
    case Code::kInvalid: return bad_request(s.message());
    case Code::kUnavailable: return unavailable(s.message());
    case Code::kTimeout:
      return {504, "Timeout", s.message(), {}};
    default: return internal(s.to_string());
  }
}

}  // namespace errors
}  // namespace skiff::apiserver
