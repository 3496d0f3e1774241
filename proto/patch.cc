#include "proto/patch.h"

#include <algorithm>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace skiff::proto {
namespace {

// ---------------------------------------------------------------------------------------------
// Shared helpers.

constexpr std::string_view kPatchDirective = "$patch";
constexpr std::string_view kRetainKeys = "$retainKeys";
constexpr std::string_view kSetElementOrder = "$setElementOrder/";
constexpr std::string_view kDeleteFromPrimitiveList = "$deleteFromPrimitiveList/";

// Go's json.Unmarshal into interface{} gives one type per JSON kind (all numbers float64), and
// the strategic patch code compares those types; this is the same classification.
enum class JKind { kNull, kBool, kNumber, kString, kArray, kObject };
JKind kind_of(const json& j) {
  if (j.is_null()) return JKind::kNull;
  if (j.is_boolean()) return JKind::kBool;
  if (j.is_number()) return JKind::kNumber;
  if (j.is_string()) return JKind::kString;
  if (j.is_array()) return JKind::kArray;
  return JKind::kObject;
}

std::string short_dump(const json& j) {
  std::string s = j.dump();
  if (s.size() > 200) s = s.substr(0, 200) + "...";
  return s;
}

// ---------------------------------------------------------------------------------------------
// JSON merge patch (RFC 7386).

json merge_patch(const json& target, const json& patch) {
  if (!patch.is_object()) return patch;
  json out = target.is_object() ? target : json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it->is_null()) {
      out.erase(it.key());
    } else {
      auto cur = out.find(it.key());
      out[it.key()] = merge_patch(cur == out.end() ? json() : *cur, *it);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON patch (RFC 6902) over JSON pointers (RFC 6901).

Result<std::vector<std::string>> parse_pointer(const json& p) {
  if (!p.is_string()) return Status::invalid("path must be a string, got " + short_dump(p));
  std::string s = p.get<std::string>();
  std::vector<std::string> tokens;
  if (s.empty()) return tokens;
  if (s[0] != '/') return Status::invalid("path \"" + s + "\" must start with '/'");
  size_t i = 1;
  std::string cur;
  for (; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '/') {
      tokens.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    if (s[i] == '~') {
      if (i + 1 < s.size() && s[i + 1] == '0')
        cur += '~';
      else if (i + 1 < s.size() && s[i + 1] == '1')
        cur += '/';
      else
        return Status::invalid("path \"" + s + "\" has an invalid escape ('~' must be ~0 or ~1)");
      ++i;
      continue;
    }
    cur += s[i];
  }
  return tokens;
}

std::string pointer_string(const std::vector<std::string>& toks, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += '/';
    for (char c : toks[i]) {
      if (c == '~')
        out += "~0";
      else if (c == '/')
        out += "~1";
      else
        out += c;
    }
  }
  return out;
}

// An array index: digits without leading zeros, within [0, size) (or [0, size] to insert).
Result<size_t> array_index(const std::string& tok, size_t size, bool for_insert,
                           const std::string& where) {
  if (tok.empty() || (tok.size() > 1 && tok[0] == '0') ||
      !std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      tok.size() > 9) {
    return Status::invalid("\"" + tok + "\" is not a valid array index at " + where);
  }
  size_t idx = std::stoul(tok);
  if (idx > size || (!for_insert && idx == size))
    return Status::invalid("array index " + tok + " is out of bounds at " + where);
  return idx;
}

// The parent container of the location and the final token; REQUIRES !toks.empty().
Result<json*> resolve_parent(json& doc, const std::vector<std::string>& toks) {
  json* cur = &doc;
  for (size_t i = 0; i + 1 < toks.size(); ++i) {
    std::string where = pointer_string(toks, i + 1);
    if (cur->is_object()) {
      auto it = cur->find(toks[i]);
      if (it == cur->end()) return Status::invalid("path " + where + " does not exist");
      cur = &*it;
    } else if (cur->is_array()) {
      auto idx = array_index(toks[i], cur->size(), false, where);
      if (!idx) return idx.status();
      cur = &(*cur)[*idx];
    } else {
      return Status::invalid("path " + where + " does not exist (parent is not a container)");
    }
  }
  return cur;
}

Result<json> get_at(const json& doc, const std::vector<std::string>& toks) {
  if (toks.empty()) return doc;
  // resolve_parent only reads through the pointer it is given (array indices are checked first).
  auto parent = resolve_parent(const_cast<json&>(doc), toks);
  if (!parent) return parent.status();
  const std::string& last = toks.back();
  std::string where = pointer_string(toks, toks.size());
  const json& p = **parent;
  if (p.is_object()) {
    auto it = p.find(last);
    if (it == p.end()) return Status::invalid("path " + where + " does not exist");
    return *it;
  }
  if (p.is_array()) {
    auto idx = array_index(last, p.size(), false, where);
    if (!idx) return idx.status();
    return p[*idx];
  }
  return Status::invalid("path " + where + " does not exist");
}

Status add_at(json& doc, const std::vector<std::string>& toks, json value) {
  if (toks.empty()) {
    doc = std::move(value);
    return Status::ok();
  }
  auto parent = resolve_parent(doc, toks);
  if (!parent) return parent.status();
  json& p = **parent;
  const std::string& last = toks.back();
  std::string where = pointer_string(toks, toks.size());
  if (p.is_object()) {
    p[last] = std::move(value);
    return Status::ok();
  }
  if (p.is_array()) {
    if (last == "-") {
      p.push_back(std::move(value));
      return Status::ok();
    }
    auto idx = array_index(last, p.size(), true, where);
    if (!idx) return idx.status();
    p.insert(p.begin() + static_cast<std::ptrdiff_t>(*idx), std::move(value));
    return Status::ok();
  }
  return Status::invalid("cannot add at " + where + ": parent is not an object or array");
}

Status remove_at(json& doc, const std::vector<std::string>& toks) {
  if (toks.empty()) return Status::invalid("cannot remove the whole document");
  auto parent = resolve_parent(doc, toks);
  if (!parent) return parent.status();
  json& p = **parent;
  const std::string& last = toks.back();
  std::string where = pointer_string(toks, toks.size());
  if (p.is_object()) {
    if (p.erase(last) == 0) return Status::invalid("path " + where + " does not exist");
    return Status::ok();
  }
  if (p.is_array()) {
    auto idx = array_index(last, p.size(), false, where);
    if (!idx) return idx.status();
    p.erase(p.begin() + static_cast<std::ptrdiff_t>(*idx));
    return Status::ok();
  }
  return Status::invalid("path " + where + " does not exist");
}

Status apply_json_op(json& doc, const json& op) {
  if (!op.is_object()) return Status::invalid("operation must be an object");
  auto op_it = op.find("op");
  if (op_it == op.end() || !op_it->is_string()) return Status::invalid("missing \"op\"");
  std::string name = op_it->get<std::string>();
  auto path_it = op.find("path");
  if (path_it == op.end()) return Status::invalid("missing \"path\"");
  auto path = parse_pointer(*path_it);
  if (!path) return path.status();
  auto need_value = [&]() -> Result<json> {
    auto v = op.find("value");
    if (v == op.end()) return Status::invalid("missing \"value\"");
    return *v;
  };
  auto need_from = [&]() -> Result<std::vector<std::string>> {
    auto f = op.find("from");
    if (f == op.end()) return Status::invalid("missing \"from\"");
    return parse_pointer(*f);
  };
  if (name == "add") {
    auto v = need_value();
    if (!v) return v.status();
    return add_at(doc, *path, std::move(*v));
  }
  if (name == "remove") return remove_at(doc, *path);
  if (name == "replace") {
    auto v = need_value();
    if (!v) return v.status();
    auto cur = get_at(doc, *path);  // replace requires the target to exist
    if (!cur) return cur.status();
    if (path->empty()) {
      doc = std::move(*v);
      return Status::ok();
    }
    SKIFF_RETURN_IF_ERROR(remove_at(doc, *path));
    return add_at(doc, *path, std::move(*v));
  }
  if (name == "move" || name == "copy") {
    auto from = need_from();
    if (!from) return from.status();
    auto v = get_at(doc, *from);
    if (!v) return v.status();
    if (name == "move") {
      if (path->size() > from->size() && std::equal(from->begin(), from->end(), path->begin())) {
        return Status::invalid("cannot move " + pointer_string(*from, from->size()) +
                               " into its own child");
      }
      SKIFF_RETURN_IF_ERROR(remove_at(doc, *from));
    }
    return add_at(doc, *path, std::move(*v));
  }
  if (name == "test") {
    auto v = need_value();
    if (!v) return v.status();
    auto cur = get_at(doc, *path);
    if (!cur) return cur.status();
    if (*cur != *v) {
      return Status::invalid("test failed: value at " + path_it->get<std::string>() + " is " +
                             short_dump(*cur) + ", not " + short_dump(*v));
    }
    return Status::ok();
  }
  return Status::invalid("unknown op \"" + name + "\"");
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch, after k8s.io/apimachinery/pkg/util/strategicpatch.
//
// A Node says what the schema knows about an object's keys: a struct's fields, or the value
// type of a map. Keys it knows nothing about merge like JSON merge patch and their lists replace.

struct Node {
  const Schema* schema = nullptr;    // a struct
  const Schema* map_elem = nullptr;  // a map whose values are this struct
};

std::optional<FieldSchema> lookup(const Node& n, std::string_view key) {
  if (n.schema) {
    if (auto* f = n.schema->find(key)) return *f;
    return std::nullopt;
  }
  if (n.map_elem) {
    FieldSchema fs;
    fs.kind = FieldSchema::Kind::kObject;
    fs.elem = n.map_elem;
    return fs;
  }
  return std::nullopt;
}

// The node for the value of a field (for lists: of each element).
Node child(const std::optional<FieldSchema>& fs) {
  if (!fs) return {};
  switch (fs->kind) {
    case FieldSchema::Kind::kObject:
    case FieldSchema::Kind::kList:
      return Node{fs->elem, nullptr};
    case FieldSchema::Kind::kMap:
      return Node{nullptr, fs->elem};
    case FieldSchema::Kind::kScalar:
      return {};
  }
  return {};
}

// The struct fields declared with set_struct_replace: (parent schema, field name).
std::mutex g_replace_mu;
std::set<std::pair<const Schema*, std::string>, std::less<>>& replace_fields() {
  static auto* s = new std::set<std::pair<const Schema*, std::string>, std::less<>>();
  return *s;
}

// Whether field `key` of the struct at `n` is replaced whole (patchStrategy:"replace").
bool replaces_struct(const Node& n, const std::string& key) {
  if (n.schema == nullptr) return false;
  std::lock_guard<std::mutex> g(g_replace_mu);
  return replace_fields().count({n.schema, key}) > 0;
}

bool is_merge_list(const std::optional<FieldSchema>& fs) {
  return fs && fs->kind == FieldSchema::Kind::kList &&
         (fs->opts.strategy == PatchStrategy::kMerge ||
          fs->opts.strategy == PatchStrategy::kMergeRetainKeys);
}

std::string merge_key_of(const std::optional<FieldSchema>& fs) {
  return fs ? std::string(fs->opts.merge_key) : std::string();
}

// parallel: applying a patch to an object (MergeParallelList in Kubernetes). Off when two
// patches are merged into one (three-way patch), where directives must be kept, not executed.
struct MergeOpts {
  bool parallel = true;
};

// The identity of a list element: its merge key's value for keyed lists, itself otherwise.
json identity(const json& item, const std::string& merge_key) {
  if (merge_key.empty()) return item;
  if (!item.is_object()) return json();
  auto it = item.find(merge_key);
  return it == item.end() ? json() : *it;
}

ptrdiff_t index_in(const json& list, const json& item, const std::string& merge_key) {
  json id = identity(item, merge_key);
  for (size_t i = 0; i < list.size(); ++i)
    if (identity(list[i], merge_key) == id) return static_cast<ptrdiff_t>(i);
  return -1;
}

bool is_delete_directive(const json& item) {
  if (!item.is_object()) return false;
  auto it = item.find(kPatchDirective);
  return it != item.end() && *it == "delete";
}

// normalizeSliceOrder: stable sort by position in `order`, items missing from it after; in keyed
// lists, delete directives go last.
json sort_by_order(const json& items, const json& order, const std::string& merge_key) {
  std::vector<json> keep, deletes;
  for (const auto& it : items) {
    if (!merge_key.empty() && is_delete_directive(it))
      deletes.push_back(it);
    else
      keep.push_back(it);
  }
  std::vector<std::pair<ptrdiff_t, size_t>> keys;
  for (size_t i = 0; i < keep.size(); ++i) {
    ptrdiff_t idx = index_in(order, keep[i], merge_key);
    keys.push_back({idx < 0 ? PTRDIFF_MAX : idx, i});
  }
  std::stable_sort(keys.begin(), keys.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  json out = json::array();
  for (auto& [_, i] : keys) out.push_back(std::move(keep[i]));
  for (auto& d : deletes) out.push_back(std::move(d));
  return out;
}

// mergeSortedSlice: interleaves server-only items (left) into the patch items (right), using
// their positions in the live list where both are known; each side keeps its own order.
json merge_sorted(const json& left, const json& right, const json& server_order,
                  const std::string& merge_key) {
  json out = json::array();
  size_t i = 0, j = 0;
  while (i < left.size() || j < right.size()) {
    if (i >= left.size()) {
      out.push_back(right[j++]);
    } else if (j >= right.size()) {
      out.push_back(left[i++]);
    } else {
      ptrdiff_t li = index_in(server_order, left[i], merge_key);
      ptrdiff_t ri = index_in(server_order, right[j], merge_key);
      if (li >= 0 && ri >= 0 && li < ri)
        out.push_back(left[i++]);
      else
        out.push_back(right[j++]);
    }
  }
  return out;
}

// Orders a merged list: items present in `order` (the patch list or $setElementOrder) follow
// it; the others keep their live order, placed relative to the live list where possible.
json normalize_order(const json& merged, const json& order, const json& server_order,
                     const std::string& merge_key) {
  json patch_items = json::array(), server_only = json::array();
  for (const auto& it : merged) {
    if (index_in(order, it, merge_key) >= 0)
      patch_items.push_back(it);
    else
      server_only.push_back(it);
  }
  return merge_sorted(sort_by_order(server_only, server_order, merge_key),
                      sort_by_order(patch_items, order, merge_key), server_order, merge_key);
}

json delete_from_list(const json& list, const json& values) {
  json out = json::array();
  for (const auto& v : list)
    if (std::find(values.begin(), values.end(), v) == values.end()) out.push_back(v);
  return out;
}

Result<json> merge_map(json original, json patch, const Node& node, const MergeOpts& o);
Result<json> merge_list(const json& original, const json& patch,
                        const std::optional<FieldSchema>& fs, const MergeOpts& o);

// A patch value set where nothing was before: when applying, it is merged into an empty value
// so that nulls and directives inside it are executed rather than stored.
Result<json> fresh_value(const json& pv, const std::optional<FieldSchema>& fs, const MergeOpts& o) {
  if (!o.parallel) return pv;
  if (pv.is_object()) return merge_map(json::object(), pv, child(fs), o);
  if (pv.is_array()) {
    if (is_merge_list(fs)) return merge_list(json::array(), pv, fs, o);
    json out = json::array();
    for (const auto& e : pv) {
      if (e.is_object()) {
        auto m = merge_map(json::object(), e, child(fs), o);
        if (!m) return m.status();
        out.push_back(std::move(*m));
      } else {
        out.push_back(e);
      }
    }
    return out;
  }
  return pv;
}

Status check_element_kinds(const json& a, const json& b, bool* maps) {
  std::optional<JKind> k;
  for (const json* l : {&a, &b}) {
    for (const auto& e : *l) {
      JKind ek = kind_of(e);
      if (ek == JKind::kArray) return Status::invalid("lists of lists are not supported");
      if (k && *k != ek) {
        return Status::invalid("list elements are not all of the same type: " + short_dump(*l));
      }
      k = ek;
    }
  }
  *maps = k == JKind::kObject;
  return Status::ok();
}

Result<json> merge_list(const json& original_in, const json& patch_in,
                        const std::optional<FieldSchema>& fs, const MergeOpts& o) {
  if (original_in.empty() && patch_in.empty()) return original_in;
  bool maps = false;
  SKIFF_RETURN_IF_ERROR(check_element_kinds(original_in, patch_in, &maps));
  std::string mk = merge_key_of(fs);
  if (!maps) {
    // A set of scalars: union, first occurrence wins, then ordered.
    json merged = json::array();
    for (const json* l : {&original_in, &patch_in})
      for (const auto& e : *l)
        if (std::find(merged.begin(), merged.end(), e) == merged.end()) merged.push_back(e);
    return normalize_order(merged, patch_in, original_in, "");
  }
  if (mk.empty()) return fresh_value(patch_in, std::nullopt, o);  // nothing to merge by

  Node elem_node = child(fs);
  json original = original_in;
  json patch = json::array();
  bool replace = false;
  for (const auto& e : patch_in) {
    auto d = e.find(kPatchDirective);
    if (d == e.end()) {
      patch.push_back(e);
      continue;
    }
    if (*d == "delete") {
      auto kv = e.find(mk);
      if (kv == e.end()) {
        return Status::invalid("map: " + short_dump(e) +
                               " does not contain declared merge key: " + mk);
      }
      json kept = json::array();
      for (auto& x : original)
        if (identity(x, mk) != *kv) kept.push_back(std::move(x));
      original = std::move(kept);
    } else if (*d == "replace") {
      replace = true;
    } else if (*d == "merge") {
      return Status::invalid("merging lists cannot yet be specified in the patch");
    } else {
      return Status::invalid("unknown patch type: " + short_dump(*d) + " in map: " + short_dump(e));
    }
  }
  if (replace) {
    json out = json::array();
    for (const auto& e : patch) {
      auto m = fresh_value(
          e,
          fs ? std::optional<FieldSchema>(FieldSchema{FieldSchema::Kind::kObject, {}, fs->elem})
             : std::nullopt,
          o);
      if (!m) return m.status();
      out.push_back(std::move(*m));
    }
    return out;
  }
  json merged = original;
  for (const auto& e : patch) {
    auto kv = e.find(mk);
    if (kv == e.end()) {
      return Status::invalid("map: " + short_dump(e) +
                             " does not contain declared merge key: " + mk);
    }
    ptrdiff_t at = index_in(merged, e, mk);
    if (at >= 0) {
      auto m = merge_map(merged[static_cast<size_t>(at)], e, elem_node, o);
      if (!m) return m.status();
      merged[static_cast<size_t>(at)] = std::move(*m);
    } else if (o.parallel) {
      auto m = merge_map(json::object(), e, elem_node, o);
      if (!m) return m.status();
      merged.push_back(std::move(*m));
    } else {
      merged.push_back(e);
    }
  }
  return normalize_order(merged, patch, original, mk);
}

// Checks that the patch list's items appear in $setElementOrder, in the same relative order.
Status check_set_order(const json& patch_list, const json& order, const std::string& mk,
                       const std::string& field) {
  ptrdiff_t last = -1;
  for (const auto& e : patch_list) {
    if (!mk.empty() && (is_delete_directive(e) || (e.is_object() && e.contains(kPatchDirective))))
      continue;
    ptrdiff_t at = index_in(order, e, mk);
    if (at < 0 || at < last) {
      return Status::invalid("the order in patch list " + short_dump(patch_list) +
                             " doesn't match $setElementOrder list " + short_dump(order) +
                             " for \"" + field + "\"");
    }
    last = at;
  }
  return Status::ok();
}

Status apply_retain_keys(json& original, json& patch, const MergeOpts& o) {
  auto it = patch.find(kRetainKeys);
  if (it == patch.end()) return Status::ok();
  json keys = *it;
  patch.erase(it);
  if (!o.parallel) {
    auto cur = original.find(kRetainKeys);
    if (cur != original.end() && *cur != keys)
      return Status::invalid("$retainKeys differ between the patches being merged");
    original[std::string(kRetainKeys)] = keys;
    return Status::ok();
  }
  if (!keys.is_array()) return Status::invalid("invalid patch format of retainKeys: not a list");
  std::set<std::string> keep;
  for (const auto& k : keys) {
    if (!k.is_string()) return Status::invalid("invalid patch format of retainKeys: " + k.dump());
    keep.insert(k.get<std::string>());
  }
  for (auto p = patch.begin(); p != patch.end(); ++p) {
    const std::string& k = p.key();
    if (p->is_null() || k.starts_with(kDeleteFromPrimitiveList) || k.starts_with(kSetElementOrder))
      continue;
    if (!keep.count(k)) {
      return Status::invalid("invalid patch format of retainKeys: field \"" + k +
                             "\" is in the patch but not in $retainKeys");
    }
  }
  for (auto cur = original.begin(); cur != original.end();) {
    if (!keep.count(cur.key()))
      cur = original.erase(cur);
    else
      ++cur;
  }
  return Status::ok();
}

Status apply_set_element_order(json& original, json& patch, const Node& node, const MergeOpts& o) {
  std::vector<std::string> directives;
  for (auto it = patch.begin(); it != patch.end(); ++it)
    if (it.key().starts_with(kSetElementOrder)) directives.push_back(it.key());
  for (const auto& d : directives) {
    json order = patch[d];
    patch.erase(d);
    if (!o.parallel) {
      auto cur = original.find(d);
      if (cur != original.end() && *cur != order)
        return Status::invalid(d + " differs between the patches being merged");
      original[d] = std::move(order);
      continue;
    }
    if (!order.is_array()) return Status::invalid(d + " must be a list, got " + short_dump(order));
    std::string field = d.substr(kSetElementOrder.size());
    auto fs = lookup(node, field);
    std::string mk = merge_key_of(fs);
    auto o_it = original.find(field);
    auto p_it = patch.find(field);
    bool in_orig = o_it != original.end() && o_it->is_array();
    bool in_patch = p_it != patch.end();
    if (in_patch && !p_it->is_array()) continue;  // not a list patch: the main loop handles it
    if (!in_orig && !in_patch) continue;
    json orig_list = in_orig ? *o_it : json::array();
    if (in_patch) SKIFF_RETURN_IF_ERROR(check_set_order(*p_it, order, mk, field));
    json merged;
    if (!in_patch) {
      merged = orig_list;
    } else if (is_merge_list(fs)) {
      auto m = merge_list(orig_list, *p_it, fs, o);
      if (!m) return m.status();
      merged = std::move(*m);
    } else {
      auto m = fresh_value(*p_it, fs, o);
      if (!m) return m.status();
      merged = std::move(*m);
    }
    original[field] = normalize_order(merged, order, orig_list, mk);
    patch.erase(field);
  }
  return Status::ok();
}

Result<json> merge_map(json original, json patch, const Node& node, const MergeOpts& o) {
  if (!patch.is_object()) return Status::invalid("patch must be an object: " + short_dump(patch));
  if (auto d = patch.find(kPatchDirective); d != patch.end()) {
    if (*d == "replace") {
      patch.erase(d);
      if (!o.parallel) return patch;
      return merge_map(json::object(), std::move(patch), node, o);
    }
    if (*d == "delete") return json::object();
    if (*d != "merge")
      return Status::invalid("unknown patch type: " + short_dump(*d) +
                             " in map: " + short_dump(patch));
    patch.erase(d);
  }
  if (!original.is_object()) original = json::object();
  SKIFF_RETURN_IF_ERROR(apply_retain_keys(original, patch, o));
  SKIFF_RETURN_IF_ERROR(apply_set_element_order(original, patch, node, o));

  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& k = it.key();
    const json& pv = *it;
    if (k.starts_with(kDeleteFromPrimitiveList)) {
      if (!o.parallel) {
        original[k] = pv;
        continue;
      }
      if (!pv.is_array()) return Status::invalid(k + " must be a list, got " + short_dump(pv));
      std::string field = k.substr(kDeleteFromPrimitiveList.size());
      auto cur = original.find(field);
      if (cur != original.end() && cur->is_array()) *cur = delete_from_list(*cur, pv);
      continue;
    }
    if (pv.is_null()) {
      original.erase(k);
      if (!o.parallel) original[k] = nullptr;  // a deletion to send on
      continue;
    }
    auto fs = lookup(node, k);
    auto cur = original.find(k);
    if (cur == original.end() || kind_of(*cur) != kind_of(pv)) {
      auto v = fresh_value(pv, fs, o);
      if (!v) return v.status();
      original[k] = std::move(*v);
      continue;
    }
    Result<json> v = pv;
    if (pv.is_object() && !replaces_struct(node, k))
      v = merge_map(*cur, pv, child(fs), o);
    else if (pv.is_array() && is_merge_list(fs))
      v = merge_list(*cur, pv, fs, o);
    else
      v = fresh_value(pv, fs, o);
    if (!v) return v.status();
    original[k] = std::move(*v);
  }
  return original;
}

// ---------------------------------------------------------------------------------------------
// Creating strategic patches (kubectl's client-side apply), after strategicpatch.diffMaps.

struct DiffOpts {
  bool ignore_changes_and_additions = false;
  bool ignore_deletions = false;
  bool set_element_order = true;
  bool build_retain_keys = false;
};

std::string key_string(const json& v) {
  // fmt.Sprintf("%v") of the merge key's value, which Kubernetes sorts by.
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d)))
      return std::to_string(static_cast<int64_t>(d));
  }
  return v.dump();
}

