// Kubernetes' remotecommand channel protocol over WebSocket (v4/v5.channel.k8s.io), as the
// kubelet's exec endpoint speaks it and kubectl/skiffctl expect: every binary message starts with
// a channel byte (0 stdin, 1 stdout, 2 stderr, 3 error: one Status JSON when the command ends,
// 4 resize: {"Width":W,"Height":H}, 255 close: v5 only, payload = the channel being closed).
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skiff::web::remotecommand {

inline constexpr const char* kV5 = "v5.channel.k8s.io";
inline constexpr const char* kV4 = "v4.channel.k8s.io";

enum Channel : uint8_t {
  kStdin = 0,
  kStdout = 1,
  kStderr = 2,
  kError = 3,
  kResize = 4,
  kClose = 255,
};

// The subprotocol to answer with for a Sec-WebSocket-Protocol header: the first offered one we
// speak (as Kubernetes' wsstream picks), "" when none.
std::string negotiate(std::string_view offered);

// One message: the channel byte, then `data`.
std::string frame(uint8_t channel, std::string_view data);

// The error-channel Status documents, byte for byte as the kubelet writes them.
std::string success_status();  // {"metadata":{},"status":"Success"}
// NonZeroExitCode with the code as the ExitCode cause; `command` names the command as the
// container runtimes' exit errors do ("error executing command [sh -c exit 3], exit code 3").
std::string exit_status(int exit_code, const std::vector<std::string>& command);
// Any other failure (the command could not be started, ...).
std::string failure_status(int code, const std::string& reason, const std::string& message);

struct Outcome {
  bool success = false;
  int exit_code = 1;    // 0 on success; the ExitCode cause for NonZeroExitCode; else 1
  std::string message;  // the Status message on failure
};
// Reads an error-channel Status. Unparseable text counts as a failure with that text.
Outcome parse_status(std::string_view json);

struct TerminalSize {
  uint16_t width = 0;
  uint16_t height = 0;
};
std::optional<TerminalSize> parse_resize(std::string_view json);
std::string resize_json(TerminalSize size);

}  // namespace skiff::web::remotecommand
