// FsImageStore: records, blobs, layers and their lifetime. Import is in
// import.cc, pull in registry.cc.
#include "kubelet/images/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

namespace skiff::images {

using nlohmann::json;
using namespace internal;

namespace {

constexpr size_t kMaxIndexFile = 256 << 20;

json to_json(const StoredImage& s) {
  const ImageRecord& r = s.rec;
  json c = {
      {"entrypoint", r.config.entrypoint},   {"cmd", r.config.cmd},   {"env", r.config.env},
      {"working_dir", r.config.working_dir}, {"user", r.config.user}, {"labels", r.config.labels}};
  return {{"id", r.id},
          {"repo_tags", r.repo_tags},
          {"repo_digests", r.repo_digests},
          {"diff_ids", r.diff_ids},
          {"config", c},
          {"size", r.size},
          {"blobs", s.blobs}};
}

StoredImage from_json(const json& j) {
  StoredImage s;
  ImageRecord& r = s.rec;
  r.id = j.at("id").get<std::string>();
  r.repo_tags = j.value("repo_tags", std::vector<std::string>{});
  r.repo_digests = j.value("repo_digests", std::vector<std::string>{});
  r.diff_ids = j.value("diff_ids", std::vector<std::string>{});
  r.size = j.value("size", int64_t{0});
  s.blobs = j.value("blobs", std::vector<std::string>{});
  if (auto c = j.find("config"); c != j.end() && c->is_object()) {
    r.config.entrypoint = c->value("entrypoint", std::vector<std::string>{});
    r.config.cmd = c->value("cmd", std::vector<std::string>{});
    r.config.env = c->value("env", std::vector<std::string>{});
    r.config.working_dir = c->value("working_dir", "");
    r.config.user = c->value("user", "");
    r.config.labels = c->value("labels", std::map<std::string, std::string>{});
  }
  return s;
}

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

Status mkdirs(const std::string& p) {
  for (size_t i = 1; i <= p.size(); ++i) {
    if (i == p.size() || p[i] == '/') {
      std::string sub = p.substr(0, i);
      if (::mkdir(sub.c_str(), 0700) != 0 && errno != EEXIST) return Status::io("mkdir " + sub);
    }
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<ImageStore>> ImageStore::open(const std::string& root) {
  auto s = std::make_unique<FsImageStore>(root);
  SKIFF_RETURN_IF_ERROR(s->init());
  return std::unique_ptr<ImageStore>(std::move(s));
}

FsImageStore::FsImageStore(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

Status FsImageStore::init() {
  for (const char* sub : {"/blobs/sha256", "/layers", "/tmp"}) {
    SKIFF_RETURN_IF_ERROR(mkdirs(root_ + sub));
  }
  // Leftovers of operations that died midway: nothing in tmp is referenced.
  if (DIR* d = ::opendir((root_ + "/tmp").c_str())) {
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    ::closedir(d);
    // Another process may be using its tmp entries right now; only old ones are
    // garbage.
    for (const auto& n : names) {
      struct stat st;
      std::string p = root_ + "/tmp/" + n;
      if (::lstat(p.c_str(), &st) == 0 && st.st_mtime < ::time(nullptr) - 24 * 3600) remove_tree(p);
    }
  }
  std::lock_guard lock(mu_);
  if (DIR* d = ::opendir((root_ + "/layers").c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() == 64 && n.find_first_not_of("0123456789abcdef") == std::string::npos) {
        layers_.insert("sha256:" + n);
      }
    }
    ::closedir(d);
  }
  return load_locked();
}

Status FsImageStore::load_locked() const {
  const std::string path = root_ + "/images.json";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::io("stat " + path);
    index_ = Index{};
    loaded_ = {};
    return Status::ok();
  }
  auto text = read_file(path, kMaxIndexFile);
  if (!text) return text.status();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("images") || !j["images"].is_array()) {
    return Status::invalid(path + " is not an image index (expected {\"images\": [...]})");
  }
  Index idx;
  try {
    for (const auto& e : j["images"]) {
      StoredImage s = from_json(e);
      idx.by_id[s.rec.id] = std::move(s);
    }
  } catch (const std::exception& e) {
    return Status::invalid(path + ": bad image record: " + e.what());
  }
  index_ = std::move(idx);
  loaded_ = st;
  reindex_locked();
  return Status::ok();
}

void FsImageStore::reindex_locked() const {
  index_.by_tag.clear();
  index_.by_digest.clear();
  for (const auto& [id, s] : index_.by_id) {
    for (const auto& t : s.rec.repo_tags) index_.by_tag[t] = id;
    for (const auto& d : s.rec.repo_digests) index_.by_digest[d] = id;
  }
}

void FsImageStore::maybe_reload_locked(bool force) const {
  // Lookups stat images.json at most every 100 ms: cheap on the pod-start path, and still
  // prompt to see `skiff-kubelet image import` run beside a kubelet. Writers always check.
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_check_ < std::chrono::milliseconds(100)) return;
  last_check_ = now;
  struct stat st;
  const std::string path = root_ + "/images.json";
  if (::stat(path.c_str(), &st) != 0) {
    if (loaded_.st_ino != 0) (void)load_locked();
    return;
  }
  if (!same_file(st, loaded_)) (void)load_locked();
}

Status FsImageStore::mutate_locked(const std::function<Status(Index&)>& f) {
  const std::string lock_path = root_ + "/images.lock";
  int lfd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lfd < 0) return Status::io("open " + lock_path);
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }  // closing drops the flock
  } unlock{lfd};
  while (::flock(lfd, LOCK_EX) != 0) {
    if (errno != EINTR) return Status::io("flock " + lock_path);
  }
  maybe_reload_locked(/*force=*/true);
  Index next = index_;
  SKIFF_RETURN_IF_ERROR(f(next));
  json arr = json::array();
  for (const auto& [id, s] : next.by_id) arr.push_back(to_json(s));
  json doc = {{"images", arr}};
  const std::string path = root_ + "/images.json";
  SKIFF_RETURN_IF_ERROR(write_file_atomic(path, doc.dump(1)));
  index_ = std::move(next);
  reindex_locked();
  ::stat(path.c_str(), &loaded_);
  return Status::ok();
}