json diff_maps(const json& original, const json& modified, const Node& node, DiffOpts opts);

void diff_lists(const std::string& key, const json& original, const json& modified,
                const std::optional<FieldSchema>& fs, DiffOpts opts, json& patch) {
  std::string mk = merge_key_of(fs);
  json add = json::array(), del = json::array(), order = json::array();
  bool maps = false;
  for (const json* l : {&original, &modified})
    for (const auto& e : *l) maps = maps || e.is_object();
  if (original.empty()) {
    if (!modified.empty() && !opts.ignore_changes_and_additions) patch[key] = modified;
    return;
  }
  if (maps && !mk.empty()) {
    auto sorted = [&](const json& l) {
      std::vector<json> v(l.begin(), l.end());
      std::stable_sort(v.begin(), v.end(), [&](const json& a, const json& b) {
        return key_string(identity(a, mk)) < key_string(identity(b, mk));
      });
      return v;
    };
    auto os = sorted(original), ms = sorted(modified);
    size_t i = 0, j = 0;
    Node elem = child(fs);
    while (i < os.size() || j < ms.size()) {
      std::string ok = i < os.size() ? key_string(identity(os[i], mk)) : "";
      std::string mkv = j < ms.size() ? key_string(identity(ms[j], mk)) : "";
      if (i < os.size() && j < ms.size() && ok == mkv) {
        json pv = diff_maps(os[i], ms[j], elem, opts);
        if (!pv.empty()) {
          pv[mk] = identity(ms[j], mk);
          add.push_back(std::move(pv));
        }
        ++i, ++j;
      } else if (i >= os.size() || (j < ms.size() && ok > mkv)) {
        if (!opts.ignore_changes_and_additions) add.push_back(ms[j]);
        ++j;
      } else {
        if (!opts.ignore_deletions)
          del.push_back(json{{std::string(kPatchDirective), "delete"}, {mk, identity(os[i], mk)}});
        ++i;
      }
    }
    add = sort_by_order(add, modified, mk);
    bool order_same = original.size() == modified.size();
    for (size_t x = 0; order_same && x < original.size(); ++x)
      order_same = identity(original[x], mk) == identity(modified[x], mk);
    for (auto& d : del) add.push_back(std::move(d));
    if (opts.set_element_order &&
        ((!opts.ignore_changes_and_additions && (!add.empty() || !order_same)) ||
         (!opts.ignore_deletions && !add.empty()))) {
      for (const auto& m : modified) order.push_back(json{{mk, identity(m, mk)}});
    }
    if (!add.empty()) patch[key] = std::move(add);
    if (!order.empty()) patch[std::string(kSetElementOrder) + key] = std::move(order);
    return;
  }
  if (maps) {  // a merge list without a merge key cannot be diffed element-wise: replace it
    if (!opts.ignore_changes_and_additions && original != modified) patch[key] = modified;
    return;
  }
  // Scalars: a set difference, additions in the list, removals in a parallel list.
  std::set<std::string> seen;
  std::vector<std::pair<std::string, json>> os, ms;
  for (const auto& e : original) os.push_back({key_string(e), e});
  for (const auto& e : modified) ms.push_back({key_string(e), e});
  auto uniq = [](std::vector<std::pair<std::string, json>>& v) {
    std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first < b.first; });
    v.erase(std::unique(v.begin(), v.end(), [](auto& a, auto& b) { return a.first == b.first; }),
            v.end());
  };
  uniq(os);
  uniq(ms);
  size_t i = 0, j = 0;
  while (i < os.size() || j < ms.size()) {
    if (i < os.size() && j < ms.size() && os[i].first == ms[j].first) {
      ++i, ++j;
    } else if (i >= os.size() || (j < ms.size() && os[i].first > ms[j].first)) {
      if (!opts.ignore_changes_and_additions) add.push_back(ms[j].second);
      ++j;
    } else {
      if (!opts.ignore_deletions) del.push_back(os[i].second);
      ++i;
    }
  }
  add = sort_by_order(add, modified, "");
  if (!add.empty()) patch[key] = std::move(add);
  if (!del.empty()) patch[std::string(kDeleteFromPrimitiveList) + key] = std::move(del);
  if (opts.set_element_order && ((!opts.ignore_deletions && !del.empty()) ||
                                 (!opts.ignore_changes_and_additions && original != modified)))
    patch[std::string(kSetElementOrder) + key] = modified;
}

