// How skiffctl prints objects: server-side Tables as kubectl lays them out, names in kubectl's
// "kind.group/name" spelling, and typed lists for -o yaml|json. Pure functions over JSON.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "proto/registry.h"

namespace skiff::cli {

using json = nlohmann::json;

// "deployment.apps" / "pod": what kubectl prints before "/name" and in `"x" deleted`.
std::string kind_prefix(const proto::ResourceType& t);

struct TableOptions {
  bool wide = false;            // include priority-1 columns
  bool with_namespace = false;  // a NAMESPACE column first (-A)
  bool show_labels = false;     // a LABELS column last
  bool show_kind = false;       // names as "pod/web" (several types in one get)
  bool no_headers = false;
};

// A Table laid out for printing: the header row and one row per table row, cells already
// chosen and rendered (no padding yet).
struct Layout {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// Picks columns and renders cells of a meta.k8s.io Table. `columns` lets watch events without
// columnDefinitions reuse the first table's (pass the first table's definitions).
Layout layout_table(const json& table, const json& columns, const proto::ResourceType& t,
                    const TableOptions& opts);

// A fallback Table ("Name", "Age") when the server answered with a plain object or list.
json synthesize_table(const json& obj_or_list, std::chrono::system_clock::time_point now);

// Lays out rows with kubectl's tab writer (3 spaces between columns).
std::string format_rows(const std::vector<std::vector<std::string>>& rows);

// Cell text as kubectl prints it (strings raw, numbers, booleans, null as "<none>").
std::string cell_text(const json& cell);

// "k1=v1,k2=v2" sorted, or "<none>".
std::string labels_text(const json& labels);

// The object with apiVersion/kind filled from its type (list items often lack them).
json with_type_meta(json obj, const proto::ResourceType& t);

// kubectl's -o json text (4-space indent).
std::string to_json_text(const json& v);

// JSON as Go's encoding/json writes it: compact, and <, >, & escaped as \u003c etc. (so the
// last-applied annotation is byte-identical to kubectl's).
std::string go_json(const json& v);

}  // namespace skiff::cli
