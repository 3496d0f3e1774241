// Image reference parsing and normalization, following the rules of the
// Docker/distribution reference grammar: a first component with '.' or ':' (or
// "localhost") is a registry, anything else lives on docker.io, and
// single-component docker.io names live under library/.
#include <algorithm>
#include <cctype>

#include "kubelet/images/internal.h"

namespace skiff::images {
namespace internal {
namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// path-component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool valid_component(std::string_view c) {
  if (c.empty() || !lower_alnum(c.front()) || !lower_alnum(c.back())) return false;
  for (size_t i = 0; i < c.size();) {
    if (lower_alnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !lower_alnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// tag := [\w][\w.-]{0,127}
bool valid_tag(std::string_view t) {
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (t.empty() || t.size() > 128 || !word(t[0])) return false;
  for (char c : t) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

bool valid_registry(std::string_view r) {
  if (r.empty()) return false;
  for (char c : r) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' &&
        c != '[' && c != ']') {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<Reference> parse_reference(std::string_view in) {
  const std::string quoted = "image reference \"" + std::string(in) + "\"";
  if (in.empty()) return Status::invalid("image reference is empty");
  if (in.size() > 512) return Status::invalid(quoted + " is too long");
  Reference r;
  std::string_view rest = in;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    r.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (!valid_digest(r.digest)) {
      return Status::invalid(quoted + ": digest must be sha256: followed by 64 lowercase hex");
    }
  }
  // The tag follows the last ':' after the last '/' (a ':' before it is a
  // registry port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    r.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!valid_tag(r.tag)) return Status::invalid(quoted + ": invalid tag \"" + r.tag + "\"");
  }
  std::string_view path = rest;
  size_t first = rest.find('/');
  if (first != std::string_view::npos) {
    std::string_view head = rest.substr(0, first);
    bool is_registry =
        head.find_first_of(".:") != std::string_view::npos || head == "localhost" ||
        std::any_of(head.begin(), head.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    if (is_registry) {
      if (!valid_registry(head)) {
        return Status::invalid(quoted + ": invalid registry \"" + std::string(head) + "\"");
      }
      r.registry = std::string(head);
      path = rest.substr(first + 1);
    }
  }
  if (r.registry.empty() || r.registry == "index.docker.io" ||
      r.registry == "registry-1.docker.io") {
    r.registry = "docker.io";
  }
  if (path.empty()) return Status::invalid(quoted + ": no repository name");
  for (size_t i = 0; i <= path.size();) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view comp = path.substr(i, j - i);
    if (!valid_component(comp)) {
      bool upper =
          std::any_of(comp.begin(), comp.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
      return Status::invalid(
          quoted + (upper ? ": repository name must be lowercase"
                          : ": invalid repository name component \"" + std::string(comp) + "\""));
    }
    i = j + 1;
  }
  r.repository = std::string(path);
  if (r.registry == "docker.io" && r.repository.find('/') == std::string::npos) {
    r.repository = "library/" + r.repository;
  }
  if (r.name().size() > 255) return Status::invalid(quoted + ": name longer than 255 characters");
  if (!r.digest.empty()) {
    r.tag.clear();  // the digest names the content; a tag beside it adds nothing
  } else if (r.tag.empty()) {
    r.tag = "latest";
  }
  return r;
}

}  // namespace internal

Result<std::string> normalize_reference(std::string_view ref) {
  auto r = internal::parse_reference(ref);
  if (!r) return r.status();
  return r->str();
}

}  // namespace skiff::images
