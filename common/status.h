// Status and Result<T>: how fallible functions in skiff report failure.
//
// A Status is either OK or an error code with a message that says what was being done, to what,
// and why it failed. Result<T> holds a T or a non-OK Status. Both are cheap to move and are not
// thread-safe to mutate concurrently (like any value type).
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace skiff {

enum class Code {
  kOk = 0,
  kInvalid,          // bad input from a user or the network (HTTP 400/422)
  kNotFound,         // 404
  kAlreadyExists,    // 409 on create
  kConflict,         // 409 on a stale revision
  kGone,             // 410: the revision was compacted
  kUnauthorized,     // 401
  kForbidden,        // 403
  kTooLarge,         // 413
  kUnavailable,      // transient: retry may succeed (503)
  kTimeout,          // a deadline passed (504)
  kIo,               // the OS said no: errno() tells why
  kInternal,         // a bug or an impossible state (500)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status invalid(std::string m) { return Status(Code::kInvalid, std::move(m)); }
  static Status not_found(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status already_exists(std::string m) { return Status(Code::kAlreadyExists, std::move(m)); }
  static Status conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
  static Status gone(std::string m) { return Status(Code::kGone, std::move(m)); }
  static Status unauthorized(std::string m) { return Status(Code::kUnauthorized, std::move(m)); }
  static Status forbidden(std::string m) { return Status(Code::kForbidden, std::move(m)); }
  static Status too_large(std::string m) { return Status(Code::kTooLarge, std::move(m)); }
  static Status unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
  static Status timeout(std::string m) { return Status(Code::kTimeout, std::move(m)); }
  static Status internal(std::string m) { return Status(Code::kInternal, std::move(m)); }
  // An OS error: message is the context ("open /var/lib/skiff/db"), errno is appended.
  static Status io(std::string context, int err = errno);

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  int os_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  // "NotFound: pods \"x\" not found"
  std::string to_string() const;
  // Returns a copy whose message is prefixed with `context: `.
  Status with_context(const std::string& context) const;

  Status(Code code, std::string message, int err = 0)
      : code_(code), errno_(err), message_(std::move(message)) {}

 private:
  Code code_ = Code::kOk;
  int errno_ = 0;
  std::string message_;
};

const char* code_name(Code c);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status s) : v_(std::move(s)) {}     // NOLINT: REQUIRES !s.is_ok()
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<1>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace skiff

// Returns early with the Status of a failed expression.
#define SKIFF_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::skiff::Status _st = (expr);              \
    if (!_st.is_ok()) return _st;              \
  } while (0)

// CHECK for invariants the program itself guarantees; never for input, files, network or kernel.
#define SKIFF_CHECK(cond)                                                          \
  do {                                                                             \
    if (!(cond)) ::skiff::check_failed(#cond, __FILE__, __LINE__);                 \
  } while (0)

namespace skiff {
[[noreturn]] void check_failed(const char* cond, const char* file, int line);
}
