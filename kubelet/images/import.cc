// import_file / import_dir: OCI image layouts (directory or tar) and
// docker-archive tars.
//
// A tar is first staged (regular files only, paths checked, symlinks kept as a
// table and resolved inside the archive) under <root>/tmp, so blobs can be read
// in any order. Every blob is verified, every layer unpacked (diff-id checked),
// and only then are the image records committed; any failure undoes what the
// import added.
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "kubelet/images/store.h"

namespace skiff::images {

using nlohmann::json;
using namespace internal;

namespace {

constexpr size_t kMaxJson = 16 << 20;

// The files of an image archive: a real directory, or a staged tar.
struct Tree {
  std::string dir;                              // where the files are
  std::map<std::string, std::string> symlinks;  // staged tars: entry -> link target
  bool staged = false;
  std::string file;  // the user's file, for messages
  ~Tree() {
    if (staged) remove_tree(dir);
  }

  std::string entry_what(const std::string& rel) const {
    return "import " + file + ": entry \"" + rel + "\"";
  }

  // The on-disk path of archive member `rel`, following the archive's own
  // symlinks.
  Result<std::string> path(std::string rel) const {
    for (int hops = 0; hops < 16; ++hops) {
      std::vector<std::string> parts;
      for (size_t i = 0; i <= rel.size();) {
        size_t j = rel.find('/', i);
        if (j == std::string::npos) j = rel.size();
        std::string c = rel.substr(i, j - i);
        if (c == "..") {
          if (parts.empty()) return Status::invalid(entry_what(rel) + ": path escapes the archive");
          parts.pop_back();
        } else if (!c.empty() && c != ".") {
          parts.push_back(c);
        }
        i = j + 1;
      }
      std::string norm;
      for (const auto& p : parts) norm += (norm.empty() ? "" : "/") + p;
      auto it = symlinks.find(norm);
      if (it == symlinks.end()) {
        std::string p = dir + "/" + norm;
        struct stat st;
        if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
          return Status::invalid("import " + file + ": entry \"" + norm + "\" is missing");
        }
        return p;
      }
      const std::string& target = it->second;
      if (!target.empty() && target[0] == '/') {
        return Status::invalid(entry_what(norm) + ": absolute symlink in an image archive");
      }
      size_t slash = norm.rfind('/');
      rel = (slash == std::string::npos ? "" : norm.substr(0, slash + 1)) + target;
    }
    return Status::invalid(entry_what(rel) + ": too many symlinks");
  }

  Result<std::string> read(const std::string& rel, size_t limit) const {
    auto p = path(rel);
    if (!p) return p.status();
    auto r = read_file(*p, limit);
    if (!r) return r.status().with_context(entry_what(rel));
    return r;
  }

