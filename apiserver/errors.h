// ApiError: a Kubernetes `Status` failure (code, reason, message, details) as the API logic
// produces it, and the builders for the errors Kubernetes returns, with its exact messages.
// ApiResult<T> carries a value or an ApiError inside the API logic; Api::handle turns the error
// into a Status JSON response at the edge. Value types; not thread-safe to mutate concurrently.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "common/status.h"
#include "proto/codec.h"

namespace skiff::proto {
struct ResourceType;
}

namespace skiff::apiserver {

using proto::json;

struct ApiError {
  int code = 500;
  std::string reason;   // "NotFound", "AlreadyExists", "Invalid", ...
  std::string message;  // what kubectl prints after "Error from server (Reason): "
  json details;         // null or {name, group, kind, causes}

  // The metav1.Status JSON object.
  json to_json() const;
};

template <class T>
class [[nodiscard]] ApiResult {
 public:
  ApiResult(T v) : v_(std::move(v)) {}         // NOLINT: implicit by design
  ApiResult(ApiError e) : v_(std::move(e)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  const ApiError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, ApiError> v_;
};

namespace errors {

// "pods" or "deployments.apps": how Kubernetes names a resource in messages.
std::string qualified(const proto::ResourceType& rt);

ApiError bad_request(std::string message);
ApiError not_found_path();  // an unknown URL
ApiError not_found(const proto::ResourceType& rt, const std::string& name);
ApiError namespace_not_found(const std::string& ns);
ApiError already_exists(const proto::ResourceType& rt, const std::string& name);
// The optimistic-concurrency failure: `Operation cannot be fulfilled on pods "x": <why>`.
ApiError conflict(const proto::ResourceType& rt, const std::string& name,
                  const std::string& why =
                      "the object has been modified; please apply your changes to the latest "
                      "version and try again");
ApiError invalid(const proto::ResourceType& rt, const std::string& name,
                 const proto::FieldErrors& errs);
ApiError forbidden(std::string message);
ApiError method_not_allowed(const std::string& method);
// `accepted`: the media types this request could have used, comma-separated.
ApiError unsupported_media_type(const std::string& content_type, const std::string& accepted);
ApiError not_acceptable(const std::string& accept);
ApiError expired(std::string message);  // 410 Expired
ApiError internal(std::string message);
ApiError unavailable(std::string message);
// A store failure on resource `rt`/`name`, mapped to the Kubernetes error for its code.
ApiError from_store(const Status& s, const proto::ResourceType& rt, const std::string& name);

}  // namespace errors
}  // namespace skiff::apiserver
