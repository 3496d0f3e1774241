#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "cli/commands.h"
#include "cli/printers.h"
#include "cli/tabwriter.h"
#include "proto/client/yaml.h"

namespace skiff::cli {
namespace {

using client::Query;

struct Target {
  const proto::ResourceType* type;
  std::vector<std::string> names;  // empty: list
};

// "pods,svc web db" or "pod/web svc/db" into per-type targets; prints errors itself.
bool parse_targets(Context& ctx, const std::vector<std::string>& args, std::vector<Target>& out) {
  if (args.empty()) {
    *ctx.err << "error: You must specify the type of resource to get.\n";
    return false;
  }
  if (args[0].find('/') != std::string::npos) {
    for (const auto& a : args) {
      size_t slash = a.find('/');
      if (slash == std::string::npos) {
        *ctx.err << "error: there is no need to specify a resource type as a separate argument "
                    "when passing arguments in resource/name form\n";
        return false;
      }
      const auto* t = ctx.resolve(a.substr(0, slash));
      if (!t) return false;
      auto it = std::find_if(out.begin(), out.end(), [&](const Target& x) { return x.type == t; });
      if (it == out.end()) it = out.insert(out.end(), Target{t, {}});
      it->names.push_back(a.substr(slash + 1));
    }
    return true;
  }
  std::string types = args[0];
  size_t pos = 0;
  while (pos <= types.size()) {
    size_t comma = types.find(',', pos);
    std::string name =
        types.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!name.empty()) {
      const auto* t = ctx.resolve(name);
      if (!t) return false;
      out.push_back({t, {}});
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  for (size_t i = 1; i < args.size(); ++i) {
    for (auto& t : out) t.names.push_back(args[i]);
  }
  return true;
}

Query list_query(const GetOptions& o) {
  Query q;
  if (!o.selector.empty()) q.emplace_back("labelSelector", o.selector);
  if (!o.field_selector.empty()) q.emplace_back("fieldSelector", o.field_selector);
  return q;
}

std::string meta_of(const json& obj, const char* key) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return "";
  return obj["metadata"].value(key, "");
}

class Getter {
 public:
  Getter(Context& ctx, const GetOptions& o) : ctx_(ctx), o_(o) {}

  int run() {
    std::vector<Target> targets;
    if (!parse_targets(ctx_, o_.args, targets)) return 1;
    bool machine = o_.output == "yaml" || o_.output == "json" || o_.output == "name";
    if (!o_.output.empty() && !machine && o_.output != "wide") {
      *ctx_.err << "error: unable to match a printer suitable for the output format \"" << o_.output
                << "\", allowed formats are: json,name,wide,yaml\n";
      return 1;
    }
    if (o_.watch || o_.watch_only) {
      if (targets.size() != 1) {
        *ctx_.err << "error: you may only specify a single resource type\n";
        return 1;
      }
      return watch(targets[0]);
    }
    show_kind_ =
        targets.size() > 1 || (o_.args[0].find('/') != std::string::npos && targets.size() > 1);
    bool any_printed = false;
    json items = json::array();
    bool single_object = machine && targets.size() == 1 && targets[0].names.size() == 1;
    for (const auto& t : targets) {
      if (machine) {
        collect(t, items);
      } else {
        any_printed |= print_table(t, any_printed);
      }
    }
    if (machine) {
      if (o_.output == "name") {
        for (const auto& it : items) {
          *ctx_.out << kind_of(it) << "/" << meta_of(it, "name") << "\n";
        }
      } else if (single_object && items.size() == 1) {
        emit(items[0]);
      } else if (!items.empty() || !failed_) {
        emit(json{{"apiVersion", "v1"},
                  {"items", items},
                  {"kind", "List"},
                  {"metadata", {{"resourceVersion", ""}}}});
      }
    } else if (!any_printed && !failed_ && !printed_empty_) {
      no_resources(targets[0].type);
    }
    return failed_ ? 1 : 0;
  }

 private:
  std::string ns_path(const proto::ResourceType& t) const {
    return ctx_.flags.all_namespaces ? "" : ctx_.namespace_;
  }

  std::string kind_of(const json& obj) {
    const auto* t =
        proto::Registry::builtin().by_kind(obj.value("apiVersion", ""), obj.value("kind", ""));
    return t ? kind_prefix(*t) : obj.value("kind", "");
  }

