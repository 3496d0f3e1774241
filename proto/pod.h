// core/v1 Pod and the container types it is made of, with Kubernetes' JSON names, omitempty
// rules and patch strategies. Defaulting, validation, Table columns and field-selector fields
// live in pod.cc; pod_resource() is registered in registry.cc.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/intstr.h"
#include "proto/meta.h"
#include "proto/quantity.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

struct ContainerPort {
  std::string name;
  int32_t host_port = 0;
  int32_t container_port = 0;
  std::string protocol;
  std::string host_ip;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("hostPort", host_port);
    v("containerPort", container_port, kAlways);
    v("protocol", protocol);
    v("hostIP", host_ip);
  }
};

struct ObjectFieldSelector {
  std::string api_version;
  std::string field_path;
  template <class V>
  void visit(V& v) {
    v("apiVersion", api_version);
    v("fieldPath", field_path, kAlways);
  }
};

struct ResourceFieldSelector {
  std::string container_name;
  std::string resource;
  Quantity divisor;
  template <class V>
  void visit(V& v) {
    v("containerName", container_name);
    v("resource", resource, kAlways);
    v("divisor", divisor);
  }
};

// ConfigMapKeySelector and SecretKeySelector have the same shape.
struct KeySelector {
  std::string name;
  std::string key;
  std::optional<bool> optional;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("key", key, kAlways);
    v("optional", optional);
  }
};

struct EnvVarSource {
  std::optional<ObjectFieldSelector> field_ref;
  std::optional<ResourceFieldSelector> resource_field_ref;
  std::optional<KeySelector> config_map_key_ref;
  std::optional<KeySelector> secret_key_ref;
  template <class V>
  void visit(V& v) {
    v("fieldRef", field_ref);
    v("resourceFieldRef", resource_field_ref);
    v("configMapKeyRef", config_map_key_ref);
    v("secretKeyRef", secret_key_ref);
  }
};

struct EnvVar {
  std::string name;
  std::string value;
  std::optional<EnvVarSource> value_from;
  template <class V>
  void visit(V& v) {
    v("name", name, kAlways);
    v("value", value);
    v("valueFrom", value_from);
  }
};

// ConfigMapEnvSource and SecretEnvSource have the same shape.
struct EnvRefSource {
  std::string name;
  std::optional<bool> optional;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("optional", optional);
  }
};

struct EnvFromSource {
  std::string prefix;
  std::optional<EnvRefSource> config_map_ref;
  std::optional<EnvRefSource> secret_ref;
  template <class V>
  void visit(V& v) {
    v("prefix", prefix);
    v("configMapRef", config_map_ref);
    v("secretRef", secret_ref);
  }
};

using ResourceList = std::map<std::string, Quantity>;

struct ResourceRequirements {
  ResourceList limits;
  ResourceList requests;
  template <class V>
  void visit(V& v) {
    v("limits", limits);
    v("requests", requests);
  }
};

struct VolumeMount {
  std::string name;
  bool read_only = false;
  std::string mount_path;
  std::string sub_path;
  std::optional<std::string> mount_propagation;
  std::string sub_path_expr;
  template <class V>
  void visit(V& v) {
    v("name", name, kAlways);
    v("readOnly", read_only);
    v("mountPath", mount_path, kAlways);
    v("subPath", sub_path);
    v("mountPropagation", mount_propagation);
    v("subPathExpr", sub_path_expr);
  }
};

struct ExecAction {
  std::vector<std::string> command;
  template <class V>
  void visit(V& v) {
    v("command", command);
  }
};

struct HTTPHeader {
  std::string name, value;
  template <class V>
  void visit(V& v) {
    v("name", name, kAlways);
    v("value", value, kAlways);
  }
};

struct HTTPGetAction {
  std::string path;
  IntOrString port;
  std::string host;
  std::string scheme;
  std::vector<HTTPHeader> http_headers;
  template <class V>
  void visit(V& v) {
    v("path", path);
    v("port", port, kAlways);
    v("host", host);
    v("scheme", scheme);
    v("httpHeaders", http_headers);
  }
};

