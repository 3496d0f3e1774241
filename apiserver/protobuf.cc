#include "apiserver/protobuf.h"

#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base64.h"
#include "common/status.h"

namespace skiff::apiserver {
namespace {

// ---- Schemas. Field numbers are k8s.io/api's generated.proto (go-to-protobuf output); JSON
// names are the Go struct tags. Only what skiff's objects carry is listed: an unlisted field is
// skipped like any unknown protobuf field.

enum class T {
  kString,      // wire 2
  kBytes,       // wire 2, base64 in JSON ([]byte)
  kInt32,       // wire 0
  kInt64,       // wire 0
  kBool,        // wire 0
  kMessage,     // wire 2, Field::msg
  kIntOrStr,    // wire 2, intstr.IntOrString {type=1, intVal=2, strVal=3}
  kQuantity,    // wire 2, resource.Quantity {string=1}
  kTime,        // wire 2, metav1.Time {seconds=1, nanos=2}
  kMapString,   // map<string, string>
  kMapBytes,    // map<string, bytes>
  kMapQuantity  // map<string, Quantity>
};

// go-to-protobuf writes every non-pointer field, zero or not; Go's JSON drops zero ones
// (omitempty). So zero scalars are dropped unless the Go field is a pointer or has no omitempty
// (kKeep), where an explicit 0/false/"" means something.
constexpr unsigned kRepeated = 1;
constexpr unsigned kKeep = 2;
// An embedded Go struct (`json:",inline"`, e.g. ConfigMapKeySelector's LocalObjectReference,
// Volume's VolumeSource): a nested message on the wire, its fields merged into the parent in JSON.
constexpr unsigned kInline = 4;

struct Field {
  int number;
  const char* name;
  T type;
  unsigned flags = 0;
  const char* msg = nullptr;  // kMessage: the schema's name
};

using Schema = std::vector<Field>;

Field S(int n, const char* name, unsigned fl = 0) { return {n, name, T::kString, fl}; }
Field I32(int n, const char* name, unsigned fl = 0) { return {n, name, T::kInt32, fl}; }
Field I64(int n, const char* name, unsigned fl = 0) { return {n, name, T::kInt64, fl}; }
Field B(int n, const char* name, unsigned fl = 0) { return {n, name, T::kBool, fl}; }
Field M(int n, const char* name, const char* msg, unsigned fl = 0) {
  return {n, name, T::kMessage, fl, msg};
}
Field R(int n, const char* name, const char* msg) {  // repeated message
  return {n, name, T::kMessage, kRepeated, msg};
}
Field RS(int n, const char* name) { return {n, name, T::kString, kRepeated}; }
Field IOS(int n, const char* name, unsigned fl = 0) { return {n, name, T::kIntOrStr, fl}; }
Field Q(int n, const char* name, unsigned fl = 0) { return {n, name, T::kQuantity, fl}; }
Field TM(int n, const char* name) { return {n, name, T::kTime}; }
Field MAP(int n, const char* name, T t = T::kMapString) { return {n, name, t}; }

// The kinds a body may carry: apiVersion/kind; the top-level schema has the kind's name.
constexpr std::pair<std::string_view, std::string_view> kKinds[] = {
    {"v1", "Service"},
    {"v1", "ConfigMap"},
    {"v1", "Secret"},
    {"v1", "Namespace"},
    {"v1", "ServiceAccount"},
    {"apps/v1", "Deployment"},
    {"batch/v1", "Job"},
    {"batch/v1", "CronJob"},
    // kubectl create priorityclass (typed client)
    {"scheduling.k8s.io/v1", "PriorityClass"},
    // kubectl create role|clusterrole|rolebinding|clusterrolebinding (typed clients)
    {"rbac.authorization.k8s.io/v1", "Role"},
    {"rbac.authorization.k8s.io/v1", "ClusterRole"},
    {"rbac.authorization.k8s.io/v1", "RoleBinding"},
    {"rbac.authorization.k8s.io/v1", "ClusterRoleBinding"},
    // kubectl auth can-i / can-i --list / whoami (apiserver/reviews.h)
    {"authorization.k8s.io/v1", "SelfSubjectAccessReview"},
    {"authorization.k8s.io/v1", "SelfSubjectRulesReview"},
    {"authentication.k8s.io/v1", "SelfSubjectReview"},
    {"authentication.k8s.io/v1beta1", "SelfSubjectReview"},
    // kubectl create poddisruptionbudget (typed client)
    {"policy/v1", "PodDisruptionBudget"},
};

// Every message a table names, and every kind, has a table: a typo here is a bug of this file,
// caught on first use (every unit test) instead of surfacing as an odd answer to some request.
bool complete(const std::map<std::string, Schema, std::less<>>& s) {
  for (const auto& [name, fields] : s)
    for (const Field& f : fields)
      if (f.type == T::kMessage && s.find(std::string_view(f.msg)) == s.end()) return false;
  for (const auto& [v, k] : kKinds)
    if (s.find(k) == s.end()) return false;
  return true;
}

const std::map<std::string, Schema, std::less<>>& schemas() {
  static const auto* s = new std::map<std::string, Schema, std::less<>>{
      // k8s.io/apimachinery/pkg/apis/meta/v1
      {"ObjectMeta",
       {S(1, "name"), S(2, "generateName"), S(3, "namespace"), S(4, "selfLink"), S(5, "uid"),
        S(6, "resourceVersion"), I64(7, "generation"), TM(8, "creationTimestamp"),
        TM(9, "deletionTimestamp"), I64(10, "deletionGracePeriodSeconds", kKeep), MAP(11, "labels"),
        MAP(12, "annotations"), R(13, "ownerReferences", "OwnerReference"), RS(14, "finalizers")}},
      // Deletes from typed clients (`kubectl drain`): every field is a Go pointer, written only
      // when set, so explicit zeros stay.
      {"DeleteOptions",
       {I64(1, "gracePeriodSeconds", kKeep), M(2, "preconditions", "Preconditions"),
        B(3, "orphanDependents", kKeep), S(4, "propagationPolicy", kKeep), RS(5, "dryRun")}},
      {"Preconditions", {S(1, "uid", kKeep), S(2, "resourceVersion", kKeep)}},
      {"OwnerReference",
       {S(1, "kind", kKeep), S(3, "name", kKeep), S(4, "uid", kKeep), S(5, "apiVersion", kKeep),
        B(6, "controller", kKeep), B(7, "blockOwnerDeletion", kKeep)}},
      {"LabelSelector",
       {MAP(1, "matchLabels"), R(2, "matchExpressions", "LabelSelectorRequirement")}},
      {"LabelSelectorRequirement", {S(1, "key", kKeep), S(2, "operator", kKeep), RS(3, "values")}},

      // k8s.io/api/core/v1: objects
      {"Service", {M(1, "metadata", "ObjectMeta"), M(2, "spec", "ServiceSpec")}},
      {"ConfigMap",
       {M(1, "metadata", "ObjectMeta"), MAP(2, "data"), MAP(3, "binaryData", T::kMapBytes),
        B(4, "immutable", kKeep)}},
      {"Secret",
       {M(1, "metadata", "ObjectMeta"), MAP(2, "data", T::kMapBytes), S(3, "type"),
        MAP(4, "stringData"), B(5, "immutable", kKeep)}},
      {"Namespace", {M(1, "metadata", "ObjectMeta"), M(2, "spec", "NamespaceSpec")}},
      {"NamespaceSpec", {RS(1, "finalizers")}},
      {"ServiceAccount",
       {M(1, "metadata", "ObjectMeta"), R(2, "secrets", "ObjectReference"),
        R(3, "imagePullSecrets", "LocalObjectReference"),
        B(4, "automountServiceAccountToken", kKeep)}},
      {"ObjectReference",
       {S(1, "kind"), S(2, "namespace"), S(3, "name"), S(4, "uid"), S(5, "apiVersion"),
        S(6, "resourceVersion"), S(7, "fieldPath")}},
      {"LocalObjectReference", {S(1, "name")}},
      // k8s.io/api/scheduling/v1: value is `json:"value"` (an explicit 0 is kept)
      {"PriorityClass",
       {M(1, "metadata", "ObjectMeta"), I32(2, "value", kKeep), B(3, "globalDefault"),
        S(4, "description"), S(5, "preemptionPolicy", kKeep)}},

      // core/v1 Service
      {"ServiceSpec",
       {R(1, "ports", "ServicePort"),
        MAP(2, "selector"),
        S(3, "clusterIP"),
        S(4, "type"),
        RS(5, "externalIPs"),
        S(7, "sessionAffinity"),
        S(8, "loadBalancerIP"),
        RS(9, "loadBalancerSourceRanges"),
        S(10, "externalName"),
        S(11, "externalTrafficPolicy"),
        I32(12, "healthCheckNodePort"),
        B(13, "publishNotReadyAddresses"),
        M(14, "sessionAffinityConfig", "SessionAffinityConfig"),
        S(17, "ipFamilyPolicy", kKeep),
        RS(18, "clusterIPs"),
        RS(19, "ipFamilies"),
        B(20, "allocateLoadBalancerNodePorts", kKeep),
        S(21, "loadBalancerClass", kKeep),
        S(22, "internalTrafficPolicy", kKeep),
        S(23, "trafficDistribution", kKeep)}},
      {"ServicePort",
       {S(1, "name"), S(2, "protocol"), I32(3, "port", kKeep), IOS(4, "targetPort"),
        I32(5, "nodePort"), S(6, "appProtocol", kKeep)}},
      {"SessionAffinityConfig", {M(1, "clientIP", "ClientIPConfig")}},
      {"ClientIPConfig", {I32(1, "timeoutSeconds", kKeep)}},

      // core/v1 pod template
      {"PodTemplateSpec", {M(1, "metadata", "ObjectMeta"), M(2, "spec", "PodSpec")}},
      {"PodSpec",
       {R(1, "volumes", "Volume"),
        R(2, "containers", "Container"),
        S(3, "restartPolicy"),
        I64(4, "terminationGracePeriodSeconds", kKeep),
        I64(5, "activeDeadlineSeconds", kKeep),
        S(6, "dnsPolicy"),
        MAP(7, "nodeSelector"),
        S(8, "serviceAccountName"),
        S(9, "serviceAccount"),
        S(10, "nodeName"),
        B(11, "hostNetwork"),
        B(12, "hostPID"),
        B(13, "hostIPC"),
        M(14, "securityContext", "PodSecurityContext"),
        R(15, "imagePullSecrets", "LocalObjectReference"),
        S(16, "hostname"),
        S(17, "subdomain"),
        S(19, "schedulerName"),
        R(20, "initContainers", "Container"),
        B(21, "automountServiceAccountToken", kKeep),
        R(22, "tolerations", "Toleration"),
        R(23, "hostAliases", "HostAlias"),
        S(24, "priorityClassName"),
        I32(25, "priority", kKeep),
        M(26, "dnsConfig", "PodDNSConfig"),
        B(27, "shareProcessNamespace", kKeep),
        R(28, "readinessGates", "PodReadinessGate"),
        S(29, "runtimeClassName", kKeep),
        B(30, "enableServiceLinks", kKeep),
        S(31, "preemptionPolicy", kKeep),
        MAP(32, "overhead", T::kMapQuantity),
        B(35, "setHostnameAsFQDN", kKeep),
        M(36, "os", "PodOS"),
        B(37, "hostUsers", kKeep)}},
      {"PodOS", {S(1, "name", kKeep)}},
      {"PodReadinessGate", {S(1, "conditionType", kKeep)}},
      {"HostAlias", {S(1, "ip", kKeep), RS(2, "hostnames")}},
      {"PodDNSConfig",
       {RS(1, "nameservers"), RS(2, "searches"), R(3, "options", "PodDNSConfigOption")}},
      {"PodDNSConfigOption", {S(1, "name"), S(2, "value", kKeep)}},
      {"Toleration",
       {S(1, "key"), S(2, "operator"), S(3, "value"), S(4, "effect"),
        I64(5, "tolerationSeconds", kKeep)}},
      {"PodSecurityContext",
       {M(1, "seLinuxOptions", "SELinuxOptions"),
        I64(2, "runAsUser", kKeep),
        B(3, "runAsNonRoot", kKeep),
        {4, "supplementalGroups", T::kInt64, kRepeated},
        I64(5, "fsGroup", kKeep),
        I64(6, "runAsGroup", kKeep),
        R(7, "sysctls", "Sysctl"),
        S(9, "fsGroupChangePolicy", kKeep),
        M(10, "seccompProfile", "SeccompProfile"),
        M(11, "appArmorProfile", "AppArmorProfile"),
        S(12, "supplementalGroupsPolicy", kKeep),
        S(13, "seLinuxChangePolicy", kKeep)}},
      {"Sysctl", {S(1, "name", kKeep), S(2, "value", kKeep)}},
      {"SELinuxOptions", {S(1, "user"), S(2, "role"), S(3, "type"), S(4, "level")}},
      {"SeccompProfile", {S(1, "type", kKeep), S(2, "localhostProfile", kKeep)}},
      {"AppArmorProfile", {S(1, "type", kKeep), S(2, "localhostProfile", kKeep)}},

      {"Container",
       {S(1, "name", kKeep),
        S(2, "image"),
        RS(3, "command"),
        RS(4, "args"),
        S(5, "workingDir"),
        R(6, "ports", "ContainerPort"),
        R(7, "env", "EnvVar"),
        M(8, "resources", "ResourceRequirements"),
        R(9, "volumeMounts", "VolumeMount"),
        M(10, "livenessProbe", "Probe"),
        M(11, "readinessProbe", "Probe"),
        M(12, "lifecycle", "Lifecycle"),
        S(13, "terminationMessagePath"),
        S(14, "imagePullPolicy"),
        M(15, "securityContext", "SecurityContext"),
        B(16, "stdin"),
        B(17, "stdinOnce"),
        B(18, "tty"),
        R(19, "envFrom", "EnvFromSource"),
        S(20, "terminationMessagePolicy"),
        R(21, "volumeDevices", "VolumeDevice"),
        M(22, "startupProbe", "Probe"),
        R(23, "resizePolicy", "ContainerResizePolicy"),
        S(24, "restartPolicy", kKeep)}},
      {"ContainerPort",
       {S(1, "name"), I32(2, "hostPort"), I32(3, "containerPort", kKeep), S(4, "protocol"),
        S(5, "hostIP")}},
      {"EnvVar", {S(1, "name", kKeep), S(2, "value"), M(3, "valueFrom", "EnvVarSource")}},
      {"EnvVarSource",
       {M(1, "fieldRef", "ObjectFieldSelector"), M(2, "resourceFieldRef", "ResourceFieldSelector"),
        M(3, "configMapKeyRef", "KeySelector"), M(4, "secretKeyRef", "KeySelector")}},
      {"ObjectFieldSelector", {S(1, "apiVersion"), S(2, "fieldPath", kKeep)}},
      {"ResourceFieldSelector", {S(1, "containerName"), S(2, "resource", kKeep), Q(3, "divisor")}},
      // ConfigMapKeySelector and SecretKeySelector have the same layout.
      {"KeySelector",
       {M(1, "", "LocalObjectReference", kInline), S(2, "key", kKeep), B(3, "optional", kKeep)}},
      {"EnvFromSource",
       {S(1, "prefix"), M(2, "configMapRef", "EnvSource"), M(3, "secretRef", "EnvSource")}},
      // ConfigMapEnvSource and SecretEnvSource.
      {"EnvSource", {M(1, "", "LocalObjectReference", kInline), B(2, "optional", kKeep)}},
      {"ResourceRequirements",
       {MAP(1, "limits", T::kMapQuantity), MAP(2, "requests", T::kMapQuantity),
        R(3, "claims", "ResourceClaim")}},
      {"ResourceClaim", {S(1, "name", kKeep), S(2, "request")}},
      {"ContainerResizePolicy", {S(1, "resourceName", kKeep), S(2, "restartPolicy", kKeep)}},
      {"VolumeMount",
       {S(1, "name", kKeep), B(2, "readOnly"), S(3, "mountPath", kKeep), S(4, "subPath"),
        S(5, "mountPropagation", kKeep), S(6, "subPathExpr"), S(7, "recursiveReadOnly", kKeep)}},
      {"VolumeDevice", {S(1, "name", kKeep), S(2, "devicePath", kKeep)}},
      {"Probe",
       {M(1, "", "ProbeHandler", kInline), I32(2, "initialDelaySeconds"), I32(3, "timeoutSeconds"),
        I32(4, "periodSeconds"), I32(5, "successThreshold"), I32(6, "failureThreshold"),
        I64(7, "terminationGracePeriodSeconds", kKeep)}},
      {"ProbeHandler",
       {M(1, "exec", "ExecAction"), M(2, "httpGet", "HTTPGetAction"),
        M(3, "tcpSocket", "TCPSocketAction"), M(4, "grpc", "GRPCAction")}},
      {"Lifecycle", {M(1, "postStart", "LifecycleHandler"), M(2, "preStop", "LifecycleHandler")}},
      {"LifecycleHandler",
       {M(1, "exec", "ExecAction"), M(2, "httpGet", "HTTPGetAction"),
        M(3, "tcpSocket", "TCPSocketAction"), M(4, "sleep", "SleepAction")}},
      {"ExecAction", {RS(1, "command")}},
      {"SleepAction", {I64(1, "seconds", kKeep)}},
      {"HTTPGetAction",
       {S(1, "path"), IOS(2, "port", kKeep), S(3, "host"), S(4, "scheme"),
        R(5, "httpHeaders", "HTTPHeader")}},
      {"HTTPHeader", {S(1, "name", kKeep), S(2, "value", kKeep)}},
      {"TCPSocketAction", {IOS(1, "port", kKeep), S(2, "host")}},
      {"GRPCAction", {I32(1, "port", kKeep), S(2, "service", kKeep)}},
      {"SecurityContext",
       {M(1, "capabilities", "Capabilities"), B(2, "privileged", kKeep),
        M(3, "seLinuxOptions", "SELinuxOptions"), I64(4, "runAsUser", kKeep),
        B(5, "runAsNonRoot", kKeep), B(6, "readOnlyRootFilesystem", kKeep),
        B(7, "allowPrivilegeEscalation", kKeep), I64(8, "runAsGroup", kKeep),
        S(9, "procMount", kKeep), M(11, "seccompProfile", "SeccompProfile"),
        M(12, "appArmorProfile", "AppArmorProfile")}},
      {"Capabilities", {RS(1, "add"), RS(2, "drop")}},

      // core/v1 volumes: the sources skiff's kubelet mounts.
      {"Volume", {S(1, "name", kKeep), M(2, "", "VolumeSource", kInline)}},
      {"VolumeSource",
       {M(1, "hostPath", "HostPathVolumeSource"), M(2, "emptyDir", "EmptyDirVolumeSource"),
        M(6, "secret", "SecretVolumeSource"), M(7, "nfs", "NFSVolumeSource"),
        M(10, "persistentVolumeClaim", "PersistentVolumeClaimVolumeSource"),
        M(16, "downwardAPI", "DownwardAPIVolumeSource"),
        M(19, "configMap", "ConfigMapVolumeSource")}},
      {"HostPathVolumeSource", {S(1, "path", kKeep), S(2, "type", kKeep)}},
      {"EmptyDirVolumeSource", {S(1, "medium"), Q(2, "sizeLimit", kKeep)}},
      {"SecretVolumeSource",
       {S(1, "secretName"), R(2, "items", "KeyToPath"), I32(3, "defaultMode", kKeep),
        B(4, "optional", kKeep)}},
      {"ConfigMapVolumeSource",
       {M(1, "", "LocalObjectReference", kInline), R(2, "items", "KeyToPath"),
        I32(3, "defaultMode", kKeep), B(4, "optional", kKeep)}},
      {"KeyToPath", {S(1, "key", kKeep), S(2, "path", kKeep), I32(3, "mode", kKeep)}},
      {"NFSVolumeSource", {S(1, "server", kKeep), S(2, "path", kKeep), B(3, "readOnly")}},
      {"PersistentVolumeClaimVolumeSource", {S(1, "claimName", kKeep), B(2, "readOnly")}},
      {"DownwardAPIVolumeSource",
       {R(1, "items", "DownwardAPIVolumeFile"), I32(2, "defaultMode", kKeep)}},
      {"DownwardAPIVolumeFile",
       {S(1, "path", kKeep), M(2, "fieldRef", "ObjectFieldSelector"),
        M(3, "resourceFieldRef", "ResourceFieldSelector"), I32(4, "mode", kKeep)}},

      // k8s.io/api/apps/v1
      {"Deployment", {M(1, "metadata", "ObjectMeta"), M(2, "spec", "DeploymentSpec")}},
      {"DeploymentSpec",
       {I32(1, "replicas", kKeep), M(2, "selector", "LabelSelector"),
        M(3, "template", "PodTemplateSpec"), M(4, "strategy", "DeploymentStrategy"),
        I32(5, "minReadySeconds"), I32(6, "revisionHistoryLimit", kKeep), B(7, "paused"),
        I32(9, "progressDeadlineSeconds", kKeep)}},
      {"DeploymentStrategy", {S(1, "type"), M(2, "rollingUpdate", "RollingUpdateDeployment")}},
      {"RollingUpdateDeployment", {IOS(1, "maxUnavailable", kKeep), IOS(2, "maxSurge", kKeep)}},

      // k8s.io/api/batch/v1
      {"Job", {M(1, "metadata", "ObjectMeta"), M(2, "spec", "JobSpec")}},
      {"JobSpec",
       {I32(1, "parallelism", kKeep), I32(2, "completions", kKeep),
        I64(3, "activeDeadlineSeconds", kKeep), M(4, "selector", "LabelSelector"),
        B(5, "manualSelector", kKeep), M(6, "template", "PodTemplateSpec"),
        I32(7, "backoffLimit", kKeep), I32(8, "ttlSecondsAfterFinished", kKeep),
        S(9, "completionMode", kKeep), B(10, "suspend", kKeep),
        I32(12, "backoffLimitPerIndex", kKeep), I32(13, "maxFailedIndexes", kKeep),
        S(14, "podReplacementPolicy", kKeep), S(15, "managedBy", kKeep)}},
      {"CronJob", {M(1, "metadata", "ObjectMeta"), M(2, "spec", "CronJobSpec")}},
      {"CronJobSpec",
       {S(1, "schedule", kKeep), I64(2, "startingDeadlineSeconds", kKeep),
        S(3, "concurrencyPolicy"), B(4, "suspend", kKeep), M(5, "jobTemplate", "JobTemplateSpec"),
        I32(6, "successfulJobsHistoryLimit", kKeep), I32(7, "failedJobsHistoryLimit", kKeep),
        S(8, "timeZone", kKeep)}},
      {"JobTemplateSpec", {M(1, "metadata", "ObjectMeta"), M(2, "spec", "JobSpec")}},
      // k8s.io/api/rbac/v1 (RoleRef's fields and Subject's kind and name have no omitempty)
      {"Role", {M(1, "metadata", "ObjectMeta"), R(2, "rules", "PolicyRule")}},
      {"ClusterRole",
       {M(1, "metadata", "ObjectMeta"), R(2, "rules", "PolicyRule"),
        M(3, "aggregationRule", "AggregationRule")}},
      {"PolicyRule",
       {RS(1, "verbs"), RS(2, "apiGroups"), RS(3, "resources"), RS(4, "resourceNames"),
        RS(5, "nonResourceURLs")}},
      {"AggregationRule", {R(1, "clusterRoleSelectors", "LabelSelector")}},
      {"RoleBinding",
       {M(1, "metadata", "ObjectMeta"), R(2, "subjects", "Subject"), M(3, "roleRef", "RoleRef")}},
      {"ClusterRoleBinding",
       {M(1, "metadata", "ObjectMeta"), R(2, "subjects", "Subject"), M(3, "roleRef", "RoleRef")}},
      {"Subject", {S(1, "kind", kKeep), S(2, "apiGroup"), S(3, "name", kKeep), S(4, "namespace")}},
      {"RoleRef", {S(1, "apiGroup", kKeep), S(2, "kind", kKeep), S(3, "name", kKeep)}},
      // k8s.io/api/authorization/v1, authentication/v1 (the status is the server's to fill)
      {"SelfSubjectAccessReview",
       {M(1, "metadata", "ObjectMeta"), M(2, "spec", "SelfSubjectAccessReviewSpec")}},
      {"SelfSubjectAccessReviewSpec",
       {M(1, "resourceAttributes", "ResourceAttributes"),
        M(2, "nonResourceAttributes", "NonResourceAttributes")}},
      {"ResourceAttributes",
       {S(1, "namespace"), S(2, "verb"), S(3, "group"), S(4, "version"), S(5, "resource"),
        S(6, "subresource"), S(7, "name")}},
      {"NonResourceAttributes", {S(1, "path"), S(2, "verb")}},
      {"SelfSubjectRulesReview",
       {M(1, "metadata", "ObjectMeta"), M(2, "spec", "SelfSubjectRulesReviewSpec")}},
      {"SelfSubjectRulesReviewSpec", {S(1, "namespace")}},
      {"SelfSubjectReview", {M(1, "metadata", "ObjectMeta")}},

      // k8s.io/api/policy/v1 (the status is dropped on create, so it has no table)
      {"PodDisruptionBudget",
       {M(1, "metadata", "ObjectMeta"), M(2, "spec", "PodDisruptionBudgetSpec")}},
      {"PodDisruptionBudgetSpec",
       {IOS(1, "minAvailable", kKeep), M(2, "selector", "LabelSelector"),
        IOS(3, "maxUnavailable", kKeep), S(4, "unhealthyPodEvictionPolicy", kKeep)}},
      // The pods/eviction body (`kubectl drain`); policy/v1beta1's message is the same.
      {"Eviction", {M(1, "metadata", "ObjectMeta"), M(2, "deleteOptions", "DeleteOptions")}},
  };
  static const bool ok = complete(*s);
  SKIFF_CHECK(ok);
  return *s;
}

bool top_level(std::string_view api_version, std::string_view kind) {
  for (const auto& [v, k] : kKinds)
    if (v == api_version && k == kind) return true;
  return false;
}

// ---- Wire reading.

// Malformed input: the JSON path of the field and what was wrong with it.
struct Bad {
  std::string what;
};

class Reader {
 public:
  Reader(std::string_view b, const std::string& path) : b_(b), path_(path) {}
  bool done() const { return p_ >= b_.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= b_.size()) fail("truncated varint");
      uint8_t c = uint8_t(b_[p_++]);
      v |= uint64_t(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  std::string_view bytes() {
    uint64_t n = varint();
    if (n > b_.size() - p_)
      fail("length " + std::to_string(n) + " runs past the end of its message (" +
           std::to_string(b_.size() - p_) + " bytes left)");
    std::string_view s = b_.substr(p_, n);
    p_ += n;
    return s;
  }
  void skip(int wire) {
    switch (wire) {
      case 0:
        varint();
        break;
      case 1:
        advance(8);
        break;
      case 2:
        bytes();
        break;
      case 5:
        advance(4);
        break;
      default:
        fail("unsupported wire type " + std::to_string(wire));
    }
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Bad{(path_.empty() ? std::string("the object") : path_) + ": " + what};
  }

 private:
  void advance(size_t n) {
    if (n > b_.size() - p_) fail("truncated fixed-size field");
    p_ += n;
  }
  std::string_view b_;
  const std::string& path_;
  size_t p_ = 0;
};

// Reads the fields of one message: fn(reader, field number, wire type) for each.
template <typename Fn>
void each_field(std::string_view b, const std::string& path, Fn&& fn) {
  Reader r(b, path);
  while (!r.done()) {
    uint64_t tag = r.varint();
    int field = int(tag >> 3), wire = int(tag & 7);
    if (field <= 0) r.fail("field number 0");
    fn(r, field, wire);
  }
}

std::string join(const std::string& path, const char* name) {
  return path.empty() ? std::string(name) : path + "." + name;
}

json decode_message(std::string_view b, const Schema& schema, const std::string& path);

const Schema& schema_of(const char* name) {
  auto it = schemas().find(std::string_view(name));
  SKIFF_CHECK(it != schemas().end());  // complete() checked every name
  return it->second;
}

json int_or_string(std::string_view b, const std::string& path) {
  int64_t type = 0, iv = 0;
  std::string sv;
  each_field(b, path, [&](Reader& r, int f, int w) {
    if (f == 1 && w == 0)
      type = int64_t(r.varint());
    else if (f == 2 && w == 0)
      iv = int32_t(r.varint());
    else if (f == 3 && w == 2)
      sv = std::string(r.bytes());
    else
      r.skip(w);
  });
  if (type == 1) return sv;
  return iv;
}

std::string quantity(std::string_view b, const std::string& path) {
  std::string q;
  each_field(b, path, [&](Reader& r, int f, int w) {
    if (f == 1 && w == 2)
      q = std::string(r.bytes());
    else
      r.skip(w);
  });
  return q;
}

// metav1.Time as Go's JSON writes it (RFC 3339, seconds); null (dropped) for the zero time.
json time_value(std::string_view b, const std::string& path) {
  int64_t secs = 0;
  each_field(b, path, [&](Reader& r, int f, int w) {
    if (f == 1 && w == 0)
      secs = int64_t(r.varint());
    else
      r.skip(w);  // nanos: Time is second-precision in JSON
  });
  // Go's zero time.Time is year 1 (-62135596800 s); go-to-protobuf writes it as that or as 0.
  if (secs == 0 || secs == -62135596800LL) return nullptr;
  std::time_t t = std::time_t(secs);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) throw Bad{path + ": time out of range"};
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf);
}

// One map entry {key=1, value=2} into m[key].
void map_entry(std::string_view b, T type, const std::string& path, json& m) {
  std::string key;
  json value = "";
  each_field(b, path, [&](Reader& r, int f, int w) {
    if (w != 2) return r.skip(w);
    if (f == 1) {
      key = std::string(r.bytes());
    } else if (f == 2) {
      std::string_view v = r.bytes();
      if (type == T::kMapString)
        value = std::string(v);
      else if (type == T::kMapBytes)
        value = base64_encode(v);
      else
        value = quantity(v, path + "[" + key + "]");
    } else {
      r.skip(w);
    }
  });
  if (!m.is_object()) m = json::object();
  m[key] = std::move(value);
}

int wire_of(T t) {
  switch (t) {
    case T::kInt32:
    case T::kInt64:
    case T::kBool:
      return 0;
    default:
      return 2;
  }
}

bool is_zero(const json& v) {
  if (v.is_null()) return true;
  if (v.is_string()) return v.get_ref<const std::string&>().empty();
  if (v.is_boolean()) return !v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() == 0;
  return false;
}

json scalar(Reader& r, T type) {
  uint64_t v = r.varint();
  if (type == T::kInt32) return int32_t(v);
  if (type == T::kInt64) return int64_t(v);
  return v != 0;
}

void put(json& obj, const Field& fd, json v) {
  if (fd.flags & kRepeated) {
    obj[fd.name].push_back(std::move(v));
    return;
  }
  if (!(fd.flags & kKeep) && is_zero(v)) return;
  obj[fd.name] = std::move(v);
}

json decode_message(std::string_view b, const Schema& schema, const std::string& path) {
  json obj = json::object();
  each_field(b, path, [&](Reader& r, int f, int w) {
    const Field* fd = nullptr;
    for (const Field& x : schema)
      if (x.number == f) fd = &x;
    if (fd == nullptr) return r.skip(w);  // unknown field: protobuf semantics
    std::string fpath = join(path, fd->name);
    int want = wire_of(fd->type);
    if (w != want) {
      // A repeated scalar may come packed (one length-delimited run of varints).
      if ((fd->flags & kRepeated) && want == 0 && w == 2) {
        std::string_view run = r.bytes();
        Reader p(run, fpath);
        while (!p.done()) put(obj, *fd, scalar(p, fd->type));
        return;
      }
      r.fail(std::string("field ") + fd->name + " (" + std::to_string(f) + ") has wire type " +
             std::to_string(w) + ", expected " + std::to_string(want));
    }
    if (fd->flags & kRepeated)
      fpath += "[" + std::to_string(obj.value(fd->name, json()).size()) + "]";
    switch (fd->type) {
      case T::kString:
        return put(obj, *fd, std::string(r.bytes()));
      case T::kBytes:
        return put(obj, *fd, base64_encode(r.bytes()));
      case T::kInt32:
      case T::kInt64:
      case T::kBool:
        return put(obj, *fd, scalar(r, fd->type));
      case T::kIntOrStr:
        return put(obj, *fd, int_or_string(r.bytes(), fpath));
      case T::kQuantity:
        return put(obj, *fd, quantity(r.bytes(), fpath));
      case T::kTime:
        return put(obj, *fd, time_value(r.bytes(), fpath));
      case T::kMapString:
      case T::kMapBytes:
      case T::kMapQuantity:
        return map_entry(r.bytes(), fd->type, fpath, obj[fd->name]);
      case T::kMessage: {
        json sub =
            decode_message(r.bytes(), schema_of(fd->msg), fd->flags & kInline ? path : fpath);
        if (fd->flags & kInline) {
          for (auto& [k, v] : sub.items()) obj[k] = std::move(v);
          return;
        }
        // Structs are never "empty" to Go's omitempty: an empty message stays {}.
        if (fd->flags & kRepeated)
          obj[fd->name].push_back(std::move(sub));
        else
          obj[fd->name] = std::move(sub);
        return;
      }
    }
  });
  return obj;
}

}  // namespace

