// The on-disk contract between ContainerRuntime and skiff-shim (see README.md here): the JSON
// of config.json, state.json and exit.json, and the file names. Header-only on purpose: the shim
// is built from shim/*.cc alone (no skiff_common, no spdlog), and the runtime library and its
// unit tests include this same text, so both sides cannot drift apart.
//
// Functions here throw nothing: parse errors come back as `false` with `*err` set.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "kubelet/runtime/spec.h"

namespace skiff::runtime::shim {

inline constexpr const char* kConfigFile = "config.json";
inline constexpr const char* kStateFile = "state.json";
inline constexpr const char* kExitFile = "exit.json";
inline constexpr const char* kRootfsDir = "rootfs";

// Kubernetes reports a container that could not be started with exit code 128.
inline constexpr int kStartErrorExitCode = 128;

// state.json: written by the shim once the container process has exec'd.
struct ShimState {
  int shim_pid = 0;
  uint64_t shim_start_time = 0;  // field 22 of /proc/<pid>/stat: guards against pid reuse
  int pid = 0;
  uint64_t pid_start_time = 0;
  int64_t started_at = 0;  // unix nanoseconds
};

// exit.json: written (atomically, by rename) when the container ended or failed to start.
struct ShimExit {
  int exit_code = 0;
  int signal = 0;
  int64_t finished_at = 0;
  bool oom_killed = false;
  std::string reason;  // Completed, Error, OOMKilled, StartError
  std::string message;
};

// The start time (field 22, clock ticks since boot) from the text of /proc/<pid>/stat; 0 if
// the text is malformed. Together with the pid it names a process without the pid-reuse race.
inline uint64_t parse_stat_start_time(const std::string& stat) {
  size_t p = stat.rfind(')');  // comm may contain spaces and parentheses
  if (p == std::string::npos) return 0;
  int field = 2;  // ") " is followed by field 3
  size_t i = p + 1;
  while (i < stat.size() && field < 22) {
    if (stat[i] == ' ') ++field;
    ++i;
  }
  uint64_t v = 0;
  while (i < stat.size() && stat[i] >= '0' && stat[i] <= '9') v = v * 10 + (stat[i++] - '0');
  return v;
}

inline nlohmann::json mount_to_json(const Mount& m) {
  return {{"destination", m.destination},
          {"type", m.type},
          {"source", m.source},
          {"options", m.options}};
}

// config.json carries `created_at` (unix ns, set by the runtime) beside the ContainerConfig.
inline std::string config_to_json(const ContainerConfig& c, int64_t created_at = 0) {
  nlohmann::json mounts = nlohmann::json::array();
  for (const auto& m : c.mounts) mounts.push_back(mount_to_json(m));
  nlohmann::json j = {
      {"id", c.id},
      {"labels", c.labels},
      {"sandbox_dir", c.sandbox_dir},
      {"image_layers", c.image_layers},
      {"rootfs_path", c.rootfs_path},
      {"read_only_rootfs", c.read_only_rootfs},
      {"args", c.args},
      {"env", c.env},
      {"cwd", c.cwd},
      {"uid", c.uid},
      {"gid", c.gid},
      {"additional_gids", c.additional_gids},
      {"mounts", mounts},
      {"cgroup_dirs", c.cgroup_dirs},
      {"privileged", c.privileged},
      {"cap_add", c.cap_add},
      {"cap_drop", c.cap_drop},
      {"no_new_privs", c.no_new_privs},
      {"seccomp_default", c.seccomp_default},
      {"log_path", c.log_path},
      {"log_max_bytes", c.log_max_bytes},
      {"log_max_files", c.log_max_files},
      {"oom_score_adj", c.oom_score_adj},
      {"created_at", created_at},
  };
  return j.dump();
}

namespace detail {
template <class T>
void get_opt(const nlohmann::json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) it->get_to(out);
}
}  // namespace detail

