// Small file helpers every component needs: read a whole file (bounded), replace a file
// atomically, create a directory path, and decode /proc/self/mountinfo fields. One copy of each,
// with errors that keep errno and name the file (Status::io).
//
// Stateless and thread-safe. skiff-shim keeps its own tiny copies: it links no skiff library.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace skiff::files {

// The whole file. TooLarge, naming the file, when it holds more than `limit` bytes.
// `open_flags` are added to O_RDONLY|O_CLOEXEC (e.g. O_NOFOLLOW).
[[nodiscard]] Result<std::string> read_file(const std::string& path, size_t limit = SIZE_MAX,
                                            int open_flags = 0);

// Replaces `path` with `data`: a uniquely named temp file beside it with `mode` (regardless of
// the umask), fsync, rename, fsync of the directory. A crash leaves the old file or the new one,
// never half of one; concurrent writers of the same path never share a temp file.
[[nodiscard]] Status write_file_atomic(const std::string& path, std::string_view data,
                                       mode_t mode = 0644);

// mkdir -p with `mode` for the directories it creates.
[[nodiscard]] Status mkdir_p(const std::string& dir, mode_t mode = 0755);

// Takes an exclusive flock(2) on `path` (created 0644 if missing) for the rest of this process's
// life, and writes this pid into it, so that two daemons never work in one directory. The lock
// is never released by hand: the kernel drops it when the process ends, kill -9 included, and
// children do not inherit it (close-on-exec). `holder` names the daemon in the error when
// another process holds the lock: Unavailable, naming the file and that process's pid.
[[nodiscard]] Status lock_for_process(const std::string& path, std::string_view holder);

// mountinfo escapes space, tab, newline and backslash in paths as \ooo; this undoes it.
std::string unescape_mountinfo(std::string_view s);

}  // namespace skiff::files
