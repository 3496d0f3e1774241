#include "controllers/scheduler/scores.h"

#include <algorithm>

namespace skiff::scheduler {

namespace {
int64_t least_requested(int64_t requested, int64_t capacity) {
  if (capacity <= 0 || requested > capacity) return 0;
  return (capacity - requested) * kMaxNodeScore / capacity;
}
}  // namespace

int64_t least_allocated_score(const PodInfo& pod, const NodeInfo& node) {
  int64_t cpu = least_requested(node.nonzero_requested.milli_cpu + pod.nonzero.milli_cpu,
                                node.allocatable.milli_cpu);
  int64_t mem =
      least_requested(node.nonzero_requested.memory + pod.nonzero.memory, node.allocatable.memory);
  return (cpu + mem) / 2;
}

int owner_count(const PodInfo& pod, const NodeInfo& node) {
  if (pod.owner_uid.empty()) return 0;
  auto it = node.owner_counts.find(pod.owner_uid);
  return it == node.owner_counts.end() ? 0 : it->second;
}

int64_t spread_score(int count, int max_count) {
  if (max_count <= 0) return kMaxNodeScore;
  return kMaxNodeScore * (max_count - count) / max_count;
}

size_t select_node(const std::vector<int64_t>& scores, std::mt19937_64& rng) {
  size_t best = 0;
  int ties = 1;
  for (size_t i = 1; i < scores.size(); ++i) {
    if (scores[i] > scores[best]) {
      best = i;
      ties = 1;
    } else if (scores[i] == scores[best]) {
      // Reservoir sampling: each of the tied nodes ends up chosen with probability 1/ties.
      ++ties;
      if (std::uniform_int_distribution<int>(0, ties - 1)(rng) == 0) best = i;
    }
  }
  return best;
}

int num_feasible_nodes_to_find(int num_nodes, int percentage) {
  constexpr int kMinFeasible = 100, kMinPercentage = 5;
  if (num_nodes < kMinFeasible || percentage >= 100) return num_nodes;
  if (percentage <= 0) percentage = std::max(kMinPercentage, 50 - num_nodes / 125);
  int n = static_cast<int>(static_cast<int64_t>(num_nodes) * percentage / 100);
  return std::max(n, kMinFeasible);
}

}  // namespace skiff::scheduler
