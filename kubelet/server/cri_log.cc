#include "kubelet/server/cri_log.h"

#include <ctime>

namespace skiff::kubelet::logs {

namespace {

bool digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::optional<int64_t> parse_rfc3339(std::string_view s) {
  int Y, M, D, h, m, sec;
  if (!digits(s, 0, 4, &Y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, &M) || s[7] != '-' ||
      !digits(s, 8, 2, &D) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, &h) ||
      s[13] != ':' || !digits(s, 14, 2, &m) || s[16] != ':' || !digits(s, 17, 2, &sec)) {
    return std::nullopt;
  }
  size_t i = 19;
  int64_t frac = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (n < 9) {
        frac = frac * 10 + (s[i] - '0');
        ++n;
      }
      ++i;
    }
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) frac *= 10;
  }
  int64_t offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!digits(s, i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !digits(s, i + 4, 2, &om)) {
      return std::nullopt;
    }
    offset = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  struct tm t = {};
  t.tm_year = Y - 1900;
  t.tm_mon = M - 1;
  t.tm_mday = D;
  t.tm_hour = h;
  t.tm_min = m;
  t.tm_sec = sec;
  int64_t secs = static_cast<int64_t>(timegm(&t)) - offset;
  return secs * 1'000'000'000 + frac;
}

std::string format_rfc3339_nano(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  struct tm t;
  gmtime_r(&secs, &t);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &t);
  std::string out = buf;
  if (frac != 0) {
    char f[16];
    snprintf(f, sizeof(f), ".%09lld", static_cast<long long>(frac));
    std::string fs = f;
    while (fs.back() == '0') fs.pop_back();  // Go's RFC3339Nano drops trailing zeros
    out += fs;
  }
  return out + "Z";
}

std::optional<CriRecord> parse_record(std::string_view line) {
  size_t a = line.find(' ');
  if (a == std::string_view::npos) return std::nullopt;
  auto ts = parse_rfc3339(line.substr(0, a));
  if (!ts) return std::nullopt;
  size_t b = line.find(' ', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  std::string_view stream = line.substr(a + 1, b - a - 1);
  if (stream != "stdout" && stream != "stderr") return std::nullopt;
  // The tag field; older writers omit the space after it on an empty line.
  std::string_view rest = line.substr(b + 1);
  if (rest.empty() || (rest[0] != 'P' && rest[0] != 'F')) return std::nullopt;
  CriRecord r;
  r.time_ns = *ts;
  r.stream = stream;
  r.partial = rest[0] == 'P';
  if (rest.size() > 1) {
    if (rest[1] != ' ') return std::nullopt;
    r.content = rest.substr(2);
  }
  return r;
}

void LogFormatter::feed(std::string_view data) {
  while (!data.empty() && !limit_reached()) {
    size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      pending_.append(data);
      return;
    }
    if (pending_.empty()) {
      line(data.substr(0, nl));
    } else {
      pending_.append(data.substr(0, nl));
      std::string l = std::move(pending_);
      pending_.clear();
      line(l);
    }
    data.remove_prefix(nl + 1);
  }
}

void LogFormatter::line(std::string_view l) {
  auto r = parse_record(l);
  if (!r) {
    emit(std::string(l) + "\n");
    return;
  }
  if (partial_ns_ < 0) partial_ns_ = r->time_ns;
  partial_.append(r->content);
  if (r->partial) return;
  int64_t ts = partial_ns_;
  partial_ns_ = -1;
  std::string msg = std::move(partial_);
  partial_.clear();
  if (opts_.since_ns > 0 && ts < opts_.since_ns) return;
  if (opts_.timestamps) msg = format_rfc3339_nano(ts) + " " + msg;
  msg += '\n';
  emit(std::move(msg));
}

void LogFormatter::emit(std::string msg) {
  if (tailing_ && opts_.tail_lines >= 0) {
    tail_.push_back(std::move(msg));
    while (static_cast<int64_t>(tail_.size()) > opts_.tail_lines) tail_.pop_front();
    return;
  }
  if (limit_reached()) return;
  if (opts_.limit_bytes >= 0 && produced_ + static_cast<int64_t>(msg.size()) > opts_.limit_bytes) {
    msg.resize(static_cast<size_t>(opts_.limit_bytes - produced_));
  }
  produced_ += static_cast<int64_t>(msg.size());
  out_ += msg;
}

void LogFormatter::end_tail() {
  if (!tailing_) return;
  tailing_ = false;
  auto kept = std::move(tail_);
  tail_.clear();
  for (auto& m : kept) emit(std::move(m));
}

std::string LogFormatter::take() {
  std::string o = std::move(out_);
  out_.clear();
  return o;
}

}  // namespace skiff::kubelet::logs
