// Layer unpacking: a tar (plain or gzip) into a directory, the way overlayfs
// wants it.
//
// The tar comes from an untrusted image, so every path is walked one component
// at a time with openat(O_NOFOLLOW) from the layer root: an entry whose path
// contains "..", is absolute, or passes through a symlink is refused instead of
// being written outside the layer. Hard links must point inside the layer the
// same way. We decompress ourselves (zlib) and hand libarchive the plain tar
// stream so one pass yields both the files and the diff-id (sha256 of the
// uncompressed stream), including the tail libarchive never reads.
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <vector>

#include "kubelet/images/internal.h"

namespace skiff::images::internal {
namespace {

constexpr size_t kBuf = 256 << 10;

// The decompressing, hashing source libarchive reads from.
struct Source {
  int fd = -1;
  bool gzip = false;
  bool started = false;
  bool in_eof = false;
  bool stream_end = false;  // gzip member ended and no further member follows
  z_stream z{};
  std::vector<unsigned char> in = std::vector<unsigned char>(kBuf);
  std::vector<unsigned char> out = std::vector<unsigned char>(kBuf);
  Sha256 hash;
  std::string error;  // why the stream failed, for the caller's message
  int64_t total = 0;

  ~Source() {
    if (gzip) inflateEnd(&z);
  }

  // Reads more compressed input; false on error.
  bool fill() {
    for (;;) {
      ssize_t n = ::read(fd, in.data(), in.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = std::string("read: ") + std::strerror(errno);
        return false;
      }
      if (n == 0) in_eof = true;
      z.next_in = in.data();
      z.avail_in = static_cast<uInt>(n);
      return true;
    }
  }

  bool start() {
    started = true;
    if (!fill()) return false;
    if (z.avail_in >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
      gzip = true;
      z.zalloc = Z_NULL;
      z.zfree = Z_NULL;
      z.opaque = Z_NULL;
      unsigned char* keep = z.next_in;
      uInt keep_n = z.avail_in;
      if (inflateInit2(&z, 15 + 16) != Z_OK) {
        error = "zlib init failed";
        return false;
      }
      z.next_in = keep;
      z.avail_in = keep_n;
    } else if (z.avail_in >= 4 && in[0] == 0x28 && in[1] == 0xb5 && in[2] == 0x2f &&
               in[3] == 0xfd) {
      error = "zstd-compressed layers are not supported";
      return false;
    }
    return true;
  }

