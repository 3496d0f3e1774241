#include "netagent/dns/message.h"

#include <algorithm>
#include <map>

namespace skiff::dns {

std::string type_name(uint16_t t) {
  switch (t) {
    case kA:
      return "A";
    case kNS:
      return "NS";
    case kCNAME:
      return "CNAME";
    case kSOA:
      return "SOA";
    case kPTR:
      return "PTR";
    case kMX:
      return "MX";
    case kTXT:
      return "TXT";
    case kAAAA:
      return "AAAA";
    case kSRV:
      return "SRV";
    case kOPT:
      return "OPT";
    case kAXFR:
      return "AXFR";
    case kANY:
      return "ANY";
  }
  return std::to_string(t);
}

std::string rcode_name(uint8_t r) {
  switch (r) {
    case kNoError:
      return "NOERROR";
    case kFormErr:
      return "FORMERR";
    case kServFail:
      return "SERVFAIL";
    case kNxDomain:
      return "NXDOMAIN";
    case kNotImp:
      return "NOTIMP";
    case kRefused:
      return "REFUSED";
  }
  return std::to_string(r);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string ip4_str(uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 255) + "." +
         std::to_string((ip >> 8) & 255) + "." + std::to_string(ip & 255);
}

std::optional<uint32_t> parse_ip4(std::string_view s) {
  uint32_t ip = 0;
  int parts = 0;
  size_t i = 0;
  while (parts < 4) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
    uint32_t v = 0;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + static_cast<uint32_t>(s[i] - '0');
      if (i - start >= 3 || v > 255) return std::nullopt;
      ++i;
    }
    ip = (ip << 8) | v;
    ++parts;
    if (parts < 4) {
      if (i >= s.size() || s[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != s.size()) return std::nullopt;
  return ip;
}

namespace {

constexpr int kMaxPointers = 64;
constexpr size_t kMaxName = 255;

struct Reader {
  std::string_view w;
  size_t pos = 0;
  std::string err;

  bool fail(std::string why) {
    if (err.empty()) err = std::move(why);
    return false;
  }
  bool u8(uint8_t& v) {
    if (pos + 1 > w.size()) return fail("truncated at offset " + std::to_string(pos));
    v = static_cast<uint8_t>(w[pos++]);
    return true;
  }
  bool u16(uint16_t& v) {
    if (pos + 2 > w.size()) return fail("truncated at offset " + std::to_string(pos));
    v = static_cast<uint16_t>((static_cast<uint8_t>(w[pos]) << 8) |
                              static_cast<uint8_t>(w[pos + 1]));
    pos += 2;
    return true;
  }
  bool u32(uint32_t& v) {
    uint16_t hi, lo;
    if (!u16(hi) || !u16(lo)) return false;
    v = (static_cast<uint32_t>(hi) << 16) | lo;
    return true;
  }

  // Reads a (possibly compressed) name at pos; pos ends after the name's bytes in place.
  bool name(std::string& out) {
    out.clear();
    size_t p = pos;
    size_t wire_len = 1;  // the final zero byte
    int pointers = 0;
    bool jumped = false;
    // A pointer must go strictly before the start of the labels being read (where the name
    // began, or the previous pointer's target): offsets fall on every jump, so no loop.
    size_t lowest = p;
    while (true) {
      if (p >= w.size()) return fail("name at offset " + std::to_string(pos) + ": truncated");
      uint8_t len = static_cast<uint8_t>(w[p]);
      if ((len & 0xC0) == 0xC0) {
        if (p + 1 >= w.size())
          return fail("name at offset " + std::to_string(pos) + ": truncated pointer");
        size_t target = (static_cast<size_t>(len & 0x3F) << 8) | static_cast<uint8_t>(w[p + 1]);
        if (++pointers > kMaxPointers || target >= lowest)
          return fail("name at offset " + std::to_string(pos) + ": compression pointer loop");
        if (!jumped) pos = p + 2;
        jumped = true;
        lowest = target;
        p = target;
        continue;
      }
      if ((len & 0xC0) != 0)
        return fail("name at offset " + std::to_string(pos) + ": unknown label type");
      if (len == 0) {
        if (!jumped) pos = p + 1;
        return true;
      }
      if (p + 1 + len > w.size())
        return fail("name at offset " + std::to_string(pos) + ": truncated label");
      wire_len += 1 + len;
      if (wire_len > kMaxName)
        return fail("name at offset " + std::to_string(pos) + ": longer than 255");
      if (!out.empty()) out += '.';
      for (size_t i = 0; i < len; ++i) {
        char c = w[p + 1 + i];
        if (c == '.' || c == '\\') out += '\\';
        out += c;
      }
      p += 1 + len;
    }
  }
};

// Splits a presentation name into raw labels (undoing "\." and "\\").
std::vector<std::string> labels_of(std::string_view name) {
  std::vector<std::string> out;
  if (name.empty() || name == ".") return out;
  std::string cur;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '\\' && i + 1 < name.size()) {
      cur += name[++i];
    } else if (c == '.') {
      out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty() || out.empty() || name.back() != '.') out.push_back(std::move(cur));
  // A trailing dot ("a.b.") ends the name; drop the empty last label it leaves.
  if (!out.empty() && out.back().empty() && name.back() == '.') out.pop_back();
  return out;
}

bool record(Reader& r, Record& rec, bool& is_opt, Message& m) {
  uint16_t rdlen;
  if (!r.name(rec.name) || !r.u16(rec.type) || !r.u16(rec.klass) || !r.u32(rec.ttl) ||
      !r.u16(rdlen))
    return false;
  if (r.pos + rdlen > r.w.size()) return r.fail("record " + rec.name + ": rdata truncated");
  size_t end = r.pos + rdlen;
  is_opt = rec.type == kOPT;
  if (is_opt) {
    m.edns_udp_size = rec.klass;
    m.edns_do = (rec.ttl & 0x8000) != 0;
    r.pos = end;
    return true;
  }
  // Parse rdata within its own bounds so a lying rdlength cannot run into the next record.
  Reader sub{r.w.substr(0, end), r.pos};
  bool ok = true;
  switch (rec.type) {
    case kA:
      ok = rdlen == 4 && sub.u32(rec.a);
      break;
    case kCNAME:
    case kPTR:
    case kNS:
      ok = sub.name(rec.target);
      break;
    case kSRV:
      ok =
          sub.u16(rec.priority) && sub.u16(rec.weight) && sub.u16(rec.port) && sub.name(rec.target);
      break;
    case kSOA:
      ok = sub.name(rec.soa.mname) && sub.name(rec.soa.rname) && sub.u32(rec.soa.serial) &&
           sub.u32(rec.soa.refresh) && sub.u32(rec.soa.retry) && sub.u32(rec.soa.expire) &&
           sub.u32(rec.soa.minimum);
      break;
    default:
      rec.raw.assign(r.w.substr(r.pos, rdlen));
      sub.pos = end;
  }
  if (!ok || sub.pos != end)
    return r.fail("record " + rec.name + " " + type_name(rec.type) + ": bad rdata" +
                  (sub.err.empty() ? "" : " (" + sub.err + ")"));
  r.pos = end;
  return true;
}

class Writer {
 public:
  std::string out;

  void u8(uint8_t v) { out += static_cast<char>(v); }
  void u16(uint16_t v) {
    out += static_cast<char>(v >> 8);
    out += static_cast<char>(v & 0xFF);
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v & 0xFFFF));
  }
  void put16(size_t at, uint16_t v) {
    out[at] = static_cast<char>(v >> 8);
    out[at + 1] = static_cast<char>(v & 0xFF);
  }

