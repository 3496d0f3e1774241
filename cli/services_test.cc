#include "cli/services.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace skiff::cli {
namespace {

json deployment() {
  return json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
      "selector": {"matchLabels": {"app": "web", "tier": "front"}},
      "template": {
        "metadata": {"labels": {"app": "web", "tier": "front"}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [
          {"containerPort": 80, "protocol": "TCP"},
          {"containerPort": 53, "protocol": "UDP"}]}]}}}})");
}

}  // namespace

TEST_CASE("expose: the Service kubectl expose generates") {
  ExposeOptions o;
  o.port = "8000";
  o.target_port = "80";
  o.type = "NodePort";
  auto svc = service_for_expose(deployment(), o);
  REQUIRE(svc.is_ok());
  CHECK(*svc == json{{"apiVersion", "v1"},
                     {"kind", "Service"},
                     {"metadata", {{"name", "web"}, {"labels", {{"app", "web"}}}}},
                     {"spec",
                      {{"ports", {{{"port", 8000}, {"protocol", "TCP"}, {"targetPort", 80}}}},
                       {"selector", {{"app", "web"}, {"tier", "front"}}},
                       {"type", "NodePort"}}}});

  SECTION("no --port: every container port, named port-N, protocols from the containers") {
    ExposeOptions none;
    auto s = service_for_expose(deployment(), none);
    REQUIRE(s.is_ok());
    CHECK((*s)["spec"]["ports"] ==
          json{{{"name", "port-1"}, {"port", 80}, {"protocol", "TCP"}, {"targetPort", 80}},
               {{"name", "port-2"}, {"port", 53}, {"protocol", "UDP"}, {"targetPort", 53}}});
  }
  SECTION("--port matching a UDP container port takes its protocol; named target port") {
    ExposeOptions u;
    u.port = "53";
    u.target_port = "dns";
    u.name = "dns";
    auto s = service_for_expose(deployment(), u);
    REQUIRE(s.is_ok());
    CHECK((*s)["metadata"]["name"] == "dns");
    CHECK((*s)["spec"]["ports"] ==
          json{{{"port", 53}, {"protocol", "UDP"}, {"targetPort", "dns"}}});
  }
  SECTION("--selector and --protocol win") {
    ExposeOptions u;
    u.port = "80";
    u.protocol = "SCTP";
    u.selector = "x=y";
    auto s = service_for_expose(deployment(), u);
    REQUIRE(s.is_ok());
    CHECK((*s)["spec"]["selector"] == json{{"x", "y"}});
    CHECK((*s)["spec"]["ports"][0]["protocol"] == "SCTP");
  }
  SECTION("errors in kubectl's words") {
    json d = deployment();
    d["spec"]["selector"]["matchExpressions"] =
        json::array({{{"key", "a"}, {"operator", "Exists"}}});
    auto s = service_for_expose(d, o);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.status().message().find("couldn't convert expressions") != std::string::npos);
    ExposeOptions bad;
    bad.port = "eighty";
    CHECK(service_for_expose(deployment(), bad).status().message() ==
          "strconv.Atoi: parsing \"eighty\": invalid syntax");
    json pod = {{"kind", "Pod"}, {"metadata", {{"name", "p"}}}, {"spec", json::object()}};
    CHECK(service_for_expose(pod, o).status().message() ==
          "couldn't retrieve selectors via --selector flag or introspection: the pod has no "
          "labels and cannot be exposed");
    CHECK(service_for_expose({{"kind", "Node"}}, o).status().message() == "cannot expose a Node");
    pod["metadata"]["labels"] = {{"app", "p"}};
    CHECK(service_for_expose(pod, ExposeOptions{}).status().message() ==
          "couldn't find port via --port flag or introspection");
  }
}

TEST_CASE("describe service: kubectl 1.32's layout") {
  json svc = {
      {"metadata",
       {{"name", "web"},
        {"namespace", "default"},
        {"labels", {{"app", "web"}}},
        {"annotations", json::object()}}},
      {"spec",
       {{"selector", {{"app", "web"}}},
        {"type", "NodePort"},
        {"clusterIP", "10.96.12.34"},
        {"clusterIPs", {"10.96.12.34"}},
        {"ipFamilies", {"IPv4"}},
        {"ipFamilyPolicy", "SingleStack"},
        {"ports",
         {{{"name", "http"},
           {"port", 80},
           {"protocol", "TCP"},
           {"targetPort", "http"},
           {"nodePort", 30080}},
          {{"name", "metrics"}, {"port", 9090}, {"protocol", "TCP"}, {"targetPort", 9090}}}},
        {"sessionAffinity", "None"},
        {"externalTrafficPolicy", "Cluster"},
        {"internalTrafficPolicy", "Cluster"}}}};
  json ep = {
      {"subsets",
       {{{"addresses",
          {{{"ip", "10.244.1.2"}},
           {{"ip", "10.244.1.3"}},
           {{"ip", "10.244.1.4"}},
           {{"ip", "10.244.1.5"}}}},
         {"ports", {{{"name", "http"}, {"port", 8080}}, {{"name", "metrics"}, {"port", 9090}}}}}}}};
  DescribeWriter w;
  describe_service(w, svc, nullptr, ep);
  CHECK(w.flush() ==
        "Name:                     web\n"
        "Namespace:                default\n"
        "Labels:                   app=web\n"
        "Annotations:              <none>\n"
        "Selector:                 app=web\n"
        "Type:                     NodePort\n"
        "IP Family Policy:         SingleStack\n"
        "IP Families:              IPv4\n"
        "IP:                       10.96.12.34\n"
        "IPs:                      10.96.12.34\n"
        "Port:                     http  80/TCP\n"
        "TargetPort:               http/TCP\n"
        "NodePort:                 http  30080/TCP\n"
        "Endpoints:                10.244.1.2:8080,10.244.1.3:8080,10.244.1.4:8080 + 1 more...\n"
        "Port:                     metrics  9090/TCP\n"
        "TargetPort:               9090/TCP\n"
        "Endpoints:                10.244.1.2:9090,10.244.1.3:9090,10.244.1.4:9090 + 1 more...\n"
        "Session Affinity:         None\n"
        "External Traffic Policy:  Cluster\n"
        "Internal Traffic Policy:  Cluster\n");

  CHECK(format_endpoints_for_port(json(), "") == "<none>");
  // kubectl 1.32's EndpointSlice form: not-ready endpoints skipped, unset conditions count.
  json slices = {{{"ports", {{{"name", "http"}, {"port", 8080}}}},
                  {"endpoints",
                   {{{"addresses", {"10.0.0.1"}}, {"conditions", {{"ready", true}}}},
                    {{"addresses", {"10.0.0.2"}}, {"conditions", {{"ready", false}}}},
                    {{"addresses", {"10.0.0.3"}}}}}}};
  CHECK(format_endpoint_slices_for_port(slices, "http") == "10.0.0.1:8080,10.0.0.3:8080");
  CHECK(format_endpoint_slices_for_port(slices, "") == "");
  CHECK(format_endpoint_slices_for_port(json::array(), "") == "<none>");
  CHECK(format_endpoints_for_port({{"subsets", {{{"addresses", {{{"ip", "10.0.0.1"}}}}}}}}, "x") ==
        "10.0.0.1");  // a headless Service's bare addresses
}

}  // namespace skiff::cli
