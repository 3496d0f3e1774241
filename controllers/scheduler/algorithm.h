// One scheduling decision: filters over the nodes, then scores, then the pick. Pure: the caller
// passes the nodes (the cache's, under its lock), where the previous pod's search stopped and
// the random source for ties.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "controllers/scheduler/framework.h"

namespace skiff::scheduler {

struct Placement {
  std::string node;      // "" when no node fits
  std::string message;   // then: kube-scheduler's FitError text
  size_t evaluated = 0;  // nodes run through the filters
};

// Filters `nodes` from index `next_start` (wrapping), stopping once
// num_feasible_nodes_to_find(nodes, percentage) feasible nodes were found, and advances
// `next_start` past the nodes it looked at (so successive pods visit every node in turn, as
// kube-scheduler). Then scores the feasible nodes (least allocated + owner spreading) and picks
// the best, ties at random.
Placement find_node(const PodInfo& pod, const std::vector<const NodeInfo*>& nodes, int percentage,
                    size_t& next_start, std::mt19937_64& rng);

}  // namespace skiff::scheduler