bool protobuf_decodable(const std::string& api_version, const std::string& kind) {
  return top_level(api_version, kind);
}

namespace {

// The envelope, then the object if `accept` takes its apiVersion and kind (else 415).
template <typename Accept>
ApiResult<json> decode_envelope(const std::string& body, Accept accept) {
  static const std::string magic("k8s\0", 4);
  if (body.size() < 4 || body.compare(0, 4, magic) != 0)
    return errors::bad_request(
        "the protobuf request body does not start with the Kubernetes "
        "envelope magic \"k8s\\x00\"");
  try {
    std::string api_version, kind, content_encoding;
    std::string_view raw;
    bool have_raw = false;
    const std::string envelope = "the protobuf envelope (runtime.Unknown)";
    const std::string type_meta = envelope + ".typeMeta";
    each_field(std::string_view(body).substr(4), envelope, [&](Reader& r, int f, int w) {
      if (w != 2) return r.skip(w);
      if (f == 1) {
        each_field(r.bytes(), type_meta, [&](Reader& t, int g, int x) {
          if (x == 2 && g == 1)
            api_version = std::string(t.bytes());
          else if (x == 2 && g == 2)
            kind = std::string(t.bytes());
          else
            t.skip(x);
        });
      } else if (f == 2) {
        raw = r.bytes();
        have_raw = true;
      } else if (f == 3) {
        content_encoding = std::string(r.bytes());
      } else {
        r.skip(w);
      }
    });
    if (!content_encoding.empty())
      return errors::bad_request("protobuf request body: content encoding \"" + content_encoding +
                                 "\" is not supported");
    if (api_version.empty() || kind.empty())
      return errors::bad_request(
          "the protobuf request body names no apiVersion and kind (runtime.Unknown.typeMeta)");
    if (!accept(api_version, kind))
      return ApiError{415,
                      "UnsupportedMediaType",
                      "the body of the request was in an unknown format (\"" +
                          std::string(kProtobufMediaType) + "\" for " + api_version + " " + kind +
                          ") - accepted media types include: application/json",
                      {}};
    if (!have_raw)
      return errors::bad_request("the protobuf request body has no object (runtime.Unknown.raw)");
    json obj = {{"apiVersion", api_version}, {"kind", kind}};
    json fields = decode_message(raw, schema_of(kind.c_str()), "");
    for (auto& [k, v] : fields.items()) obj[k] = std::move(v);
    return obj;
  } catch (const Bad& b) {
    return errors::bad_request("the protobuf request body is malformed: " + b.what);
  }
}

}  // namespace

ApiResult<json> decode_protobuf_object(const std::string& body) {
  return decode_envelope(body, [](std::string_view v, std::string_view k) {
    return k != "DeleteOptions" && k != "Eviction" && top_level(v, k);
  });
}

ApiResult<json> decode_protobuf_delete_options(const std::string& body) {
  // client-go writes DeleteOptions under the group version of the resource it deletes ("v1",
  // "apps/v1", ...) or meta.k8s.io/v1: the kind is what matters.
  return decode_envelope(body,
                         [](std::string_view, std::string_view k) { return k == "DeleteOptions"; });
}

ApiResult<json> decode_protobuf_eviction(const std::string& body) {
  return decode_envelope(body, [](std::string_view v, std::string_view k) {
    return k == "Eviction" && (v == "policy/v1" || v == "policy/v1beta1");
  });
}

}  // namespace skiff::apiserver
