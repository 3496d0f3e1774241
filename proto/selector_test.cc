#include "proto/selector.h"

#include <catch2/catch.hpp>

namespace skiff::proto {
namespace {

using Labels = std::map<std::string, std::string>;

std::string canon(std::string_view s) {
  auto sel = LabelSelector::parse(s);
  if (!sel) return "ERROR: " + sel.status().message();
  return sel->to_string();
}

TEST_CASE("label selector strings parse into canonical, key-sorted form") {
  struct Case {
    const char* in;
    const char* out;
  };
  const Case cases[] = {
      {"", ""},
      {"   ", ""},
      {"app=web", "app=web"},
      {"app==web", "app=web"},
      {"app!=web", "app!=web"},
      {"  app = web , tier  !=  db ", "app=web,tier!=db"},
      {"tier in (b, a),app", "app,tier in (a,b)"},
      {"x notin (z)", "x notin (z)"},
      {"!canary", "!canary"},
      {"a,!b", "a,!b"},
      {"env in (prod,prod,dev)", "env in (dev,prod)"},
      {"example.com/role=db", "example.com/role=db"},
      {"a=", "a="},                // empty value is a valid label value
      {"a in (,x)", "a in (,x)"},  // empty elements stand for ""
      {"a in ()", "a in ()"},
      {"in=notin", "in=notin"},  // keywords are fine as keys and values
      {"a in(b)", "a in (b)"},
  };
  for (const auto& c : cases) {
    INFO(c.in);
    CHECK(canon(c.in) == c.out);
  }
}

TEST_CASE("label selector parse errors say what was wrong") {
  struct Case {
    const char* in;
    const char* err;
  };
  const Case cases[] = {
      {"a=b=c", "found '=', expected: ',' or 'end of string'"},
      {"a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"},
      {"a=b c", "found 'c', expected: ',' or 'end of string'"},
      {"a in b", "unable to parse requirement: found 'b' expected: '('"},
      {"a in (b", "unable to parse requirement: found '', expected: ',' or ')'"},
      {"a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"},
      {"a=(", "unable to parse requirement: found '(', expected: identifier"},
      {",a", "found ',', expected: !, identifier, or 'end of string'"},
      {"a,", "found '', expected: identifier after ','"},
      {"!a=b", "found '=', expected: ',' or 'end of string'"},
      {"!", "unable to parse requirement: found '', expected: identifier"},
      {"a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"},
  };
  for (const auto& c : cases) {
    INFO(c.in);
    auto sel = LabelSelector::parse(c.in);
    REQUIRE_FALSE(sel);
    CHECK(sel.status().code() == Code::kInvalid);
    CHECK(sel.status().message() == c.err);
  }
  auto bad_key = LabelSelector::parse("-app=web");
  REQUIRE_FALSE(bad_key);
  CHECK(bad_key.status().message().starts_with(
      "unable to parse requirement: invalid label key \"-app\": name part must consist of"));
  auto bad_value = LabelSelector::parse("app=we b");
  REQUIRE_FALSE(bad_value);
  auto bad_value2 = LabelSelector::parse("app=-web");
  REQUIRE_FALSE(bad_value2);
  CHECK(bad_value2.status().message().starts_with(
      "unable to parse requirement: invalid label value: \"-web\": at key: \"app\": a valid "
      "label must be an empty string"));
  CHECK_FALSE(LabelSelector::parse("a in (" + std::string(64, 'x') + ")"));
}

TEST_CASE("label selector matching, including absent keys") {
  auto m = [](std::string_view sel, const Labels& labels) {
    auto s = LabelSelector::parse(sel);
    REQUIRE(s);
    return s->matches(labels);
  };
  const Labels web{{"app", "web"}, {"tier", "fe"}};
  CHECK(m("", {}));
  CHECK(m("", web));
  CHECK(m("app=web", web));
  CHECK_FALSE(m("app=db", web));
  CHECK_FALSE(m("app=web", {}));
  CHECK(m("app!=db", web));
  CHECK_FALSE(m("app!=web", web));
  CHECK(m("app!=web", {}));  // absent key satisfies !=
  CHECK(m("app in (db,web)", web));
  CHECK_FALSE(m("app in (db)", web));
  CHECK_FALSE(m("app in (web)", {}));
  CHECK(m("app notin (db)", web));
  CHECK_FALSE(m("app notin (web)", web));
  CHECK(m("app notin (web)", {}));  // absent key satisfies notin
  CHECK(m("tier", web));
  CHECK_FALSE(m("canary", web));
  CHECK(m("!canary", web));
  CHECK_FALSE(m("!tier", web));
  CHECK(m("app=web,tier in (fe,be),!canary", web));
  CHECK_FALSE(m("app=web,tier=be", web));
  CHECK(m("a=", {{"a", ""}}));
  CHECK_FALSE(m("a=", {}));

  auto s = LabelSelector::parse("app=web");
  REQUIRE(s);
  CHECK(s->matches_json(json{{"app", "web"}, {"x", "y"}}));
  CHECK_FALSE(s->matches_json(nullptr));
  CHECK(LabelSelector().matches_json(nullptr));
  CHECK(LabelSelector().empty());
}

TEST_CASE("LabelSelector::from_json: matchLabels and matchExpressions") {
  auto sel = LabelSelector::from_json(json::parse(R"({
      "matchLabels": {"app": "web"},
      "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["fe", "be"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "zone", "operator": "Exists"}]})"),
                                      "spec.selector");
  REQUIRE(sel);
  CHECK(sel->to_string() == "app=web,!canary,env notin (dev),tier in (be,fe),zone");
  CHECK(sel->matches({{"app", "web"}, {"tier", "fe"}, {"zone", "a"}}));
  CHECK_FALSE(sel->matches({{"app", "web"}, {"tier", "fe"}}));
  CHECK_FALSE(sel->matches({{"app", "web"}, {"tier", "fe"}, {"zone", "a"}, {"canary", "1"}}));
  CHECK_FALSE(sel->matches({{"app", "web"}, {"tier", "fe"}, {"zone", "a"}, {"env", "dev"}}));

  auto everything = LabelSelector::from_json(json::object());
  REQUIRE(everything);
  CHECK(everything->empty());
  auto null_sel = LabelSelector::from_json(nullptr);
  REQUIRE(null_sel);
  CHECK(null_sel->matches({}));
}

TEST_CASE("LabelSelector::from_json errors carry field paths") {
  auto check_err = [](const char* j, const std::string& want) {
    INFO(j);
    auto sel = LabelSelector::from_json(json::parse(j), "spec.selector");
    REQUIRE_FALSE(sel);
    CHECK(sel.status().code() == Code::kInvalid);
    CHECK(sel.status().message() == want);
  };
  check_err(R"({"matchExpressions":[{"key":"a","operator":"In"}]})",
            "spec.selector.matchExpressions[0].values: Required value: must be specified when "
            "`operator` is 'In' or 'NotIn'");
  check_err(R"({"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]})",
            "spec.selector.matchExpressions[0].values: Forbidden: may not be specified when "
            "`operator` is 'Exists' or 'DoesNotExist'");
  check_err(R"({"matchExpressions":[{"key":"a","operator":"In","values":["x"]},
                                    {"key":"b","operator":"Equals","values":["x"]}]})",
            "spec.selector.matchExpressions[1].operator: Invalid value: \"Equals\": not a valid "
            "selector operator");

  FieldErrors errs;
  LabelSelector::validate_json(json::parse(R"({"matchLabels":{"bad key":"v","k":"-v"},
      "matchExpressions":[{"key":"","operator":"NotIn","values":["ok","-no"]}]})"),
                               Path("spec.selector"), errs);
  REQUIRE(errs.size() == 5);
  CHECK(errs[0].field == "spec.selector.matchLabels");
  CHECK(errs[0].value == "\"bad key\"");
  CHECK(errs[1].field == "spec.selector.matchLabels");
  CHECK(errs[1].value == "\"-v\"");
  CHECK(errs[2].field == "spec.selector.matchExpressions[0].key");
  CHECK(errs[2].detail == "name part must be non-empty");
  CHECK(errs[4].field == "spec.selector.matchExpressions[0].values[1]");

  errs.clear();
  LabelSelector::validate_json(json::parse(R"({"matchLabels":{"a":1}})"), Path("sel"), errs);
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].field == "sel.matchLabels[a]");
  CHECK(errs[0].type == ErrorType::kTypeInvalid);
}

