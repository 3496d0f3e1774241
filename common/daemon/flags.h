// The command-line flags the cluster daemons share, with their names, defaults and help text in
// one place (test/integration/install_test.sh checks them in --help). CLI11 is heavy: only the
// daemons' main.cc include this header.
//
// Thread-safety: call from main before anything starts.
#pragma once

#include <optional>
#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace skiff::daemon {

// --leader-elect, --leader-elect-{lease-duration,renew-deadline,retry-period} (Go durations,
// parsed later with parse_duration_flags), --leader-elect-resource-{namespace,name}, --id.
// The defaults are shorter than Kubernetes' 15s/10s/2s: a standby takes over at most about
// lease + 2 x retry after the leader's last renewal (it judges expiry on its own clock from when
// it saw the last change, and polls every retry period): 14 s here, so "within 15 s of the
// leader's death" holds (issue 5); Kubernetes' defaults measured 15.7-16.7 s in the lab.
struct LeaderElectionFlags {
  bool leader_elect = true;
  std::string lease_duration = "10s", renew_deadline = "8s", retry_period = "2s";
  std::string lease_namespace = "kube-system";
  std::string lease_name;  // the daemon's own Lease name: its default
  std::string id;          // "" until the caller fills in default_identity()
};
// Adds the flags above; `leader_elect_help` says what runs only while leading.
void add_leader_election_flags(CLI::App& app, LeaderElectionFlags& f,
                               const std::string& leader_elect_help);

// --bind-address (default 127.0.0.1) and --port of the plain-HTTP /healthz and /metrics.
struct StatusFlags {
  std::string bind_address = "127.0.0.1";
  int port = 0;  // the daemon's own default port
};
void add_status_flags(CLI::App& app, StatusFlags& f);

// -v/--v N (2+: debug).
void add_verbosity_flag(CLI::App& app, int& verbosity);

// Parses argv. nullopt: go on; otherwise the exit code (0 after --help, 2 for bad flags; CLI11
// has printed why).
std::optional<int> parse_flags(CLI::App& app, int argc, char** argv);

// Logs to stderr as `program`, at debug level from verbosity 2.
void init_logging(const std::string& program, int verbosity);

}  // namespace skiff::daemon
