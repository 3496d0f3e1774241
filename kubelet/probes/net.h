// Private network helpers of the probes: sockets created inside a pod's network namespace, connects
// and reads with a deadline, optional TLS (no verification, as Kubernetes' HTTPS probes). Errors
// read like Go's net package, as Kubernetes' probe messages show them ("dial tcp 10.1.0.5:8080:
// connect: connection refused"). Not part of the contract.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"

namespace skiff::probes::net {

using Deadline = std::chrono::steady_clock::time_point;

// "host:port", with brackets for IPv6.
std::string join_host_port(const std::string& host, int port);

// A connected stream (plain TCP or TLS over it). Move-only; closes on destruction.
class Conn {
 public:
  Conn();
  ~Conn();
  Conn(Conn&&) noexcept;
  Conn& operator=(Conn&&) noexcept;

  // Writes all of `data` before `deadline`.
  [[nodiscard]] Status write_all(const std::string& data, Deadline deadline);
  // Reads up to `n` bytes; 0 means the peer closed. kTimeout past the deadline.
  [[nodiscard]] skiff::Result<size_t> read(char* buf, size_t n, Deadline deadline);

  struct State;
  std::unique_ptr<State> state_;
};

// Creates a TCP socket in the network namespace at `netns_path` ("" = the caller's) and connects it
// to host:port before `deadline`. With `tls`, also completes a TLS handshake without verifying the
// certificate. Errors: kTimeout ("dial tcp H:P: i/o timeout"), kUnavailable for
// refused/unreachable, kIo when the namespace cannot be entered.
[[nodiscard]] skiff::Result<Conn> dial(const std::string& netns_path, const std::string& host,
                                       int port, bool tls, Deadline deadline);

}  // namespace skiff::probes::net
