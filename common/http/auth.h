// TokenAuthenticator: bearer-token authentication for the API server.
//
// Tokens come from a Kubernetes static token file (CSV: token,user,uid,"group1,group2") and from
// tokens added in code (the admin token generated at first start). A token is matched by
// comparing SHA-256 digests of the presented and every known token in constant time, so the
// reply time does not reveal how much of a guess was right.
//
// Thread-safety: load_file/add must finish before authenticate is called concurrently;
// authenticate is const and safe from any thread.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace skiff::web {

struct Identity {
  std::string user;
  std::string uid;
  std::vector<std::string> groups;
};

inline constexpr const char* kAnonymousUser = "system:anonymous";
inline constexpr const char* kUnauthenticatedGroup = "system:unauthenticated";
inline constexpr const char* kAuthenticatedGroup = "system:authenticated";

// The paths every client may reach without credentials, as with Kubernetes' default RBAC for
// system:unauthenticated: health checks and the version.
bool is_public_path(std::string_view path);

class TokenAuthenticator {
 public:
  // Reads a Kubernetes token file. Each record: token, user name, uid, and an optional quoted
  // comma-separated group list. Blank lines are skipped. On failure (unreadable file, a record
  // with fewer than 3 fields, bad quoting) nothing is added and the error names file and line.
  [[nodiscard]] Status load_file(const std::string& path);
  // Parses token-file text; `origin` names it in errors.
  [[nodiscard]] Status load_csv(std::string_view text, const std::string& origin);
  // Adds or replaces one token.
  void add(std::string_view token, Identity id);
  size_t size() const { return entries_.size(); }

  // The identity for an `Authorization` header value of the form "Bearer <token>" (scheme
  // matched without regard to case), or nullopt if the header is malformed or the token unknown.
  // The returned identity carries the extra group system:authenticated.
  std::optional<Identity> authenticate(std::string_view authorization) const;

 private:
  struct Entry {
    std::array<unsigned char, 32> digest;
    Identity id;
  };
  std::vector<Entry> entries_;
};

}  // namespace skiff::web
