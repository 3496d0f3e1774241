#include "common/status.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace skiff {

const char* code_name(Code c) {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kInvalid: return "Invalid";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kConflict: return "Conflict";
    case Code::kGone: return "Gone";
    case Code::kUnauthorized: return "Unauthorized";
    case Code::kForbidden: return "Forbidden";
    case Code::kTooLarge: return "TooLarge";
    case Code::kUnavailable: return "Unavailable";
    case Code::kTimeout: return "Timeout";
    case Code::kIo: return "IO";
    case Code::kInternal: return "Internal";
  }
  return "Unknown";
}

Status Status::io(std::string context, int err) {
  std::string m = std::move(context);
  m += ": ";
  m += std::strerror(err);
  return Status(Code::kIo, std::move(m), err);
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  return std::string(code_name(code_)) + ": " + message_;
}

Status Status::with_context(const std::string& context) const {
  if (is_ok()) return *this;
  return Status(code_, context + ": " + message_, errno_);
}

void check_failed(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "CHECK failed: %s at %s:%d\n", cond, file, line);
  std::abort();
}

}  // namespace skiff
