// DescribeWriter: kubectl's describe PrefixWriter ("Key:\tvalue" lines at 2-space indentation
// levels), either aligned through Go's tabwriter as `describe` prints, or raw (tabs kept) as
// `rollout history --revision` prints a pod template. Plus the small JSON accessors and time
// formatting the describers share. Not thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "cli/tabwriter.h"
#include "proto/registry.h"

namespace skiff::cli {

using json = nlohmann::json;

class DescribeWriter {
 public:
  // aligned: kubectl's tabwriter.NewWriter(out, 0, 8, 2, ' ', 0); raw: text as written.
  explicit DescribeWriter(bool aligned = true) : aligned_(aligned) {}

  // Writes text at an indentation level (2 spaces each); the caller adds '\n'.
  void write(int level, const std::string& text);
  void line(int level, const std::string& text) { write(level, text + "\n"); }
  void kv(int level, const std::string& key, const std::string& value) {
    line(level, key + ":\t" + value);
  }
  // Labels/annotations: first entry on the key's line, the rest aligned under it.
  void map(int level, const std::string& key, const json& m, const char* sep,
           bool skip_last_applied);
  // The formatted text; resets the writer.
  std::string flush();

 private:
  bool aligned_;
  TabWriter tw_{0, 2};
  std::string raw_;
};

// o[key] as text ("" or def when absent/null; numbers and booleans as JSON text).
std::string str_of(const json& o, const char* key, const std::string& def = "");
// o[key], or a null json when o is not an object or has no such key.
const json& child(const json& o, const char* key);

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(const std::string& t);
// kubectl's describe time format: "Mon, 02 Jan 2006 15:04:05 -0700" (RFC1123Z), local time.
std::string format_describe_time(const std::string& rfc3339);

// kubectl's printLabelsMultiline: "Title:\tk=v" then "\tk2=v2" lines (sorted), "<none>" empty.
// `title` carries its own indentation ("  Labels" in a pod template).
void write_labels(DescribeWriter& w, const std::string& title, const json& labels);
// kubectl's printAnnotationsMultiline: like labels with "k: v", the last-applied annotation
// skipped, long (>140) or multi-line values on their own indented lines.
void write_annotations(DescribeWriter& w, const std::string& title, const json& annotations);

// kubectl's DescribePodTemplate: "Pod Template:" with labels, annotations, containers (image,
// ports, command, args, limits/requests, probes, environment, mounts), volumes, node selectors
// and tolerations.
void describe_pod_template(DescribeWriter& w, const json& tmpl);

}  // namespace skiff::cli
