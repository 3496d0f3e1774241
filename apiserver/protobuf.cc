#include "apiserver/protobuf.h"

#include <cstdint>
#include <functional>
#include <string_view>

namespace skiff::apiserver {
namespace {

// One protobuf message: fields read in order with their wire type.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool done() const { return p_ >= b_.size() || bad_; }
  bool bad() const { return bad_; }
  bool next(int* field, int* wire) {
    if (done()) return false;
    uint64_t tag = varint();
    if (bad_) return false;
    *field = int(tag >> 3);
    *wire = int(tag & 7);
    return true;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= b_.size()) break;
      uint8_t c = uint8_t(b_[p_++]);
      v |= uint64_t(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    bad_ = true;
    return 0;
  }
  std::string_view bytes() {
    uint64_t n = varint();
    if (bad_ || n > b_.size() - p_) {
      bad_ = true;
      return {};
    }
    std::string_view s = b_.substr(p_, n);
    p_ += n;
    return s;
  }
  void skip(int wire) {
    switch (wire) {
      case 0:
        varint();
        break;
      case 1:
        advance(8);
        break;
      case 2:
        bytes();
        break;
      case 5:
        advance(4);
        break;
      default:
        bad_ = true;
    }
  }

 private:
  void advance(size_t n) {
    if (n > b_.size() - p_)
      bad_ = true;
    else
      p_ += n;
  }
  std::string_view b_;
  size_t p_ = 0;
  bool bad_ = false;
};

struct Bad {};

// Field handlers: (reader, field, wire) -> handled?
using Handler = std::function<bool(Reader&, int, int)>;

void parse(std::string_view b, const Handler& h) {
  Reader r(b);
  int f = 0, w = 0;
  while (r.next(&f, &w)) {
    if (!h(r, f, w)) r.skip(w);
    if (r.bad()) throw Bad{};
  }
  if (r.bad()) throw Bad{};
}

std::string str(Reader& r) { return std::string(r.bytes()); }
int64_t i64(Reader& r) { return int64_t(r.varint()); }

// map<string,string> entry.
void map_entry(Reader& r, json& m) {
  std::string k, v;
  parse(r.bytes(), [&](Reader& e, int f, int w) {
    if (w != 2) return false;
    if (f == 1)
      k = str(e);
    else if (f == 2)
      v = str(e);
    else
      return false;
    return true;
  });
  m[k] = v;
}

void set_str(json& o, const char* k, const std::string& v) {
  if (!v.empty()) o[k] = v;
}

json object_meta(std::string_view b) {
  json m = json::object();
  parse(b, [&](Reader& r, int f, int w) {
    if (w == 2) {
      switch (f) {
        case 1:
          set_str(m, "name", str(r));
          return true;
        case 2:
          set_str(m, "generateName", str(r));
          return true;
        case 3:
          set_str(m, "namespace", str(r));
          return true;
        case 5:
          set_str(m, "uid", str(r));
          return true;
        case 6:
          set_str(m, "resourceVersion", str(r));
          return true;
        case 11:
          map_entry(r, m["labels"]);
          return true;
        case 12:
          map_entry(r, m["annotations"]);
          return true;
        case 13: {
          json o = json::object();
          parse(r.bytes(), [&](Reader& q, int g, int x) {
            if (x == 2 && g == 1)
              set_str(o, "kind", str(q));
            else if (x == 2 && g == 3)
              set_str(o, "name", str(q));
            else if (x == 2 && g == 4)
              set_str(o, "uid", str(q));
            else if (x == 2 && g == 5)
              set_str(o, "apiVersion", str(q));
            else if (x == 0 && g == 6)
              o["controller"] = q.varint() != 0;
            else if (x == 0 && g == 7)
              o["blockOwnerDeletion"] = q.varint() != 0;
            else
              return false;
            return true;
          });
          m["ownerReferences"].push_back(o);
          return true;
        }
        case 14:
          m["finalizers"].push_back(str(r));
          return true;
        default:
          return false;
      }
    }
    if (w == 0 && f == 7) {
      m["generation"] = i64(r);
      return true;
    }
    return false;
  });
  return m;
}

json int_or_string(std::string_view b) {
  int64_t type = 0, iv = 0;
  std::string sv;
  parse(b, [&](Reader& r, int f, int w) {
    if (f == 1 && w == 0)
      type = i64(r);
    else if (f == 2 && w == 0)
      iv = int32_t(r.varint());
    else if (f == 3 && w == 2)
      sv = str(r);
    else
      return false;
    return true;
  });
  if (type == 1) return sv;
  return iv;
}

json service_port(std::string_view b) {
  json p = json::object();
  p["port"] = 0;
  parse(b, [&](Reader& r, int f, int w) {
    if (w == 2 && f == 1)
      set_str(p, "name", str(r));
    else if (w == 2 && f == 2)
      set_str(p, "protocol", str(r));
    else if (w == 0 && f == 3)
      p["port"] = int32_t(r.varint());
    else if (w == 2 && f == 4) {
      json t = int_or_string(r.bytes());
      if (!(t.is_number() && t.get<int64_t>() == 0) &&
          !(t.is_string() && t.get<std::string>().empty()))
        p["targetPort"] = t;
    } else if (w == 0 && f == 5) {
      int32_t np = int32_t(r.varint());
      if (np) p["nodePort"] = np;
    } else if (w == 2 && f == 6)
      p["appProtocol"] = str(r);
    else
      return false;
    return true;
  });
  return p;
}

json service_spec(std::string_view b) {
  json s = json::object();
  parse(b, [&](Reader& r, int f, int w) {
    if (w == 2) {
      switch (f) {
        case 1:
          s["ports"].push_back(service_port(r.bytes()));
          return true;
        case 2:
          map_entry(r, s["selector"]);
          return true;
        case 3:
          set_str(s, "clusterIP", str(r));
          return true;
        case 4:
          set_str(s, "type", str(r));
          return true;
        case 5:
          s["externalIPs"].push_back(str(r));
          return true;
        case 7:
          set_str(s, "sessionAffinity", str(r));
          return true;
        case 8:
          set_str(s, "loadBalancerIP", str(r));
          return true;
        case 9:
          s["loadBalancerSourceRanges"].push_back(str(r));
          return true;
        case 10:
          set_str(s, "externalName", str(r));
          return true;
        case 11:
          set_str(s, "externalTrafficPolicy", str(r));
          return true;
        case 14: {
          json c = json::object();
          parse(r.bytes(), [&](Reader& q, int g, int x) {
            if (g != 1 || x != 2) return false;
            json ci = json::object();
            parse(q.bytes(), [&](Reader& z, int h, int y) {
              if (h != 1 || y != 0) return false;
              ci["timeoutSeconds"] = int32_t(z.varint());
              return true;
            });
            c["clientIP"] = ci;
            return true;
          });
          s["sessionAffinityConfig"] = c;
          return true;
        }
        case 17:
          s["ipFamilyPolicy"] = str(r);
          return true;
        case 18:
          s["clusterIPs"].push_back(str(r));
          return true;
        case 19:
          s["ipFamilies"].push_back(str(r));
          return true;
        case 21:
          s["loadBalancerClass"] = str(r);
          return true;
        case 22:
          s["internalTrafficPolicy"] = str(r);
          return true;
        case 23:
          s["trafficDistribution"] = str(r);
          return true;
        default:
          return false;
      }
    }
    if (w == 0) {
      switch (f) {
        case 12: {
          int32_t v = int32_t(r.varint());
          if (v) s["healthCheckNodePort"] = v;
          return true;
        }
        case 13:
          if (r.varint()) s["publishNotReadyAddresses"] = true;
          return true;
        case 20:
          s["allocateLoadBalancerNodePorts"] = r.varint() != 0;
          return true;
        default:
          return false;
      }
    }
    return false;
  });
  return s;
}

}  // namespace