  // Next chunk of the uncompressed stream: >0 bytes, 0 at the end, -1 on error.
  ssize_t next(const void** buf) {
    if (!started && !start()) return -1;
    if (!gzip) {
      if (z.avail_in == 0) {
        if (in_eof) return 0;
        if (!fill()) return -1;
        if (z.avail_in == 0) return 0;
      }
      *buf = z.next_in;
      ssize_t n = z.avail_in;
      z.avail_in = 0;
      hash.update(*buf, n);
      total += n;
      return n;
    }
    for (;;) {
      if (stream_end) return 0;
      if (z.avail_in == 0 && !in_eof) {
        if (!fill()) return -1;
      }
      if (z.avail_in == 0 && in_eof) {
        error = "truncated gzip stream (compressed data ends early)";
        return -1;
      }
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      int r = inflate(&z, Z_NO_FLUSH);
      size_t produced = out.size() - z.avail_out;
      if (r == Z_STREAM_END) {
        // Concatenated gzip members form one stream (RFC 1952); anything else
        // ends it.
        if (z.avail_in == 0 && !in_eof && !fill()) return -1;
        if (z.avail_in == 0) {
          stream_end = true;
        } else {
          inflateReset(&z);
        }
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        error = std::string("corrupt gzip data: ") + (z.msg ? z.msg : "inflate failed");
        return -1;
      }
      if (produced > 0) {
        *buf = out.data();
        hash.update(out.data(), produced);
        total += static_cast<int64_t>(produced);
        return static_cast<ssize_t>(produced);
      }
    }
  }
};

la_ssize_t read_cb(struct archive* a, void* client, const void** buf) {
  auto* s = static_cast<Source*>(client);
  ssize_t n = s->next(buf);
  if (n < 0) archive_set_error(a, EIO, "%s", s->error.c_str());
  return n;
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd = o.fd;
      o.fd = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

struct DirMeta {
  std::vector<std::string> path;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  timespec mtime;
};

class Unpacker {
 public:
  Unpacker(int root, std::string what) : root_(root), what_(std::move(what)) {}

  Status entry(archive* a, archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    name_ = raw ? raw : "";
    std::vector<std::string> comps;
    SKIFF_RETURN_IF_ERROR(split(name_, &comps));
    if (comps.empty()) return Status::ok();  // "./": the layer root itself
    std::string base = comps.back();
    comps.pop_back();
    Fd parent;
    SKIFF_RETURN_IF_ERROR(open_dir(comps, /*create=*/true, &parent));

    if (base == ".wh..wh..opq") {
      if (::fsetxattr(parent.fd, "trusted.overlay.opaque", "y", 1, 0) != 0) {
        return err_io("mark the directory opaque (trusted.overlay.opaque)");
      }
      return Status::ok();
    }
    if (base.rfind(".wh.", 0) == 0) {
      std::string victim = base.substr(4);
      if (victim.empty() || victim == "." || victim == "..") return bad("invalid whiteout name");
      remove_at(parent.fd, victim);
      if (::mknodat(parent.fd, victim.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
        return err_io("create the whiteout device for " + victim);
      }
      return Status::ok();
    }

    if (const char* hl = archive_entry_hardlink(e); hl != nullptr) {
      std::vector<std::string> target;
      SKIFF_RETURN_IF_ERROR(split(hl, &target));
      if (target.empty()) return bad("hard link to the layer root");
      std::string tbase = target.back();
      target.pop_back();
      Fd tdir;
      SKIFF_RETURN_IF_ERROR(open_dir(target, /*create=*/false, &tdir));
      remove_at(parent.fd, base);
      if (::linkat(tdir.fd, tbase.c_str(), parent.fd, base.c_str(), 0) != 0) {
        return err_io(std::string("hard link to ") + hl);
      }
      return Status::ok();
    }

    mode_t type = archive_entry_filetype(e);
    mode_t perm = archive_entry_perm(e) & 07777;
    uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
    gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
    timespec mtime{archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
    switch (type) {
      case AE_IFDIR: {
        struct stat st;
        if (::fstatat(parent.fd, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            !S_ISDIR(st.st_mode)) {
          remove_at(parent.fd, base);
        }
        if (::mkdirat(parent.fd, base.c_str(), 0700) != 0 && errno != EEXIST) {
          return err_io("mkdir");
        }
        comps.push_back(base);
        dirs_.push_back({std::move(comps), perm, uid, gid, mtime});
        return Status::ok();
      }
      case AE_IFREG:
        return regular(a, e, parent.fd, base, perm, uid, gid, mtime);
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        remove_at(parent.fd, base);
        if (::symlinkat(target ? target : "", parent.fd, base.c_str()) != 0) {
          return err_io("symlink");
        }
        if (root_user_ && ::fchownat(parent.fd, base.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW)) {
          return err_io("chown symlink");
        }
        timespec ts[2] = {mtime, mtime};
        ::utimensat(parent.fd, base.c_str(), ts, AT_SYMLINK_NOFOLLOW);
        return Status::ok();
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        remove_at(parent.fd, base);
        dev_t dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        if (::mknodat(parent.fd, base.c_str(), type | perm, dev) != 0) {
          // Without CAP_MKNOD device nodes cannot exist; the runtime gives
          // containers /dev.
          if (errno == EPERM && type != AE_IFIFO) return Status::ok();
          return err_io("mknod");
        }
        if (root_user_) ::fchownat(parent.fd, base.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
        timespec ts[2] = {mtime, mtime};
        ::utimensat(parent.fd, base.c_str(), ts, AT_SYMLINK_NOFOLLOW);
        return Status::ok();
      }
      default:
        return Status::ok();  // sockets and unknown types carry nothing to keep
    }
  }

  // Directory modes, owners and times last: writing children would change the
  // times, and a read-only directory would block its own children for a
  // non-root caller.
  Status finish() {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      Fd d;
      name_ = join(it->path);
      SKIFF_RETURN_IF_ERROR(open_dir(it->path, /*create=*/false, &d));
      if (root_user_ && ::fchown(d.fd, it->uid, it->gid) != 0) return err_io("chown directory");
      if (::fchmod(d.fd, it->mode) != 0) return err_io("chmod directory");
      timespec ts[2] = {it->mtime, it->mtime};
      ::futimens(d.fd, ts);
    }
    return Status::ok();
  }

  const std::string& current() const { return name_; }

 private:
  Status bad(const std::string& why) const {
    return Status::invalid(what_ + ": entry \"" + name_ + "\": " + why);
  }
  Status err_io(const std::string& op) const {
    return Status::io(what_ + ": entry \"" + name_ + "\": " + op);
  }

  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& c : v) s += (s.empty() ? "" : "/") + c;
    return s;
  }

  Status split(const std::string& p, std::vector<std::string>* out) const {
    if (!p.empty() && p[0] == '/') return bad("absolute path escapes the layer");
    for (size_t i = 0; i <= p.size();) {
      size_t j = p.find('/', i);
      if (j == std::string::npos) j = p.size();
      std::string c = p.substr(i, j - i);
      if (c == "..") return bad("path with \"..\" escapes the layer");
      if (!c.empty() && c != ".") out->push_back(std::move(c));
      i = j + 1;
    }
    return Status::ok();
  }

  // Opens the directory at `comps` below the root without following any
  // symlink.
  Status open_dir(const std::vector<std::string>& comps, bool create, Fd* out) const {
    Fd cur(::fcntl(root_, F_DUPFD_CLOEXEC, 0));
    for (const auto& c : comps) {
      int fd = ::openat(cur.fd, c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && create) {
        if (::mkdirat(cur.fd, c.c_str(), 0755) != 0 && errno != EEXIST) return err_io("mkdir " + c);
        fd = ::openat(cur.fd, c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR) {
          struct stat st;
          if (::fstatat(cur.fd, c.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
            return bad("path goes through the symlink \"" + c + "\" (refused: it could escape)");
          }
          return bad("\"" + c + "\" on the path is not a directory");
        }
        return err_io("open directory " + c);
      }
      cur = Fd(fd);
    }
    *out = std::move(cur);
    return Status::ok();
  }

  static void remove_at(int dirfd, const std::string& name) {
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
      ::unlinkat(dirfd, name.c_str(), 0);
      return;
    }
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      if (DIR* d = ::fdopendir(fd)) {
        std::vector<std::string> names;
        while (dirent* de = ::readdir(d)) {
          if (std::strcmp(de->d_name, ".") && std::strcmp(de->d_name, "..")) {
            names.emplace_back(de->d_name);
          }
        }
        for (const auto& n : names) remove_at(::dirfd(d), n);
        ::closedir(d);
      } else {
        ::close(fd);
      }
    }
    ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR);
  }