struct TCPSocketAction {
  IntOrString port;
  std::string host;
  template <class V>
  void visit(V& v) {
    v("port", port, kAlways);
    v("host", host);
  }
};

// ProbeHandler and LifecycleHandler: exactly one action.
struct Handler {
  std::optional<ExecAction> exec;
  std::optional<HTTPGetAction> http_get;
  std::optional<TCPSocketAction> tcp_socket;
  template <class V>
  void visit(V& v) {
    v("exec", exec);
    v("httpGet", http_get);
    v("tcpSocket", tcp_socket);
  }
};

struct Probe {
  Handler handler;  // inline in Go
  int32_t initial_delay_seconds = 0;
  int32_t timeout_seconds = 0;
  int32_t period_seconds = 0;
  int32_t success_threshold = 0;
  int32_t failure_threshold = 0;
  std::optional<int64_t> termination_grace_period_seconds;
  template <class V>
  void visit(V& v) {
    handler.visit(v);
    v("initialDelaySeconds", initial_delay_seconds);
    v("timeoutSeconds", timeout_seconds);
    v("periodSeconds", period_seconds);
    v("successThreshold", success_threshold);
    v("failureThreshold", failure_threshold);
    v("terminationGracePeriodSeconds", termination_grace_period_seconds);
  }
};

struct Lifecycle {
  std::optional<Handler> post_start;
  std::optional<Handler> pre_stop;
  template <class V>
  void visit(V& v) {
    v("postStart", post_start);
    v("preStop", pre_stop);
  }
};

struct Capabilities {
  std::vector<std::string> add, drop;
  template <class V>
  void visit(V& v) {
    v("add", add);
    v("drop", drop);
  }
};

struct SecurityContext {
  std::optional<Capabilities> capabilities;
  std::optional<bool> privileged;
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::optional<bool> run_as_non_root;
  std::optional<bool> read_only_root_filesystem;
  std::optional<bool> allow_privilege_escalation;
  json se_linux_options, seccomp_profile;  // passed through, not interpreted
  template <class V>
  void visit(V& v) {
    v("capabilities", capabilities);
    v("privileged", privileged);
    v("seLinuxOptions", se_linux_options);
    v("runAsUser", run_as_user);
    v("runAsGroup", run_as_group);
    v("runAsNonRoot", run_as_non_root);
    v("readOnlyRootFilesystem", read_only_root_filesystem);
    v("allowPrivilegeEscalation", allow_privilege_escalation);
    v("seccompProfile", seccomp_profile);
  }
};

struct Container {
  std::string name;
  std::string image;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::string working_dir;
  std::vector<ContainerPort> ports;
  std::vector<EnvFromSource> env_from;
  std::vector<EnvVar> env;
  ResourceRequirements resources;
  std::vector<VolumeMount> volume_mounts;
  std::optional<Probe> liveness_probe, readiness_probe, startup_probe;
  std::optional<Lifecycle> lifecycle;
  std::string termination_message_path;
  std::string termination_message_policy;
  std::string image_pull_policy;
  std::optional<SecurityContext> security_context;
  bool stdin_ = false, stdin_once = false, tty = false;
  template <class V>
  void visit(V& v) {
    v("name", name, kAlways);
    v("image", image);
    v("command", command);
    v("args", args);
    v("workingDir", working_dir);
    v("ports", ports, merge_by("containerPort"));
    v("envFrom", env_from);
    v("env", env, merge_by("name"));
    v("resources", resources);
    v("volumeMounts", volume_mounts, merge_by("mountPath"));
    v("livenessProbe", liveness_probe);
    v("readinessProbe", readiness_probe);
    v("startupProbe", startup_probe);
    v("lifecycle", lifecycle);
    v("terminationMessagePath", termination_message_path);
    v("terminationMessagePolicy", termination_message_policy);
    v("imagePullPolicy", image_pull_policy);
    v("securityContext", security_context);
    v("stdin", stdin_);
    v("stdinOnce", stdin_once);
    v("tty", tty);
  }
};

