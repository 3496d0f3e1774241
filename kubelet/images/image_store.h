// ImageStore: the node's content-addressed image store.
//
// Blobs (manifests, configs, compressed layers) live under <root>/blobs/sha256/<hex>, written to
// a temporary file, verified against their digest, then renamed into place. Each layer is
// unpacked once into <root>/layers/<diff-id hex>/fs (whiteouts and opaque dirs turned into what
// overlayfs expects) and shared by every image that uses it. Image records (name -> config
// digest, layers, config) live in <root>/images.json, replaced atomically.
//
// Thread-safe: concurrent pulls and imports of the same image or layer do the work once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace skiff::images {

// The parts of the OCI image config the kubelet uses.
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "NAME=value"
  std::string working_dir;
  std::string user;  // "uid", "uid:gid", "name" (resolved against the rootfs /etc/passwd)
  std::map<std::string, std::string> labels;
};

struct ImageRecord {
  std::string id;                         // "sha256:<config digest hex>"
  std::vector<std::string> repo_tags;     // normalized: "docker.io/library/busybox:latest"
  std::vector<std::string> repo_digests;  // "127.0.0.1:5000/busybox@sha256:<manifest digest>"
  std::vector<std::string> diff_ids;      // uncompressed layer digests, BOTTOM first
  ImageConfig config;
  int64_t size = 0;                       // compressed bytes of its layers
};

// "busybox" -> "docker.io/library/busybox:latest"; "127.0.0.1:5000/x" -> "127.0.0.1:5000/x:latest";
// digests ("x@sha256:...") kept. Invalid references give Invalid with the reason.
[[nodiscard]] Result<std::string> normalize_reference(std::string_view ref);

struct PullProgress {
  std::string layer;      // digest being fetched ("" for manifests)
  int64_t bytes = 0;      // fetched so far (this layer)
  int64_t total = 0;      // size from the manifest
  std::string message;    // "pulling manifest", "downloading sha256:ab.. 3.1/5.0 MB", "done"
};

struct PullOptions {
  std::string username;          // basic credentials for the registry's token service / basic auth
  std::string password;
  std::string registry_token;    // an identity token, if given instead
  std::vector<std::string> insecure_registries;  // "host:port" reached over plain HTTP
  std::string ca_file;           // extra CA for HTTPS registries
  int timeout_seconds = 300;     // whole pull
  std::function<void(const PullProgress&)> progress;  // called from the pulling thread
  std::stop_token stop;
};

class ImageStore {
 public:
  // Opens (creating if needed) the store under `root` and loads the image records.
  [[nodiscard]] static Result<std::unique_ptr<ImageStore>> open(const std::string& root);
  virtual ~ImageStore() = default;

  // Imports every image in an OCI image layout (directory or tar) or a docker-archive tar
  // (`docker save`). Names come from org.opencontainers.image.ref.name / RepoTags. A corrupt
  // or truncated archive gives Invalid naming the file and the entry, and stores nothing.
  [[nodiscard]] virtual Result<std::vector<ImageRecord>> import_file(const std::string& path) = 0;
  // Imports every regular file in `dir` not imported before (by name+size+mtime), moving each
  // to <dir>/imported/ or, on error, to <dir>/failed/ with a .error file beside it.
  [[nodiscard]] virtual Status import_dir(const std::string& dir) = 0;
  // Pulls from an OCI distribution (v2) registry: image indexes / manifest lists resolve to
  // linux/amd64; Docker and OCI media types; gzip and uncompressed layers; bearer-token and
  // basic auth. Every blob is verified; a mismatch gives Invalid with the digests.
  [[nodiscard]] virtual Result<ImageRecord> pull(std::string_view ref, const PullOptions& opts) = 0;

  // By reference (normalized first), by id ("sha256:..." or its hex prefix >= 12) or by digest.
  virtual std::optional<ImageRecord> find(std::string_view ref) const = 0;
  virtual std::vector<ImageRecord> list() const = 0;
  // The unpacked layer directories of `image`, TOP first (overlayfs lowerdir order).
  [[nodiscard]] virtual Result<std::vector<std::string>> layer_dirs(const ImageRecord& image) const = 0;
  // Removes the name (or the image, by id) and any blobs and layers no image uses any more.
  [[nodiscard]] virtual Status remove(std::string_view ref) = 0;
};

// Resolves an image `user` string against /etc/passwd and /etc/group of the image (looked up in
// `layer_dirs`, TOP first). Numeric ids need no files. NotFound names the user.
struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
};
[[nodiscard]] Result<ResolvedUser> resolve_user(std::string_view user,
                                                const std::vector<std::string>& layer_dirs);

}  // namespace skiff::images
