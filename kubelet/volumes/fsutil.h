// Private filesystem helpers of the volume manager: directory trees removed without following
// symlinks, mount-point checks, mounts below a directory, and symlink resolution confined to a root
// directory (for subPath). Not part of the contract; stateless and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace skiff::volumes::fs {

// mkdir -p with `mode` for each created directory (umask bypassed by chmod).
[[nodiscard]] Status make_dirs(const std::string& path, unsigned mode);

// Removes `path` and everything below it. Never follows a symlink (a symlink is unlinked, not its
// target) and never descends into another filesystem: a directory on a different device is a mount
// still in place, so it fails with EBUSY instead of deleting a mount's contents. OK when `path`
// does not exist.
[[nodiscard]] Status remove_tree(const std::string& path);

// True when `path` is the root of a mount (its device differs from its parent's).
bool is_mount_point(const std::string& path);

// Mount points at or below `dir` (from /proc/self/mountinfo, `dir` canonicalized), deepest first,
// one entry per stacked mount.
std::vector<std::string> mounts_below(const std::string& dir);

// Resolves `rel` (relative, no ".." components) inside `root` as if `root` were "/": symlinks are
// followed, but an absolute target starts again at `root` and ".." never climbs above it, so the
// result always lies inside `root`. Missing components are created as directories with `mode`.
// Returns the resolved absolute path, free of symlinks.
[[nodiscard]] Result<std::string> resolve_in_root(const std::string& root, const std::string& rel,
                                                  unsigned mode);

// Bind-mounts `path` (inside `root`, as resolve_in_root returned it) on `target`, reaching it
// through O_PATH|O_NOFOLLOW handles from `root` down, so a component swapped for a symlink
// since it was resolved fails (ELOOP) instead of redirecting the mount. `target` (a file or a
// directory, matching the source) is created; a previous mount there is detached first.
// Needs CAP_SYS_ADMIN (EPERM otherwise).
[[nodiscard]] Status pin_path(const std::string& root, const std::string& path,
                              const std::string& target);

}  // namespace skiff::volumes::fs
