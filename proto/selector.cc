#include "proto/selector.h"

#include <algorithm>
#include <set>

#include "proto/validation.h"

namespace skiff::proto {
namespace {

// ---------------------------------------------------------------------------------------------
// Label selector strings, parsed the way k8s.io/apimachinery/pkg/labels parses them (same
// tokens, same grammar, same error texts) so a selector kubectl accepts we accept, and vice versa.

enum class Tok {
  kIdent,
  kIn,
  kNotIn,
  kEquals,
  kDoubleEquals,
  kNotEquals,
  kBang,
  kOpen,
  kClose,
  kComma,
  kGreater,
  kLess,
  kEnd,
};

struct Token {
  Tok tok;
  std::string lit;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_special(char c) {
  return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

std::vector<Token> lex(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (true) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i == s.size()) break;
    char c = s[i];
    if (is_special(c)) {
      // Longest known symbol wins: "!=" and "==" before "!" and "=".
      std::string_view two = s.substr(i, 2);
      if (two == "!=")
        out.push_back({Tok::kNotEquals, "!="}), i += 2;
      else if (two == "==")
        out.push_back({Tok::kDoubleEquals, "=="}), i += 2;
      else {
        static constexpr std::pair<char, Tok> kOne[] = {
            {'=', Tok::kEquals}, {'!', Tok::kBang},    {'(', Tok::kOpen}, {')', Tok::kClose},
            {',', Tok::kComma},  {'>', Tok::kGreater}, {'<', Tok::kLess}};
        for (auto [ch, t] : kOne)
          if (ch == c) out.push_back({t, std::string(1, c)});
        ++i;
      }
      continue;
    }
    size_t j = i;
    while (j < s.size() && !is_space(s[j]) && !is_special(s[j])) ++j;
    std::string word(s.substr(i, j - i));
    Tok t = word == "in" ? Tok::kIn : word == "notin" ? Tok::kNotIn : Tok::kIdent;
    out.push_back({t, std::move(word)});
    i = j;
  }
  out.push_back({Tok::kEnd, ""});
  return out;
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

Status validate_key(const std::string& k) {
  auto errs = is_qualified_name(k);
  if (errs.empty()) return Status::ok();
  return Status::invalid("invalid label key \"" + k + "\": " + join(errs, "; "));
}

// labels.NewRequirement: checks the value count for the operator and every key and value.
Result<Requirement> new_requirement(const std::string& key, SelectorOp op,
                                    std::set<std::string> values) {
  SKIFF_RETURN_IF_ERROR(validate_key(key));
  switch (op) {
    case SelectorOp::kIn:
    case SelectorOp::kNotIn:
      if (values.empty())
        return Status::invalid("for 'in', 'notin' operators, values set can't be empty");
      break;
    case SelectorOp::kEquals:
    case SelectorOp::kNotEquals:
      if (values.size() != 1)
        return Status::invalid("exact-match compatibility requires one single value");
      break;
    case SelectorOp::kExists:
    case SelectorOp::kDoesNotExist:
      if (!values.empty())
        return Status::invalid("values set must be empty for exists and does not exist");
      break;
  }
  for (const auto& v : values) {
    auto errs = is_valid_label_value(v);
    if (!errs.empty()) {
      return Status::invalid("invalid label value: \"" + v + "\": at key: \"" + key +
                             "\": " + join(errs, "; "));
    }
  }
  return Requirement{key, op, std::vector<std::string>(values.begin(), values.end())};
}

class Parser {
 public:
  explicit Parser(std::string_view s) : toks_(lex(s)) {}

