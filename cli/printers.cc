#include "cli/printers.h"

#include <algorithm>
#include <cctype>

#include "cli/tabwriter.h"

namespace skiff::cli {

std::string kind_prefix(const proto::ResourceType& t) {
  std::string s = t.singular.empty() ? t.kind : t.singular;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return t.group.empty() ? s : s + "." + t.group;
}

std::string cell_text(const json& cell) {
  if (cell.is_null()) return "<none>";
  if (cell.is_string()) return cell.get<std::string>();
  if (cell.is_boolean()) return cell.get<bool>() ? "true" : "false";
  if (cell.is_array() || cell.is_object()) return cell.dump();
  return cell.dump();
}

std::string labels_text(const json& labels) {
  if (!labels.is_object() || labels.empty()) return "<none>";
  std::string s;
  for (const auto& [k, v] : labels.items()) {  // nlohmann objects iterate sorted by key
    if (!s.empty()) s += ',';
    s += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return s;
}

namespace {

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

const json& row_metadata(const json& row) {
  static const json kEmpty = json::object();
  auto obj = row.find("object");
  if (obj == row.end() || !obj->is_object()) return kEmpty;
  auto md = obj->find("metadata");
  if (md == obj->end() || !md->is_object()) return kEmpty;
  return *md;
}

}  // namespace

Layout layout_table(const json& table, const json& columns, const proto::ResourceType& t,
                    const TableOptions& opts) {
  Layout out;
  std::vector<size_t> picked;
  int name_col = -1;
  if (columns.is_array()) {
    for (size_t i = 0; i < columns.size(); ++i) {
      const json& c = columns[i];
      int prio = c.contains("priority") && c["priority"].is_number() ? c["priority"].get<int>() : 0;
      if (prio > 0 && !opts.wide) continue;
      if (name_col < 0 && c.value("format", "") == "name") name_col = static_cast<int>(i);
      picked.push_back(i);
    }
    if (name_col < 0 && !picked.empty() && upper(columns[picked[0]].value("name", "")) == "NAME") {
      name_col = static_cast<int>(picked[0]);
    }
  }
  if (opts.with_namespace) out.header.push_back("NAMESPACE");
  for (size_t i : picked) out.header.push_back(upper(columns[i].value("name", "")));
  if (opts.show_labels) out.header.push_back("LABELS");

  auto rows = table.find("rows");
  if (rows == table.end() || !rows->is_array()) return out;
  for (const json& row : *rows) {
    std::vector<std::string> cells;
    const json& md = row_metadata(row);
    if (opts.with_namespace) cells.push_back(md.value("namespace", ""));
    const json empty_cells = json::array();
    const json& rc = row.contains("cells") && row["cells"].is_array() ? row["cells"] : empty_cells;
    for (size_t i : picked) {
      std::string text = i < rc.size() ? cell_text(rc[i]) : "";
      if (opts.show_kind && static_cast<int>(i) == name_col) text = kind_prefix(t) + "/" + text;
      cells.push_back(std::move(text));
    }
    if (opts.show_labels) cells.push_back(labels_text(md.value("labels", json())));
    out.rows.push_back(std::move(cells));
  }
  return out;
}

json synthesize_table(const json& obj_or_list, std::chrono::system_clock::time_point now) {
  json table = {
      {"kind", "Table"},
      {"apiVersion", "meta.k8s.io/v1"},
      {"columnDefinitions", json::array({{{"name", "Name"}, {"type", "string"}, {"format", "name"}},
                                         {{"name", "Age"}, {"type", "string"}}})},
      {"rows", json::array()}};
  auto add = [&](const json& obj) {
    json md = obj.value("metadata", json::object());
    table["rows"].push_back({{"cells", {md.value("name", ""), proto::age_of(obj, now)}},
                             {"object", {{"metadata", md}}}});
  };
  if (obj_or_list.contains("items") && obj_or_list["items"].is_array()) {
    for (const auto& it : obj_or_list["items"]) add(it);
    if (obj_or_list.contains("metadata")) table["metadata"] = obj_or_list["metadata"];
  } else {
    add(obj_or_list);
  }
  return table;
}

std::string format_rows(const std::vector<std::vector<std::string>>& rows) {
  // kubectl: tabwriter.NewWriter(out, 6, 4, 3, ' ', 0).
  TabWriter tw(6, 3);
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      if (i) line += '\t';
      line += r[i];
    }
    tw.write(line + "\n");
  }
  return tw.flush();
}

json with_type_meta(json obj, const proto::ResourceType& t) {
  if (!obj.is_object()) return obj;
  if (!obj.contains("apiVersion")) obj["apiVersion"] = t.api_version();
  if (!obj.contains("kind")) obj["kind"] = t.kind;
  return obj;
}

std::string to_json_text(const json& v) { return v.dump(4) + "\n"; }

std::string go_json(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(s.size());
  // '<', '>' and '&' only occur inside strings in JSON text, so a plain replace is exact.
  for (char c : s) {
    if (c == '<')
      out += "\\u003c";
    else if (c == '>')
      out += "\\u003e";
    else if (c == '&')
      out += "\\u0026";
    else
      out += c;
  }
  return out;
}

}  // namespace skiff::cli
