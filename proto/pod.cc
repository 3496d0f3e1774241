#include "proto/pod.h"

#include <algorithm>
#include <set>

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

// ---------------------------------------------------------------------------------------------
// Defaulting (k8s.io/kubernetes/pkg/apis/core/v1/defaults.go).

// imagePullPolicy: Always when the tag is (or defaults to) "latest", else IfNotPresent.
std::string default_pull_policy(const std::string& image) {
  if (image.find('@') != std::string::npos) return "IfNotPresent";  // pinned by digest
  auto slash = image.rfind('/');
  auto colon = image.rfind(':');
  bool has_tag = colon != std::string::npos && (slash == std::string::npos || colon > slash);
  if (!has_tag) return "Always";
  return image.substr(colon + 1) == "latest" ? "Always" : "IfNotPresent";
}

void default_handler(Handler& h) {
  if (h.http_get) {
    if (h.http_get->path.empty()) h.http_get->path = "/";
    if (h.http_get->scheme.empty()) h.http_get->scheme = "HTTP";
  }
}

void default_probe(std::optional<Probe>& p) {
  if (!p) return;
  default_handler(p->handler);
  if (p->timeout_seconds == 0) p->timeout_seconds = 1;
  if (p->period_seconds == 0) p->period_seconds = 10;
  if (p->success_threshold == 0) p->success_threshold = 1;
  if (p->failure_threshold == 0) p->failure_threshold = 3;
}

void default_container(Container& c, bool host_network) {
  for (auto& port : c.ports) {
    if (port.protocol.empty()) port.protocol = "TCP";
    if (host_network && port.host_port == 0) port.host_port = port.container_port;
  }
  if (c.image_pull_policy.empty()) c.image_pull_policy = default_pull_policy(c.image);
  if (c.termination_message_path.empty()) c.termination_message_path = "/dev/termination-log";
  if (c.termination_message_policy.empty()) c.termination_message_policy = "File";
  for (auto& e : c.env)
    if (e.value_from && e.value_from->field_ref && e.value_from->field_ref->api_version.empty())
      e.value_from->field_ref->api_version = "v1";
  default_probe(c.liveness_probe);
  default_probe(c.readiness_probe);
  default_probe(c.startup_probe);
  if (c.lifecycle) {
    if (c.lifecycle->post_start) default_handler(*c.lifecycle->post_start);
    if (c.lifecycle->pre_stop) default_handler(*c.lifecycle->pre_stop);
  }
  // A limit without a request means the request equals the limit.
  for (const auto& [name, q] : c.resources.limits)
    if (!c.resources.requests.count(name)) c.resources.requests[name] = q;
}

// Kubernetes' QoS class: Guaranteed when every container's cpu and memory requests equal
// their limits, BestEffort with no requests or limits at all, else Burstable.
std::string qos_class(const PodSpec& spec) {
  bool any = false, guaranteed = true;
  auto check = [&](const Container& c) {
    if (!c.resources.requests.empty() || !c.resources.limits.empty()) any = true;
    for (const char* r : {"cpu", "memory"}) {
      auto l = c.resources.limits.find(r);
      auto q = c.resources.requests.find(r);
      if (l == c.resources.limits.end() ||
          (q != c.resources.requests.end() && q->second != l->second))
        guaranteed = false;
    }
  };
  for (const auto& c : spec.init_containers) check(c);
  for (const auto& c : spec.containers) check(c);
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

}  // namespace

