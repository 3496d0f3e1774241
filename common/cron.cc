#include "common/cron.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>

#include "common/files.h"

namespace skiff::cron {

// ---------------------------------------------------------------------------------------------
// Civil time (Howard Hinnant's days_from_civil / civil_from_days).

namespace {

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int64_t y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

int weekday_of(int64_t days) { return static_cast<int>(((days % 7) + 11) % 7); }  // 0 = Sunday

}  // namespace

int64_t days_from_civil(int64_t year, int64_t month, int64_t day) {
  // Normalise the month into the year first, as Go's time.Date does; the day then simply
  // counts from the first of that month.
  int64_t m0 = month - 1;
  year += floor_div(m0, 12);
  m0 -= floor_div(m0, 12) * 12;
  const int64_t m = m0 + 1;
  const int64_t y = m <= 2 ? year - 1 : year;
  const int64_t era = floor_div(y, 400);
  const int64_t yoe = y - era * 400;
  const int64_t mp = (m + 9) % 12;  // March = 0
  const int64_t doy = (153 * mp + 2) / 5;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468 + (day - 1);
}

Civil civil_at(int64_t unix, int32_t offset) {
  const int64_t local = unix + offset;
  const int64_t days = floor_div(local, 86400);
  const int64_t secs = local - days * 86400;
  const int64_t z = days + 719468;
  const int64_t era = floor_div(z, 146097);
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  Civil c;
  c.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  c.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  c.year = yoe + era * 400 + (c.month <= 2 ? 1 : 0);
  c.hour = static_cast<int>(secs / 3600);
  c.minute = static_cast<int>(secs / 60 % 60);
  c.second = static_cast<int>(secs % 60);
  c.weekday = weekday_of(days);
  return c;
}

// ---------------------------------------------------------------------------------------------
// POSIX TZ rules ("CET-1CEST,M3.5.0,M10.5.0/3"), the TZif footer.

struct TimeZone::PosixRule {
  struct When {
    char kind = 'M';  // 'J' (1..365, no Feb 29), 'D' (0..365), 'M' (month.week.weekday)
    int day = 0, week = 0, month = 0;
    int32_t time = 7200;  // seconds after local midnight
  };
  int32_t std_offset = 0, dst_offset = 0;  // seconds east of UTC
  bool has_dst = false;
  When start, end;

  // The instant `w` happens in `year`, `offset` being the offset in effect just before it.
  int64_t instant(const When& w, int64_t year, int32_t offset) const {
    int64_t day = 0;
    const int64_t jan1 = days_from_civil(year, 1, 1);
    if (w.kind == 'J') {
      day = jan1 + w.day - 1 + (is_leap(year) && w.day >= 60 ? 1 : 0);
    } else if (w.kind == 'D') {
      day = jan1 + w.day;
    } else {
      const int64_t first = days_from_civil(year, w.month, 1);
      int d = 1 + (w.day - weekday_of(first) + 7) % 7 + (w.week - 1) * 7;
      while (d > days_in_month(year, w.month)) d -= 7;  // week 5 = the last one
      day = first + d - 1;
    }
    return day * 86400 + w.time - offset;
  }

  int32_t offset_at(int64_t unix) const {
    if (!has_dst) return std_offset;
    const int64_t year = civil_at(unix, std_offset).year;
    const int64_t s = instant(start, year, std_offset), e = instant(end, year, dst_offset);
    const bool dst = s < e ? (unix >= s && unix < e) : !(unix >= e && unix < s);
    return dst ? dst_offset : std_offset;
  }
};

namespace {

class RuleParser {
 public:
  explicit RuleParser(std::string_view s) : s_(s) {}

  bool parse(TimeZone::PosixRule& r) {
    if (!name() || !offset(r.std_offset)) return false;
    r.std_offset = -r.std_offset;  // POSIX counts west of UTC
    if (done()) return true;
    r.has_dst = true;
    if (!name()) return false;
    r.dst_offset = r.std_offset + 3600;
    if (!done() && peek() != ',') {
      if (!offset(r.dst_offset)) return false;
      r.dst_offset = -r.dst_offset;
    }
    if (done()) {  // no rule: the US rule, as Go assumes
      r.start = {'M', 0, 2, 3, 7200};
      r.end = {'M', 0, 1, 11, 7200};
      return true;
    }
    return eat(',') && when(r.start) && eat(',') && when(r.end) && done();
  }

