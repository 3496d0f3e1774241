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
int run_version(Context& ctx, bool client_only);

// The client version we print, and the Kubernetes version line kubectl would show.
inline constexpr const char* kClientVersion = "v0.1.0";

}  // namespace skiff::cli