void default_pod(Pod& pod) {
  PodSpec& s = pod.spec;
  if (s.restart_policy.empty()) s.restart_policy = "Always";
  if (s.dns_policy.empty()) s.dns_policy = "ClusterFirst";
  if (!s.termination_grace_period_seconds) s.termination_grace_period_seconds = 30;
  if (s.scheduler_name.empty()) s.scheduler_name = "default-scheduler";
  if (!s.security_context) s.security_context = PodSecurityContext{};
  if (!s.enable_service_links) s.enable_service_links = true;
  if (s.service_account.empty()) s.service_account = s.service_account_name;
  for (auto& c : s.init_containers) default_container(c, s.host_network);
  for (auto& c : s.containers) default_container(c, s.host_network);
  for (auto& v : s.volumes) {
    if (v.config_map && !v.config_map->default_mode) v.config_map->default_mode = 0644;
    if (v.secret && !v.secret->default_mode) v.secret->default_mode = 0644;
    if (v.host_path && !v.host_path->type) v.host_path->type = "";
    if (!v.empty_dir && !v.host_path && !v.config_map && !v.secret && !v.persistent_volume_claim &&
        v.projected.is_null() && v.downward_api.is_null())
      v.empty_dir = EmptyDirVolumeSource{};
  }
  // What the pod registry strategy sets on create.
  if (pod.status.phase.empty()) pod.status.phase = "Pending";
  if (pod.status.qos_class.empty()) pod.status.qos_class = qos_class(s);
}

// ---------------------------------------------------------------------------------------------
// Validation (k8s.io/kubernetes/pkg/apis/core/validation).