// Missing keys keep ContainerConfig's defaults; unknown keys are ignored.
inline bool config_from_json(const std::string& text, ContainerConfig* c, std::string* err,
                             int64_t* created_at = nullptr) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *err = "config.json is not a JSON object";
    return false;
  }
  try {
    using detail::get_opt;
    get_opt(j, "id", c->id);
    get_opt(j, "labels", c->labels);
    get_opt(j, "sandbox_dir", c->sandbox_dir);
    get_opt(j, "image_layers", c->image_layers);
    get_opt(j, "rootfs_path", c->rootfs_path);
    get_opt(j, "read_only_rootfs", c->read_only_rootfs);
    get_opt(j, "args", c->args);
    get_opt(j, "env", c->env);
    get_opt(j, "cwd", c->cwd);
    get_opt(j, "uid", c->uid);
    get_opt(j, "gid", c->gid);
    get_opt(j, "additional_gids", c->additional_gids);
    if (auto it = j.find("mounts"); it != j.end() && it->is_array()) {
      c->mounts.clear();
      for (const auto& mj : *it) {
        Mount m;
        get_opt(mj, "destination", m.destination);
        get_opt(mj, "type", m.type);
        get_opt(mj, "source", m.source);
        get_opt(mj, "options", m.options);
        c->mounts.push_back(std::move(m));
      }
    }
    get_opt(j, "cgroup_dirs", c->cgroup_dirs);
    get_opt(j, "privileged", c->privileged);
    get_opt(j, "cap_add", c->cap_add);
    get_opt(j, "cap_drop", c->cap_drop);
    get_opt(j, "no_new_privs", c->no_new_privs);
    get_opt(j, "seccomp_default", c->seccomp_default);
    get_opt(j, "log_path", c->log_path);
    get_opt(j, "log_max_bytes", c->log_max_bytes);
    get_opt(j, "log_max_files", c->log_max_files);
    get_opt(j, "oom_score_adj", c->oom_score_adj);
    if (created_at) get_opt(j, "created_at", *created_at);
  } catch (const std::exception& e) {
    *err = std::string("config.json: ") + e.what();
    return false;
  }
  return true;
}

inline std::string state_to_json(const ShimState& s) {
  return nlohmann::json{{"shim_pid", s.shim_pid},
                        {"shim_start_time", s.shim_start_time},
                        {"pid", s.pid},
                        {"pid_start_time", s.pid_start_time},
                        {"started_at", s.started_at}}
      .dump();
}

inline bool state_from_json(const std::string& text, ShimState* s, std::string* err) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *err = "state.json is not a JSON object";
    return false;
  }
  try {
    using detail::get_opt;
    get_opt(j, "shim_pid", s->shim_pid);
    get_opt(j, "shim_start_time", s->shim_start_time);
    get_opt(j, "pid", s->pid);
    get_opt(j, "pid_start_time", s->pid_start_time);
    get_opt(j, "started_at", s->started_at);
  } catch (const std::exception& e) {
    *err = std::string("state.json: ") + e.what();
    return false;
  }
  return true;
}

inline std::string exit_to_json(const ShimExit& e) {
  return nlohmann::json{{"exit_code", e.exit_code},     {"signal", e.signal},
                        {"finished_at", e.finished_at}, {"oom_killed", e.oom_killed},
                        {"reason", e.reason},           {"message", e.message}}
      .dump();
}

inline bool exit_from_json(const std::string& text, ShimExit* e, std::string* err) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *err = "exit.json is not a JSON object";
    return false;
  }
  try {
    using detail::get_opt;
    get_opt(j, "exit_code", e->exit_code);
    get_opt(j, "signal", e->signal);
    get_opt(j, "finished_at", e->finished_at);
    get_opt(j, "oom_killed", e->oom_killed);
    get_opt(j, "reason", e->reason);
    get_opt(j, "message", e->message);
  } catch (const std::exception& ex) {
    *err = std::string("exit.json: ") + ex.what();
    return false;
  }
  return true;
}

}  // namespace skiff::runtime::shim