struct KeyToPath {
  std::string key, path;
  std::optional<int32_t> mode;
  template <class V>
  void visit(V& v) {
    v("key", key, kAlways);
    v("path", path, kAlways);
    v("mode", mode);
  }
};

struct EmptyDirVolumeSource {
  std::string medium;
  std::optional<Quantity> size_limit;
  template <class V>
  void visit(V& v) {
    v("medium", medium);
    v("sizeLimit", size_limit);
  }
};

struct HostPathVolumeSource {
  std::string path;
  std::optional<std::string> type;
  template <class V>
  void visit(V& v) {
    v("path", path, kAlways);
    v("type", type);
  }
};

struct ConfigMapVolumeSource {
  std::string name;
  std::vector<KeyToPath> items;
  std::optional<int32_t> default_mode;
  std::optional<bool> optional;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("items", items);
    v("defaultMode", default_mode);
    v("optional", optional);
  }
};

struct SecretVolumeSource {
  std::string secret_name;
  std::vector<KeyToPath> items;
  std::optional<int32_t> default_mode;
  std::optional<bool> optional;
  template <class V>
  void visit(V& v) {
    v("secretName", secret_name);
    v("items", items);
    v("defaultMode", default_mode);
    v("optional", optional);
  }
};

struct PersistentVolumeClaimVolumeSource {
  std::string claim_name;
  bool read_only = false;
  template <class V>
  void visit(V& v) {
    v("claimName", claim_name, kAlways);
    v("readOnly", read_only);
  }
};

struct Volume {
  std::string name;
  std::optional<EmptyDirVolumeSource> empty_dir;
  std::optional<HostPathVolumeSource> host_path;
  std::optional<ConfigMapVolumeSource> config_map;
  std::optional<SecretVolumeSource> secret;
  std::optional<PersistentVolumeClaimVolumeSource> persistent_volume_claim;
  json projected, downward_api;  // passed through, not interpreted
  template <class V>
  void visit(V& v) {
    v("name", name, kAlways);
    v("emptyDir", empty_dir);
    v("hostPath", host_path);
    v("configMap", config_map);
    v("secret", secret);
    v("persistentVolumeClaim", persistent_volume_claim);
    v("projected", projected);
    v("downwardAPI", downward_api);
  }
};

struct NodeSelectorRequirement {
  std::string key, op;
  std::vector<std::string> values;
  template <class V>
  void visit(V& v) {
    v("key", key, kAlways);
    v("operator", op, kAlways);
    v("values", values);
  }
};

struct NodeSelectorTerm {
  std::vector<NodeSelectorRequirement> match_expressions, match_fields;
  template <class V>
  void visit(V& v) {
    v("matchExpressions", match_expressions);
    v("matchFields", match_fields);
  }
};

struct NodeSelector {
  std::vector<NodeSelectorTerm> node_selector_terms;
  template <class V>
  void visit(V& v) {
    v("nodeSelectorTerms", node_selector_terms, kAlways);
  }
};

struct PreferredSchedulingTerm {
  int32_t weight = 0;
  NodeSelectorTerm preference;
  template <class V>
  void visit(V& v) {
    v("weight", weight, kAlways);
    v("preference", preference, kAlways);
  }
};

struct NodeAffinity {
  std::optional<NodeSelector> required;
  std::vector<PreferredSchedulingTerm> preferred;
  template <class V>
  void visit(V& v) {
    v("requiredDuringSchedulingIgnoredDuringExecution", required);
    v("preferredDuringSchedulingIgnoredDuringExecution", preferred);
  }
};

struct Affinity {
  std::optional<NodeAffinity> node_affinity;
  json pod_affinity, pod_anti_affinity;  // passed through, not interpreted yet
  template <class V>
  void visit(V& v) {
    v("nodeAffinity", node_affinity);
    v("podAffinity", pod_affinity);
    v("podAntiAffinity", pod_anti_affinity);
  }
};

