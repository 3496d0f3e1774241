#include "common/http/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

namespace skiff::web {
namespace {

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  // EVP_Digest cannot fail for SHA-256 on in-memory input short of allocation failure; a zeroed
  // digest then matches nothing because every stored digest is a real one... unless it is also
  // zero, so treat failure as an impossible state.
  if (EVP_Digest(s.data(), s.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 || len != 32) {
    SKIFF_CHECK(false && "SHA-256 failed");
  }
  return out;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

// Splits one CSV record the way Go's encoding/csv does for the token file: fields separated by
// commas, a field may be double-quoted with "" as an escaped quote and may then contain commas
// and newlines. `pos` advances past the record. Returns false on bad quoting.
bool next_record(std::string_view text, size_t& pos, std::vector<std::string>& fields,
                 size_t& line) {
  fields.clear();
  std::string cur;
  bool in_quotes = false, field_started = false, quoted_field = false;
  while (pos < text.size()) {
    char c = text[pos++];
    if (in_quotes) {
      if (c == '"') {
        if (pos < text.size() && text[pos] == '"') {
          cur += '"';
          ++pos;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        cur += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = true;
      field_started = quoted_field = true;
    } else if (c == '"') {
      return false;  // a quote inside an unquoted field
    } else if (c == ',') {
      fields.push_back(quoted_field ? cur : trim(cur));
      cur.clear();
      field_started = quoted_field = false;
    } else if (c == '\n') {
      ++line;
      fields.push_back(quoted_field ? cur : trim(cur));
      return true;
    } else {
      if (quoted_field && c != '\r' && c != ' ') return false;  // text after a closing quote
      if (!quoted_field) cur += c;
      field_started = true;
    }
  }
  if (in_quotes) return false;
  fields.push_back(quoted_field ? cur : trim(cur));
  return true;
}

}  // namespace

bool is_public_path(std::string_view path) {
  return path == "/healthz" || path == "/readyz" || path == "/livez" || path == "/version" ||
         path.starts_with("/healthz/") || path.starts_with("/readyz/") ||
         path.starts_with("/livez/");
}

Status TokenAuthenticator::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io("open token file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::io("read token file " + path);
  return load_csv(ss.str(), path);
}

Status TokenAuthenticator::load_csv(std::string_view text, const std::string& origin) {
  std::vector<Entry> parsed;
  std::vector<std::string> fields;
  size_t pos = 0, line = 1;
  while (pos < text.size()) {
    size_t record_line = line;
    if (!next_record(text, pos, fields, line)) {
      return Status::invalid(origin + ":" + std::to_string(record_line) + ": bad quoting");
    }
    if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
    if (fields.size() < 3) {
      return Status::invalid(origin + ":" + std::to_string(record_line) +
                             ": want token,user,uid[,\"groups\"], got " +
                             std::to_string(fields.size()) + " field(s)");
    }
    if (fields[0].empty()) {
      spdlog::warn("{}:{}: empty token skipped", origin, record_line);
      continue;
    }
    Entry e{sha256(fields[0]), Identity{fields[1], fields[2], {}}};
    if (fields.size() >= 4) {
      std::string_view g = fields[3];
      while (!g.empty()) {
        size_t comma = g.find(',');
        std::string one = trim(g.substr(0, comma));
        if (!one.empty()) e.id.groups.push_back(one);
        if (comma == std::string_view::npos) break;
        g.remove_prefix(comma + 1);
      }
    }
    for (auto& p : parsed) {
      if (CRYPTO_memcmp(p.digest.data(), e.digest.data(), 32) == 0) {
        spdlog::warn("{}:{}: duplicate token, the later line wins", origin, record_line);
      }
    }
    parsed.push_back(std::move(e));
  }
  for (auto& e : parsed) {
    std::erase_if(entries_, [&](const Entry& x) {
      return CRYPTO_memcmp(x.digest.data(), e.digest.data(), 32) == 0;
    });
    entries_.push_back(std::move(e));
  }
  return Status::ok();
}

void TokenAuthenticator::add(std::string_view token, Identity id) {
  auto d = sha256(token);
  std::erase_if(entries_,
                [&](const Entry& x) { return CRYPTO_memcmp(x.digest.data(), d.data(), 32) == 0; });
  entries_.push_back(Entry{d, std::move(id)});
}

std::optional<Identity> TokenAuthenticator::authenticate(std::string_view authorization) const {
  while (!authorization.empty() && authorization.front() == ' ') authorization.remove_prefix(1);
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) {
      return std::nullopt;
    }
  }
  std::string token = trim(authorization.substr(kScheme.size()));
  if (token.empty()) return std::nullopt;
  auto d = sha256(token);
  // Compare against every entry without stopping early: the time taken depends only on the
  // number of tokens, not on which (if any) matched.
  const Entry* found = nullptr;
  for (const auto& e : entries_) {
    bool eq = CRYPTO_memcmp(e.digest.data(), d.data(), 32) == 0;
    found = eq ? &e : found;
  }
  if (!found) return std::nullopt;
  Identity id = found->id;
  if (std::find(id.groups.begin(), id.groups.end(), kAuthenticatedGroup) == id.groups.end()) {
    id.groups.push_back(kAuthenticatedGroup);
  }
  return id;
}

}  // namespace skiff::web