// --- lookups ---

const StoredImage* FsImageStore::find_locked(std::string_view ref) const {
  std::string_view r = ref;
  if (r.substr(0, 7) == "sha256:") r = r.substr(7);
  bool hex = r.size() >= 12 && r.size() <= 64 &&
             r.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  if (hex) {
    if (r.size() == 64) {
      if (auto it = index_.by_id.find("sha256:" + std::string(r)); it != index_.by_id.end()) {
        return &it->second;
      }
    } else {
      const StoredImage* match = nullptr;
      for (auto it = index_.by_id.lower_bound("sha256:" + std::string(r));
           it != index_.by_id.end() && it->first.compare(7, r.size(), r) == 0; ++it) {
        if (match) return nullptr;  // ambiguous prefix
        match = &it->second;
      }
      if (match) return match;
    }
  }
  auto norm = normalize_reference(ref);
  if (!norm) return nullptr;
  if (auto it = index_.by_tag.find(*norm); it != index_.by_tag.end()) {
    return &index_.by_id.at(it->second);
  }
  if (auto it = index_.by_digest.find(*norm); it != index_.by_digest.end()) {
    return &index_.by_id.at(it->second);
  }
  return nullptr;
}

std::optional<ImageRecord> FsImageStore::find(std::string_view ref) const {
  std::lock_guard lock(mu_);
  maybe_reload_locked();
  if (const StoredImage* s = find_locked(ref)) return s->rec;
  return std::nullopt;
}

std::vector<ImageRecord> FsImageStore::list() const {
  std::lock_guard lock(mu_);
  maybe_reload_locked();
  std::vector<ImageRecord> out;
  for (const auto& [id, s] : index_.by_id) out.push_back(s.rec);
  return out;
}

bool FsImageStore::has_layer(const std::string& diff_id) const {
  std::lock_guard lock(mu_);
  return layers_.count(diff_id) > 0;
}

