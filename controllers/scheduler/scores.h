// Scores: among the nodes that passed the filters, which is best? Pure functions.
//
// - least_allocated_score: kube-scheduler's NodeResourcesFit "LeastAllocated" strategy on cpu
//   and memory (weight 1 each): per resource (allocatable - requested) * 100 / allocatable,
//   where requested includes this pod (non-zero requests, see framework.h); 0 when the node
//   has no allocatable of it or the pod would exceed it; the weighted mean of the two.
// - spread_score: pods of the same controller owner spread over nodes (as kube-scheduler's
//   former SelectorSpread): 100 * (max - count) / max over the candidate nodes, where count is
//   how many pods of the owner the node has; 100 everywhere when no candidate has one (or the
//   pod has no owner).
// - select_node: the highest total; ties broken uniformly at random (reservoir sampling).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "controllers/scheduler/framework.h"

namespace skiff::scheduler {

inline constexpr int64_t kMaxNodeScore = 100;

int64_t least_allocated_score(const PodInfo& pod, const NodeInfo& node);
// How many pods with the pod's owner the node has (0 when the pod has no owner).
int owner_count(const PodInfo& pod, const NodeInfo& node);
int64_t spread_score(int count, int max_count);

// Index of the best of `scores` (non-empty); ties at random using `rng`.
size_t select_node(const std::vector<int64_t>& scores, std::mt19937_64& rng);

// How many feasible nodes to look for before scoring (kube-scheduler's numFeasibleNodesToFind):
// all when fewer than 100 nodes; otherwise `percentage` of them (0 = adaptive: 50% minus 1% per
// 125 nodes, at least 5%), at least 100.
int num_feasible_nodes_to_find(int num_nodes, int percentage);

}  // namespace skiff::scheduler
