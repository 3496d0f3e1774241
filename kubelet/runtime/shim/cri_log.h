// CRI container log format, as the kubelet and `kubectl logs` read it:
//   2026-01-02T03:04:05.123456789Z stdout F a whole line
//   2026-01-02T03:04:05.123456789Z stderr P the first 16 KiB of a longer line
// One record per line the container wrote ("F"); a line longer than kMaxLineBytes is cut into
// "P" (partial) records and a final "F". Output without a trailing newline at EOF becomes an "F"
// record too (as containerd does). The file is rotated by size: log -> log.1 -> log.2 ...
//
// Header-only and libc-only so the static shim and the runtime's unit tests share it.
// Not thread-safe: one writer per log file, owned by the shim's single thread.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace skiff::runtime::shim {

inline constexpr size_t kMaxLineBytes = 16 * 1024;

// RFC 3339 with nanoseconds, UTC: 2026-01-02T03:04:05.123456789Z (30 characters).
inline std::string format_cri_time(int64_t unix_ns) {
  time_t secs = static_cast<time_t>(unix_ns / 1000000000);
  long nanos = static_cast<long>(unix_ns % 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[48];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
  return buf;
}

inline int64_t realtime_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// One CRI record; `text` must not contain the newline.
inline std::string format_cri_line(int64_t unix_ns, std::string_view stream, bool partial,
                                   std::string_view text) {
  std::string out = format_cri_time(unix_ns);
  out.reserve(out.size() + stream.size() + text.size() + 5);
  out += ' ';
  out += stream;
  out += partial ? " P " : " F ";
  out += text;
  out += '\n';
  return out;
}

// Splits one stream's bytes into CRI records. Feed it what read(2) returned; it calls
// `emit(partial, text)` for every record that is complete.
class CriLineSplitter {
 public:
  template <class Emit>
  void feed(std::string_view data, Emit&& emit) {
    while (!data.empty()) {
      size_t nl = data.find('\n');
      std::string_view chunk = nl == std::string_view::npos ? data : data.substr(0, nl);
      // Fill the buffer up to the partial-line limit.
      size_t room = kMaxLineBytes - buf_.size();
      if (chunk.size() > room) {
        buf_.append(chunk.substr(0, room));
        emit(true, std::string_view(buf_));
        buf_.clear();
        data.remove_prefix(room);
        continue;
      }
      buf_.append(chunk);
      if (nl == std::string_view::npos) return;
      emit(false, std::string_view(buf_));
      buf_.clear();
      data.remove_prefix(nl + 1);
    }
  }
  // At EOF: what is left (output without a final newline) is a full record.
  template <class Emit>
  void finish(Emit&& emit) {
    if (!buf_.empty()) emit(false, std::string_view(buf_));
    buf_.clear();
  }

 private:
  std::string buf_;
};

// Appends records to `path`, rotating before a write would take the file past max_bytes:
// path.(max_files-2) -> path.(max_files-1), ..., path -> path.1, and a fresh path. At most
// max_files files exist (path included); the oldest is dropped. No fsync: the page cache is
// enough for logs, and a sync per line would cost more than the container's whole start.
class CriLogFile {
 public:
  CriLogFile() = default;
  CriLogFile(const CriLogFile&) = delete;
  CriLogFile& operator=(const CriLogFile&) = delete;
  ~CriLogFile() {
    if (fd_ >= 0) close(fd_);
  }

  // Returns 0 or an errno.
  int open(std::string path, int64_t max_bytes, int max_files) {
    path_ = std::move(path);
    max_bytes_ = max_bytes;
    max_files_ = max_files < 1 ? 1 : max_files;
    return reopen();
  }

  // Returns 0 or an errno (the record is lost then, the shim keeps going).
  int write_record(std::string_view record) {
    if (fd_ < 0) return EBADF;
    if (max_bytes_ > 0 && size_ > 0 && size_ + static_cast<int64_t>(record.size()) > max_bytes_) {
      rotate();
    }
    const char* p = record.data();
    size_t left = record.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      p += n;
      left -= static_cast<size_t>(n);
      size_ += n;
    }
    return 0;
  }

  const std::string& path() const { return path_; }

 private:
  int reopen() {
    if (fd_ >= 0) close(fd_);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd_ < 0) return errno;
    struct stat st;
    size_ = fstat(fd_, &st) == 0 ? st.st_size : 0;
    return 0;
  }

  void rotate() {
    if (max_files_ <= 1) {  // nowhere to keep an old file: start over
      if (ftruncate(fd_, 0) == 0) size_ = 0;
      return;
    }
    std::string oldest = path_ + "." + std::to_string(max_files_ - 1);
    unlink(oldest.c_str());
    for (int i = max_files_ - 2; i >= 1; --i) {
      std::string from = path_ + "." + std::to_string(i);
      std::string to = path_ + "." + std::to_string(i + 1);
      rename(from.c_str(), to.c_str());  // ENOENT for files never written: fine
    }
    rename(path_.c_str(), (path_ + ".1").c_str());
    reopen();
  }

  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
  int64_t max_bytes_ = 0;
  int max_files_ = 1;
};

}  // namespace skiff::runtime::shim