Result<std::vector<std::string>> FsImageStore::layer_dirs(const ImageRecord& image) const {
  std::vector<std::string> out;
  out.reserve(image.diff_ids.size());
  std::lock_guard lock(mu_);
  for (auto it = image.diff_ids.rbegin(); it != image.diff_ids.rend(); ++it) {
    if (!layers_.count(*it)) {
      // Another process (an import run beside us) may have unpacked it.
      struct stat st;
      if (!valid_digest(*it) || ::stat(layer_dir(*it).c_str(), &st) != 0) {
        return Status::not_found("layer " + *it + " of image " + image.id + " is not unpacked in " +
                                 root_ + "/layers");
      }
      layers_.insert(*it);
    }
    out.push_back(layer_dir(*it));
  }
  return out;
}

// --- blobs and layers ---

std::string FsImageStore::temp_path(const std::string& prefix) const {
  static std::atomic<uint64_t> seq{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return root_ + "/tmp/" + prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(seq++) +
         "-" + std::to_string(rng() % 1000000);
}

bool FsImageStore::has_blob(const std::string& digest) const {
  struct stat st;
  return valid_digest(digest) && ::stat(blob_path(digest).c_str(), &st) == 0;
}

static Status copy_file(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Status::io("open " + from);
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    Status st = Status::io("create " + to);
    ::close(in);
    return st;
  }
  std::vector<char> buf(1 << 20);
  Status st;
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = Status::io("read " + from);
      break;
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf.data() + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        st = Status::io("write " + to);
        break;
      }
      off += w;
    }
    if (!st) break;
  }
  ::close(in);
  ::close(out);
  return st;
}

Status FsImageStore::put_blob_file(const std::string& file, const std::string& digest, int64_t size,
                                   bool move, const std::string& what, Txn& txn) {
  if (!valid_digest(digest))
    return Status::invalid(what + ": unsupported digest \"" + digest + "\"");
  {
    // Stored blobs were verified when written: same digest, same bytes.
    std::lock_guard lock(mu_);
    if (has_blob(digest)) {
      ++pins_["b:" + digest];
      txn.pins_.push_back("b:" + digest);
      if (move) ::unlink(file.c_str());
      return Status::ok();
    }
  }
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) return Status::io(what + ": stat " + file);
  if (size >= 0 && st.st_size != size) {
    return Status::invalid(what + ": size mismatch, descriptor says " + std::to_string(size) +
                           " bytes, found " + std::to_string(st.st_size));
  }
  auto got = sha256_file(file);
  if (!got) return got.status().with_context(what);
  if (*got != digest) return Status::invalid(what + ": digest mismatch, got " + *got);
  {
    std::lock_guard lock(mu_);
    ++pins_["b:" + digest];
    txn.pins_.push_back("b:" + digest);
  }
  if (has_blob(digest)) {
    if (move) ::unlink(file.c_str());
    return Status::ok();
  }
  std::string src = file;
  std::string tmp;
  if (!move) {
    tmp = temp_path("blob");
    SKIFF_RETURN_IF_ERROR(copy_file(file, tmp));
    src = tmp;
  }
  int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);  // the bytes are durable before the name appears
    ::close(fd);
  }
  const std::string dst = blob_path(digest);
  if (::rename(src.c_str(), dst.c_str()) != 0) {
    Status s = Status::io(what + ": rename " + src + " to " + dst);
    if (!tmp.empty()) ::unlink(tmp.c_str());
    return s;
  }
  std::lock_guard lock(mu_);
  txn.new_blobs_.push_back(digest);
  return Status::ok();
}

Status FsImageStore::put_blob_bytes(std::string_view data, const std::string& digest, Txn& txn) {
  std::string got = sha256_digest(data);
  if (got != digest) return Status::invalid("blob " + digest + ": digest mismatch, got " + got);
  {
    std::lock_guard lock(mu_);
    ++pins_["b:" + digest];
    txn.pins_.push_back("b:" + digest);
  }
  if (has_blob(digest)) return Status::ok();
  std::string tmp = temp_path("blob");
  SKIFF_RETURN_IF_ERROR(write_file_atomic(tmp, data));
  if (::rename(tmp.c_str(), blob_path(digest).c_str()) != 0) {
    Status s = Status::io("rename " + tmp + " to " + blob_path(digest));
    ::unlink(tmp.c_str());
    return s;
  }
  std::lock_guard lock(mu_);
  txn.new_blobs_.push_back(digest);
  return Status::ok();
}

