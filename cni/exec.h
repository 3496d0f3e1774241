// Runs one CNI plugin binary: environment, config on stdin, result on stdout, a deadline after
// which the plugin's whole process group is SIGKILLed. Private to cni/.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace skiff::cni {

struct ExecOutput {
  int exit_code = -1;  // the plugin's exit status; -1 when killed by a signal
  std::string out, err;
};

// Spawns `path` with exactly `env`, writes `stdin_data`, collects stdout/stderr until both
// close and the child exits. Timeout when `timeout` passes (the child is killed and reaped).
// SIGPIPE from a plugin that exits without reading is swallowed, not delivered to the process.
Result<ExecOutput> exec_plugin(const std::string& path, const std::vector<std::string>& env,
                               const std::string& stdin_data, std::chrono::milliseconds timeout);

}  // namespace skiff::cni