  bool exists(const std::string& rel) const {
    if (symlinks.count(rel)) return true;
    struct stat st;
    return ::stat((dir + "/" + rel).c_str(), &st) == 0;
  }
};

Status stage_tar(const std::string& file, const std::string& dir, Tree* tree) {
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  archive_read_support_filter_gzip(a);
  struct Closer {
    archive* a;
    ~Closer() { archive_read_free(a); }
  } closer{a};
  if (archive_read_open_filename(a, file.c_str(), 1 << 20) != ARCHIVE_OK) {
    return Status::invalid("import " + file + ": not a tar archive: " + archive_error_string(a));
  }
  std::string last = "(start of archive)";
  std::vector<char> buf(1 << 20);
  for (int n = 0;; ++n) {
    archive_entry* e;
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      if (n == 0) {
        return Status::invalid("import " + file +
                               ": not a tar archive: " + archive_error_string(a));
      }
      return Status::invalid("import " + file + ": after entry \"" + last +
                             "\": " + archive_error_string(a) + " (truncated or corrupt archive)");
    }
    std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    last = name;
    std::vector<std::string> parts;
    for (size_t i = 0; i <= name.size();) {
      size_t j = name.find('/', i);
      if (j == std::string::npos) j = name.size();
      std::string c = name.substr(i, j - i);
      if (c == ".." || (i == 0 && j == 0 && name.size() > 0)) {
        return Status::invalid("import " + file + ": entry \"" + name +
                               "\": path escapes the archive");
      }
      if (!c.empty() && c != ".") parts.push_back(c);
      i = j + 1;
    }
    if (parts.empty()) continue;
    std::string rel;
    for (const auto& p : parts) rel += (rel.empty() ? "" : "/") + p;
    std::string path = dir;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      path += "/" + parts[i];
      if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Status::io("mkdir " + path);
    }
    path += "/" + parts.back();
    mode_t type = archive_entry_filetype(e);
    if (const char* hl = archive_entry_hardlink(e)) {
      // Hard links name the target from the archive root; make them
      // root-relative links.
      std::string up;
      for (size_t i = 0; i + 1 < parts.size(); ++i) up += "../";
      tree->symlinks[rel] = up + hl;
      continue;
    }
    if (type == AE_IFLNK) {
      tree->symlinks[rel] = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
      continue;
    }
    if (type == AE_IFDIR) {
      if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Status::io("mkdir " + path);
      continue;
    }
    if (type != AE_IFREG) continue;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Status::io("import " + file + ": stage entry \"" + name + "\" at " + path);
    int64_t expect = archive_entry_size(e);
    int64_t got = 0;
    Status st;
    for (;;) {
      la_ssize_t k = archive_read_data(a, buf.data(), buf.size());
      if (k == 0) break;
      if (k < 0) {
        st = Status::invalid("import " + file + ": entry \"" + name +
                             "\": " + archive_error_string(a) + " (truncated or corrupt archive)");
        break;
      }
      if (::write(fd, buf.data(), static_cast<size_t>(k)) != k) {
        st = Status::io("import " + file + ": write " + path);
        break;
      }
      got += k;
    }
    ::close(fd);
    SKIFF_RETURN_IF_ERROR(st);
    if (got != expect) {
      return Status::invalid("import " + file + ": entry \"" + name + "\": truncated (" +
                             std::to_string(got) + " of " + std::to_string(expect) + " bytes)");
    }
  }
  return Status::ok();
}

// Names for an OCI layout entry: containerd's full name, or ref.name when it is
// a full reference (some tools put only the tag there; then there is no
// repository to use).
std::vector<std::string> oci_names(const Descriptor& d) {
  std::vector<std::string> out;
  auto add = [&](const std::string& ref) {
    auto n = normalize_reference(ref);
    if (n && n->find('@') == std::string::npos &&
        std::find(out.begin(), out.end(), *n) == out.end()) {
      out.push_back(*n);
    }
  };
  if (auto it = d.annotations.find("io.containerd.image.name"); it != d.annotations.end()) {
    add(it->second);
  }
  if (auto it = d.annotations.find("org.opencontainers.image.ref.name");
      it != d.annotations.end()) {
    const std::string& v = it->second;
    if (v.find('/') != std::string::npos || v.find(':') != std::string::npos) {
      add(v);
    } else if (out.empty()) {
      add(v);  // a bare word: treat as a name, as `docker load` of such a layout
               // would
    }
  }
  return out;
}

std::string blob_rel(const std::string& digest) { return "blobs/sha256/" + digest_hex(digest); }

Result<std::string> read_blob(const Tree& t, const Descriptor& d) {
  std::string rel = blob_rel(d.digest);
  auto bytes = t.read(rel, 4 << 20);
  if (!bytes) return bytes.status();
  if (d.size >= 0 && static_cast<int64_t>(bytes->size()) != d.size) {
    return Status::invalid(t.entry_what(rel) + ": size mismatch, descriptor says " +
                           std::to_string(d.size) + " bytes, found " +
                           std::to_string(bytes->size()));
  }
  std::string got = sha256_digest(*bytes);
  if (got != d.digest) return Status::invalid(t.entry_what(rel) + ": digest mismatch, got " + got);
  return bytes;
}