bool FsImageStore::pin_layer(const std::string& diff_id, Txn& txn) {
  std::lock_guard lock(mu_);
  if (!layers_.count(diff_id) || unpacking_.count(diff_id)) return false;
  ++pins_["l:" + diff_id];
  txn.pins_.push_back("l:" + diff_id);
  return true;
}

Status FsImageStore::ensure_layer(const std::string& blob, const std::string& diff_id,
                                  const std::string& what, Txn& txn) {
  if (!valid_digest(diff_id)) return Status::invalid(what + ": bad diff id \"" + diff_id + "\"");
  {
    std::unique_lock lock(mu_);
    ++pins_["l:" + diff_id];
    txn.pins_.push_back("l:" + diff_id);
    cv_.wait(lock, [&] { return !unpacking_.count(diff_id); });
    if (layers_.count(diff_id)) return Status::ok();
    unpacking_.insert(diff_id);
  }
  // Unpack beside the final place, then rename: a crash leaves only tmp
  // garbage, and a reader never sees half a layer.
  const std::string tmp = temp_path("layer");
  const std::string final_dir = root_ + "/layers/" + digest_hex(diff_id);
  Status st;
  bool created = false;
  if (::mkdir(tmp.c_str(), 0700) != 0 || ::mkdir((tmp + "/fs").c_str(), 0755) != 0) {
    st = Status::io("mkdir " + tmp);
  } else {
    std::string got;
    st = unpack_layer(blob, tmp + "/fs", what, &got);
    if (st && got != diff_id) {
      st = Status::invalid(what + ": diff-id mismatch, the image config says " + diff_id +
                           ", the uncompressed layer is " + got);
    }
    if (st) {
      if (::rename(tmp.c_str(), final_dir.c_str()) == 0) {
        created = true;
      } else if (errno != EEXIST && errno != ENOTEMPTY) {
        st = Status::io(what + ": rename " + tmp + " to " + final_dir);
      }  // else another process unpacked it first: same content, keep theirs
    }
  }
  if (!created) remove_tree(tmp);
  std::lock_guard lock(mu_);
  unpacking_.erase(diff_id);
  if (st) {
    layers_.insert(diff_id);
    if (created) txn.new_layers_.push_back(diff_id);
  }
  cv_.notify_all();
  return st;
}

// --- records ---

Status FsImageStore::commit(std::vector<StoredImage> images, Txn& txn) {
  std::lock_guard lock(mu_);
  Status st = mutate_locked([&](Index& idx) {
    // Rebuild tag ownership from idx.by_id: a tag moves to the newest image
    // that claims it.
    for (auto& img : images) {
      for (auto& [id, other] : idx.by_id) {
        if (id == img.rec.id) continue;
        auto drop = [&](std::vector<std::string>& v, const std::vector<std::string>& gone) {
          std::erase_if(v, [&](const std::string& t) {
            return std::find(gone.begin(), gone.end(), t) != gone.end();
          });
        };
        drop(other.rec.repo_tags, img.rec.repo_tags);
        drop(other.rec.repo_digests, img.rec.repo_digests);
      }
      auto it = idx.by_id.find(img.rec.id);
      if (it == idx.by_id.end()) {
        idx.by_id[img.rec.id] = img;
      } else {
        auto merge = [](std::vector<std::string>& into, const std::vector<std::string>& add) {
          for (const auto& a : add) {
            if (std::find(into.begin(), into.end(), a) == into.end()) into.push_back(a);
          }
        };
        merge(it->second.rec.repo_tags, img.rec.repo_tags);
        merge(it->second.rec.repo_digests, img.rec.repo_digests);
        merge(it->second.blobs, img.blobs);
      }
    }
    return Status::ok();
  });
  if (st) {
    txn.committed_ = true;
    for (const auto& p : txn.pins_) {
      if (--pins_[p] <= 0) pins_.erase(p);
    }
    txn.pins_.clear();
  }
  return st;
}

