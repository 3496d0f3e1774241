#include "netagent/netagent.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace skiff;
using namespace skiff::netagent;
using json = nlohmann::json;

namespace {

json node(const std::string& name, const std::string& cidr, const std::string& ip,
          json annotations = json::object()) {
  json n = {{"metadata", {{"name", name}, {"annotations", annotations}}},
            {"spec", json::object()},
            {"status", {{"addresses", json::array({{{"type", "Hostname"}, {"address", name}}})}}}};
  if (!cidr.empty()) n["spec"]["podCIDR"] = cidr;
  if (!ip.empty()) n["status"]["addresses"].push_back({{"type", "InternalIP"}, {"address", ip}});
  return n;
}

}  // namespace

TEST_CASE("node facts come from spec, status and annotations") {
  auto f = node_facts(node("b", "10.244.2.0/24", "10.250.8.12",
                           {{kAnnotationBackend, "vxlan"},
                            {kAnnotationUnderlayIp, "10.250.8.12"},
                            {kAnnotationVtepMac, "0a:00:00:00:00:bb"}}));
  CHECK(f.name == "b");
  CHECK(f.pod_cidr == "10.244.2.0/24");
  CHECK(f.internal_ip == "10.250.8.12");
  CHECK(f.underlay_ip == "10.250.8.12");
  CHECK(f.vtep_mac == "0a:00:00:00:00:bb");
  auto p = peer_of(f, overlay::Backend::kVxlan);
  REQUIRE(p);
  CHECK(p->pod_cidr.str() == "10.244.2.0/24");
  CHECK(p->underlay.str() == "10.250.8.12");
  // Garbage never throws: a wrong type is an absent field.
  json bad = {{"metadata", {{"name", 5}, {"annotations", "x"}}}, {"status", {{"addresses", 3}}}};
  auto g = node_facts(bad);
  CHECK(g.name.empty());
  CHECK(g.internal_ip.empty());
}

TEST_CASE("nodes missing data are not peers, with a reason") {
  auto no_cidr = peer_of(node_facts(node("c", "", "10.250.8.13")), overlay::Backend::kVxlan);
  CHECK(no_cidr.status().message() == "no spec.podCIDR yet");
  auto no_ann =
      peer_of(node_facts(node("c", "10.244.3.0/24", "10.250.8.13")), overlay::Backend::kVxlan);
  CHECK(no_ann.status().message().find("no skiff.io/underlay-ip") == 0);
  json hg = {{kAnnotationBackend, "host-gw"}, {kAnnotationUnderlayIp, "10.250.8.13"}};
  auto no_mac = peer_of(node_facts(node("c", "10.244.3.0/24", "", hg)), overlay::Backend::kVxlan);
  CHECK(no_mac.status().message() == "no skiff.io/vtep-mac annotation (its backend is host-gw)");
  CHECK(peer_of(node_facts(node("c", "10.244.3.0/24", "", hg)), overlay::Backend::kHostGw));
  json bad_ip = {{kAnnotationUnderlayIp, "10.250.8"}};
  auto b = peer_of(node_facts(node("c", "10.244.3.0/24", "", bad_ip)), overlay::Backend::kHostGw);
  CHECK(b.status().code() == Code::kInvalid);
  auto bc = peer_of(node_facts(node("c", "10.244.3.0/33", "")), overlay::Backend::kHostGw);
  CHECK(bc.status().message().find("not an IPv4 CIDR") != std::string::npos);
}

TEST_CASE("the annotation patch says only what differs") {
  auto self = node_facts(node("a", "10.244.1.0/24", "10.250.8.11"));
  auto p = annotation_patch(self, overlay::Backend::kVxlan, "10.250.8.11", "0a:00:00:00:00:aa");
  REQUIRE(p);
  CHECK((*p)["metadata"]["annotations"] == json({{kAnnotationBackend, "vxlan"},
                                                 {kAnnotationUnderlayIp, "10.250.8.11"},
                                                 {kAnnotationVtepMac, "0a:00:00:00:00:aa"}}));
  auto done = node_facts(node("a", "10.244.1.0/24", "10.250.8.11",
                              {{kAnnotationBackend, "vxlan"},
                               {kAnnotationUnderlayIp, "10.250.8.11"},
                               {kAnnotationVtepMac, "0a:00:00:00:00:aa"}}));
  CHECK_FALSE(annotation_patch(done, overlay::Backend::kVxlan, "10.250.8.11", "0a:00:00:00:00:aa"));
  // host-gw: the VTEP MAC annotation is removed (null in a merge patch).
  auto hg = annotation_patch(done, overlay::Backend::kHostGw, "10.250.8.11", "");
  REQUIRE(hg);
  CHECK((*hg)["metadata"]["annotations"][kAnnotationBackend] == "host-gw");
  CHECK((*hg)["metadata"]["annotations"][kAnnotationVtepMac].is_null());
  CHECK_FALSE((*hg)["metadata"]["annotations"].contains(kAnnotationUnderlayIp));
}