  // Writes a name, pointing at an earlier copy of the longest suffix already written.
  void name(std::string_view n) {
    std::vector<std::string> ls = labels_of(n);
    for (size_t i = 0; i < ls.size(); ++i) {
      std::string key;
      for (size_t j = i; j < ls.size(); ++j) {
        key += lower(ls[j]);
        key += '\0';
      }
      auto it = seen_.find(key);
      if (it != seen_.end()) {
        u16(static_cast<uint16_t>(0xC000 | it->second));
        return;
      }
      if (out.size() < 0x3FFF) seen_.emplace(std::move(key), static_cast<uint16_t>(out.size()));
      std::string_view l = ls[i];
      if (l.size() > 63) l = l.substr(0, 63);  // callers never build such names; stay valid
      u8(static_cast<uint8_t>(l.size()));
      out += l;
    }
    u8(0);
  }

  void record(const Record& r) {
    name(r.name);
    u16(r.type);
    u16(r.klass);
    u32(r.ttl);
    size_t len_at = out.size();
    u16(0);
    size_t start = out.size();
    switch (r.type) {
      case kA:
        u32(r.a);
        break;
      case kCNAME:
      case kPTR:
      case kNS:
        name(r.target);
        break;
      case kSRV:
        u16(r.priority);
        u16(r.weight);
        u16(r.port);
        // RFC 2782: the SRV target is not compressed (some resolvers refuse it).
        {
          auto saved = std::move(seen_);
          seen_.clear();
          name(r.target);
          seen_ = std::move(saved);
        }
        break;
      case kSOA:
        name(r.soa.mname);
        name(r.soa.rname);
        u32(r.soa.serial);
        u32(r.soa.refresh);
        u32(r.soa.retry);
        u32(r.soa.expire);
        u32(r.soa.minimum);
        break;
      default:
        out += r.raw;
    }
    put16(len_at, static_cast<uint16_t>(out.size() - start));
  }

