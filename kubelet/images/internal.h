// Private pieces of the image store shared by its .cc files: digests,
// references, the layer unpacker and the config parser. Not part of the
// contract (see image_store.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "common/status.h"
#include "kubelet/images/image_store.h"

namespace skiff::images::internal {

// Streaming SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  // "sha256:<64 hex>"; the object may not be updated afterwards.
  std::string digest();

 private:
  void* ctx_;
};

std::string sha256_digest(std::string_view data);
// Digest of a file's contents.
[[nodiscard]] Result<std::string> sha256_file(const std::string& path);
// "sha256:<64 lowercase hex>"?
bool valid_digest(std::string_view d);
inline std::string digest_hex(std::string_view d) { return std::string(d.substr(7)); }

// A parsed, normalized reference: registry "docker.io", repository
// "library/busybox", tag "latest" (empty when digest is set), digest
// "sha256:..." (optional).
struct Reference {
  std::string registry;
  std::string repository;
  std::string tag;
  std::string digest;
  std::string name() const { return registry + "/" + repository; }
  std::string str() const { return digest.empty() ? name() + ":" + tag : name() + "@" + digest; }
};
[[nodiscard]] Result<Reference> parse_reference(std::string_view ref);

// Unpacks the layer tar (gzip or plain) at `blob_path` into `dest` (an existing
// empty dir), converting whiteouts for overlayfs and refusing entries that
// escape `dest`. Sets *diff_id to the sha256 of the uncompressed tar stream.
// Errors name `what` (the layer) and the entry.
[[nodiscard]] Status unpack_layer(const std::string& blob_path, const std::string& dest,
                                  const std::string& what, std::string* diff_id);

// Parses an OCI/Docker image config. `diff_ids` gets rootfs.diff_ids (bottom
// first).
[[nodiscard]] Result<ImageConfig> parse_config(std::string_view json, const std::string& what,
                                               std::vector<std::string>* diff_ids);

// Media types.
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";

// Recursively removes `path` (no error if it does not exist).
void remove_tree(const std::string& path);
// Writes `data` to `path` atomically (temp file in the same dir, fsync, rename,
// fsync dir).
using files::read_file;          // common/files.h
using files::write_file_atomic;

}  // namespace skiff::images::internal

namespace skiff::images::internal {

// An OCI/Docker content descriptor.
struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = -1;
  std::map<std::string, std::string> annotations;
  std::string os, architecture, variant;  // index entries only
};

// An image manifest or an index/manifest list.
struct Manifest {
  std::string media_type;
  bool is_index = false;
  std::vector<Descriptor> manifests;  // index
  Descriptor config;                  // manifest
  std::vector<Descriptor> layers;     // manifest
};

// Parses a manifest or index; `content_type` (from HTTP, may be empty) is used
// when the document has no mediaType. Schema 1, unknown types, non-JSON and bad
// fields give Invalid.
[[nodiscard]] Result<Manifest> parse_manifest(std::string_view body, std::string_view content_type,
                                              const std::string& what);
// The entry of an index for this machine's platform (linux/amd64 on x86-64).
[[nodiscard]] Result<Descriptor> pick_platform(const Manifest& index, const std::string& what);
const char* host_architecture();

}  // namespace skiff::images::internal