 private:
  bool done() const { return i_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  bool name() {
    if (eat('<')) {
      const size_t close = s_.find('>', i_);
      if (close == std::string_view::npos) return false;
      i_ = close + 1;
      return true;
    }
    const size_t begin = i_;
    while (!done() && std::isalpha(static_cast<unsigned char>(peek()))) ++i_;
    return i_ - begin >= 3;
  }
  bool number(int& out, int max_digits) {
    const size_t begin = i_;
    out = 0;
    while (!done() && std::isdigit(static_cast<unsigned char>(peek())) &&
           static_cast<int>(i_ - begin) < max_digits)
      out = out * 10 + (s_[i_++] - '0');
    return i_ > begin;
  }
  // [+-]hh[:mm[:ss]] in seconds (sign as written).
  bool offset(int32_t& out) {
    int sign = 1;
    if (eat('-'))
      sign = -1;
    else
      eat('+');
    int h = 0, m = 0, sec = 0;
    if (!number(h, 3)) return false;
    if (eat(':')) {
      if (!number(m, 2)) return false;
      if (eat(':') && !number(sec, 2)) return false;
    }
    out = sign * (h * 3600 + m * 60 + sec);
    return true;
  }
  bool when(TimeZone::PosixRule::When& w) {
    if (eat('J')) {
      w.kind = 'J';
      if (!number(w.day, 3) || w.day < 1 || w.day > 365) return false;
    } else if (eat('M')) {
      w.kind = 'M';
      if (!number(w.month, 2) || !eat('.') || !number(w.week, 1) || !eat('.') ||
          !number(w.day, 1) || w.month < 1 || w.month > 12 || w.week < 1 || w.week > 5 || w.day > 6)
        return false;
    } else {
      w.kind = 'D';
      if (!number(w.day, 3) || w.day > 365) return false;
    }
    w.time = 7200;
    if (eat('/')) return offset(w.time);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// Big-endian readers over the TZif bytes.
class Bytes {
 public:
  explicit Bytes(std::string_view d) : d_(d) {}
  bool has(size_t n) const { return d_.size() - pos_ >= n; }
  int64_t be(size_t n) {
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v = (v << 8) | static_cast<uint8_t>(d_[pos_ + k]);
    pos_ += n;
    if (n == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
    return static_cast<int64_t>(v);
  }
  void skip(size_t n) { pos_ += n; }
  size_t pos() const { return pos_; }
  std::string_view rest() const { return d_.substr(pos_); }

 private:
  std::string_view d_;
  size_t pos_ = 0;
};

struct Header {
  char version = 0;
  int64_t isut = 0, isstd = 0, leap = 0, time = 0, type = 0, chars = 0;
};

bool read_header(Bytes& b, Header& h) {
  if (!b.has(44) || b.rest().substr(0, 4) != "TZif") return false;
  b.skip(4);
  h.version = static_cast<char>(b.be(1));
  b.skip(15);
  h.isut = b.be(4);
  h.isstd = b.be(4);
  h.leap = b.be(4);
  h.time = b.be(4);
  h.type = b.be(4);
  h.chars = b.be(4);
  return h.isut >= 0 && h.isstd >= 0 && h.leap >= 0 && h.time >= 0 && h.type > 0 && h.type <= 256 &&
         h.chars >= 0;
}

size_t data_size(const Header& h, size_t time_size) {
  return h.time * time_size + h.time + h.type * 6 + h.chars + h.leap * (time_size + 4) + h.isstd +
         h.isut;
}

bool valid_zone_name(const std::string& name) {
  if (name.empty() || name[0] == '/' || name[0] == '\\') return false;
  return name.find("..") == std::string::npos;
}

}  // namespace

TimeZone::TimeZone() = default;
TimeZone::~TimeZone() = default;

std::shared_ptr<const TimeZone> TimeZone::utc() {
  static const std::shared_ptr<const TimeZone> kUtc = [] {
    std::shared_ptr<TimeZone> z(new TimeZone());
    z->name_ = "UTC";
    z->types_.push_back({0, false});
    return z;
  }();
  return kUtc;
}

Result<std::shared_ptr<const TimeZone>> TimeZone::from_posix(std::string name,
                                                             std::string_view rule) {
  auto r = std::make_unique<PosixRule>();
  if (!RuleParser(rule).parse(*r))
    return Status::invalid("parse POSIX TZ rule \"" + std::string(rule) + "\" of zone " + name +
                           ": malformed");
  std::shared_ptr<TimeZone> z(new TimeZone());
  z->name_ = std::move(name);
  z->rule_ = std::move(r);
  return std::shared_ptr<const TimeZone>(std::move(z));
}

Result<std::shared_ptr<const TimeZone>> TimeZone::from_tzif(std::string name,
                                                            std::string_view data) {
  auto bad = [&](const char* why) {
    return Status::invalid("read time zone " + name + ": not a TZif file (" + why + ")");
  };
  Bytes b(data);
  Header h;
  if (!read_header(b, h)) return bad("bad header");
  size_t time_size = 4;
  if (h.version >= '2') {
    // Skip the 32-bit block; the 64-bit one after the second header covers all instants.
    if (!b.has(data_size(h, 4))) return bad("truncated version 1 data");
    b.skip(data_size(h, 4));
    if (!read_header(b, h)) return bad("bad second header");
    time_size = 8;
  }
  if (!b.has(data_size(h, time_size))) return bad("truncated data");
  std::shared_ptr<TimeZone> z(new TimeZone());
  z->name_ = std::move(name);
  for (int64_t k = 0; k < h.time; ++k) z->transitions_.push_back(b.be(time_size));
  for (int64_t k = 0; k < h.time; ++k) {
    const int64_t idx = b.be(1);
    if (idx >= h.type) return bad("transition type out of range");
    z->transition_type_.push_back(static_cast<uint8_t>(idx));
  }
  for (int64_t k = 0; k < h.type; ++k) {
    LocalType t;
    t.offset = static_cast<int32_t>(b.be(4));
    t.dst = b.be(1) != 0;
    b.skip(1);  // abbreviation index
    z->types_.push_back(t);
  }
  b.skip(h.chars + h.leap * (time_size + 4) + h.isstd + h.isut);  // leap seconds ignored, as Go
  if (!std::is_sorted(z->transitions_.begin(), z->transitions_.end()))
    return bad("transitions out of order");
  if (time_size == 8) {
    // Footer: "\n<POSIX TZ>\n"; an empty rule means none.
    std::string_view rest = b.rest();
    if (rest.size() >= 2 && rest[0] == '\n') {
      const size_t nl = rest.find('\n', 1);
      std::string_view rule = rest.substr(1, nl == std::string_view::npos ? 0 : nl - 1);
      if (!rule.empty()) {
        auto r = std::make_unique<PosixRule>();
        if (RuleParser(rule).parse(*r)) z->rule_ = std::move(r);
      }
    }
  }
  return std::shared_ptr<const TimeZone>(std::move(z));
}

Result<std::shared_ptr<const TimeZone>> TimeZone::load_from(const std::string& dir,
                                                            const std::string& name) {
  if (name.empty() || name == "UTC") return utc();
  if (!valid_zone_name(name)) return Status::not_found("unknown time zone " + name);
  auto data = files::read_file(dir + "/" + name, 4 << 20);
  if (!data.is_ok()) return Status::not_found("unknown time zone " + name);
  return from_tzif(name, *data);
}

Result<std::shared_ptr<const TimeZone>> TimeZone::load(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const TimeZone>> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(name);
    if (it != cache.end()) return it->second;
  }
  const char* env = std::getenv("ZONEINFO");
  auto z = load_from(env && *env ? env : "/usr/share/zoneinfo", name);
  if (!z.is_ok()) return z;
  std::lock_guard<std::mutex> lock(mu);
  cache.emplace(name, *z);
  return z;
}

std::shared_ptr<const TimeZone> TimeZone::local() {
  static const std::shared_ptr<const TimeZone> kLocal = []() -> std::shared_ptr<const TimeZone> {
    const char* tz = std::getenv("TZ");
    if (!tz) {
      auto data = files::read_file("/etc/localtime", 4 << 20);
      if (data.is_ok()) {
        auto z = from_tzif("Local", *data);
        if (z.is_ok()) return *z;
      }
      return utc();
    }
    std::string name = tz;
    if (!name.empty() && name[0] == ':') name.erase(0, 1);
    if (name.empty() || name == "UTC") return utc();
    if (auto z = load(name); z.is_ok()) return *z;
    if (auto z = from_posix(name, name); z.is_ok()) return *z;
    return utc();
  }();
  return kLocal;
}

int32_t TimeZone::offset_at(int64_t unix) const {
  if (transitions_.empty()) {
    if (rule_) return rule_->offset_at(unix);
    return types_.empty() ? 0 : types_[0].offset;
  }
  if (unix < transitions_.front()) {
    // Before the first transition: the first standard-time type (Go's lookupFirstZone).
    size_t first = 0;
    if (types_[transition_type_[0]].dst) {
      for (size_t k = transition_type_[0]; k-- > 0;)
        if (!types_[k].dst) {
          first = k;
          break;
        }
    }
    return types_[first].offset;
  }
  if (rule_ && unix >= transitions_.back()) return rule_->offset_at(unix);
  const auto it = std::upper_bound(transitions_.begin(), transitions_.end(), unix);
  return types_[transition_type_[static_cast<size_t>(it - transitions_.begin()) - 1]].offset;
}

int64_t TimeZone::to_unix(int64_t year, int64_t month, int64_t day, int64_t hour, int64_t minute,
                          int64_t second) const {
  const int64_t local =
      days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  // Go's time.Date: the offset at the wall time read as UTC; if the instant that gives lies in
  // another zone period, the offset at that instant instead.
  const int32_t first = offset_at(local);
  return local - offset_at(local - first);
}

// ---------------------------------------------------------------------------------------------
// Parsing (robfig/cron v3 parser.go, standard options).

namespace {

constexpr uint64_t kStarBit = uint64_t{1} << 63;

struct Bounds {
  unsigned min, max;
  const std::map<std::string, unsigned>* names;
};

const std::map<std::string, unsigned> kMonthNames = {
    {"jan", 1}, {"feb", 2}, {"mar", 3}, {"apr", 4},  {"may", 5},  {"jun", 6},
    {"jul", 7}, {"aug", 8}, {"sep", 9}, {"oct", 10}, {"nov", 11}, {"dec", 12}};
const std::map<std::string, unsigned> kDayNames = {{"sun", 0}, {"mon", 1}, {"tue", 2}, {"wed", 3},
                                                   {"thu", 4}, {"fri", 5}, {"sat", 6}};
const Bounds kMinutes{0, 59, nullptr}, kHours{0, 23, nullptr}, kDom{1, 31, nullptr},
    kMonths{1, 12, &kMonthNames}, kDow{0, 6, &kDayNames};

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t p = s.find(sep, start);
    out.emplace_back(s.substr(start, p == std::string_view::npos ? s.npos : p - start));
    if (p == std::string_view::npos) return out;
    start = p + 1;
  }
}

// Go's strings.Fields over ASCII whitespace.
std::vector<std::string> fields(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    const size_t b = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i > b) out.emplace_back(s.substr(b, i - b));
  }
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// robfig's mustParseInt (strconv.Atoi's messages).
Result<unsigned> parse_int(const std::string& expr) {
  auto fail = [&](const char* why) {
    return Status::invalid("failed to parse int from " + expr + ": strconv.Atoi: parsing \"" +
                           expr + "\": " + why);
  };
  size_t i = 0;
  bool neg = false;
  if (i < expr.size() && (expr[i] == '+' || expr[i] == '-')) neg = expr[i++] == '-';
  if (i == expr.size()) return fail("invalid syntax");
  int64_t v = 0;
  for (; i < expr.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(expr[i]))) return fail("invalid syntax");
    v = v * 10 + (expr[i] - '0');
    if (v > (int64_t{1} << 40)) return fail("value out of range");
  }
  if (neg && v != 0)
    return Status::invalid("negative number (-" + std::to_string(v) + ") not allowed: " + expr);
  return static_cast<unsigned>(v);
}