 private:
  std::map<std::string, uint16_t> seen_;  // lower-case label sequence -> offset
};

void write_header(Writer& w, const Message& m, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar,
                  bool tc) {
  w.u16(m.id);
  uint16_t flags =
      static_cast<uint16_t>((m.qr ? 0x8000 : 0) | ((m.opcode & 0xF) << 11) | (m.aa ? 0x0400 : 0) |
                            (tc ? 0x0200 : 0) | (m.rd ? 0x0100 : 0) | (m.ra ? 0x0080 : 0) |
                            (m.ad ? 0x0020 : 0) | (m.cd ? 0x0010 : 0) | (m.rcode & 0xF));
  w.u16(flags);
  w.u16(qd);
  w.u16(an);
  w.u16(ns);
  w.u16(ar);
}

void write_opt(Writer& w, const Message& m) {
  w.u8(0);  // root
  w.u16(kOPT);
  w.u16(*m.edns_udp_size);
  w.u32(m.edns_do ? 0x8000 : 0);
  w.u16(0);
}

std::string build_once(const Message& m, bool with_records, bool tc) {
  Writer w;
  const bool opt = m.edns_udp_size.has_value();
  auto n = [](size_t v) { return static_cast<uint16_t>(std::min<size_t>(v, 0xFFFF)); };
  write_header(w, m, n(m.questions.size()), with_records ? n(m.answers.size()) : 0,
               with_records ? n(m.authority.size()) : 0,
               n((with_records ? m.additional.size() : 0) + (opt ? 1 : 0)), tc);
  for (const auto& q : m.questions) {
    w.name(q.name);
    w.u16(q.type);
    w.u16(q.klass);
  }
  if (with_records) {
    for (const auto& r : m.answers) w.record(r);
    for (const auto& r : m.authority) w.record(r);
    for (const auto& r : m.additional) w.record(r);
  }
  if (opt) write_opt(w, m);
  return std::move(w.out);
}

}  // namespace