bool FsImageStore::referenced_locked(const std::string& key) const {
  if (auto it = pins_.find(key); it != pins_.end() && it->second > 0) return true;
  std::string digest = key.substr(2);
  for (const auto& [id, s] : index_.by_id) {
    if (key[0] == 'l') {
      if (std::find(s.rec.diff_ids.begin(), s.rec.diff_ids.end(), digest) != s.rec.diff_ids.end()) {
        return true;
      }
    } else if (std::find(s.blobs.begin(), s.blobs.end(), digest) != s.blobs.end()) {
      return true;
    }
  }
  return false;
}

Txn::~Txn() {
  if (!committed_ && store_) store_->rollback(*this);
}

void FsImageStore::rollback(Txn& txn) {
  std::vector<std::string> trash;
  {
    std::lock_guard lock(mu_);
    for (const auto& p : txn.pins_) {
      if (--pins_[p] <= 0) pins_.erase(p);
    }
    txn.pins_.clear();
    maybe_reload_locked(/*force=*/true);
    for (const auto& l : txn.new_layers_) {
      if (referenced_locked("l:" + l)) continue;
      std::string t = temp_path("trash");
      if (::rename((root_ + "/layers/" + digest_hex(l)).c_str(), t.c_str()) == 0) {
        trash.push_back(t);
      }
      layers_.erase(l);
    }
    for (const auto& b : txn.new_blobs_) {
      if (!referenced_locked("b:" + b)) ::unlink(blob_path(b).c_str());
    }
  }
  for (const auto& t : trash) remove_tree(t);
}

void FsImageStore::collect_unused_locked(std::vector<std::string>* trash) {
  std::set<std::string> used_layers, used_blobs;
  for (const auto& [id, s] : index_.by_id) {
    used_layers.insert(s.rec.diff_ids.begin(), s.rec.diff_ids.end());
    used_blobs.insert(s.blobs.begin(), s.blobs.end());
  }
  for (auto it = layers_.begin(); it != layers_.end();) {
    const std::string& l = *it;
    if (used_layers.count(l) || pins_.count("l:" + l) || unpacking_.count(l)) {
      ++it;
      continue;
    }
    std::string t = temp_path("trash");
    if (::rename((root_ + "/layers/" + digest_hex(l)).c_str(), t.c_str()) == 0) {
      trash->push_back(t);
    }
    it = layers_.erase(it);
  }
  if (DIR* d = ::opendir((root_ + "/blobs/sha256").c_str())) {
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const auto& n : names) {
      std::string dg = "sha256:" + n;
      if (!used_blobs.count(dg) && !pins_.count("b:" + dg)) {
        ::unlink((root_ + "/blobs/sha256/" + n).c_str());
      }
    }
  }
}

Status FsImageStore::remove(std::string_view ref) {
  std::vector<std::string> trash;
  {
    std::lock_guard lock(mu_);
    maybe_reload_locked(/*force=*/true);
    const StoredImage* s = find_locked(ref);
    if (!s) return Status::not_found("image \"" + std::string(ref) + "\" not found");
    const std::string id = s->rec.id;
    auto norm = normalize_reference(ref);
    Status st = mutate_locked([&](Index& idx) {
      auto it = idx.by_id.find(id);
      if (it == idx.by_id.end()) return Status::ok();  // removed by another process meanwhile
      auto& rec = it->second.rec;
      // Removing one of several tags only untags, as `docker rmi` does.
      bool by_tag = norm && std::find(rec.repo_tags.begin(), rec.repo_tags.end(), *norm) !=
                                rec.repo_tags.end();
      if (by_tag && rec.repo_tags.size() > 1) {
        std::erase(rec.repo_tags, *norm);
        return Status::ok();
      }
      idx.by_id.erase(it);
      return Status::ok();
    });
    SKIFF_RETURN_IF_ERROR(st);
    collect_unused_locked(&trash);
  }
  for (const auto& t : trash) remove_tree(t);
  return Status::ok();
}

}  // namespace skiff::images
