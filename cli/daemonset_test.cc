#include "cli/daemonset.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace skiff::cli {
namespace {

json daemonset() {
  return json::parse(R"({
    "metadata": {"name": "fluentd", "namespace": "kube-system", "uid": "ds-uid",
                 "labels": {"k8s-app": "fluentd-logging"},
                 "annotations": {"deprecated.daemonset.template.generation": "1"}},
    "spec": {"selector": {"matchLabels": {"name": "fluentd"}},
             "template": {"metadata": {"labels": {"name": "fluentd"}},
                          "spec": {"containers": [{"name": "fluentd", "image": "fluentd:v5"}]}}},
    "status": {"currentNumberScheduled": 2, "numberMisscheduled": 1,
               "desiredNumberScheduled": 3, "numberReady": 2,
               "updatedNumberScheduled": 2, "numberAvailable": 1}})");
}

}  // namespace

TEST_CASE("describe daemonset: kubectl 1.32's layout") {
  json pods = json::array();
  for (const char* phase : {"Running", "Pending", "Succeeded", "Failed", "Running"})
    pods.push_back(
        {{"metadata", {{"ownerReferences", {{{"uid", "ds-uid"}, {"controller", true}}}}}},
         {"status", {{"phase", phase}}}});
  pods.push_back({{"metadata", json::object()}, {"status", {{"phase", "Running"}}}});  // orphan
  DescribeWriter w;
  describe_daemonset(w, daemonset(), count_pods(pods, "ds-uid"));
  CHECK(w.flush() ==
        "Name:           fluentd\n"
        "Selector:       name=fluentd\n"
        "Node-Selector:  <none>\n"
        "Labels:         k8s-app=fluentd-logging\n"
        "Annotations:    deprecated.daemonset.template.generation: 1\n"
        "Desired Number of Nodes Scheduled: 3\n"
        "Current Number of Nodes Scheduled: 2\n"
        "Number of Nodes Scheduled with Up-to-date Pods: 2\n"
        "Number of Nodes Scheduled with Available Pods: 1\n"
        "Number of Nodes Misscheduled: 1\n"
        "Pods Status:  2 Running / 1 Waiting / 1 Succeeded / 1 Failed\n"
        "Pod Template:\n"
        "  Labels:  name=fluentd\n"
        "  Containers:\n"
        "   fluentd:\n"
        "    Image:         fluentd:v5\n"
        "    Port:          <none>\n"
        "    Host Port:     <none>\n"
        "    Environment:   <none>\n"
        "    Mounts:        <none>\n"
        "  Volumes:         <none>\n"
        "  Node-Selectors:  <none>\n"
        "  Tolerations:     <none>\n");
}

TEST_CASE("describe daemonset: node selector, empty status, pod listing error") {
  json ds = daemonset();
  ds["spec"]["template"]["spec"]["nodeSelector"] = {{"kubernetes.io/os", "linux"}, {"disk", "ssd"}};
  ds.erase("status");
  DescribeWriter w;
  describe_daemonset(w, ds, PodCounts{}, "connection refused");
  std::string text = w.flush();
  CHECK(text.find("Node-Selector:  disk=ssd,kubernetes.io/os=linux\n") != std::string::npos);
  CHECK(text.find("Desired Number of Nodes Scheduled: 0\n") != std::string::npos);
  CHECK(text.find("Number of Nodes Misscheduled: 0\n") != std::string::npos);
  CHECK(text.find("Pods Status:  error in fetching pods: connection refused\n") !=
        std::string::npos);
  CHECK(text.find("Namespace:") == std::string::npos);  // kubectl prints none for DaemonSets
}

}  // namespace skiff::cli