namespace {

void validate_port_ref(FieldErrors& errs, const Path& p, const IntOrString& port) {
  if (port.is_string)
    add_errors(errs, p, port.str_val, is_valid_port_name(port.str_val));
  else if (auto e = is_valid_port_num(port.int_val); !e.empty())
    for (const auto& m : e)
      errs.push_back({ErrorType::kInvalid, p.str(), m, std::to_string(port.int_val)});
}

void validate_handler(const Handler& h, const Path& p, FieldErrors& errs) {
  int n = (h.exec ? 1 : 0) + (h.http_get ? 1 : 0) + (h.tcp_socket ? 1 : 0);
  if (n == 0) {
    errs.push_back({ErrorType::kRequired, p.str(), "must specify a handler type", ""});
    return;
  }
  if (n > 1)
    errs.push_back(
        {ErrorType::kForbidden, p.str(), "may not specify more than 1 handler type", ""});
  if (h.exec && h.exec->command.empty())
    errs.push_back({ErrorType::kRequired, p.field("exec").field("command").str(), "", ""});
  if (h.http_get) {
    validate_port_ref(errs, p.field("httpGet").field("port"), h.http_get->port);
    not_supported(errs, p.field("httpGet").field("scheme"), h.http_get->scheme, {"HTTP", "HTTPS"});
  }
  if (h.tcp_socket) validate_port_ref(errs, p.field("tcpSocket").field("port"), h.tcp_socket->port);
}

void validate_probe(const std::optional<Probe>& probe, const Path& p, bool success_must_be_1,
                    FieldErrors& errs) {
  if (!probe) return;
  validate_handler(probe->handler, p, errs);
  non_negative(errs, p.field("initialDelaySeconds"), probe->initial_delay_seconds);
  non_negative(errs, p.field("timeoutSeconds"), probe->timeout_seconds);
  non_negative(errs, p.field("periodSeconds"), probe->period_seconds);
  non_negative(errs, p.field("successThreshold"), probe->success_threshold);
  non_negative(errs, p.field("failureThreshold"), probe->failure_threshold);
  if (success_must_be_1 && probe->success_threshold != 1)
    errs.push_back({ErrorType::kInvalid, p.field("successThreshold").str(), "must be 1",
                    std::to_string(probe->success_threshold)});
}

void validate_env(const std::vector<EnvVar>& env, const Path& p, FieldErrors& errs) {
  for (size_t i = 0; i < env.size(); ++i) {
    const auto& e = env[i];
    Path ep = p.index(i);
    if (e.name.empty())
      errs.push_back({ErrorType::kRequired, ep.field("name").str(), "", ""});
    else
      add_errors(errs, ep.field("name"), e.name, is_c_identifier(e.name));
    if (!e.value_from) continue;
    Path vp = ep.field("valueFrom");
    const auto& f = *e.value_from;
    int n = (f.field_ref ? 1 : 0) + (f.resource_field_ref ? 1 : 0) +
            (f.config_map_key_ref ? 1 : 0) + (f.secret_key_ref ? 1 : 0);
    if (n == 0)
      errs.push_back({ErrorType::kInvalid, vp.str(),
                      "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` "
                      "or `secretKeyRef`",
                      "\"\""});
    else if (n > 1)
      errs.push_back({ErrorType::kInvalid, vp.str(),
                      "may not have more than one field specified at a time", "\"\""});
    if (!e.value.empty())
      errs.push_back({ErrorType::kInvalid, vp.str(),
                      "may not be specified when `value` is not empty", "\"\""});
    if (f.field_ref && f.field_ref->field_path.empty())
      errs.push_back({ErrorType::kRequired, vp.field("fieldRef").field("fieldPath").str(), "", ""});
    if (f.resource_field_ref && f.resource_field_ref->resource.empty())
      errs.push_back(
          {ErrorType::kRequired, vp.field("resourceFieldRef").field("resource").str(), "", ""});
    for (auto [ref, name] : {std::pair{&f.config_map_key_ref, "configMapKeyRef"},
                             std::pair{&f.secret_key_ref, "secretKeyRef"}}) {
      if (!*ref) continue;
      Path rp = vp.field(name);
      if ((*ref)->name.empty())
        errs.push_back({ErrorType::kRequired, rp.field("name").str(), "", ""});
      if ((*ref)->key.empty())
        errs.push_back({ErrorType::kRequired, rp.field("key").str(), "", ""});
      else
        add_errors(errs, rp.field("key"), (*ref)->key, is_config_map_key((*ref)->key));
    }
  }
}

void validate_resources(const ResourceRequirements& r, const Path& p, FieldErrors& errs) {
  for (auto [list, name] : {std::pair{&r.limits, "limits"}, std::pair{&r.requests, "requests"}})
    for (const auto& [res, q] : *list) {
      Path qp = p.field(name).key(res);
      add_errors(errs, qp, res, is_qualified_name(res));
      if (q < Quantity())
        errs.push_back({ErrorType::kInvalid, qp.str(), "must be greater than or equal to 0",
                        quote_value(q.to_string())});
    }
  for (const auto& [res, q] : r.requests) {
    auto l = r.limits.find(res);
    if (l != r.limits.end() && q > l->second)
      errs.push_back({ErrorType::kInvalid, p.field("requests").key(res).str(),
                      "must be less than or equal to " + res + " limit of " + l->second.to_string(),
                      quote_value(q.to_string())});
  }
}

// IsValidUserID / IsValidGroupID.
void validate_id(const std::optional<int64_t>& id, const Path& p, FieldErrors& errs) {
  if (id && (*id < 0 || *id > 2147483647))
    errs.push_back({ErrorType::kInvalid, p.str(), "must be between 0 and 2147483647, inclusive",
                    std::to_string(*id)});
}

void validate_containers(const std::vector<Container>& cs, const Path& p, bool init,
                         const std::set<std::string>& volumes, std::set<std::string>& names,
                         FieldErrors& errs) {
  for (size_t i = 0; i < cs.size(); ++i) {
    const Container& c = cs[i];
    Path cp = p.index(i);
    if (c.name.empty()) {
      errs.push_back({ErrorType::kRequired, cp.field("name").str(), "", ""});
    } else {
      add_errors(errs, cp.field("name"), c.name, is_dns1123_label(c.name));
      if (!names.insert(c.name).second)
        errs.push_back({ErrorType::kDuplicate, cp.field("name").str(), "", quote_value(c.name)});
    }
    if (c.image.empty()) errs.push_back({ErrorType::kRequired, cp.field("image").str(), "", ""});
    required_one_of(errs, cp.field("imagePullPolicy"), c.image_pull_policy,
                    {"Always", "IfNotPresent", "Never"});
    required_one_of(errs, cp.field("terminationMessagePolicy"), c.termination_message_policy,
                    {"File", "FallbackToLogsOnError"});

    std::set<std::string> port_names;
    for (size_t j = 0; j < c.ports.size(); ++j) {
      const auto& port = c.ports[j];
      Path pp = cp.field("ports").index(j);
      if (!port.name.empty()) {
        add_errors(errs, pp.field("name"), port.name, is_valid_port_name(port.name));
        if (!port_names.insert(port.name).second)
          errs.push_back(
              {ErrorType::kDuplicate, pp.field("name").str(), "", quote_value(port.name)});
      }
      for (const auto& m : is_valid_port_num(port.container_port))
        errs.push_back({ErrorType::kInvalid, pp.field("containerPort").str(), m,
                        std::to_string(port.container_port)});
      if (port.host_port != 0)
        for (const auto& m : is_valid_port_num(port.host_port))
          errs.push_back(
              {ErrorType::kInvalid, pp.field("hostPort").str(), m, std::to_string(port.host_port)});
      required_one_of(errs, pp.field("protocol"), port.protocol, {"SCTP", "TCP", "UDP"});
    }
    validate_env(c.env, cp.field("env"), errs);
    for (size_t j = 0; j < c.env_from.size(); ++j) {
      const auto& ef = c.env_from[j];
      Path ep = cp.field("envFrom").index(j);
      int n = (ef.config_map_ref ? 1 : 0) + (ef.secret_ref ? 1 : 0);
      if (n != 1)
        errs.push_back({ErrorType::kInvalid, ep.str(),
                        n == 0 ? "must specify one of: `configMapRef` or `secretRef`"
                               : "may not have more than one field specified at a time",
                        "\"\""});
      if (!ef.prefix.empty())
        add_errors(errs, ep.field("prefix"), ef.prefix, is_c_identifier(ef.prefix));
    }
    validate_resources(c.resources, cp.field("resources"), errs);
    std::set<std::string> mount_paths;
    for (size_t j = 0; j < c.volume_mounts.size(); ++j) {
      const auto& m = c.volume_mounts[j];
      Path mp = cp.field("volumeMounts").index(j);
      if (m.name.empty())
        errs.push_back({ErrorType::kRequired, mp.field("name").str(), "", ""});
      else if (!volumes.count(m.name))
        errs.push_back({ErrorType::kInvalid, mp.field("name").str(),
                        "must match the name of a volume in spec.volumes", quote_value(m.name)});
      if (m.mount_path.empty())
        errs.push_back({ErrorType::kRequired, mp.field("mountPath").str(), "", ""});
      else if (!mount_paths.insert(m.mount_path).second)
        errs.push_back({ErrorType::kInvalid, mp.field("mountPath").str(), "must be unique",
                        quote_value(m.mount_path)});
    }
    if (init) {
      for (auto [probe, name] : {std::pair{&c.liveness_probe, "livenessProbe"},
                                 std::pair{&c.readiness_probe, "readinessProbe"},
                                 std::pair{&c.startup_probe, "startupProbe"}})
        if (*probe)
          errs.push_back({ErrorType::kForbidden, cp.field(name).str(),
                          "may not be set for init containers", ""});
    } else {
      validate_probe(c.liveness_probe, cp.field("livenessProbe"), true, errs);
      validate_probe(c.readiness_probe, cp.field("readinessProbe"), false, errs);
      validate_probe(c.startup_probe, cp.field("startupProbe"), true, errs);
    }
    if (c.lifecycle) {
      if (c.lifecycle->post_start)
        validate_handler(*c.lifecycle->post_start, cp.field("lifecycle").field("postStart"), errs);
      if (c.lifecycle->pre_stop)
        validate_handler(*c.lifecycle->pre_stop, cp.field("lifecycle").field("preStop"), errs);
    }
    if (c.security_context) {
      const Path sp = cp.field("securityContext");
      validate_id(c.security_context->run_as_user, sp.field("runAsUser"), errs);
      validate_id(c.security_context->run_as_group, sp.field("runAsGroup"), errs);
    }
    if (c.security_context && c.security_context->privileged.value_or(false) &&
        !c.security_context->allow_privilege_escalation.value_or(true))
      errs.push_back({ErrorType::kInvalid, cp.field("securityContext").str(),
                      "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                      ""});
  }
}

void validate_volumes(const std::vector<Volume>& vols, const Path& p, std::set<std::string>& names,
                      FieldErrors& errs) {
  for (size_t i = 0; i < vols.size(); ++i) {
    const Volume& v = vols[i];
    Path vp = p.index(i);
    if (v.name.empty()) {
      errs.push_back({ErrorType::kRequired, vp.field("name").str(), "", ""});
    } else {
      add_errors(errs, vp.field("name"), v.name, is_dns1123_label(v.name));
      if (!names.insert(v.name).second)
        errs.push_back({ErrorType::kDuplicate, vp.field("name").str(), "", quote_value(v.name)});
    }
    int n = (v.empty_dir ? 1 : 0) + (v.host_path ? 1 : 0) + (v.config_map ? 1 : 0) +
            (v.secret ? 1 : 0) + (v.persistent_volume_claim ? 1 : 0) +
            (v.projected.is_null() ? 0 : 1) + (v.downward_api.is_null() ? 0 : 1);
    if (n == 0)
      errs.push_back({ErrorType::kRequired, vp.str(), "must specify a volume type", ""});
    else if (n > 1)
      errs.push_back(
          {ErrorType::kForbidden, vp.str(), "may not specify more than 1 volume type", ""});
    if (v.host_path && v.host_path->path.empty())
      errs.push_back({ErrorType::kRequired, vp.field("hostPath").field("path").str(), "", ""});
    if (v.persistent_volume_claim && v.persistent_volume_claim->claim_name.empty())
      errs.push_back({ErrorType::kRequired,
                      vp.field("persistentVolumeClaim").field("claimName").str(), "", ""});
    if (v.config_map && v.config_map->name.empty())
      errs.push_back({ErrorType::kRequired, vp.field("configMap").field("name").str(), "", ""});
    if (v.secret && v.secret->secret_name.empty())
      errs.push_back({ErrorType::kRequired, vp.field("secret").field("secretName").str(), "", ""});
  }
}

void validate_node_selector_term(const NodeSelectorTerm& t, const Path& p, FieldErrors& errs) {
  for (size_t i = 0; i < t.match_expressions.size(); ++i) {
    const auto& r = t.match_expressions[i];
    Path rp = p.field("matchExpressions").index(i);
    add_errors(errs, rp.field("key"), r.key, is_qualified_name(r.key));
    not_supported(errs, rp.field("operator"), r.op,
                  {"DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"});
    bool needs_values = r.op == "In" || r.op == "NotIn" || r.op == "Gt" || r.op == "Lt";
    if (needs_values && r.values.empty())
      errs.push_back({ErrorType::kRequired, rp.field("values").str(),
                      "must be specified when `operator` is 'In' or 'NotIn'", ""});
    if ((r.op == "Exists" || r.op == "DoesNotExist") && !r.values.empty())
      errs.push_back({ErrorType::kForbidden, rp.field("values").str(),
                      "may not be specified when `operator` is 'Exists' or 'DoesNotExist'", ""});
  }
}

void validate_tolerations(const std::vector<Toleration>& ts, const Path& p, FieldErrors& errs) {
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = ts[i];
    Path tp = p.index(i);
    if (!t.key.empty()) add_errors(errs, tp.field("key"), t.key, is_qualified_name(t.key));
    if (t.key.empty() && t.op != "Exists")
      errs.push_back({ErrorType::kInvalid, tp.field("operator").str(),
                      "operator must be Exists when `key` is empty, which means \"match all "
                      "values and all keys\"",
                      quote_value(t.op)});
    if (!t.op.empty()) not_supported(errs, tp.field("operator"), t.op, {"Equal", "Exists"});
    if (t.op == "Exists" && !t.value.empty())
      errs.push_back({ErrorType::kInvalid, tp.field("operator").str(),
                      "value must be empty when `operator` is 'Exists'", quote_value(t.value)});
    if (!t.effect.empty())
      not_supported(errs, tp.field("effect"), t.effect,
                    {"NoExecute", "NoSchedule", "PreferNoSchedule"});
    if (t.toleration_seconds && t.effect != "NoExecute")
      errs.push_back({ErrorType::kInvalid, tp.field("effect").str(),
                      "effect must be 'NoExecute' when `tolerationSeconds` is set",
                      quote_value(t.effect)});
  }
}

const char kPodUpdateForbidden[] =
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)";

void validate_pod_update(const Pod& pod, const Pod& old, FieldErrors& errs) {
  const Path spec("spec");
  const auto& ads = pod.spec.active_deadline_seconds;
  const auto& old_ads = old.spec.active_deadline_seconds;
  if (old_ads && !ads)
    errs.push_back({ErrorType::kInvalid, spec.field("activeDeadlineSeconds").str(),
                    "must not update from a positive integer to nil value", "null"});
  if (old_ads && ads && *ads > *old_ads)
    errs.push_back({ErrorType::kInvalid, spec.field("activeDeadlineSeconds").str(),
                    "must be less than or equal to previous value", std::to_string(*ads)});

  // Copy the mutable fields from the old spec, then any remaining difference is forbidden.
  PodSpec mutated = pod.spec;
  mutated.active_deadline_seconds = old.spec.active_deadline_seconds;
  if (mutated.containers.size() == old.spec.containers.size())
    for (size_t i = 0; i < mutated.containers.size(); ++i)
      mutated.containers[i].image = old.spec.containers[i].image;
  if (mutated.init_containers.size() == old.spec.init_containers.size())
    for (size_t i = 0; i < mutated.init_containers.size(); ++i)
      mutated.init_containers[i].image = old.spec.init_containers[i].image;
  bool keeps_old_tolerations = std::all_of(
      old.spec.tolerations.begin(), old.spec.tolerations.end(), [&](const Toleration& t) {
        return std::find(pod.spec.tolerations.begin(), pod.spec.tolerations.end(), t) !=
               pod.spec.tolerations.end();
      });
  if (keeps_old_tolerations) mutated.tolerations = old.spec.tolerations;
  auto tgp = old.spec.termination_grace_period_seconds;
  if (tgp && *tgp < 0 && mutated.termination_grace_period_seconds == 1)
    mutated.termination_grace_period_seconds = tgp;
  if (encode(mutated) != encode(old.spec))
    errs.push_back({ErrorType::kForbidden, spec.str(), kPodUpdateForbidden, ""});
}

void validate_pod(const Pod& pod, const Pod* old, FieldErrors& errs) {
  const Path spec("spec");
  const PodSpec& s = pod.spec;
  std::set<std::string> volumes, containers;
  validate_volumes(s.volumes, spec.field("volumes"), volumes, errs);
  if (s.containers.empty())
    errs.push_back({ErrorType::kRequired, spec.field("containers").str(), "", ""});
  validate_containers(s.init_containers, spec.field("initContainers"), true, volumes, containers,
                      errs);
  validate_containers(s.containers, spec.field("containers"), false, volumes, containers, errs);
  required_one_of(errs, spec.field("restartPolicy"), s.restart_policy,
                  {"Always", "Never", "OnFailure"});
  required_one_of(errs, spec.field("dnsPolicy"), s.dns_policy,
                  {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"});
  validate_labels(s.node_selector, spec.field("nodeSelector"), errs);
  if (!s.service_account_name.empty())
    add_errors(errs, spec.field("serviceAccountName"), s.service_account_name,
               is_dns1123_subdomain(s.service_account_name));
  if (!s.node_name.empty())
    add_errors(errs, spec.field("nodeName"), s.node_name, is_dns1123_subdomain(s.node_name));
  if (!s.hostname.empty())
    add_errors(errs, spec.field("hostname"), s.hostname, is_dns1123_label(s.hostname));
  if (!s.subdomain.empty())
    add_errors(errs, spec.field("subdomain"), s.subdomain, is_dns1123_label(s.subdomain));
  if (s.active_deadline_seconds &&
      (*s.active_deadline_seconds <= 0 || *s.active_deadline_seconds > 2147483647))
    errs.push_back({ErrorType::kInvalid, spec.field("activeDeadlineSeconds").str(),
                    "must be between 1 and 2147483647, inclusive",
                    std::to_string(*s.active_deadline_seconds)});
  validate_tolerations(s.tolerations, spec.field("tolerations"), errs);
  if (s.security_context) {
    const Path sp = spec.field("securityContext");
    validate_id(s.security_context->run_as_user, sp.field("runAsUser"), errs);
    validate_id(s.security_context->run_as_group, sp.field("runAsGroup"), errs);
    validate_id(s.security_context->fs_group, sp.field("fsGroup"), errs);
    for (size_t i = 0; i < s.security_context->supplemental_groups.size(); ++i)
      validate_id(s.security_context->supplemental_groups[i],
                  sp.field("supplementalGroups").index(i), errs);
  }
  if (s.affinity && s.affinity->node_affinity) {
    Path ap = spec.field("affinity").field("nodeAffinity");
    const auto& na = *s.affinity->node_affinity;
    if (na.required) {
      Path rp = ap.field("requiredDuringSchedulingIgnoredDuringExecution");
      if (na.required->node_selector_terms.empty())
        errs.push_back({ErrorType::kRequired, rp.field("nodeSelectorTerms").str(),
                        "must have at least one node selector term", ""});
      for (size_t i = 0; i < na.required->node_selector_terms.size(); ++i)
        validate_node_selector_term(na.required->node_selector_terms[i],
                                    rp.field("nodeSelectorTerms").index(i), errs);
    }
    for (size_t i = 0; i < na.preferred.size(); ++i) {
      Path pp = ap.field("preferredDuringSchedulingIgnoredDuringExecution").index(i);
      if (na.preferred[i].weight < 1 || na.preferred[i].weight > 100)
        errs.push_back({ErrorType::kInvalid, pp.field("weight").str(), "must be in the range 1-100",
                        std::to_string(na.preferred[i].weight)});
      validate_node_selector_term(na.preferred[i].preference, pp.field("preference"), errs);
    }
  }
  for (size_t i = 0; i < s.readiness_gates.size(); ++i)
    add_errors(errs, spec.field("readinessGates").index(i).field("conditionType"),
               s.readiness_gates[i].condition_type,
               is_qualified_name(s.readiness_gates[i].condition_type));
  if (old) validate_pod_update(pod, *old, errs);
}

// ---------------------------------------------------------------------------------------------
// Table.

bool condition_true(const PodStatus& st, const char* type) {
  for (const auto& c : st.conditions)
    if (c.type == type) return c.status == "True";
  return false;
}

int64_t total_restarts(const Pod& pod) {
  int64_t n = 0;
  for (const auto& c : pod.status.container_statuses) n += c.restart_count;
  return n;
}

json pod_row(const Pod& pod, Clock::time_point now) {
  int ready = 0;
  for (const auto& c : pod.status.container_statuses)
    if (c.ready && c.state.running) ++ready;
  std::string gates = "<none>";
  if (!pod.spec.readiness_gates.empty()) {
    int t = 0;
    for (const auto& g : pod.spec.readiness_gates)
      if (condition_true(pod.status, g.condition_type.c_str())) ++t;
    gates = std::to_string(t) + "/" + std::to_string(pod.spec.readiness_gates.size());
  }
  bool initializing = false;
  int64_t restarts = 0;
  for (const auto& c : pod.status.init_container_statuses) {
    restarts += c.restart_count;
    if (!(c.state.terminated && c.state.terminated->exit_code == 0)) {
      initializing = true;
      break;
    }
  }
  if (!initializing || condition_true(pod.status, "Initialized")) restarts = total_restarts(pod);
  return json::array({pod.metadata.name,
                      std::to_string(ready) + "/" + std::to_string(pod.spec.containers.size()),
                      pod_status_reason(pod), restarts,
                      since(pod.metadata.creation_timestamp.value_or(Time{}).value, now),
                      or_none(pod.status.pod_ip), or_none(pod.spec.node_name),
                      or_none(pod.status.nominated_node_name), gates});
}

}  // namespace

// kubectl's printPod (k8s.io/kubernetes/pkg/printers/internalversion/printers.go).
std::string pod_status_reason(const Pod& pod) {
  const PodStatus& st = pod.status;
  std::string reason = st.reason.empty() ? st.phase : st.reason;
  bool initializing = false;
  for (size_t i = 0; i < st.init_container_statuses.size(); ++i) {
    const auto& c = st.init_container_statuses[i];
    const auto& term = c.state.terminated;
    if (term && term->exit_code == 0) continue;
    if (term) {
      if (!term->reason.empty())
        reason = "Init:" + term->reason;
      else if (term->signal != 0)
        reason = "Init:Signal:" + std::to_string(term->signal);
      else
        reason = "Init:ExitCode:" + std::to_string(term->exit_code);
    } else if (c.state.waiting && !c.state.waiting->reason.empty() &&
               c.state.waiting->reason != "PodInitializing") {
      reason = "Init:" + c.state.waiting->reason;
    } else {
      reason = "Init:" + std::to_string(i) + "/" + std::to_string(pod.spec.init_containers.size());
    }
    initializing = true;
    break;
  }
  if (!initializing || condition_true(st, "Initialized")) {
    bool has_running = false;
    for (size_t i = st.container_statuses.size(); i-- > 0;) {
      const auto& c = st.container_statuses[i];
      if (c.state.waiting && !c.state.waiting->reason.empty()) {
        reason = c.state.waiting->reason;
      } else if (c.state.terminated && !c.state.terminated->reason.empty()) {
        reason = c.state.terminated->reason;
      } else if (c.state.terminated) {
        reason = c.state.terminated->signal != 0
                     ? "Signal:" + std::to_string(c.state.terminated->signal)
                     : "ExitCode:" + std::to_string(c.state.terminated->exit_code);
      } else if (c.ready && c.state.running) {
        has_running = true;
      }
    }
    if (reason == "Completed" && has_running)
      reason = condition_true(st, "Ready") ? "Running" : "NotReady";
  }
  if (pod.metadata.deletion_timestamp) reason = st.reason == "NodeLost" ? "Unknown" : "Terminating";
  return reason;
}

ResourceType pod_resource() {
  KindSpec<Pod> k;
  k.type.version = "v1";
  k.type.kind = "Pod";
  k.type.list_kind = "PodList";
  k.type.plural = "pods";
  k.type.singular = "pod";
  k.type.short_names = {"po"};
  k.type.categories = {"all"};
  k.type.subresources = {"status", "binding", "log", "exec", "eviction"};
  k.type.columns = {
      name_column(),
      column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
      column("Status", "string", "The aggregate status of the containers in this pod."),
      column("Restarts", "integer",
             "The number of times the containers in this pod have been restarted."),
      age_column(),
      column("IP", "string", "IP address allocated to the pod.", 1),
      column("Node", "string", "Name of the node this pod is assigned to.", 1),
      column("Nominated Node", "string", "Name of the node this pod is nominated to run on.", 1),
      column("Readiness Gates", "string", "Pod readiness gates, true ones over all.", 1),
  };
  k.defaults = default_pod;
  k.validate = validate_pod;
  k.row = pod_row;
  k.fields = {{"spec.nodeName", "spec.nodeName"},
              {"spec.restartPolicy", "spec.restartPolicy"},
              {"spec.schedulerName", "spec.schedulerName"},
              {"spec.serviceAccountName", "spec.serviceAccountName"},
              {"spec.hostNetwork", "bool:spec.hostNetwork"},
              {"status.phase", "status.phase"},
              {"status.podIP", "status.podIP"},
              {"status.nominatedNodeName", "status.nominatedNodeName"}};
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
