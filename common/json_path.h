// Reading nested fields of API objects held as JSON without trusting their shape: a missing key,
// or a non-object on the way, is "absent", never an exception (objects come from the network).
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

namespace skiff {

// The value at obj[path[0]][path[1]]..., or nullptr when a key is missing or a step is not an
// object.
inline const nlohmann::json* find_path(const nlohmann::json& obj,
                                       std::initializer_list<const char*> path) {
  const nlohmann::json* cur = &obj;
  for (const char* p : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(p);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

// The string at `path`, or "" when absent or not a string.
inline std::string str_at(const nlohmann::json& obj, std::initializer_list<const char*> path) {
  const nlohmann::json* v = find_path(obj, path);
  return v && v->is_string() ? v->get<std::string>() : "";
}

}  // namespace skiff
