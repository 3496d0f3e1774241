// CniError: how the skiff CNI plugin reports failure.
//
// The CNI protocol defines its own error codes (SPEC "Error"): the runtime branches on them
// (11 = retry later, 3 = nothing to clean up), so the plugin carries a CNI code instead of a
// skiff::Code and main() prints it as the spec's error JSON. Codes 1-99 are the spec's; the
// plugin's own start at 100. Value types, not thread-safe to mutate concurrently.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace skiff::cni::plugin {

enum ErrCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnv = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidConfig = 7,
  kTryAgainLater = 11,
  // Plugin-specific.
  kNetlinkFailure = 100,  // the kernel refused a link/address/route operation
  kNetnsFailure = 101,    // the pod's network namespace could not be entered
  kConflict = 102,        // an existing object is not what the plugin would have made
  kCheckFailed = 103,     // CHECK found the attachment missing or different
};

struct CniError {
  int code = 0;
  std::string msg;      // short: what failed ("failed to allocate an address")
  std::string details;  // why, with the objects involved and errno text
};

// OK or a CniError.
class [[nodiscard]] CniStatus {
 public:
  CniStatus() = default;
  CniStatus(CniError e) : err_(std::move(e)) {}  // NOLINT: implicit by design
  static CniStatus ok() { return {}; }
  bool is_ok() const { return !err_; }
  explicit operator bool() const { return is_ok(); }
  const CniError& error() const { return *err_; }

 private:
  std::optional<CniError> err_;
};

template <class T>
class [[nodiscard]] CniResult {
 public:
  CniResult(T v) : v_(std::move(v)) {}         // NOLINT
  CniResult(CniError e) : v_(std::move(e)) {}  // NOLINT
  CniResult(CniStatus s) : v_(s.error()) {}    // NOLINT: REQUIRES !s.is_ok()
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const CniError& error() const { return std::get<1>(v_); }
  CniStatus status() const { return is_ok() ? CniStatus() : CniStatus(error()); }

 private:
  std::variant<T, CniError> v_;
};

// "what: strerror(err)" for details.
std::string errno_text(const std::string& what, int err);

}  // namespace skiff::cni::plugin

#define CNI_RETURN_IF_ERROR(expr)                 \
  do {                                            \
    ::skiff::cni::plugin::CniStatus _st = (expr); \
    if (!_st.is_ok()) return _st.error();         \
  } while (0)
