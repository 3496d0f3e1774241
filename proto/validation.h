// Building blocks for validation, with Kubernetes' rules and messages (apimachinery's
// validation package). Each returns the list of problems (empty = valid), phrased as
// Kubernetes phrases them, for the caller to wrap into FieldErrors with a path.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proto/codec.h"

namespace skiff::proto {

std::vector<std::string> is_dns1123_label(std::string_view v);      // max 63, [a-z0-9-]
std::vector<std::string> is_dns1123_subdomain(std::string_view v);  // max 253, labels with dots
std::vector<std::string> is_dns1035_label(std::string_view v);      // service names
std::vector<std::string> is_qualified_name(std::string_view v);     // label/annotation keys
std::vector<std::string> is_valid_label_value(std::string_view v);
std::vector<std::string> is_valid_port_num(int64_t port);         // 1..65535
std::vector<std::string> is_valid_port_name(std::string_view v);  // IANA_SVC_NAME
std::vector<std::string> is_valid_ip(std::string_view v);
std::vector<std::string> is_valid_cidr(std::string_view v);    // "10.9.8.0/24", "fd00::/64"
std::vector<std::string> is_c_identifier(std::string_view v);  // env var names (relaxed)
std::vector<std::string> is_config_map_key(std::string_view v);

// Appends one FieldError per problem, all of type kInvalid at `path` with `value`.
void add_errors(FieldErrors& errs, const Path& path, std::string_view value,
                const std::vector<std::string>& problems);

// metadata.labels / metadata.annotations / selector maps.
void validate_labels(const std::map<std::string, std::string>& labels, const Path& path,
                     FieldErrors& errs);
void validate_annotations(const std::map<std::string, std::string>& annotations, const Path& path,
                          FieldErrors& errs);  // total size <= 256 KiB
}  // namespace skiff::proto