  void no_resources(const proto::ResourceType* t) {
    if (t->namespaced && !ctx_.flags.all_namespaces) {
      *ctx_.err << "No resources found in " << ctx_.namespace_ << " namespace.\n";
    } else {
      *ctx_.err << "No resources found\n";
    }
  }

  void emit(const json& v) {
    if (o_.output == "json") {
      *ctx_.out << to_json_text(v);
    } else {
      *ctx_.out << client::to_yaml(v);
    }
  }

  // GET with the Table Accept; nullopt after printing the error.
  std::optional<json> fetch(const std::string& path, Query q, const std::string& accept,
                            const std::string& name_for_error) {
    auto r = ctx_.rest->request("GET", path, q, "", "", accept);
    if (!r) {
      ctx_.print_error(r.status());
      failed_ = true;
      return std::nullopt;
    }
    if (!r->ok()) {
      ctx_.print_error(*r);
      failed_ = true;
      return std::nullopt;
    }
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded()) {
      *ctx_.err << "error: the server's answer to GET " << path << " is not JSON\n";
      failed_ = true;
      return std::nullopt;
    }
    return j;
  }

  std::optional<json> fetch_list(const proto::ResourceType& t, const std::string& accept) {
    Query q = list_query(o_);
    q.emplace_back("limit", "500");
    auto first = fetch(client::resource_path(t, ns_path(t)), q, accept, "");
    if (!first) return first;
    // Follow continue tokens: tables and lists both carry them in metadata.
    const char* items_key = first->value("kind", "") == "Table" ? "rows" : "items";
    for (int page = 0; page < 10000; ++page) {
      std::string cont =
          first->contains("metadata") ? (*first)["metadata"].value("continue", "") : "";
      if (cont.empty()) break;
      Query nq = list_query(o_);
      nq.emplace_back("limit", "500");
      nq.emplace_back("continue", cont);
      auto next = fetch(client::resource_path(t, ns_path(t)), nq, accept, "");
      if (!next) return std::nullopt;
      for (auto& r : (*next)[items_key]) (*first)[items_key].push_back(std::move(r));
      (*first)["metadata"] = (*next)["metadata"];
    }
    return first;
  }

  void collect(const Target& t, json& items) {
    const auto& type = *t.type;
    if (t.names.empty()) {
      auto list = fetch_list(type, "application/json");
      if (!list) return;
      for (auto& it : (*list)["items"]) items.push_back(with_type_meta(std::move(it), type));
      if ((*list)["items"].empty() && o_.output == "name") no_resources(&type);
      return;
    }
    for (const auto& n : t.names) {
      auto obj = fetch(client::resource_path(type, ns_path(type), n), {}, "application/json", n);
      if (obj) items.push_back(with_type_meta(std::move(*obj), type));
    }
  }

  json to_table(json j) {
    if (j.value("kind", "") == "Table") return j;
    return synthesize_table(j, std::chrono::system_clock::now());
  }

  TableOptions table_options(const proto::ResourceType& t) const {
    TableOptions opts;
    opts.wide = o_.output == "wide";
    opts.with_namespace = ctx_.flags.all_namespaces && t.namespaced;
    opts.show_labels = o_.show_labels;
    opts.show_kind = show_kind_;
    opts.no_headers = o_.no_headers;
    return opts;
  }

  // Prints one type's table; returns whether anything was printed.
  bool print_table(const Target& t, bool separate) {
    const auto& type = *t.type;
    json table;
    if (t.names.empty()) {
      auto list = fetch_list(type, kTableAccept);
      if (!list) return false;
      table = to_table(std::move(*list));
    } else {
      for (const auto& n : t.names) {
        auto one = fetch(client::resource_path(type, ns_path(type), n), {}, kTableAccept, n);
        if (!one) continue;
        json part = to_table(std::move(*one));
        if (table.is_null()) {
          table = std::move(part);
        } else {
          for (auto& r : part["rows"]) table["rows"].push_back(std::move(r));
        }
      }
      if (table.is_null()) return false;
    }
    if (!table.contains("rows") || table["rows"].empty()) {
      if (!show_kind_) {
        no_resources(&type);
        printed_empty_ = true;
      }
      return false;
    }
    Layout l = layout_table(table, table.value("columnDefinitions", json::array()), type,
                            table_options(type));
    std::vector<std::vector<std::string>> rows;
    if (!o_.no_headers) rows.push_back(l.header);
    for (auto& r : l.rows) rows.push_back(std::move(r));
    if (separate) *ctx_.out << "\n";
    *ctx_.out << format_rows(rows);
    return true;
  }

