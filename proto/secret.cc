#include "proto/secret.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {

void default_secret(Secret& s) {
  for (const auto& [k, v] : s.string_data) s.data[k] = base64_encode(v);
  s.string_data.clear();
  if (s.type.empty()) s.type = "Opaque";
}

namespace {

constexpr size_t kMaxSecretBytes = 1024 * 1024;  // 1 MiB, as in Kubernetes

void require_key(const Secret& s, const char* key, FieldErrors& errs) {
  if (!s.data.count(key))
    errs.push_back({ErrorType::kRequired, Path("data").key(key).str(), "", ""});
}

void validate_secret(const Secret& s, const Secret* old, FieldErrors& errs) {
  const Path data("data");
  size_t total = 0;
  for (const auto& [k, v] : s.data) {
    add_errors(errs, data.key(k), k, is_config_map_key(k));
    if (auto p = base64_problem(v); !p.empty())
      errs.push_back({ErrorType::kInvalid, data.key(k).str(), p, "\"<secret contents redacted>\""});
    total += v.size() / 4 * 3;
  }
  for (const auto& [k, v] : s.string_data) {
    add_errors(errs, Path("stringData").key(k), k, is_config_map_key(k));
    total += v.size();
  }
  if (total > kMaxSecretBytes)
    errs.push_back({ErrorType::kTooLong, data.str(), "must have at most 1048576 bytes", ""});

  if (s.type == "kubernetes.io/service-account-token") {
    if (!s.metadata.annotations.count("kubernetes.io/service-account.name"))
      errs.push_back(
          {ErrorType::kRequired,
           Path("metadata").field("annotations").key("kubernetes.io/service-account.name").str(),
           "", ""});
  } else if (s.type == "kubernetes.io/dockercfg") {
    require_key(s, ".dockercfg", errs);
  } else if (s.type == "kubernetes.io/dockerconfigjson") {
    require_key(s, ".dockerconfigjson", errs);
  } else if (s.type == "kubernetes.io/basic-auth") {
    if (!s.data.count("username") && !s.data.count("password"))
      errs.push_back({ErrorType::kRequired, data.key("username").str(), "", ""});
  } else if (s.type == "kubernetes.io/ssh-auth") {
    require_key(s, "ssh-privatekey", errs);
  } else if (s.type == "kubernetes.io/tls") {
    require_key(s, "tls.crt", errs);
    require_key(s, "tls.key", errs);
  }

  if (!old) return;
  immutable(errs, Path("type"), s.type, old->type);
  if (old->immutable.value_or(false)) {
    if (!s.immutable.value_or(false))
      errs.push_back(
          {ErrorType::kForbidden, "immutable", "field is immutable when `immutable` is set", ""});
    if (s.data != old->data)
      errs.push_back(
          {ErrorType::kForbidden, "data", "field is immutable when `immutable` is set", ""});
  }
}

json secret_row(const Secret& s, Clock::time_point now) {
  return json::array({s.metadata.name, s.type, static_cast<int64_t>(s.data.size()),
                      since(s.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

ResourceType secret_resource() {
  KindSpec<Secret> k;
  k.type.version = "v1";
  k.type.kind = "Secret";
  k.type.list_kind = "SecretList";
  k.type.plural = "secrets";
  k.type.singular = "secret";
  k.type.has_spec = false;
  k.type.columns = {name_column(), column("Type", "string", "The type of the secret"),
                    column("Data", "string", "The number of entries in the secret"), age_column()};
  k.defaults = default_secret;
  k.validate = validate_secret;
  k.row = secret_row;
  k.fields = {{"type", "type"}};
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