bool protobuf_decodable(const std::string& kind) { return kind == "Service"; }

ApiResult<json> decode_protobuf_object(const std::string& body) {
  static const std::string magic("k8s\0", 4);
  if (body.size() < 4 || body.compare(0, 4, magic) != 0)
    return errors::bad_request(
        "the protobuf request body does not start with the Kubernetes "
        "envelope magic \"k8s\\x00\"");
  try {
    std::string api_version, kind;
    std::string_view raw;
    std::string content_encoding;
    std::string_view env(body.data() + 4, body.size() - 4);
    parse(env, [&](Reader& r, int f, int w) {
      if (w != 2) return false;
      if (f == 1) {
        parse(r.bytes(), [&](Reader& t, int g, int x) {
          if (x != 2) return false;
          if (g == 1)
            api_version = str(t);
          else if (g == 2)
            kind = str(t);
          else
            return false;
          return true;
        });
      } else if (f == 2) {
        raw = r.bytes();
      } else if (f == 3) {
        content_encoding = str(r);
      } else {
        return false;
      }
      return true;
    });
    if (!content_encoding.empty())
      return errors::bad_request("protobuf request body: content encoding \"" + content_encoding +
                                 "\" is not supported");
    if (api_version != "v1" || !protobuf_decodable(kind))
      return ApiError{415,
                      "UnsupportedMediaType",
                      "the body of the request was in an unknown format (\"" +
                          std::string(kProtobufMediaType) + "\" for " + api_version + " " + kind +
                          ") - accepted media types include: application/json",
                      {}};
    json obj = {{"apiVersion", api_version}, {"kind", kind}};
    parse(raw, [&](Reader& r, int f, int w) {
      if (w != 2) return false;
      if (f == 1)
        obj["metadata"] = object_meta(r.bytes());
      else if (f == 2)
        obj["spec"] = service_spec(r.bytes());
      else
        return false;  // status (3) included: the main resource ignores it; parse() skips it
      return true;
    });
    return obj;
  } catch (const Bad&) {
    return errors::bad_request(
        "the protobuf request body is malformed (truncated or bad wire "
        "type)");
  }
}

}  // namespace skiff::apiserver
