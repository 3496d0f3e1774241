#include "controllers/scheduler/algorithm.h"

#include <algorithm>

#include "controllers/scheduler/filters.h"
#include "controllers/scheduler/scores.h"

namespace skiff::scheduler {

Placement find_node(const PodInfo& pod, const std::vector<const NodeInfo*>& nodes, int percentage,
                    size_t& next_start, std::mt19937_64& rng) {
  Placement res;
  const size_t n = nodes.size();
  if (n == 0) {
    res.message = unschedulable_message(0, {});
    return res;
  }
  const size_t want =
      static_cast<size_t>(num_feasible_nodes_to_find(static_cast<int>(n), percentage));
  std::vector<const NodeInfo*> feasible;
  feasible.reserve(std::min(want, n));
  ReasonHistogram hist;
  Reasons reasons;
  const size_t start = next_start % n;
  size_t processed = 0;
  for (size_t i = 0; i < n && feasible.size() < want; ++i) {
    const NodeInfo* node = nodes[(start + i) % n];
    ++processed;
    reasons.clear();
    if (run_filters(pod, *node, reasons))
      feasible.push_back(node);
    else
      add_reasons(hist, reasons);
  }
  next_start = (start + processed) % n;
  res.evaluated = processed;
  if (feasible.empty()) {
    res.message = unschedulable_message(static_cast<int>(n), hist);
    return res;
  }
  if (feasible.size() == 1) {
    res.node = feasible[0]->name;
    return res;
  }
  int max_count = 0;
  std::vector<int> counts(feasible.size());
  for (size_t i = 0; i < feasible.size(); ++i) {
    counts[i] = owner_count(pod, *feasible[i]);
    max_count = std::max(max_count, counts[i]);
  }
  std::vector<int64_t> scores(feasible.size());
  for (size_t i = 0; i < feasible.size(); ++i)
    scores[i] = least_allocated_score(pod, *feasible[i]) + spread_score(counts[i], max_count);
  res.node = feasible[select_node(scores, rng)]->name;
  return res;
}

}  // namespace skiff::scheduler