Result<unsigned> parse_int_or_name(const std::string& expr, const Bounds& r) {
  if (r.names) {
    auto it = r.names->find(lower(expr));
    if (it != r.names->end()) return it->second;
  }
  return parse_int(expr);
}

uint64_t bits(unsigned min, unsigned max, unsigned step) {
  uint64_t b = 0;
  for (unsigned i = min; i <= max; i += step) b |= uint64_t{1} << i;
  return b;
}

Result<uint64_t> get_range(const std::string& expr, const Bounds& r) {
  const auto range_and_step = split(expr, '/');
  const auto low_and_high = split(range_and_step[0], '-');
  const bool single = low_and_high.size() == 1;
  unsigned start = 0, end = 0, step = 1;
  uint64_t extra = 0;
  if (low_and_high[0] == "*" || low_and_high[0] == "?") {
    start = r.min;
    end = r.max;
    extra = kStarBit;
  } else {
    auto s = parse_int_or_name(low_and_high[0], r);
    if (!s.is_ok()) return s.status();
    start = *s;
    if (low_and_high.size() == 1) {
      end = start;
    } else if (low_and_high.size() == 2) {
      auto e = parse_int_or_name(low_and_high[1], r);
      if (!e.is_ok()) return e.status();
      end = *e;
    } else {
      return Status::invalid("too many hyphens: " + expr);
    }
  }
  if (range_and_step.size() == 2) {
    auto st = parse_int(range_and_step[1]);
    if (!st.is_ok()) return st.status();
    step = *st;
    if (single) end = r.max;  // "N/step" means "N-max/step"
    if (step > 1) extra = 0;
  } else if (range_and_step.size() > 2) {
    return Status::invalid("too many slashes: " + expr);
  }
  auto n = [](unsigned v) { return std::to_string(v); };
  if (start < r.min)
    return Status::invalid("beginning of range (" + n(start) + ") below minimum (" + n(r.min) +
                           "): " + expr);
  if (end > r.max)
    return Status::invalid("end of range (" + n(end) + ") above maximum (" + n(r.max) +
                           "): " + expr);
  if (start > end)
    return Status::invalid("beginning of range (" + n(start) + ") beyond end of range (" + n(end) +
                           "): " + expr);
  if (step == 0) return Status::invalid("step of range should be a positive number: " + expr);
  return bits(start, end, step) | extra;
}