struct Toleration {
  std::string key, op, value, effect;
  std::optional<int64_t> toleration_seconds;
  template <class V>
  void visit(V& v) {
    v("key", key);
    v("operator", op);
    v("value", value);
    v("effect", effect);
    v("tolerationSeconds", toleration_seconds);
  }
  bool operator==(const Toleration&) const = default;
};

struct PodSecurityContext {
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::optional<bool> run_as_non_root;
  std::vector<int64_t> supplemental_groups;
  std::optional<int64_t> fs_group;
  json se_linux_options, seccomp_profile, sysctls;  // passed through
  template <class V>
  void visit(V& v) {
    v("seLinuxOptions", se_linux_options);
    v("runAsUser", run_as_user);
    v("runAsGroup", run_as_group);
    v("runAsNonRoot", run_as_non_root);
    v("supplementalGroups", supplemental_groups);
    v("fsGroup", fs_group);
    v("sysctls", sysctls);
    v("seccompProfile", seccomp_profile);
  }
};

struct PodReadinessGate {
  std::string condition_type;
  template <class V>
  void visit(V& v) {
    v("conditionType", condition_type, kAlways);
  }
};

struct PodSpec {
  std::vector<Volume> volumes;
  std::vector<Container> init_containers;
  std::vector<Container> containers;
  std::string restart_policy;
  std::optional<int64_t> termination_grace_period_seconds;
  std::optional<int64_t> active_deadline_seconds;
  std::string dns_policy;
  std::map<std::string, std::string> node_selector;
  std::string service_account_name;
  std::string service_account;  // deprecated alias Kubernetes still writes
  std::optional<bool> automount_service_account_token;
  std::string node_name;
  bool host_network = false, host_pid = false, host_ipc = false;
  std::optional<bool> share_process_namespace;
  std::optional<PodSecurityContext> security_context;
  std::vector<LocalObjectReference> image_pull_secrets;
  std::string hostname;
  std::string subdomain;
  std::optional<Affinity> affinity;
  std::string scheduler_name;
  std::vector<Toleration> tolerations;
  std::string priority_class_name;
  std::optional<int32_t> priority;
  std::vector<PodReadinessGate> readiness_gates;
  std::optional<std::string> runtime_class_name;
  std::optional<bool> enable_service_links;
  std::optional<std::string> preemption_policy;
  json host_aliases, dns_config, topology_spread_constraints, os, overhead;  // passed through
  template <class V>
  void visit(V& v) {
    v("volumes", volumes,
      FieldOpts{.merge_key = "name", .strategy = PatchStrategy::kMergeRetainKeys});
    v("initContainers", init_containers, merge_by("name"));
    v("containers", containers, merge_by("name", true));
    v("restartPolicy", restart_policy);
    v("terminationGracePeriodSeconds", termination_grace_period_seconds);
    v("activeDeadlineSeconds", active_deadline_seconds);
    v("dnsPolicy", dns_policy);
    v("nodeSelector", node_selector);
    v("serviceAccountName", service_account_name);
    v("serviceAccount", service_account);
    v("automountServiceAccountToken", automount_service_account_token);
    v("nodeName", node_name);
    v("hostNetwork", host_network);
    v("hostPID", host_pid);
    v("hostIPC", host_ipc);
    v("shareProcessNamespace", share_process_namespace);
    v("securityContext", security_context);
    v("imagePullSecrets", image_pull_secrets, merge_by("name"));
    v("hostname", hostname);
    v("subdomain", subdomain);
    v("affinity", affinity);
    v("schedulerName", scheduler_name);
    v("tolerations", tolerations);
    v("hostAliases", host_aliases);
    v("priorityClassName", priority_class_name);
    v("priority", priority);
    v("dnsConfig", dns_config);
    v("readinessGates", readiness_gates);
    v("runtimeClassName", runtime_class_name);
    v("enableServiceLinks", enable_service_links);
    v("preemptionPolicy", preemption_policy);
    v("overhead", overhead);
    v("topologySpreadConstraints", topology_spread_constraints);
    v("os", os);
  }
};

