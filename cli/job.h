// `skiffctl describe job`: kubectl 1.32's describeJob layout (the Events are written by the
// caller, cli/describe.cc, after it). Pure function; thread-safe.
#pragma once

#include <string>

#include "cli/describe_writer.h"

namespace skiff::cli {

// Name, Namespace, Selector, Labels, Annotations, Controlled By, Parallelism, Completions
// ("<unset>" for a work queue), Completion Mode, Suspend, Backoff Limit, TTL Seconds After
// Finished, Start Time, Completed At, Duration, Active Deadline Seconds, Pods Statuses
// ("1 Active (0 Ready) / 5 Succeeded / 0 Failed"), Completed Indexes (Indexed), Pod Template.
void describe_job(DescribeWriter& w, const json& job);

// kubectl's capIndexesListOrNone: "<none>" for "", else the list cut after the first comma at
// or beyond `soft_limit` characters, with ",...".
std::string cap_indexes(const std::string& indexes, size_t soft_limit = 50);

}  // namespace skiff::cli