Status collect_oci_manifest(const Tree& t, const Descriptor& d, std::vector<std::string> names,
                            int depth, std::vector<PendingImage>* out) {
  if (depth > 4) return Status::invalid("import " + t.file + ": indexes nested too deep");
  auto bytes = read_blob(t, d);
  if (!bytes) return bytes.status();
  const std::string what = t.entry_what(blob_rel(d.digest));
  auto m = parse_manifest(*bytes, d.media_type, what);
  if (!m) return m.status();
  if (m->is_index) {
    auto pick = pick_platform(*m, what);
    if (!pick) return Status::invalid(pick.status().message());
    if (names.empty()) names = oci_names(*pick);
    SKIFF_RETURN_IF_ERROR(collect_oci_manifest(t, *pick, names, depth + 1, out));
    out->back().small_blobs.emplace_back(d.digest, std::move(*bytes));
    return Status::ok();
  }
  PendingImage p;
  p.names = names;
  p.what = "import " + t.file + ": image " + (names.empty() ? d.digest : names[0]);
  for (const auto& n : names) {
    auto r = parse_reference(n);
    if (r) p.repo_digests.push_back(r->name() + "@" + d.digest);
  }
  p.small_blobs.emplace_back(d.digest, std::move(*bytes));
  auto cfg = read_blob(t, m->config);
  if (!cfg) return cfg.status();
  p.config_bytes = std::move(*cfg);
  for (const auto& l : m->layers) {
    auto path = t.path(blob_rel(l.digest));
    if (!path) return path.status();
    p.layer_files.push_back(*path);
    p.layer_digests.push_back(l.digest);
    p.layer_sizes.push_back(l.size);
  }
  out->push_back(std::move(p));
  return Status::ok();
}

Status collect_oci(const Tree& t, std::vector<PendingImage>* out) {
  auto idx_text = t.read("index.json", kMaxJson);
  if (!idx_text) return idx_text.status();
  auto idx = parse_manifest(*idx_text, kOciIndex, t.entry_what("index.json"));
  if (!idx) return idx.status();
  if (!idx->is_index) return Status::invalid(t.entry_what("index.json") + ": not an image index");
  if (idx->manifests.empty())
    return Status::invalid("import " + t.file + ": index.json lists no images");
  for (const auto& d : idx->manifests) {
    SKIFF_RETURN_IF_ERROR(collect_oci_manifest(t, d, oci_names(d), 0, out));
  }
  return Status::ok();
}

Status collect_docker(const Tree& t, std::vector<PendingImage>* out) {
  const std::string mwhat = t.entry_what("manifest.json");
  auto text = t.read("manifest.json", kMaxJson);
  if (!text) return text.status();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array() || j.empty()) return Status::invalid(mwhat + ": not a non-empty JSON array");
  for (const auto& e : j) {
    if (!e.is_object() || !e.contains("Config") || !e["Config"].is_string() ||
        !e.contains("Layers") || !e["Layers"].is_array()) {
      return Status::invalid(mwhat + ": an entry lacks Config or Layers");
    }
    PendingImage p;
    if (auto rt = e.find("RepoTags"); rt != e.end() && rt->is_array()) {
      for (const auto& tag : *rt) {
        if (!tag.is_string()) continue;
        auto n = normalize_reference(tag.get<std::string>());
        if (!n) return Status::invalid(mwhat + ": RepoTags: " + n.status().message());
        p.names.push_back(*n);
      }
    }
    std::string cfg_rel = e["Config"];
    auto cfg = t.read(cfg_rel, kMaxJson);
    if (!cfg) return cfg.status();
    p.config_bytes = std::move(*cfg);
    p.what = "import " + t.file + ": image " + (p.names.empty() ? cfg_rel : p.names[0]);
    for (const auto& l : e["Layers"]) {
      if (!l.is_string()) return Status::invalid(mwhat + ": Layers has a non-string entry");
      auto path = t.path(l.get<std::string>());
      if (!path) return path.status();
      auto dg = sha256_file(*path);
      if (!dg) return dg.status().with_context(t.entry_what(l.get<std::string>()));
      p.layer_files.push_back(*path);
      p.layer_digests.push_back(*dg);
      p.layer_sizes.push_back(-1);
    }
    out->push_back(std::move(p));
  }
  return Status::ok();
}

}  // namespace