ParseResult parse(std::string_view wire) {
  ParseResult res;
  Message& m = res.msg;
  if (wire.size() < 12) {
    res.error = ParseError::kTooShort;
    res.why = "message of " + std::to_string(wire.size()) + " bytes is shorter than a header";
    return res;
  }
  Reader r{wire};
  uint16_t flags, qd, an, ns, ar;
  (void)(r.u16(m.id) && r.u16(flags) && r.u16(qd) && r.u16(an) && r.u16(ns) && r.u16(ar));
  m.qr = flags & 0x8000;
  m.opcode = (flags >> 11) & 0xF;
  m.aa = flags & 0x0400;
  m.tc = flags & 0x0200;
  m.rd = flags & 0x0100;
  m.ra = flags & 0x0080;
  m.ad = flags & 0x0020;
  m.cd = flags & 0x0010;
  m.rcode = flags & 0xF;
  auto bad = [&](std::string why) {
    res.error = ParseError::kMalformed;
    res.why = std::move(why);
    return res;
  };
  // Each question takes at least 5 bytes, each record 11: refuse counts the packet cannot hold
  // before reserving anything.
  if (static_cast<size_t>(qd) * 5 + (static_cast<size_t>(an) + ns + ar) * 11 > wire.size() - 12)
    return bad("section counts (" + std::to_string(qd) + "/" + std::to_string(an) + "/" +
               std::to_string(ns) + "/" + std::to_string(ar) + ") exceed the " +
               std::to_string(wire.size()) + "-byte message");
  for (int i = 0; i < qd; ++i) {
    Question q;
    if (!r.name(q.name) || !r.u16(q.type) || !r.u16(q.klass)) return bad("question: " + r.err);
    m.questions.push_back(std::move(q));
  }
  std::vector<Record>* sections[] = {&m.answers, &m.authority, &m.additional};
  uint16_t counts[] = {an, ns, ar};
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < counts[s]; ++i) {
      Record rec;
      bool is_opt = false;
      if (!record(r, rec, is_opt, m)) return bad(r.err);
      if (is_opt) {
        if (s != 2) return bad("OPT record outside the additional section");
        continue;
      }
      sections[s]->push_back(std::move(rec));
    }
  }
  return res;
}

std::string build(const Message& m, size_t max_size) {
  std::string full = build_once(m, true, m.tc);
  if (max_size == 0) max_size = 65535;
  if (full.size() <= max_size) return full;
  // Too big: the header, question and OPT only, with TC so the client asks again over TCP.
  return build_once(m, false, true);
}

Message reply_to(const Message& req) {
  Message m;
  m.id = req.id;
  m.qr = true;
  m.opcode = req.opcode;
  m.rd = req.rd;
  m.cd = req.cd;
  m.questions = req.questions;
  // Echo the client's EDNS payload size (clamped to 512..4096), as CoreDNS does.
  if (req.edns_udp_size)
    m.edns_udp_size = static_cast<uint16_t>(std::clamp<int>(*req.edns_udp_size, 512, 4096));
  return m;
}

std::string to_string(const Record& r) {
  std::string s = r.name + ". " + std::to_string(r.ttl) + " " +
                  (r.klass == kClassIN ? "IN" : std::to_string(r.klass)) + " " + type_name(r.type) +
                  " ";
  switch (r.type) {
    case kA:
      return s + ip4_str(r.a);
    case kCNAME:
    case kPTR:
    case kNS:
      return s + r.target + ".";
    case kSRV:
      return s + std::to_string(r.priority) + " " + std::to_string(r.weight) + " " +
             std::to_string(r.port) + " " + r.target + ".";
    case kSOA:
      return s + r.soa.mname + ". " + r.soa.rname + ". " + std::to_string(r.soa.serial) + " " +
             std::to_string(r.soa.refresh) + " " + std::to_string(r.soa.retry) + " " +
             std::to_string(r.soa.expire) + " " + std::to_string(r.soa.minimum);
  }
  return s + "\\# " + std::to_string(r.raw.size());
}

}  // namespace skiff::dns
