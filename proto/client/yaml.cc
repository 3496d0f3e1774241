#include "proto/client/yaml.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

namespace skiff::client {
namespace {

using nlohmann::json;

// YAML 1.2 core schema resolution of an untagged plain scalar.
json resolve_plain(const std::string& s) {
  static const std::regex kInt(R"([-+]?[0-9]+)");
  static const std::regex kOct(R"(0o[0-7]+)");
  static const std::regex kHex(R"(0x[0-9a-fA-F]+)");
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  try {
    if (std::regex_match(s, kInt)) {
      if (s[0] == '-') return std::stoll(s);
      return std::stoull(s[0] == '+' ? s.substr(1) : s);
    }
    if (std::regex_match(s, kOct)) return std::stoull(s.substr(2), nullptr, 8);
    if (std::regex_match(s, kHex)) return std::stoull(s.substr(2), nullptr, 16);
    if (std::regex_match(s, kFloat)) return std::stod(s);
  } catch (const std::out_of_range&) {
    return s;  // too big for a number: keep the text rather than lose digits
  }
  if (s == ".inf" || s == ".Inf" || s == "+.inf") return std::numeric_limits<double>::infinity();
  if (s == "-.inf" || s == "-.Inf") return -std::numeric_limits<double>::infinity();
  return s;
}

json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      // "!" is the tag of a quoted (non-plain) scalar: always a string.
      if (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str") return n.Scalar();
      return resolve_plain(n.Scalar());
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        // Keys are strings in every Kubernetes document, even `80: x` or `true: y`.
        o[kv.first.Scalar()] = to_json(kv.second);
      }
      return o;
    }
  }
  return nullptr;
}

// --- emitting ---------------------------------------------------------------------------------

bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  // Anything the parser would read back as something other than this string.
  json back = resolve_plain(s);
  if (!back.is_string()) return true;
  static const std::string kIndicators = "-?:,[]{}#&*!|>'\"%@`";
  if (kIndicators.find(s[0]) != std::string::npos) {
    // "-x" and ":x" style plain scalars are legal, but go-yaml quotes them; so do we,
    // except a lone leading '-' followed by a non-space (e.g. "-foo") which go-yaml also quotes.
    return true;
  }
  if (s.front() == ' ' || s.back() == ' ') return true;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return true;
  if (s.back() == ':') return true;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  static const char* kSpecial[] = {"y",  "Y",  "yes", "Yes", "YES", "n",   "N",   "no", "No",
                                   "NO", "on", "On",  "ON",  "off", "Off", "OFF", "=",  "<<"};
  for (const char* w : kSpecial) {
    if (s == w) return true;  // YAML 1.1 readers (go-yaml v2, PyYAML) would see a bool
  }
  return false;
}

std::string quote(const std::string& s) {
  // Single quotes when no control characters are involved (go-yaml style), else JSON escapes.
  bool control = false;
  for (unsigned char c : s) control |= c < 0x20 || c == 0x7f;
  if (!control) {
    std::string out = "'";
    for (char c : s) {
      if (c == '\'') out += '\'';
      out += c;
    }
    return out + "'";
  }
  return json(s).dump();
}

std::string scalar_text(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
    if (std::isnan(d)) return ".nan";
    return v.dump();
  }
  if (v.is_number()) return v.dump();
  const std::string& s = v.get_ref<const std::string&>();
  return needs_quotes(s) ? quote(s) : s;
}

bool is_block_string(const json& v) {
  if (!v.is_string()) return false;
  const auto& s = v.get_ref<const std::string&>();
  if (s.find('\n') == std::string::npos) return false;
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
  }
  // Lines with trailing spaces cannot round-trip through a literal block.
  return s.find(" \n") == std::string::npos && s.front() != ' ';
}

void emit(const json& v, int indent, std::string& out);

void emit_block_string(const std::string& s, int indent, std::string& out) {
  // "|" keeps one final newline, "|-" none, "|+" all of them.
  size_t trailing = 0;
  while (trailing < s.size() && s[s.size() - 1 - trailing] == '\n') ++trailing;
  out += trailing == 0 ? "|-" : trailing == 1 ? "|" : "|+";
  out += '\n';
  std::string body = s.substr(0, s.size() - trailing);
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t nl = body.find('\n', pos);
    std::string line = body.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!line.empty()) out += std::string(indent, ' ') + line;
    out += '\n';
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  for (size_t i = 1; i < trailing; ++i) out += '\n';
}

// Emits the value that follows "key:" (or "- "): inline scalars, or a newline and a block.
void emit_after_key(const json& v, int indent, std::string& out, bool in_sequence) {
  if (v.is_object() && !v.empty()) {
    out += '\n';
    emit(v, indent + 2, out);
  } else if (v.is_array() && !v.empty()) {
    out += '\n';
    // kubectl (go-yaml) writes a sequence at the same indentation as its key.
    emit(v, in_sequence ? indent + 2 : indent, out);
  } else if (v.is_object()) {
    out += " {}\n";
  } else if (v.is_array()) {
    out += " []\n";
  } else if (is_block_string(v)) {
    out += ' ';
    emit_block_string(v.get_ref<const std::string&>(), indent + 2, out);
  } else {
    out += ' ' + scalar_text(v) + '\n';
  }
}

void emit(const json& v, int indent, std::string& out) {
  const std::string pad(indent, ' ');
  if (v.is_object()) {
    if (v.empty()) {
      out += pad + "{}\n";
      return;
    }
    for (const auto& [k, e] : v.items()) {
      std::string key = needs_quotes(k) ? quote(k) : k;
      out += pad + key + ':';
      emit_after_key(e, indent, out, false);
    }
  } else if (v.is_array()) {
    if (v.empty()) {
      out += pad + "[]\n";
      return;
    }
    for (const auto& e : v) {
      if (e.is_object() && !e.empty()) {
        // The first key goes on the dash line, the rest are indented under it.
        std::string nested;
        emit(e, indent + 2, nested);
        out += pad + "- " + nested.substr(indent + 2);
      } else if (e.is_array() && !e.empty()) {
        std::string nested;
        emit(e, indent + 2, nested);
        out += pad + "- " + nested.substr(indent + 2);
      } else {
        out += pad + '-';
        emit_after_key(e, indent, out, true);
      }
    }
  } else if (is_block_string(v)) {
    emit_block_string(v.get_ref<const std::string&>(), indent + 2, out);
  } else {
    out += pad + scalar_text(v) + '\n';
  }
}

}  // namespace

Result<std::vector<json>> parse_yaml_documents(std::string_view text) {
  std::vector<json> docs;
  try {
    for (const YAML::Node& n : YAML::LoadAll(std::string(text))) {
      json j = to_json(n);
      if (!j.is_null()) docs.push_back(std::move(j));
    }
  } catch (const YAML::Exception& e) {
    return Status::invalid("parse YAML: line " + std::to_string(e.mark.line + 1) + ", column " +
                           std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  return docs;
}

std::string to_yaml(const json& value) {
  std::string out;
  emit(value, 0, out);
  return out;
}

}  // namespace skiff::client