  Result<std::vector<Requirement>> parse() {
    std::vector<Requirement> reqs;
    while (true) {
      Token t = lookahead(true);
      if (t.tok == Tok::kEnd) return reqs;
      if (t.tok != Tok::kIdent && t.tok != Tok::kBang)
        return Status::invalid("found '" + t.lit +
                               "', expected: !, identifier, or 'end of string'");
      auto r = parse_requirement();
      if (!r) return Status::invalid("unable to parse requirement: " + r.status().message());
      reqs.push_back(std::move(*r));
      Token n = consume(true);
      if (n.tok == Tok::kEnd) return reqs;
      if (n.tok != Tok::kComma)
        return Status::invalid("found '" + n.lit + "', expected: ',' or 'end of string'");
      Token after = lookahead(true);
      if (after.tok != Tok::kIdent && after.tok != Tok::kBang)
        return Status::invalid("found '" + after.lit + "', expected: identifier after ','");
    }
  }

 private:
  // In "values" context the keywords in/notin are plain identifiers (a key or value may be
  // called "in"); only where an operator is expected are they operators.
  Token lookahead(bool values) const { return adjust(toks_[pos_], values); }
  Token consume(bool values) {
    Token t = adjust(toks_[pos_], values);
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  static Token adjust(Token t, bool values) {
    if (values && (t.tok == Tok::kIn || t.tok == Tok::kNotIn)) t.tok = Tok::kIdent;
    return t;
  }

  Result<Requirement> parse_requirement() {
    bool negated = false;
    Token t = consume(true);
    if (t.tok == Tok::kBang) {
      negated = true;
      t = consume(true);
    }
    if (t.tok != Tok::kIdent) return Status::invalid("found '" + t.lit + "', expected: identifier");
    std::string key = t.lit;
    SKIFF_RETURN_IF_ERROR(validate_key(key));
    // "!key" is complete by itself; whatever follows is the caller's to reject ("!a=b" fails
    // with "found '=', expected: ',' or 'end of string'", as in Kubernetes).
    if (negated) return new_requirement(key, SelectorOp::kDoesNotExist, {});
    Tok next = lookahead(true).tok;
    if (next == Tok::kEnd || next == Tok::kComma)
      return new_requirement(key, SelectorOp::kExists, {});
    Token op = consume(false);
    switch (op.tok) {
      case Tok::kIn:
      case Tok::kNotIn: {
        auto vals = parse_values();
        if (!vals) return vals.status();
        return new_requirement(key, op.tok == Tok::kIn ? SelectorOp::kIn : SelectorOp::kNotIn,
                               std::move(*vals));
      }
      case Tok::kEquals:
      case Tok::kDoubleEquals:
      case Tok::kNotEquals: {
        auto vals = parse_exact_value();
        if (!vals) return vals.status();
        return new_requirement(
            key, op.tok == Tok::kNotEquals ? SelectorOp::kNotEquals : SelectorOp::kEquals,
            std::move(*vals));
      }
      case Tok::kGreater:
      case Tok::kLess:
        return Status::invalid("operator '" + op.lit +
                               "' is not supported in label selectors here");
      default:
        return Status::invalid("found '" + op.lit + "', expected: in, notin, =, ==, !=, gt, lt");
    }
  }

  Result<std::set<std::string>> parse_values() {
    Token t = consume(true);
    if (t.tok != Tok::kOpen) return Status::invalid("found '" + t.lit + "' expected: '('");
    Token n = lookahead(true);
    if (n.tok == Tok::kClose) {  // "()" is the set holding the empty string
      consume(true);
      return std::set<std::string>{""};
    }
    if (n.tok != Tok::kIdent && n.tok != Tok::kComma)
      return Status::invalid("found '" + n.lit + "', expected: ',', ')' or identifier");
    auto s = parse_identifiers_list();
    if (!s) return s.status();
    Token c = consume(true);
    if (c.tok != Tok::kClose) return Status::invalid("found '" + c.lit + "', expected: ')'");
    return s;
  }

  // Empty elements ("(,a)", "(a,)", "(a,,b)") stand for the empty value, as in Kubernetes.
  Result<std::set<std::string>> parse_identifiers_list() {
    std::set<std::string> s;
    while (true) {
      Token t = consume(true);
      if (t.tok == Tok::kIdent) {
        s.insert(t.lit);
        Token n = lookahead(true);
        if (n.tok == Tok::kComma) continue;
        if (n.tok == Tok::kClose) return s;
        return Status::invalid("found '" + n.lit + "', expected: ',' or ')'");
      }
      if (t.tok == Tok::kComma) {
        if (s.empty()) s.insert("");
        Token n = lookahead(true);
        if (n.tok == Tok::kClose) {
          s.insert("");
          return s;
        }
        if (n.tok == Tok::kComma) {
          consume(true);
          s.insert("");
        }
        continue;
      }
      return Status::invalid("found '" + t.lit + "', expected: ',', or identifier");
    }
  }

  Result<std::set<std::string>> parse_exact_value() {
    Token n = lookahead(true);
    if (n.tok == Tok::kEnd || n.tok == Tok::kComma) return std::set<std::string>{""};
    Token t = consume(true);
    if (t.tok == Tok::kIdent) return std::set<std::string>{t.lit};
    return Status::invalid("found '" + t.lit + "', expected: identifier");
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
};

void sort_by_key(std::vector<Requirement>& reqs) {
  std::stable_sort(reqs.begin(), reqs.end(),
                   [](const Requirement& a, const Requirement& b) { return a.key < b.key; });
}

bool contains(const std::vector<std::string>& sorted, const std::string& v) {
  return std::binary_search(sorted.begin(), sorted.end(), v);
}

std::string requirement_string(const Requirement& r) {
  switch (r.op) {
    case SelectorOp::kExists:
      return r.key;
    case SelectorOp::kDoesNotExist:
      return "!" + r.key;
    case SelectorOp::kEquals:
      return r.key + "=" + (r.values.empty() ? "" : r.values[0]);
    case SelectorOp::kNotEquals:
      return r.key + "!=" + (r.values.empty() ? "" : r.values[0]);
    case SelectorOp::kIn:
      return r.key + " in (" + join(r.values, ",") + ")";
    case SelectorOp::kNotIn:
      return r.key + " notin (" + join(r.values, ",") + ")";
  }
  return r.key;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// LabelSelector.

Result<LabelSelector> LabelSelector::parse(std::string_view s) {
  auto reqs = Parser(s).parse();
  if (!reqs) return reqs.status();
  LabelSelector sel;
  sel.reqs_ = std::move(*reqs);
  sort_by_key(sel.reqs_);
  return sel;
}

void LabelSelector::validate_json(const json& j, const Path& path, FieldErrors& errs) {
  if (j.is_null()) return;
  if (!j.is_object()) return detail::type_error(errs, path, "object", j);
  if (auto it = j.find("matchLabels"); it != j.end() && !it->is_null()) {
    Path ml = path.field("matchLabels");
    if (!it->is_object()) {
      detail::type_error(errs, ml, "object", *it);
    } else {
      std::map<std::string, std::string> labels;
      for (auto kv = it->begin(); kv != it->end(); ++kv) {
        if (!kv.value().is_string()) {
          detail::type_error(errs, ml.key(kv.key()), "string", kv.value());
          continue;
        }
        labels.emplace(kv.key(), kv.value().get<std::string>());
      }
      validate_labels(labels, ml, errs);
    }
  }
  auto it = j.find("matchExpressions");
  if (it == j.end() || it->is_null()) return;
  Path mes = path.field("matchExpressions");
  if (!it->is_array()) return detail::type_error(errs, mes, "array", *it);
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    Path p = mes.index(i);
    if (!e.is_object()) {
      detail::type_error(errs, p, "object", e);
      continue;
    }
    std::string key, op;
    std::vector<std::string> values;
    bool types_ok = true;
    auto get_string = [&](const char* name, std::string& out) {
      auto f = e.find(name);
      if (f == e.end() || f->is_null()) return;
      if (!f->is_string()) {
        detail::type_error(errs, p.field(name), "string", *f);
        types_ok = false;
      } else {
        out = f->get<std::string>();
      }
    };
    get_string("key", key);
    get_string("operator", op);
    if (auto v = e.find("values"); v != e.end() && !v->is_null()) {
      if (!v->is_array()) {
        detail::type_error(errs, p.field("values"), "array", *v);
        types_ok = false;
      } else {
        for (size_t k = 0; k < v->size(); ++k) {
          if (!(*v)[k].is_string()) {
            detail::type_error(errs, p.field("values").index(k), "string", (*v)[k]);
            types_ok = false;
          } else {
            values.push_back((*v)[k].get<std::string>());
          }
        }
      }
    }
    if (!types_ok) continue;
    if (op == "In" || op == "NotIn") {
      if (values.empty()) {
        errs.push_back({ErrorType::kRequired, p.field("values").str(),
                        "must be specified when `operator` is 'In' or 'NotIn'", ""});
      }
    } else if (op == "Exists" || op == "DoesNotExist") {
      if (!values.empty()) {
        errs.push_back({ErrorType::kForbidden, p.field("values").str(),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'", ""});
      }
    } else {
      errs.push_back({ErrorType::kInvalid, p.field("operator").str(),
                      "not a valid selector operator", json(op).dump()});
    }
    add_errors(errs, p.field("key"), key, is_qualified_name(key));
    for (size_t k = 0; k < values.size(); ++k)
      add_errors(errs, p.field("values").index(k), values[k], is_valid_label_value(values[k]));
  }
}

Result<LabelSelector> LabelSelector::from_json(const json& j, const std::string& path) {
  FieldErrors errs;
  validate_json(j, Path(path), errs);
  if (!errs.empty()) {
    std::vector<std::string> msgs;
    for (const auto& e : errs) msgs.push_back(e.field + ": " + e.message());
    return Status::invalid(join(msgs, ", "));
  }
  LabelSelector sel;
  if (j.is_null()) return sel;
  if (auto it = j.find("matchLabels"); it != j.end() && it->is_object()) {
    for (auto kv = it->begin(); kv != it->end(); ++kv)
      sel.reqs_.push_back({kv.key(), SelectorOp::kEquals, {kv.value().get<std::string>()}});
  }
  if (auto it = j.find("matchExpressions"); it != j.end() && it->is_array()) {
    for (const auto& e : *it) {
      std::string op = e.value("operator", "");
      SelectorOp sop = op == "In"       ? SelectorOp::kIn
                       : op == "NotIn"  ? SelectorOp::kNotIn
                       : op == "Exists" ? SelectorOp::kExists
                                        : SelectorOp::kDoesNotExist;
      std::set<std::string> vals;
      if (auto v = e.find("values"); v != e.end() && v->is_array())
        for (const auto& x : *v) vals.insert(x.get<std::string>());
      sel.reqs_.push_back({e.value("key", ""), sop, {vals.begin(), vals.end()}});
    }
  }
  sort_by_key(sel.reqs_);
  return sel;
}

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  for (const auto& r : reqs_) {
    auto it = labels.find(r.key);
    bool has = it != labels.end();
    bool ok = true;
    switch (r.op) {
      case SelectorOp::kEquals:
      case SelectorOp::kIn:
        ok = has && contains(r.values, it->second);
        break;
      // Kubernetes: "!=" and "notin" also select objects without the label at all.
      case SelectorOp::kNotEquals:
      case SelectorOp::kNotIn:
        ok = !has || !contains(r.values, it->second);
        break;
      case SelectorOp::kExists:
        ok = has;
        break;
      case SelectorOp::kDoesNotExist:
        ok = !has;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

bool LabelSelector::matches_json(const json& labels_object) const {
  if (reqs_.empty()) return true;
  std::map<std::string, std::string> labels;
  if (labels_object.is_object()) {
    for (auto it = labels_object.begin(); it != labels_object.end(); ++it)
      labels.emplace(it.key(), it->is_string() ? it->get<std::string>() : it->dump());
  }
  return matches(labels);
}

std::string LabelSelector::to_string() const {
  std::vector<std::string> parts;
  for (const auto& r : reqs_) parts.push_back(requirement_string(r));
  return join(parts, ",");
}

// ---------------------------------------------------------------------------------------------
// FieldSelector, as k8s.io/apimachinery/pkg/fields parses it: terms split at unescaped ',',
// each split at its first "!=", "==" or "="; values may escape '\', ',' and '=' with '\'.

namespace {

std::vector<std::string> split_terms(std::string_view s) {
  std::vector<std::string> terms;
  if (s.empty()) return terms;
  size_t start = 0;
  bool in_slash = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (in_slash)
      in_slash = false;
    else if (s[i] == '\\')
      in_slash = true;
    else if (s[i] == ',') {
      terms.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.emplace_back(s.substr(start));
  return terms;
}

Result<std::string> unescape_value(std::string_view s) {
  std::string out;
  bool in_slash = false;
  for (char c : s) {
    if (in_slash) {
      if (c != '\\' && c != ',' && c != '=') {
        return Status::invalid(std::string("invalid field selector: invalid escape sequence: \\") +
                               c);
      }
      out += c;
      in_slash = false;
      continue;
    }
    if (c == '\\')
      in_slash = true;
    else if (c == ',' || c == '=')
      return Status::invalid(std::string("invalid field selector: unescaped character in value: ") +
                             c);
    else
      out += c;
  }
  if (in_slash) return Status::invalid("invalid field selector: invalid escape sequence: \\");
  return out;
}

std::string escape_value(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == ',' || c == '=') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

Result<FieldSelector> FieldSelector::parse(std::string_view s) {
  auto parts = split_terms(s);
  std::sort(parts.begin(), parts.end());
  FieldSelector sel;
  for (const auto& part : parts) {
    if (part.empty()) continue;
    size_t pos = std::string::npos;
    size_t oplen = 0;
    SelectorOp op = SelectorOp::kEquals;
    for (size_t i = 0; i < part.size() && pos == std::string::npos; ++i) {
      std::string_view rest = std::string_view(part).substr(i);
      if (rest.starts_with("!="))
        pos = i, oplen = 2, op = SelectorOp::kNotEquals;
      else if (rest.starts_with("=="))
        pos = i, oplen = 2;
      else if (rest.starts_with("="))
        pos = i, oplen = 1;
    }
    if (pos == std::string::npos) {
      return Status::invalid("invalid selector: '" + std::string(s) + "'; can't understand '" +
                             part + "'");
    }
    auto value = unescape_value(std::string_view(part).substr(pos + oplen));
    if (!value) return value.status();
    sel.reqs_.push_back({part.substr(0, pos), op, {std::move(*value)}});
  }
  return sel;
}

bool FieldSelector::matches(
    const std::function<std::optional<std::string>(std::string_view)>& get) const {
  for (const auto& r : reqs_) {
    auto v = get(r.key);
    if (!v) return false;
    bool eq = *v == r.values[0];
    if (r.op == SelectorOp::kEquals ? !eq : eq) return false;
  }
  return true;
}

std::optional<std::string> FieldSelector::unsupported_field(
    const std::function<std::optional<std::string>(std::string_view)>& get) const {
  for (const auto& r : reqs_)
    if (!get(r.key)) return r.key;
  return std::nullopt;
}

std::string FieldSelector::to_string() const {
  std::vector<std::string> parts;
  for (const auto& r : reqs_)
    parts.push_back(r.key + (r.op == SelectorOp::kNotEquals ? "!=" : "=") +
                    escape_value(r.values[0]));
  return join(parts, ",");
}

std::optional<std::string> FieldSelector::exact(std::string_view field) const {
  for (const auto& r : reqs_)
    if (r.op == SelectorOp::kEquals && r.key == field) return r.values[0];
  return std::nullopt;
}

}  // namespace skiff::proto