Result<std::vector<ImageRecord>> FsImageStore::store_images(std::vector<PendingImage> images,
                                                            bool move_files) {
  Txn txn(this);
  std::vector<StoredImage> stored;
  for (auto& p : images) {
    StoredImage s;
    std::string config_digest = sha256_digest(p.config_bytes);
    std::vector<std::string> diff_ids;
    auto cfg = parse_config(p.config_bytes, p.what + ": config " + config_digest, &diff_ids);
    if (!cfg) return cfg.status();
    if (diff_ids.size() != p.layer_files.size()) {
      return Status::invalid(p.what + ": the manifest has " + std::to_string(p.layer_files.size()) +
                             " layers but the config lists " + std::to_string(diff_ids.size()) +
                             " diff_ids");
    }
    SKIFF_RETURN_IF_ERROR(put_blob_bytes(p.config_bytes, config_digest, txn));
    s.blobs.push_back(config_digest);
    for (const auto& [dg, bytes] : p.small_blobs) {
      SKIFF_RETURN_IF_ERROR(put_blob_bytes(bytes, dg, txn));
      s.blobs.push_back(dg);
    }
    for (size_t i = 0; i < p.layer_files.size(); ++i) {
      const std::string& dg = p.layer_digests[i];
      const std::string what = p.what + ": layer " + dg;
      s.blobs.push_back(dg);
      // A layer this store already has is not unpacked again; its blob is kept
      // if present.
      if (pin_layer(diff_ids[i], txn)) {
        if (!has_blob(dg)) {
          SKIFF_RETURN_IF_ERROR(
              put_blob_file(p.layer_files[i], dg, p.layer_sizes[i], move_files, what, txn));
        }
      } else {
        SKIFF_RETURN_IF_ERROR(
            put_blob_file(p.layer_files[i], dg, p.layer_sizes[i], move_files, what, txn));
        SKIFF_RETURN_IF_ERROR(ensure_layer(blob_path(dg), diff_ids[i], what, txn));
      }
      struct stat st;
      if (::stat(blob_path(dg).c_str(), &st) == 0) s.rec.size += st.st_size;
    }
    s.rec.id = config_digest;
    s.rec.repo_tags = p.names;
    s.rec.repo_digests = p.repo_digests;
    s.rec.diff_ids = diff_ids;
    s.rec.config = std::move(*cfg);
    stored.push_back(std::move(s));
  }
  std::vector<ImageRecord> out;
  for (const auto& s : stored) out.push_back(s.rec);
  SKIFF_RETURN_IF_ERROR(commit(std::move(stored), txn));
  return out;
}

Result<std::vector<ImageRecord>> FsImageStore::import_file(const std::string& file) {
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) return Status::io("import " + file);
  Tree t;
  t.file = file;
  if (S_ISDIR(st.st_mode)) {
    t.dir = file;
  } else {
    t.dir = temp_path("import");
    if (::mkdir(t.dir.c_str(), 0700) != 0) return Status::io("mkdir " + t.dir);
    t.staged = true;
    SKIFF_RETURN_IF_ERROR(stage_tar(file, t.dir, &t));
  }
  std::vector<PendingImage> pending;
  if (t.exists("manifest.json")) {
    SKIFF_RETURN_IF_ERROR(collect_docker(t, &pending));
  } else if (t.exists("index.json")) {
    if (!t.exists("oci-layout")) {
      return Status::invalid("import " + file +
                             ": index.json without oci-layout: not an OCI image layout");
    }
    SKIFF_RETURN_IF_ERROR(collect_oci(t, &pending));
  } else {
    return Status::invalid("import " + file +
                           ": neither an OCI image layout (index.json) nor a docker-archive "
                           "(manifest.json)");
  }
  return store_images(std::move(pending), /*move_files=*/t.staged);
}

Status FsImageStore::import_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Status::io("open import folder " + dir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    // Dot files and .part/.tmp are files still being copied in (copy, then
    // rename).
    if (n.empty() || n[0] == '.') continue;
    if (n.ends_with(".part") || n.ends_with(".tmp")) continue;
    names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::string failures;
  for (const auto& n : names) {
    const std::string path = dir + "/" + n;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const std::string key = std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) +
                            "." + std::to_string(st.st_mtim.tv_nsec);
    {
      std::lock_guard lock(mu_);
      if (auto it = imported_.find(path); it != imported_.end() && it->second == key) continue;
      imported_[path] = key;
    }
    auto r = import_file(path);
    const std::string sub = dir + (r ? "/imported" : "/failed");
    ::mkdir(sub.c_str(), 0755);
    if (::rename(path.c_str(), (sub + "/" + n).c_str()) != 0) {
      failures +=
          (failures.empty() ? "" : "; ") + Status::io("move " + path + " to " + sub).message();
    }
    if (!r) {
      (void)write_file_atomic(sub + "/" + n + ".error", r.status().to_string() + "\n");
      failures += (failures.empty() ? "" : "; ") + r.status().message();
    }
  }
  if (!failures.empty()) return Status::invalid("import folder " + dir + ": " + failures);
  return Status::ok();
}

}  // namespace skiff::images
