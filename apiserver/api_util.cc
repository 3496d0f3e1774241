#include "apiserver/api_util.h"

#include "common/base64.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <random>

#include "apiserver/store/store.h"
#include "proto/registry.h"

namespace skiff::apiserver {
namespace {

std::mt19937_64& rng() {
  thread_local std::mt19937_64 r{[] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }()};
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}


}  // namespace

// ---- store layout.

std::string resource_prefix(const proto::ResourceType& rt) {
  return "/registry/" + (rt.group.empty() ? std::string("core") : rt.group) + "/" + rt.plural +
         "/";
}

std::string list_prefix(const proto::ResourceType& rt, const std::string& ns) {
  if (!rt.namespaced || ns.empty()) return resource_prefix(rt);
  return resource_prefix(rt) + ns + "/";
}

std::string object_key(const proto::ResourceType& rt, const std::string& ns,
                       const std::string& name) {
  return rt.namespaced ? resource_prefix(rt) + ns + "/" + name : resource_prefix(rt) + name;
}

ApiResult<json> read_object_at(const std::string& value, int64_t revision) {
  json obj = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!obj.is_object()) return errors::internal("stored object is not a JSON object");
  obj["metadata"]["resourceVersion"] = std::to_string(revision);
  return obj;
}

ApiResult<json> read_object(const store::KeyValue& kv) {
  return read_object_at(kv.value, kv.mod_revision);
}

std::string stored_form(const json& obj) {
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object() || !meta->contains("resourceVersion"))
    return obj.dump();  // the common case (a create): no copy of the object
  json copy = obj;
  copy["metadata"].erase("resourceVersion");
  return copy.dump();
}

// ---- metadata helpers.

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string now_rfc3339() { return rfc3339(std::chrono::system_clock::now()); }

std::string new_uid() {
  uint64_t a = rng()(), b = rng()();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

std::string random_name_suffix() {
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::uniform_int_distribution<size_t> d(0, sizeof(kAlphabet) - 2);
  std::string s;
  for (int i = 0; i < 5; ++i) s += kAlphabet[d(rng())];
  return s;
}

std::string meta_string(const json& obj, const char* field) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto f = m->find(field);
  return f != m->end() && f->is_string() ? f->get<std::string>() : "";
}

bool is_terminating(const json& obj) {
  if (!meta_string(obj, "deletionTimestamp").empty()) return true;
  auto s = obj.find("status");
  return s != obj.end() && s->is_object() && s->value("phase", "") == "Terminating";
}

// ---- query parameters.

bool parse_bool(std::string_view v) {
  std::string l = lower(trim(v));
  return l == "1" || l == "true";
}

bool query_bool(const Request& req, const std::string& name) {
  return req.has_q(name) && parse_bool(req.q(name));
}

// ---- media types.

std::string Encoding::cache_key() const {
  if (!table) return "j";
  const char* inc = include == IncludeObject::kNone ? "n"
                    : include == IncludeObject::kObject ? "o"
                                                        : "m";
  return "t:" + table_version + ":" + inc;
}

std::string media_type(std::string_view content_type) {
  auto semi = content_type.find(';');
  return lower(trim(content_type.substr(0, semi)));
}

ApiResult<Encoding> negotiate(const Request& req) {
  Encoding enc;
  std::string inc = lower(req.q("includeObject"));
  if (inc == "none") enc.include = IncludeObject::kNone;
  else if (inc == "object") enc.include = IncludeObject::kObject;
  else if (inc.empty() || inc == "metadata") enc.include = IncludeObject::kMetadata;
  else return errors::bad_request("invalid includeObject: \"" + req.q("includeObject") + "\"");

  std::string accept = req.header("accept");
  if (trim(accept).empty()) return enc;
  std::string_view rest = accept;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view alt = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (alt.empty()) continue;
    std::string type = media_type(alt);
    if (type != "application/json" && type != "*/*" && type != "application/*") continue;
    std::string as, g, v;
    std::string_view params = alt.find(';') == std::string_view::npos
                                  ? std::string_view()
                                  : alt.substr(alt.find(';') + 1);
    while (!params.empty()) {
      auto semi = params.find(';');
      std::string_view p = trim(params.substr(0, semi));
      params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
      auto eq = p.find('=');
      if (eq == std::string_view::npos) continue;
      std::string k = lower(trim(p.substr(0, eq)));
      std::string val(trim(p.substr(eq + 1)));
      if (k == "as") as = val;
      else if (k == "g") g = val;
      else if (k == "v") v = val;
    }
    if (as.empty()) {
      enc.table = false;
      return enc;
    }
    if (as == "Table" && (g.empty() || g == "meta.k8s.io") &&
        (v.empty() || v == "v1" || v == "v1beta1")) {
      enc.table = true;
      enc.table_version = v.empty() ? "v1" : v;
      return enc;
    }
  }
  return errors::not_acceptable(accept);
}