std::optional<std::string> pod_field(std::string_view f) {
  if (f == "metadata.name") return "web-1";
  if (f == "metadata.namespace") return "default";
  if (f == "spec.nodeName") return "";
  if (f == "status.phase") return "Running";
  return std::nullopt;
}

TEST_CASE("field selectors parse, match and print like Kubernetes'") {
  auto m = [](std::string_view s) {
    auto sel = FieldSelector::parse(s);
    REQUIRE(sel);
    return sel->matches(pod_field);
  };
  CHECK(m(""));
  CHECK(m("metadata.name=web-1"));
  CHECK(m("metadata.name==web-1"));
  CHECK_FALSE(m("metadata.name!=web-1"));
  CHECK(m("metadata.name=web-1,status.phase!=Pending"));
  CHECK_FALSE(m("metadata.name=web-1,status.phase=Pending"));
  CHECK(m("spec.nodeName="));  // unscheduled pods, as the scheduler asks for them
  CHECK_FALSE(m("spec.nodeName!="));
  CHECK_FALSE(m("spec.unknown=x"));

  auto sel = FieldSelector::parse("status.phase!=Failed,metadata.name==web-1");
  REQUIRE(sel);
  CHECK(sel->to_string() == "metadata.name=web-1,status.phase!=Failed");
  CHECK(sel->exact("metadata.name") == "web-1");
  CHECK(sel->exact("status.phase") == std::nullopt);
  CHECK(sel->unsupported_field(pod_field) == std::nullopt);
  auto unk = FieldSelector::parse("metadata.name=a,spec.bogus=b");
  REQUIRE(unk);
  CHECK(unk->unsupported_field(pod_field) == "spec.bogus");

  auto esc = FieldSelector::parse(R"(metadata.name=a\,b\=c\\d)");
  REQUIRE(esc);
  REQUIRE(esc->requirements().size() == 1);
  CHECK(esc->requirements()[0].values[0] == R"(a,b=c\d)");
  CHECK(esc->to_string() == R"(metadata.name=a\,b\=c\\d)");

  auto bad = FieldSelector::parse("metadata.name");
  REQUIRE_FALSE(bad);
  CHECK(bad.status().message() ==
        "invalid selector: 'metadata.name'; can't understand 'metadata.name'");
  auto bad_esc = FieldSelector::parse(R"(a=b\x)");
  REQUIRE_FALSE(bad_esc);
  CHECK(bad_esc.status().message() == "invalid field selector: invalid escape sequence: \\x");
  auto unescaped = FieldSelector::parse("a=b=c");
  REQUIRE_FALSE(unescaped);
  CHECK(unescaped.status().message() == "invalid field selector: unescaped character in value: =");
  CHECK_FALSE(FieldSelector::parse(R"(a=b\)"));
}

}  // namespace
}  // namespace skiff::proto
