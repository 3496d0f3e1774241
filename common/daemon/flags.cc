#include "common/daemon/flags.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

namespace skiff::daemon {

void add_leader_election_flags(CLI::App& app, LeaderElectionFlags& f,
                               const std::string& leader_elect_help) {
  app.add_flag("--leader-elect{true}", f.leader_elect, leader_elect_help)->capture_default_str();
  app.add_option("--leader-elect-lease-duration", f.lease_duration,
                 "how long standbys wait after the last renewal they saw before taking over")
      ->capture_default_str();
  app.add_option("--leader-elect-renew-deadline", f.renew_deadline,
                 "the leader gives up (and exits) when it could not renew for this long")
      ->capture_default_str();
  app.add_option("--leader-elect-retry-period", f.retry_period,
                 "interval between attempts to acquire or renew")
      ->capture_default_str();
  app.add_option("--leader-elect-resource-namespace", f.lease_namespace)->capture_default_str();
  app.add_option("--leader-elect-resource-name", f.lease_name)->capture_default_str();
  app.add_option("--id", f.id, "identity in the Lease (default: <hostname>_<pid>)");
}

void add_status_flags(CLI::App& app, StatusFlags& f) {
  app.add_option("--bind-address", f.bind_address,
                 "address of the plain-HTTP /healthz and /metrics endpoint (loopback only)")
      ->capture_default_str();
  app.add_option("--port", f.port, "port of /healthz and /metrics (0: off)")->capture_default_str();
}

void add_verbosity_flag(CLI::App& app, int& verbosity) {
  app.add_option("-v,--v", verbosity, "log verbosity (2+: debug)");
}

std::optional<int> parse_flags(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return std::nullopt;
}

void init_logging(const std::string& program, int verbosity) {
  spdlog::set_default_logger(spdlog::stderr_color_mt(program));
  spdlog::set_level(verbosity >= 2 ? spdlog::level::debug : spdlog::level::info);
}

}  // namespace skiff::daemon