Result<uint64_t> get_field(const std::string& field, const Bounds& r) {
  uint64_t b = 0;
  for (const auto& part : split(field, ',')) {
    if (part.empty()) continue;  // strings.FieldsFunc drops empty pieces
    auto v = get_range(part, r);
    if (!v.is_ok()) return v;
    b |= *v;
  }
  return b;
}

}  // namespace

Result<int64_t> parse_go_duration(std::string_view s) {
  const std::string orig(s);
  auto invalid = [&] { return Status::invalid("time: invalid duration \"" + orig + "\""); };
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return int64_t{0};
  if (s.empty()) return invalid();
  static const std::pair<std::string_view, int64_t> kUnits[] = {
      {"ns", 1},         {"us", 1'000},        {"\u00b5s", 1'000},    {"\u03bcs", 1'000},
      {"ms", 1'000'000}, {"s", 1'000'000'000}, {"m", 60'000'000'000}, {"h", 3'600'000'000'000}};
  // Go accumulates exactly in uint64 and refuses anything above 1<<63 - 1 (or 1<<63 negated).
  const unsigned __int128 limit =
      neg ? (unsigned __int128)1 << 63 : ((unsigned __int128)1 << 63) - 1;
  unsigned __int128 total = 0;
  while (!s.empty()) {
    // [0-9]*(\.[0-9]*)?
    if (!(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))) return invalid();
    unsigned __int128 whole = 0;
    size_t i = 0;
    bool pre = false, post = false;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
      if (whole > limit) return invalid();
      pre = true;
    }
    unsigned __int128 frac = 0, scale = 1;
    if (i < s.size() && s[i] == '.') {
      for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
        if (scale < ((unsigned __int128)1 << 80)) {  // more digits add nothing at 1 ns
          frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
          scale *= 10;
        }
        post = true;
      }
    }
    if (!pre && !post) return invalid();  // no digits, e.g. ".s"
    size_t u = i;
    while (u < s.size() && s[u] != '.' && !(s[u] >= '0' && s[u] <= '9')) ++u;
    std::string_view unit = s.substr(i, u - i);
    if (unit.empty()) return Status::invalid("time: missing unit in duration \"" + orig + "\"");
    int64_t mult = 0;
    for (const auto& [name, m] : kUnits)
      if (unit == name) mult = m;
    if (mult == 0)
      return Status::invalid("time: unknown unit \"" + std::string(unit) + "\" in duration \"" +
                             orig + "\"");
    unsigned __int128 v = whole * static_cast<unsigned __int128>(mult);
    if (v > limit) return invalid();
    v += frac * static_cast<unsigned __int128>(mult) / scale;  // truncated, as Go does
    total += v;
    if (total > limit) return invalid();
    s.remove_prefix(u);
  }
  if (!neg) return static_cast<int64_t>(total);
  return total == ((unsigned __int128)1 << 63) ? INT64_MIN : -static_cast<int64_t>(total);
}