// ---- rendering.

namespace {

json column_definitions(const proto::ResourceType& rt) {
  json cols = json::array();
  for (const auto& c : rt.columns) {
    cols.push_back({{"name", c.name},
                    {"type", c.type.empty() ? "string" : c.type},
                    {"format", c.format},
                    {"description", c.description},
                    {"priority", c.priority}});
  }
  return cols;
}

json table_row(const proto::ResourceType& rt, const json& obj, const Encoding& enc,
               std::chrono::system_clock::time_point now) {
  json row = {{"cells", rt.row_cells ? rt.row_cells(obj, now) : json::array()}};
  if (enc.include == IncludeObject::kObject) {
    row["object"] = obj;
  } else if (enc.include == IncludeObject::kMetadata) {
    row["object"] = {{"kind", "PartialObjectMetadata"},
                     {"apiVersion", "meta.k8s.io/" + enc.table_version},
                     {"metadata", obj.value("metadata", json::object())}};
  }
  return row;
}

}  // namespace

json render_table(const proto::ResourceType& rt, const std::vector<const json*>& objs,
                  const Encoding& enc, json list_meta) {
  auto now = std::chrono::system_clock::now();
  json rows = json::array();
  for (const json* o : objs) rows.push_back(table_row(rt, *o, enc, now));
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/" + enc.table_version},
          {"metadata", std::move(list_meta)},
          {"columnDefinitions", column_definitions(rt)},
          {"rows", std::move(rows)}};
}

std::string watch_line(const proto::ResourceType& rt, const char* type, const json& obj,
                       const Encoding& enc) {
  json ev = {{"type", type}};
  if (enc.table) {
    json meta = {{"resourceVersion", meta_string(obj, "resourceVersion")}};
    ev["object"] = render_table(rt, {&obj}, enc, std::move(meta));
  } else {
    ev["object"] = obj;
  }
  std::string line = ev.dump();
  line += '\n';
  return line;
}

std::string error_line(const ApiError& err) {
  json ev = {{"type", "ERROR"}, {"object", err.to_json()}};
  return ev.dump() + "\n";
}

std::string bookmark_line(const proto::ResourceType& rt, int64_t revision) {
  json ev = {{"type", "BOOKMARK"},
             {"object",
              {{"kind", rt.kind},
               {"apiVersion", rt.api_version()},
               {"metadata", {{"resourceVersion", std::to_string(revision)}}}}}};
  return ev.dump() + "\n";
}

// ---- continue tokens.

std::string encode_continue(int64_t revision, const std::string& last_key_rel) {
  json j = {{"v", "meta.k8s.io/v1"}, {"rv", revision}, {"start", last_key_rel}};
  return base64_encode(j.dump());
}

bool decode_continue(const std::string& token, int64_t* revision, std::string* last_key_rel) {
  auto raw = base64_decode(token);
  if (!raw.is_ok()) return false;
  json j = json::parse(raw.value(), nullptr, false);
  if (!j.is_object() || !j.contains("rv") || !j["rv"].is_number_integer() ||
      !j.contains("start") || !j["start"].is_string())
    return false;
  *revision = j["rv"].get<int64_t>();
  *last_key_rel = j["start"].get<std::string>();
  // The key is relative to the list prefix; refuse anything that could escape it.
  if (*revision <= 0 || last_key_rel->find("..") != std::string::npos) return false;
  return true;
}

}  // namespace skiff::apiserver