struct PodCondition {
  std::string type, status;
  Time last_probe_time, last_transition_time;
  std::string reason, message;
  template <class V>
  void visit(V& v) {
    v("type", type, kAlways);
    v("status", status, kAlways);
    v("lastProbeTime", last_probe_time);
    v("lastTransitionTime", last_transition_time);
    v("reason", reason);
    v("message", message);
  }
};

struct ContainerStateWaiting {
  std::string reason, message;
  template <class V>
  void visit(V& v) {
    v("reason", reason);
    v("message", message);
  }
};

struct ContainerStateRunning {
  Time started_at;
  template <class V>
  void visit(V& v) {
    v("startedAt", started_at);
  }
};

struct ContainerStateTerminated {
  int32_t exit_code = 0;
  int32_t signal = 0;
  std::string reason, message;
  Time started_at, finished_at;
  std::string container_id;
  template <class V>
  void visit(V& v) {
    v("exitCode", exit_code, kAlways);
    v("signal", signal);
    v("reason", reason);
    v("message", message);
    v("startedAt", started_at);
    v("finishedAt", finished_at);
    v("containerID", container_id);
  }
};

struct ContainerState {
  std::optional<ContainerStateWaiting> waiting;
  std::optional<ContainerStateRunning> running;
  std::optional<ContainerStateTerminated> terminated;
  template <class V>
  void visit(V& v) {
    v("waiting", waiting);
    v("running", running);
    v("terminated", terminated);
  }
};

struct ContainerStatus {
  std::string name;
  ContainerState state, last_state;
  bool ready = false;
  int32_t restart_count = 0;
  std::string image, image_id, container_id;
  std::optional<bool> started;
  template <class V>
  void visit(V& v) {
    v("name", name, kAlways);
    v("state", state);
    v("lastState", last_state);
    v("ready", ready, kAlways);
    v("restartCount", restart_count, kAlways);
    v("image", image, kAlways);
    v("imageID", image_id, kAlways);
    v("containerID", container_id);
    v("started", started);
  }
};

struct PodIP {
  std::string ip;
  template <class V>
  void visit(V& v) {
    v("ip", ip);
  }
};

struct PodStatus {
  std::string phase;
  std::vector<PodCondition> conditions;
  std::string message, reason, nominated_node_name, host_ip;
  std::vector<PodIP> host_ips;
  std::string pod_ip;
  std::vector<PodIP> pod_ips;
  std::optional<Time> start_time;
  std::vector<ContainerStatus> init_container_statuses;
  std::vector<ContainerStatus> container_statuses;
  std::string qos_class;
  template <class V>
  void visit(V& v) {
    v("phase", phase);
    v("conditions", conditions, merge_by("type"));
    v("message", message);
    v("reason", reason);
    v("nominatedNodeName", nominated_node_name);
    v("hostIP", host_ip);
    v("hostIPs", host_ips, merge_by("ip"));
    v("podIP", pod_ip);
    v("podIPs", pod_ips, merge_by("ip"));
    v("startTime", start_time);
    v("initContainerStatuses", init_container_statuses);
    v("containerStatuses", container_statuses);
    v("qosClass", qos_class);
  }
};

struct Pod {
  TypeMeta type_meta;
  ObjectMeta metadata;
  PodSpec spec;
  PodStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// Defaults a pod as the API server does on create (restartPolicy, dnsPolicy, ports' protocol,
// imagePullPolicy, probe timings, ...).
void default_pod(Pod& pod);
// The Pod status column as kubectl computes it ("Running", "CrashLoopBackOff",
// "Init:0/1", "Terminating", ...).
std::string pod_status_reason(const Pod& pod);

ResourceType pod_resource();

}  // namespace skiff::proto
