// AtomicWriter: publishes a set of files into a directory so that a reader sees either the old
// set or the new one, never a mix (Kubernetes' pkg/volume/util/atomic_writer.go).
//
// On disk, for payload {"a": .., "dir/b": ..}:
//   <dir>/..2024_05_01_12_00_00.XXXXXX/a, .../dir/b   the data, one directory per version
//   <dir>/..data -> ..2024_05_01_12_00_00.XXXXXX       swapped with rename(2): the atomic step
//   <dir>/a -> ..data/a, <dir>/dir -> ..data/dir       user-visible names (top level only)
// Stateless; callers serialize writes to one directory.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/status.h"

namespace skiff::volumes {

struct FileProjection {
  std::string data;
  uint32_t mode = 0644;
};

// Relative path -> file.
using Payload = std::map<std::string, FileProjection>;

// Checks a payload path as Kubernetes does: relative, no ".." element, not starting with "..", at
// most 4096 bytes and 255 per element.
[[nodiscard]] Status validate_payload_path(const std::string& path);

// Makes `dir` (which must exist) hold exactly `payload`. Returns true when a new version was
// written, false when the current one already matched (contents and modes).
[[nodiscard]] Result<bool> atomic_write(const std::string& dir, const Payload& payload);

}  // namespace skiff::volumes
