#include "common/http/remotecommand.h"

#include <nlohmann/json.hpp>

namespace skiff::web::remotecommand {

using json = nlohmann::ordered_json;

std::string negotiate(std::string_view offered) {
  while (!offered.empty()) {
    size_t comma = offered.find(',');
    std::string_view p = offered.substr(0, comma);
    offered = comma == std::string_view::npos ? std::string_view() : offered.substr(comma + 1);
    while (!p.empty() && (p.front() == ' ' || p.front() == '\t')) p.remove_prefix(1);
    while (!p.empty() && (p.back() == ' ' || p.back() == '\t')) p.remove_suffix(1);
    if (p == kV5 || p == kV4) return std::string(p);
  }
  return "";
}

std::string frame(uint8_t channel, std::string_view data) {
  std::string out;
  out.reserve(data.size() + 1);
  out += static_cast<char>(channel);
  out.append(data);
  return out;
}

std::string success_status() { return R"({"metadata":{},"status":"Success"})"; }

std::string exit_status(int exit_code, const std::vector<std::string>& command) {
  std::string cmd;
  for (const auto& a : command) cmd += (cmd.empty() ? "" : " ") + a;
  // Field order as Go marshals metav1.Status: metadata, status, message, reason, details.
  json j;
  j["metadata"] = json::object();
  j["status"] = "Failure";
  j["message"] = "command terminated with non-zero exit code: error executing command [" + cmd +
                 "], exit code " + std::to_string(exit_code);
  j["reason"] = "NonZeroExitCode";
  j["details"] = {
      {"causes", json::array({{{"reason", "ExitCode"}, {"message", std::to_string(exit_code)}}})}};
  return j.dump();
}

std::string failure_status(int code, const std::string& reason, const std::string& message) {
  json j;
  j["metadata"] = json::object();
  j["status"] = "Failure";
  j["message"] = message;
  j["reason"] = reason;
  j["code"] = code;
  return j.dump();
}

Outcome parse_status(std::string_view text) {
  Outcome o;
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    o.message = std::string(text);
    return o;
  }
  if (j.value("status", "") == "Success") {
    o.success = true;
    o.exit_code = 0;
    return o;
  }
  o.message = j.value("message", "");
  if (j.value("reason", "") == "NonZeroExitCode" && j.contains("details") &&
      j["details"].is_object() && j["details"].contains("causes") &&
      j["details"]["causes"].is_array()) {
    for (const auto& c : j["details"]["causes"]) {
      if (c.is_object() && c.value("reason", "") == "ExitCode") {
        try {
          o.exit_code = std::stoi(c.value("message", "1"));
        } catch (...) {
          o.exit_code = 1;
        }
      }
    }
  }
  return o;
}

std::optional<TerminalSize> parse_resize(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto dim = [&](const char* k) -> int {
    auto it = j.find(k);
    return it != j.end() && it->is_number_integer() ? it->get<int>() : -1;
  };
  int w = dim("Width"), h = dim("Height");
  if (w < 0 || h < 0 || w > 65535 || h > 65535) return std::nullopt;
  return TerminalSize{static_cast<uint16_t>(w), static_cast<uint16_t>(h)};
}

std::string resize_json(TerminalSize s) {
  return "{\"Width\":" + std::to_string(s.width) + ",\"Height\":" + std::to_string(s.height) + "}";
}

}  // namespace skiff::web::remotecommand
