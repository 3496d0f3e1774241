// The pure part of the disruption controller (see disruption.h): which pods a budget selects
// and the status it should have. Included by disruption.cc and its test only (nlohmann/json).
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controllers/disruption/disruption.h"

namespace skiff::controllers::disruption {

// How long an eviction's disruptedPods entry holds a pod out of currentHealthy (Kubernetes'
// DeletionTimeout).
inline constexpr std::chrono::seconds kDeletionTimeout{120};

// Looks up the scale for a pod; nullopt when it has no supported controller.
using ScaleLookup = std::function<std::optional<OwnerScale>(const json& pod)>;

// The pure part: the status `pdb` should have given the pods its selector matches.
struct Computed {
  json status;                               // the full status to write
  bool changed = false;                      // differs from pdb.status in a field that matters
  std::optional<Clock::time_point> recheck;  // when a disruptedPods entry expires
};
Computed compute_status(const json& pdb, const std::vector<json>& pods, const ScaleLookup& scale,
                        Clock::time_point now);
// The pods of `pods` (one namespace) that the budget's selector matches.
std::vector<json> select_pods(const json& pdb, const std::vector<json>& pods);

}  // namespace skiff::controllers::disruption