  Status regular(archive* a, archive_entry* e, int dirfd, const std::string& base, mode_t perm,
                 uid_t uid, gid_t gid, timespec mtime) {
    remove_at(dirfd, base);
    Fd f(::openat(dirfd, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (f.fd < 0) return err_io("create file");
    for (;;) {
      const void* buf;
      size_t size;
      la_int64_t off;
      int r = archive_read_data_block(a, &buf, &size, &off);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        return bad(std::string("reading the data: ") + archive_error_string(a));
      }
      const char* p = static_cast<const char*>(buf);
      while (size > 0) {
        ssize_t n = ::pwrite(f.fd, p, size, off);
        if (n < 0) {
          if (errno == EINTR) continue;
          return err_io("write");
        }
        p += n;
        off += n;
        size -= static_cast<size_t>(n);
      }
    }
    // Sparse files may end in a hole.
    if (archive_entry_size_is_set(e) && ::ftruncate(f.fd, archive_entry_size(e)) != 0) {
      return err_io("truncate");
    }
    if (root_user_ && ::fchown(f.fd, uid, gid) != 0) return err_io("chown");
    // After chown: chown clears set-uid/set-gid bits.
    if (::fchmod(f.fd, perm) != 0) return err_io("chmod");
    const char* xname;
    const void* xval;
    size_t xsize;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &xname, &xval, &xsize) == ARCHIVE_OK) {
      // File capabilities (security.capability) matter for ping and friends;
      // others are best effort, as with tar --xattrs.
      ::fsetxattr(f.fd, xname, xval, xsize, 0);
    }
    timespec ts[2] = {mtime, mtime};
    ::futimens(f.fd, ts);
    return Status::ok();
  }

  int root_;
  std::string what_;
  std::string name_;
  bool root_user_ = ::geteuid() == 0;
  std::vector<DirMeta> dirs_;
};

}  // namespace

Status unpack_layer(const std::string& blob_path, const std::string& dest, const std::string& what,
                    std::string* diff_id) {
  Source src;
  src.fd = ::open(blob_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (src.fd < 0) return Status::io(what + ": open " + blob_path);
  Fd src_fd(src.fd);
  Fd root(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.fd < 0) return Status::io(what + ": open " + dest);

  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  struct Closer {
    archive* a;
    ~Closer() { archive_read_free(a); }
  } closer{a};
  if (archive_read_open(a, &src, nullptr, read_cb, nullptr) != ARCHIVE_OK) {
    if (!src.error.empty()) return Status::invalid(what + ": " + src.error);
    return Status::invalid(what + ": not a tar archive: " + archive_error_string(a));
  }
  Unpacker u(root.fd, what);
  int entries = 0;
  for (;;) {
    archive_entry* e;
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      std::string why = !src.error.empty() ? src.error : archive_error_string(a);
      if (entries == 0 && src.error.empty()) {
        return Status::invalid(what + ": not a tar archive: " + why);
      }
      return Status::invalid(what + ": after entry \"" + u.current() + "\": " + why);
    }
    ++entries;
    SKIFF_RETURN_IF_ERROR(u.entry(a, e));
  }
  SKIFF_RETURN_IF_ERROR(u.finish());
  // The diff-id covers the whole uncompressed stream, including padding after
  // the end marker.
  for (;;) {
    const void* buf;
    ssize_t n = src.next(&buf);
    if (n < 0) return Status::invalid(what + ": at the end of the archive: " + src.error);
    if (n == 0) break;
  }
  *diff_id = src.hash.digest();
  return Status::ok();
}

}  // namespace skiff::images::internal