json diff_maps(const json& original, const json& modified, const Node& node, DiffOpts opts) {
  json patch = json::object();
  json retain = json::array();
  for (auto it = modified.begin(); it != modified.end(); ++it) {
    const std::string& key = it.key();
    const json& mv = *it;
    if (opts.build_retain_keys && !mv.is_null()) retain.push_back(key);
    auto ov_it = original.find(key);
    if (ov_it == original.end() || kind_of(*ov_it) != kind_of(mv)) {
      if (!opts.ignore_changes_and_additions) patch[key] = mv;
      continue;
    }
    const json& ov = *ov_it;
    auto fs = lookup(node, key);
    if (ov.is_object() && replaces_struct(node, key)) {
      // handleMapDiff's replace directive: the whole value, changed or not.
      if (!opts.ignore_changes_and_additions) patch[key] = mv;
    } else if (ov.is_object()) {
      DiffOpts sub = opts;
      sub.build_retain_keys = fs && (fs->opts.strategy == PatchStrategy::kRetainKeys ||
                                     fs->opts.strategy == PatchStrategy::kMergeRetainKeys);
      json pv = diff_maps(ov, mv, child(fs), sub);
      if (!pv.empty()) patch[key] = std::move(pv);
    } else if (ov.is_array() && is_merge_list(fs)) {
      DiffOpts sub = opts;
      sub.build_retain_keys = fs->opts.strategy == PatchStrategy::kMergeRetainKeys;
      diff_lists(key, ov, mv, fs, sub, patch);
    } else if (!opts.ignore_changes_and_additions && ov != mv) {
      patch[key] = mv;
    }
  }
  if (!opts.ignore_deletions) {
    for (auto it = original.begin(); it != original.end(); ++it)
      if (!modified.contains(it.key())) patch[it.key()] = nullptr;
  }
  if (!retain.empty()) {
    bool extra = false;  // hasAdditionalNewField: live keys the retain list will clear
    for (auto it = original.begin(); it != original.end(); ++it)
      if (!it->is_null() && !modified.contains(it.key())) extra = true;
    if (!patch.empty() || extra) {
      std::sort(retain.begin(), retain.end());
      patch[std::string(kRetainKeys)] = std::move(retain);
    }
  }
  return patch;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions.

Result<json> apply_merge_patch(const json& original, const json& patch) {
  return merge_patch(original, patch);
}

Result<json> apply_json_patch(const json& original, const json& patch) {
  if (!patch.is_array())
    return Status::invalid("a JSON patch must be a list of operations, got " + short_dump(patch));
  json doc = original;
  for (size_t i = 0; i < patch.size(); ++i) {
    Status st = apply_json_op(doc, patch[i]);
    if (!st.is_ok()) {
      std::string op = patch[i].is_object() && patch[i].contains("op") && patch[i]["op"].is_string()
                           ? patch[i]["op"].get<std::string>()
                           : "?";
      return Status::invalid("json patch operation " + std::to_string(i) + " (" + op +
                             "): " + st.message());
    }
  }
  return doc;
}

Result<json> apply_strategic_merge_patch(const json& original, const json& patch,
                                         const Schema& schema) {
  if (!patch.is_object())
    return Status::invalid("a strategic merge patch must be a JSON object, got " +
                           short_dump(patch));
  auto r = merge_map(original, patch, Node{&schema, nullptr}, MergeOpts{.parallel = true});
  if (!r) return r.status().with_context("applying strategic merge patch");
  return r;
}

json create_merge_patch(const json& from, const json& to) {
  if (!from.is_object() || !to.is_object()) return to;
  json p = json::object();
  for (auto it = from.begin(); it != from.end(); ++it)
    if (!to.contains(it.key())) p[it.key()] = nullptr;
  for (auto it = to.begin(); it != to.end(); ++it) {
    auto f = from.find(it.key());
    if (f == from.end()) {
      p[it.key()] = *it;
    } else if (*f != *it) {
      p[it.key()] = (f->is_object() && it->is_object()) ? create_merge_patch(*f, *it) : *it;
    }
  }
  return p;
}

Result<json> create_three_way_strategic_patch(const json& original, const json& modified,
                                              const json& current, const Schema& schema) {
  auto as_object = [](const json& j) { return j.is_object() ? j : json::object(); };
  if (!modified.is_object())
    return Status::invalid("the modified configuration must be a JSON object");
  Node root{&schema, nullptr};
  // Changes and additions: what differs between the live object and the new manifest.
  json delta = diff_maps(as_object(current), modified, root,
                         DiffOpts{.ignore_changes_and_additions = false, .ignore_deletions = true});
  // Deletions: what the last apply set and the new manifest no longer has.
  json deletions =
      diff_maps(as_object(original), modified, root,
                DiffOpts{.ignore_changes_and_additions = true, .ignore_deletions = false});
  auto merged =
      merge_map(std::move(deletions), std::move(delta), root, MergeOpts{.parallel = false});
  if (!merged) return merged.status().with_context("computing the three-way patch");
  return merged;
}

void set_struct_replace(const Schema* parent, std::string_view field) {
  std::lock_guard<std::mutex> g(g_replace_mu);
  replace_fields().emplace(parent, std::string(field));
}

}  // namespace skiff::proto
