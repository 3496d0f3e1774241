// FsImageStore: the ImageStore on a local directory. Private to kubelet/images;
// the pull and import code use its blob/layer primitives through a Txn that
// undoes what a failed operation added.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "kubelet/images/image_store.h"
#include "kubelet/images/internal.h"

namespace skiff::images {

class FsImageStore;

// What one import or pull has added so far. Destroyed without commit(), it
// removes the blobs and layers it created that no image references and no other
// operation is using.
class Txn {
 public:
  explicit Txn(FsImageStore* s) : store_(s) {}
  ~Txn();
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

 private:
  friend class FsImageStore;
  FsImageStore* store_;
  std::vector<std::string> new_blobs_, new_layers_;
  std::vector<std::string> pins_;  // keys "b:<digest>" / "l:<diff id>"
  bool committed_ = false;
};

// An image ready to be committed: everything verified and in place.
struct StoredImage {
  ImageRecord rec;
  std::vector<std::string> blobs;  // manifest(s), config, layer blobs: kept while referenced
};

// An image whose blobs sit in files (staged archive, download dir) waiting to
// be stored.
struct PendingImage {
  std::vector<std::string> names;                                // normalized repo tags
  std::vector<std::string> repo_digests;                         // "name@sha256:<manifest>"
  std::vector<std::pair<std::string, std::string>> small_blobs;  // digest -> bytes (manifests)
  std::string config_bytes;
  std::vector<std::string> layer_files;    // tar or tar.gz, bottom first
  std::vector<std::string> layer_digests;  // digest of each file (blob digest)
  std::vector<int64_t> layer_sizes;        // -1: not known in advance
  std::string what;                        // for messages: "import x.tar: image busybox:1.35"
};

class FsImageStore final : public ImageStore {
 public:
  explicit FsImageStore(std::string root);
  Status init();

  Result<std::vector<ImageRecord>> import_file(const std::string& path) override;
  Status import_dir(const std::string& dir) override;
  Result<ImageRecord> pull(std::string_view ref, const PullOptions& opts) override;
  std::optional<ImageRecord> find(std::string_view ref) const override;
  std::vector<ImageRecord> list() const override;
  Result<std::vector<std::string>> layer_dirs(const ImageRecord& image) const override;
  Status remove(std::string_view ref) override;

  // --- primitives for import and pull ---
  const std::string& root() const { return root_; }
  std::string blob_path(const std::string& digest) const {
    return root_ + "/blobs/sha256/" + internal::digest_hex(digest);
  }
  std::string layer_dir(const std::string& diff_id) const {
    return root_ + "/layers/" + internal::digest_hex(diff_id) + "/fs";
  }
  // A fresh path under <root>/tmp for a download or staging dir.
  std::string temp_path(const std::string& prefix) const;
  bool has_blob(const std::string& digest) const;
  bool has_layer(const std::string& diff_id) const;
  // Checks `file`'s digest (and `size` when >= 0) and moves (or copies) it into
  // the blob store.
  Status put_blob_file(const std::string& file, const std::string& digest, int64_t size, bool move,
                       const std::string& what, Txn& txn);
  Status put_blob_bytes(std::string_view data, const std::string& digest, Txn& txn);
  // Makes sure layer `diff_id` is unpacked, from the tar (gzip or not) in
  // `blob`; done once even when several operations ask at the same time.
  Status ensure_layer(const std::string& blob, const std::string& diff_id, const std::string& what,
                      Txn& txn);
  // Pins a layer that already exists so a concurrent remove() keeps it; false
  // if missing.
  bool pin_layer(const std::string& diff_id, Txn& txn);
  // Adds the images (moving tags from older images), persists images.json, ends
  // the Txn.
  Status commit(std::vector<StoredImage> images, Txn& txn);
  // Verifies and stores every blob and layer of `images`, then commits them
  // all, or nothing.
  Result<std::vector<ImageRecord>> store_images(std::vector<PendingImage> images, bool move_files);
  void rollback(Txn& txn);

 private:
  struct Index {
    std::map<std::string, StoredImage> by_id;
    std::map<std::string, std::string> by_tag;     // repo tag -> id
    std::map<std::string, std::string> by_digest;  // repo digest -> id
  };
  Status load_locked() const;  // (re)reads images.json into index_
  void maybe_reload_locked(bool force = false) const;
  // Read-modify-write of images.json under an flock, so `skiff-kubelet image
  // import` and a running kubelet can share a store: reloads if another process
  // changed it, applies `f`, writes atomically.
  Status mutate_locked(const std::function<Status(Index&)>& f);
  void reindex_locked() const;
  const StoredImage* find_locked(std::string_view ref) const;
  bool referenced_locked(const std::string& key) const;
  void collect_unused_locked(std::vector<std::string>* trash);

  std::string root_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  mutable Index index_;
  mutable struct ::stat loaded_ {};
  mutable std::chrono::steady_clock::time_point
      last_check_{};                      // images.json as last read: reload when it changes
  mutable std::set<std::string> layers_;  // diff ids unpacked
  std::set<std::string> unpacking_;
  std::map<std::string, int> pins_;
  std::map<std::string, std::string> imported_;  // import_dir: path -> "size:mtime"
};

}  // namespace skiff::images
