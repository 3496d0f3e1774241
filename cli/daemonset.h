// `skiffctl describe daemonset`: kubectl 1.32's DaemonSetDescriber layout (pure) and the call
// describe.cc makes (lists the DaemonSet's pods through the API). The Events section is
// written by describe.cc after it, as for every kind.
#pragma once

#include <string>

#include "cli/describe_writer.h"
#include "cli/workloads.h"

namespace skiff::cli {

struct Context;

// kubectl's describeDaemonSet without the events: Name, Selector, Node-Selector, Labels,
// Annotations, Desired / Current Number of Nodes Scheduled, Number of Nodes Scheduled with
// Up-to-date Pods / with Available Pods, Number of Nodes Misscheduled, Pods Status (pods the
// DaemonSet controls, by phase) and the Pod Template. Like kubectl it prints no Namespace line.
// `pods_error` non-empty replaces the counts ("error in fetching pods: ...").
void describe_daemonset(DescribeWriter& w, const json& ds, const PodCounts& pods,
                        const std::string& pods_error = "");

// Lists the pods of ds's namespace matching its selector (the caller's ApiClient), counts the
// ones it controls, and writes describe_daemonset.
void describe_daemonset_of(Context& ctx, DescribeWriter& w, const json& ds);

}  // namespace skiff::cli