Result<Schedule> Schedule::parse(std::string_view spec_in) {
  std::string spec(spec_in);
  if (spec.empty()) return Status::invalid("empty spec string");
  Schedule s;
  s.second_ = 1;  // the standard parser has no seconds field: second 0
  if (spec.rfind("TZ=", 0) == 0 || spec.rfind("CRON_TZ=", 0) == 0) {
    const size_t sp = spec.find(' '), eq = spec.find('=');
    if (sp == std::string::npos)
      return Status::invalid("provided bad location " + spec.substr(eq + 1) +
                             ": missing schedule after the time zone");
    const std::string name = spec.substr(eq + 1, sp - eq - 1);
    auto z = TimeZone::load(name);
    if (!z.is_ok())
      return Status::invalid("provided bad location " + name + ": " + z.status().message());
    s.zone_ = *z;
    spec = spec.substr(sp);
    const size_t b = spec.find_first_not_of(" \t\n\r\v\f");
    const size_t e = spec.find_last_not_of(" \t\n\r\v\f");
    spec = b == std::string::npos ? "" : spec.substr(b, e - b + 1);
  }
  if (!spec.empty() && spec[0] == '@') {
    const uint64_t all_dom = bits(1, 31, 1) | kStarBit, all_month = bits(1, 12, 1) | kStarBit,
                   all_dow = bits(0, 6, 1) | kStarBit, all_hour = bits(0, 23, 1) | kStarBit;
    s.minute_ = 1;
    s.hour_ = 1;
    if (spec == "@yearly" || spec == "@annually") {
      s.dom_ = 1 << 1, s.month_ = 1 << 1, s.dow_ = all_dow;
    } else if (spec == "@monthly") {
      s.dom_ = 1 << 1, s.month_ = all_month, s.dow_ = all_dow;
    } else if (spec == "@weekly") {
      s.dom_ = all_dom, s.month_ = all_month, s.dow_ = 1;
    } else if (spec == "@daily" || spec == "@midnight") {
      s.dom_ = all_dom, s.month_ = all_month, s.dow_ = all_dow;
    } else if (spec == "@hourly") {
      s.hour_ = all_hour, s.dom_ = all_dom, s.month_ = all_month, s.dow_ = all_dow;
    } else if (spec.rfind("@every ", 0) == 0) {
      auto d = parse_go_duration(std::string_view(spec).substr(7));
      if (!d.is_ok())
        return Status::invalid("failed to parse duration " + spec + ": " + d.status().message());
      constexpr int64_t kSecond = 1'000'000'000;
      s.every_seconds_ = *d < kSecond ? 1 : *d / kSecond;  // robfig's Every()
    } else {
      return Status::invalid("unrecognized descriptor: " + spec);
    }
    return s;
  }
  const auto f = fields(spec);
  if (f.size() != 5) {
    std::string list;
    for (const auto& x : f) list += (list.empty() ? "" : " ") + x;
    return Status::invalid("expected exactly 5 fields, found " + std::to_string(f.size()) + ": [" +
                           list + "]");
  }
  const std::pair<uint64_t*, const Bounds*> order[] = {{&s.minute_, &kMinutes},
                                                       {&s.hour_, &kHours},
                                                       {&s.dom_, &kDom},
                                                       {&s.month_, &kMonths},
                                                       {&s.dow_, &kDow}};
  for (size_t k = 0; k < 5; ++k) {
    auto b = get_field(f[k], *order[k].second);
    if (!b.is_ok()) return b.status();
    *order[k].first = *b;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Next (robfig/cron v3 spec.go SpecSchedule.Next, on whole seconds).

bool Schedule::day_matches(const Civil& c) const {
  const bool dom = (dom_ >> c.day) & 1, dow = (dow_ >> c.weekday) & 1;
  if ((dom_ & kStarBit) || (dow_ & kStarBit)) return dom && dow;
  return dom || dow;
}

std::optional<Clock::time_point> Schedule::next(Clock::time_point tp,
                                                const TimeZone& default_zone) const {
  const TimeZone& z = zone_ ? *zone_ : default_zone;
  using std::chrono::seconds;
  if (every_seconds_ > 0)  // ConstantDelaySchedule.Next: t - t.Nanosecond() + delay
    return std::chrono::floor<seconds>(tp) + seconds(every_seconds_);
  int64_t t = std::chrono::floor<seconds>(tp.time_since_epoch()).count() + 1;
  auto fields_of = [&](int64_t u) { return civil_at(u, z.offset_at(u)); };
  auto has = [](uint64_t set, int v) { return (set >> v) & 1; };
  bool added = false;
  const int64_t year_limit = fields_of(t).year + 5;

wrap:
  Civil c = fields_of(t);
  if (c.year > year_limit) return std::nullopt;

  while (!has(month_, c.month)) {
    if (!added) {
      added = true;
      t = z.to_unix(c.year, c.month, 1, 0, 0, 0);
      c = fields_of(t);
    }
    t = z.to_unix(c.year, c.month + 1, c.day, c.hour, c.minute, c.second);  // AddDate(0, 1, 0)
    c = fields_of(t);
    if (c.month == 1) goto wrap;
  }

  while (!day_matches(c)) {
    if (!added) {
      added = true;
      t = z.to_unix(c.year, c.month, c.day, 0, 0, 0);
      c = fields_of(t);
    }
    t = z.to_unix(c.year, c.month, c.day + 1, c.hour, c.minute, c.second);  // AddDate(0, 0, 1)
    c = fields_of(t);
    // Where midnight does not exist the day starts at 01:00 (or the day before ends at 23:00).
    if (c.hour != 0) {
      t += c.hour > 12 ? (24 - c.hour) * 3600 : -c.hour * 3600;
      c = fields_of(t);
    }
    if (c.day == 1) goto wrap;
  }

  while (!has(hour_, c.hour)) {
    if (!added) {
      added = true;
      t = z.to_unix(c.year, c.month, c.day, c.hour, 0, 0);
    }
    t += 3600;
    c = fields_of(t);
    if (c.hour == 0) goto wrap;
  }

  while (!has(minute_, c.minute)) {
    if (!added) {
      added = true;
      t -= ((t % 60) + 60) % 60;  // Truncate(time.Minute)
    }
    t += 60;
    c = fields_of(t);
    if (c.minute == 0) goto wrap;
  }

  while (!has(second_, c.second)) {
    if (!added) added = true;
    t += 1;
    c = fields_of(t);
    if (c.second == 0) goto wrap;
  }
  return Clock::time_point(seconds(t));
}

}  // namespace skiff::cron
