#include "cli/cli.h"

#include <catch2/catch.hpp>
#include <sstream>

#include "cli/printers.h"
#include "cli/tabwriter.h"

namespace skiff::cli {
namespace {

proto::ResourceType type(std::string group, std::string kind, std::string singular) {
  proto::ResourceType t;
  t.group = std::move(group);
  t.version = "v1";
  t.kind = std::move(kind);
  t.singular = std::move(singular);
  return t;
}

TEST_CASE("tabwriter: Go text/tabwriter column blocks") {
  TabWriter tw(6, 3);
  tw.write("NAME\tREADY\tAGE\nweb-1\t1/1\t5m\nx\t0/1\t10d\n");
  CHECK(tw.flush() ==
        "NAME    READY   AGE\n"
        "web-1   1/1     5m\n"
        "x       0/1     10d\n");
  // describe style: a line without tabs ends the block.
  TabWriter d(0, 2);
  d.write("Name:\tweb\nNamespace:\tdefault\nContainers:\n  web:\n    Image:\tnginx\n");
  CHECK(d.flush() ==
        "Name:       web\n"
        "Namespace:  default\n"
        "Containers:\n"
        "  web:\n"
        "    Image:  nginx\n");
}

TEST_CASE("printers: kubectl names and table layout") {
  auto deploy = type("apps", "Deployment", "deployment");
  auto pod = type("", "Pod", "pod");
  CHECK(kind_prefix(deploy) == "deployment.apps");
  CHECK(kind_prefix(pod) == "pod");

  json table = json::parse(R"({"kind":"Table","apiVersion":"meta.k8s.io/v1",
    "columnDefinitions":[{"name":"Name","format":"name"},{"name":"Status"},
                         {"name":"Restarts","type":"integer"},{"name":"IP","priority":1}],
    "rows":[{"cells":["web",  "Running",0,"10.1.0.5"],
             "object":{"kind":"PartialObjectMetadata","metadata":{"name":"web",
                       "namespace":"prod","labels":{"b":"2","a":"1"}}}},
            {"cells":["db","Pending",3,null],"object":{"metadata":{"name":"db",
                       "namespace":"dev"}}}]})");
  TableOptions opts;
  Layout l = layout_table(table, table["columnDefinitions"], pod, opts);
  CHECK(l.header == std::vector<std::string>{"NAME", "STATUS", "RESTARTS"});
  REQUIRE(l.rows.size() == 2);
  CHECK(l.rows[1] == std::vector<std::string>{"db", "Pending", "3"});

  opts.wide = true;
  opts.with_namespace = true;
  opts.show_labels = true;
  opts.show_kind = true;
  l = layout_table(table, table["columnDefinitions"], pod, opts);
  CHECK(l.header ==
        std::vector<std::string>{"NAMESPACE", "NAME", "STATUS", "RESTARTS", "IP", "LABELS"});
  CHECK(l.rows[0] ==
        std::vector<std::string>{"prod", "pod/web", "Running", "0", "10.1.0.5", "a=1,b=2"});
  CHECK(l.rows[1][4] == "<none>");
  CHECK(l.rows[1][5] == "<none>");
}

TEST_CASE("printers: Go-compatible compact JSON for last-applied") {
  json j = {{"b", "<a&b>"}, {"a", {{"annotations", json::object()}}}};
  CHECK(go_json(j) == R"({"a":{"annotations":{}},"b":"\u003ca\u0026b\u003e"})");
}

TEST_CASE("cli: usage errors exit 1 without contacting a server") {
  std::istringstream in;
  std::ostringstream out, err;
  const char* argv[] = {"skiffctl", "frobnicate"};
  CHECK(run(2, const_cast<char**>(argv), in, out, err) == 1);
  const char* argv2[] = {"skiffctl", "version", "--client"};
  CHECK(run(3, const_cast<char**>(argv2), in, out, err) == 0);
  CHECK(out.str().find("Client Version:") != std::string::npos);
}

}  // namespace
}  // namespace skiff::cli