  // get -w: the table first (unless --watch-only), then each event's rows.
  int watch(const Target& t) {
    const auto& type = *t.type;
    if (t.names.size() > 1) {
      *ctx_.err << "error: watch is only supported on individual resources and resource "
                   "collections, but "
                << t.names.size() << " resources were found\n";
      return 1;
    }
    json table;
    std::string name = t.names.empty() ? "" : t.names[0];
    if (name.empty()) {
      auto list = fetch_list(type, kTableAccept);
      if (!list) return 1;
      table = to_table(std::move(*list));
    } else {
      auto one = fetch(client::resource_path(type, ns_path(type), name), {}, kTableAccept, name);
      if (!one) return 1;
      table = to_table(std::move(*one));
    }
    json columns = table.value("columnDefinitions", json::array());
    TableOptions opts = table_options(type);
    std::vector<int> widths;
    bool header_printed = false;
    auto print = [&](const json& tbl) {
      Layout l = layout_table(tbl, columns, type, opts);
      std::vector<std::vector<std::string>> rows;
      if (!header_printed && !o_.no_headers) rows.push_back(l.header);
      header_printed = true;
      for (auto& r : l.rows) rows.push_back(std::move(r));
      // Keep columns from moving between events: pad to the widest seen so far.
      for (const auto& r : rows) {
        if (widths.size() < r.size()) widths.resize(r.size(), 0);
        for (size_t i = 0; i < r.size(); ++i) {
          widths[i] = std::max(widths[i], display_width(r[i]) + 3);
        }
      }
      for (const auto& r : rows) {
        std::string line;
        for (size_t i = 0; i < r.size(); ++i) {
          line += r[i];
          if (i + 1 < r.size()) {
            line.append(std::max(0, std::max(widths[i], 6) - display_width(r[i])), ' ');
          }
        }
        *ctx_.out << line << "\n";
      }
      ctx_.out->flush();
    };
    if (!o_.watch_only) {
      if (table.contains("rows") && !table["rows"].empty()) {
        print(table);
      } else if (name.empty()) {
        no_resources(&type);
      }
    }
    std::string rv;
    if (table.contains("metadata") && table["metadata"].is_object()) {
      rv = table["metadata"].value("resourceVersion", "");
    }
    Query q = list_query(o_);
    if (!name.empty()) {
      std::string fs = "metadata.name=" + name;
      bool replaced = false;
      for (auto& [k, v] : q) {
        if (k == "fieldSelector") {
          v += "," + fs;
          replaced = true;
        }
      }
      if (!replaced) q.emplace_back("fieldSelector", fs);
    }
    // Without a resourceVersion the server replays the current state first; we printed it.
    std::set<std::string> replay;  // ns/name of rows already printed that a replay repeats
    if (rv.empty()) {
      rv = "0";
      for (const auto& r : table.value("rows", json::array())) replay.insert(row_key(r));
    }
    q.emplace_back("resourceVersion", rv);
    q.emplace_back("watch", "true");
    Status st =
        ctx_.rest->watch(client::resource_path(type, ns_path(type)), q, [&](const json& ev) {
          std::string type_s = ev.value("type", "");
          const json& obj = ev.contains("object") ? ev["object"] : json();
          if (type_s == "BOOKMARK") return true;
          if (type_s == "ERROR") {
            client::Response r;
            r.status = obj.value("code", 500);
            r.body = obj.dump();
            ctx_.print_error(r);
            return false;
          }
          json tbl = to_table(obj);
          if (type_s == "ADDED" && !replay.empty() && tbl.contains("rows") &&
              tbl["rows"].size() == 1 && replay.erase(row_key(tbl["rows"][0])) > 0) {
            return true;
          }
          if (columns.empty()) columns = tbl.value("columnDefinitions", json::array());
          print(tbl);
          return true;
        },
        {}, kTableAccept);
    if (!st.is_ok()) {
      ctx_.print_error(st);
      return 1;
    }
    return 0;
  }

  static std::string row_key(const json& row) {
    if (!row.contains("object") || !row["object"].is_object()) return "";
    const json& obj = row["object"];
    return meta_of(obj, "namespace") + "/" + meta_of(obj, "name");
  }

  Context& ctx_;
  const GetOptions& o_;
  bool show_kind_ = false;
  bool failed_ = false;
  bool printed_empty_ = false;
};

}  // namespace

int run_get(Context& ctx, const GetOptions& o) { return Getter(ctx, o).run(); }

}  // namespace skiff::cli
