// Turning a Pod's container into what the runtime runs: argv (command/args
// merged with the image's Entrypoint/Cmd), environment (envFrom, env,
// valueFrom, $(VAR) expansion), resources for the cgroups, and the hash that
// detects a changed container spec.
//
// Everything here is pure (no I/O beyond the lookups passed in) and follows
// Kubernetes' kubelet (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables,
// kuberuntime_container.go, third_party/forked/golang/expansion). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "kubelet/cgroups/cgroups.h"
#include "kubelet/images/image_store.h"
#include "kubelet/volumes/volumes.h"
#include "proto/pod.h"

namespace skiff::kubelet {

using EnvList = std::vector<std::pair<std::string, std::string>>;

// Kubernetes' $(VAR) expansion: "$(NAME)" becomes lookup(NAME) when it returns
// non-null, else stays literally "$(NAME)"; "$$" becomes "$"; an unterminated
// "$(" is kept as it is.
std::string expand_vars(std::string_view in,
                        const std::function<const std::string*(const std::string&)>& lookup);

// What the pod's environment refers to besides the pod itself.
struct EnvContext {
  std::string node_name;
  std::string pod_ip;
  std::string host_ip;
  // Node allocatable: what resourceFieldRef reports for a container without a
  // limit.
  int64_t node_cpu_millis = 0;
  int64_t node_memory_bytes = 0;
  // ConfigMap and Secret data of the pod's namespace (secrets decoded).
  // NotFound when absent.
  volumes::Sources sources;
};

// The container's environment in Kubernetes' order (envFrom, then env), each
// value expanded against the variables defined before it. Errors are
// Kubernetes' CreateContainerConfigError messages: `configmap "x" not found`,
// `couldn't find key k in ConfigMap ns/x`, ...
[[nodiscard]] Result<EnvList> container_env(const proto::Pod& pod, const proto::Container& c,
                                            const EnvContext& ctx);

// The value of a downward-API field path (metadata.name, metadata.labels['k'],
// status.podIP,
// ...). Invalid for unsupported paths.
[[nodiscard]] Result<std::string> field_ref_value(const proto::Pod& pod, const std::string& path,
                                                  const EnvContext& ctx);

// argv: `command` replaces the image Entrypoint and drops its Cmd; `args`
// replace Cmd. $(VAR) in command and args expand against `env` (the container's
// variables, not the image's).
std::vector<std::string> container_argv(const proto::Container& c, const images::ImageConfig& img,
                                        const EnvList& env);

// The image's "NAME=value" list with the container's variables overriding
// same-named ones (in place) and new ones appended, as a container runtime
// merges them.
std::vector<std::string> merge_env(const std::vector<std::string>& image_env, const EnvList& env);

// cgroup limits of one container, and of the pod (cpu shares from the summed
// requests; CPU quota and memory limit only when every container sets that
// limit, as Kubernetes does).
cgroups::Resources container_resources(const proto::Container& c);
cgroups::Resources pod_resources(const proto::Pod& pod);

// A stable hash of the container spec (16 hex digits); a running container
// whose hash label differs is restarted.
std::string container_hash(const proto::Container& c);

// IfNotPresent / Always / Never; the default when unset: Always for ":latest"
// or no tag.
std::string effective_pull_policy(const proto::Container& c);

}  // namespace skiff::kubelet
