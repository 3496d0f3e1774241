// skiffctl's commands. Each returns the process exit code (0 ok, 1 any error) and prints to
// the Context's streams the way kubectl does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/context.h"

namespace skiff::cli {

struct GetOptions {
  std::vector<std::string> args;  // TYPE[,TYPE] [NAME...] or TYPE/NAME...
  std::string output;             // "", wide, yaml, json, name
  std::string selector;
  std::string field_selector;
  bool watch = false;
  bool watch_only = false;
  bool show_labels = false;
  bool no_headers = false;
};
int run_get(Context& ctx, const GetOptions& o);

struct ApplyOptions {
  std::vector<std::string> files;
  bool create_only = false;  // `create -f`: POST only
};
int run_apply(Context& ctx, const ApplyOptions& o);

struct DeleteOptions {
  std::vector<std::string> args;
  std::vector<std::string> files;
  std::string selector;
  bool all = false;
  bool ignore_not_found = false;
};
int run_delete(Context& ctx, const DeleteOptions& o);

struct LogsOptions {
  std::string pod;
  std::string container;
  bool follow = false;
  bool previous = false;
  bool timestamps = false;
  int64_t tail = -1;  // -1: all lines
};
int run_logs(Context& ctx, const LogsOptions& o);

struct ExecOptions {
  std::string pod;
  std::string container;
  bool stdin = false;  // -i: forward stdin, then the v5 close signal at EOF
  bool tty = false;    // -t: a pty in the container; the local terminal goes raw with -i
  std::vector<std::string> command;
};
// Returns the remote command's exit status.
int run_exec(Context& ctx, const ExecOptions& o);

int run_describe(Context& ctx, const std::vector<std::string>& args);

struct ScaleOptions {
  std::vector<std::string> args;  // TYPE NAME... or TYPE/NAME...
  int64_t replicas = -1;          // required, >= 0
  int64_t current_replicas = -1;  // precondition; -1: none
  std::string resource_version;   // precondition on the Scale's resourceVersion; "": none
};
// PATCH (or, with preconditions, GET+PUT) of the `scale` subresource.
int run_scale(Context& ctx, const ScaleOptions& o);

struct RolloutOptions {
  std::string verb;               // status, history, undo, restart, pause, resume
  std::vector<std::string> args;  // TYPE NAME... or TYPE/NAME...
  std::string timeout = "0s";     // status: Go duration; 0 waits forever
  bool watch = true;              // status: false prints the current status once
  int64_t revision = 0;           // status: expect this revision; history: show this one
  int64_t to_revision = 0;        // undo: 0 = the previous revision
};
int run_rollout(Context& ctx, const RolloutOptions& o);
int run_version(Context& ctx, bool client_only);

struct ExposeOptions;  // cli/services.h
// kubectl expose: GET the object, POST the Service generated from it.
int run_expose(Context& ctx, const ExposeOptions& o);

// The client version we print, and the Kubernetes version line kubectl would show.
inline constexpr const char* kClientVersion = "v0.1.0";

}  // namespace skiff::cli
