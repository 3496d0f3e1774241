#include "proto/validation.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <string>

namespace skiff::proto {
namespace {

// The message texts below are apimachinery's (k8s.io/apimachinery/pkg/util/validation) word
// for word: kubectl users and client libraries match on them.

constexpr const char* kDns1123LabelFmt = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
constexpr const char* kDns1123LabelErrMsg =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character";
constexpr const char* kDns1123SubdomainFmt =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
constexpr const char* kDns1123SubdomainErrMsg =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character";
constexpr const char* kDns1035LabelFmt = "[a-z]([-a-z0-9]*[a-z0-9])?";
constexpr const char* kDns1035LabelErrMsg =
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character";
constexpr const char* kQualifiedNameFmt = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
constexpr const char* kQualifiedNameErrMsg =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character";
constexpr const char* kLabelValueFmt = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
constexpr const char* kLabelValueErrMsg =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character";
constexpr const char* kEnvVarNameFmt = "[-._a-zA-Z][-._a-zA-Z0-9]*";
constexpr const char* kEnvVarNameErrMsg =
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit";
constexpr const char* kConfigMapKeyFmt = "[-._a-zA-Z0-9]+";
constexpr const char* kConfigMapKeyErrMsg =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

constexpr size_t kDns1123LabelMaxLength = 63;
constexpr size_t kDns1123SubdomainMaxLength = 253;
constexpr size_t kDns1035LabelMaxLength = 63;
constexpr size_t kQualifiedNameMaxLength = 63;
constexpr size_t kLabelValueMaxLength = 63;
constexpr size_t kPortNameMaxLength = 15;
constexpr size_t kTotalAnnotationSizeLimit = 256 * 1024;

std::string max_len_error(size_t n) {
  return "must be no more than " + std::to_string(n) + " characters";
}

// Go's validation.RegexError.
std::string regex_error(std::string_view msg, std::string_view fmt,
                        std::initializer_list<std::string_view> examples) {
  std::string out(msg);
  if (examples.size() == 0)
    return out + " (regex used for validation is '" + std::string(fmt) + "')";
  out += " (e.g. ";
  bool first = true;
  for (auto e : examples) {
    if (!first) out += " or ";
    first = false;
    out += "'" + std::string(e) + "', ";
  }
  out += "regex used for validation is '" + std::string(fmt) + "')";
  return out;
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool matches_dns1123_label(std::string_view v) {
  if (v.empty() || !is_lower_alnum(v.front()) || !is_lower_alnum(v.back())) return false;
  return std::all_of(v.begin(), v.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
}

bool matches_dns1123_subdomain(std::string_view v) {
  if (v.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t dot = v.find('.', start);
    std::string_view part = v.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!matches_dns1123_label(part)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool matches_qualified_name(std::string_view v) {
  if (v.empty() || !is_alnum(v.front()) || !is_alnum(v.back())) return false;
  return std::all_of(v.begin(), v.end(),
                     [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

std::vector<std::string> has_chdir_prefix(std::string_view v) {
  if (v == ".") return {"must not be '.'"};
  if (v == "..") return {"must not be '..'"};
  if (v.starts_with("..")) return {"must not start with '..'"};
  return {};
}

// Go's net.ParseIP, as netutils.ParseIPSloppy uses it: IPv4 octets may carry leading zeros.
bool parse_ipv4_sloppy(std::string_view v) {
  int parts = 0;
  size_t i = 0;
  while (i <= v.size()) {
    size_t j = i;
    int val = 0;
    while (j < v.size() && is_digit(v[j])) {
      val = val * 10 + (v[j] - '0');
      if (val > 255) return false;
      ++j;
    }
    if (j == i) return false;
    ++parts;
    if (j == v.size()) break;
    if (v[j] != '.' || parts == 4) return false;
    i = j + 1;
  }
  return parts == 4;
}

bool parse_ip(std::string_view v) {
  if (v.find(':') == std::string_view::npos) return parse_ipv4_sloppy(v);
  // IPv6, possibly with an embedded IPv4 tail; zones ("%eth0") are not IPs.
  std::string s(v);
  in6_addr a6{};
  return inet_pton(AF_INET6, s.c_str(), &a6) == 1;
}

}  // namespace

std::vector<std::string> is_dns1123_label(std::string_view v) {
  std::vector<std::string> errs;
  if (v.size() > kDns1123LabelMaxLength) errs.push_back(max_len_error(kDns1123LabelMaxLength));
  if (!matches_dns1123_label(v)) {
    if (matches_dns1123_subdomain(v)) {
      errs.push_back("must not contain dots");  // a valid subdomain: the dots are the problem
    } else {
      errs.push_back(regex_error(kDns1123LabelErrMsg, kDns1123LabelFmt, {"my-name", "123-abc"}));
    }
  }
  return errs;
}

std::vector<std::string> is_dns1123_subdomain(std::string_view v) {
  std::vector<std::string> errs;
  if (v.size() > kDns1123SubdomainMaxLength)
    errs.push_back(max_len_error(kDns1123SubdomainMaxLength));
  if (!matches_dns1123_subdomain(v))
    errs.push_back(regex_error(kDns1123SubdomainErrMsg, kDns1123SubdomainFmt, {"example.com"}));
  return errs;
}

std::vector<std::string> is_dns1035_label(std::string_view v) {
  std::vector<std::string> errs;
  if (v.size() > kDns1035LabelMaxLength) errs.push_back(max_len_error(kDns1035LabelMaxLength));
  bool ok = !v.empty() && v.front() >= 'a' && v.front() <= 'z' && is_lower_alnum(v.back()) &&
            std::all_of(v.begin(), v.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
  if (!ok)
    errs.push_back(regex_error(kDns1035LabelErrMsg, kDns1035LabelFmt, {"my-name", "abc-123"}));
  return errs;
}

std::vector<std::string> is_qualified_name(std::string_view v) {
  std::vector<std::string> errs;
  std::string_view name = v;
  size_t slash = v.find('/');
  if (slash != std::string_view::npos) {
    if (v.find('/', slash + 1) != std::string_view::npos) {
      errs.push_back(
          "a qualified name " +
          regex_error(kQualifiedNameErrMsg, kQualifiedNameFmt, {"MyName", "my.name", "123-abc"}) +
          " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
      return errs;
    }
    std::string_view prefix = v.substr(0, slash);
    name = v.substr(slash + 1);
    if (prefix.empty()) {
      errs.push_back("prefix part must be non-empty");
    } else {
      for (auto& m : is_dns1123_subdomain(prefix)) errs.push_back("prefix part " + m);
    }
  }
  if (name.empty()) {
    errs.push_back("name part must be non-empty");
  } else if (name.size() > kQualifiedNameMaxLength) {
    errs.push_back("name part " + max_len_error(kQualifiedNameMaxLength));
  }
  if (!matches_qualified_name(name)) {
    errs.push_back("name part " + regex_error(kQualifiedNameErrMsg, kQualifiedNameFmt,
                                              {"MyName", "my.name", "123-abc"}));
  }
  return errs;
}

std::vector<std::string> is_valid_label_value(std::string_view v) {
  std::vector<std::string> errs;
  if (v.size() > kLabelValueMaxLength) errs.push_back(max_len_error(kLabelValueMaxLength));
  if (!v.empty() && !matches_qualified_name(v)) {
    errs.push_back(
        regex_error(kLabelValueErrMsg, kLabelValueFmt, {"MyValue", "my_value", "12345"}));
  }
  return errs;
}

std::vector<std::string> is_valid_port_num(int64_t port) {
  if (port >= 1 && port <= 65535) return {};
  return {"must be between 1 and 65535, inclusive"};
}

std::vector<std::string> is_valid_port_name(std::string_view v) {
  std::vector<std::string> errs;
  if (v.size() > kPortNameMaxLength) errs.push_back(max_len_error(kPortNameMaxLength));
  bool charset = !v.empty() && std::all_of(v.begin(), v.end(),
                                           [](char c) { return is_lower_alnum(c) || c == '-'; });
  if (!charset)
    errs.push_back("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  if (std::none_of(v.begin(), v.end(), [](char c) { return c >= 'a' && c <= 'z'; }))
    errs.push_back("must contain at least one letter (a-z)");
  if (v.find("--") != std::string_view::npos)
    errs.push_back("must not contain consecutive hyphens");
  if (!v.empty() && (v.front() == '-' || v.back() == '-'))
    errs.push_back("must not begin or end with a hyphen");
  return errs;
}

std::vector<std::string> is_valid_ip(std::string_view v) {
  if (parse_ip(v)) return {};
  return {"must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"};
}

std::vector<std::string> is_valid_cidr(std::string_view v) {
  // Kubernetes' IsValidCIDR (netutils.ParseCIDRSloppy): an address, '/', a prefix length of at
  // most 32 (IPv4) or 128 (IPv6) in decimal digits; host bits may be set.
  const size_t slash = v.find('/');
  bool ok = slash != std::string_view::npos && parse_ip(v.substr(0, slash));
  if (ok) {
    std::string_view len = v.substr(slash + 1);
    const int max = v.substr(0, slash).find(':') == std::string_view::npos ? 32 : 128;
    int n = 0;
    ok = !len.empty() && len.size() <= 3;
    for (char c : len) {
      if (!is_digit(c)) ok = false;
      n = n * 10 + (c - '0');
    }
    ok = ok && n <= max;
  }
  if (ok) return {};
  return {"must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"};
}

std::vector<std::string> is_c_identifier(std::string_view v) {
  // Kubernetes validates env var names with IsEnvVarName, which relaxed C identifiers to
  // also allow '-' and '.'; that is what callers of this function want.
  std::vector<std::string> errs;
  bool ok = !v.empty() && !is_digit(v.front()) && std::all_of(v.begin(), v.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_';
  });
  if (!ok) {
    errs.push_back(regex_error(kEnvVarNameErrMsg, kEnvVarNameFmt,
                               {"my.env-name", "MY_ENV.NAME", "MyEnvName1"}));
  }
  for (auto& m : has_chdir_prefix(v)) errs.push_back(std::move(m));
  return errs;
}

std::vector<std::string> is_config_map_key(std::string_view v) {
  std::vector<std::string> errs;
  if (v.size() > kDns1123SubdomainMaxLength)
    errs.push_back(max_len_error(kDns1123SubdomainMaxLength));
  bool ok = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
    return is_alnum(c) || c == '-' || c == '.' || c == '_';
  });
  if (!ok) {
    errs.push_back(
        regex_error(kConfigMapKeyErrMsg, kConfigMapKeyFmt, {"key.name", "KEY_NAME", "key-name"}));
  }
  for (auto& m : has_chdir_prefix(v)) errs.push_back(std::move(m));
  return errs;
}

void add_errors(FieldErrors& errs, const Path& path, std::string_view value,
                const std::vector<std::string>& problems) {
  for (const auto& p : problems)
    errs.push_back({ErrorType::kInvalid, path.str(), p, json(std::string(value)).dump()});
}

void validate_labels(const std::map<std::string, std::string>& labels, const Path& path,
                     FieldErrors& errs) {
  for (const auto& [k, v] : labels) {
    add_errors(errs, path, k, is_qualified_name(k));
    add_errors(errs, path, v, is_valid_label_value(v));
  }
}

void validate_annotations(const std::map<std::string, std::string>& annotations, const Path& path,
                          FieldErrors& errs) {
  size_t total = 0;
  for (const auto& [k, v] : annotations) {
    // Annotation keys are qualified names in which case does not matter.
    std::string lower(k);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    add_errors(errs, path, k, is_qualified_name(lower));
    total += k.size() + v.size();
  }
  if (total > kTotalAnnotationSizeLimit) {
    errs.push_back({ErrorType::kTooLong, path.str(),
                    "must have at most " + std::to_string(kTotalAnnotationSizeLimit) + " bytes",
                    ""});
  }
}

}  // namespace skiff::proto
