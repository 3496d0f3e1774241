// get, list and watch.
#include <charconv>
#include <chrono>
#include <random>

#include "apiserver/api_impl.h"
#include "apiserver/metrics.h"
#include "apiserver/store/store.h"
#include "proto/registry.h"
#include "proto/time.h"

namespace skiff::apiserver {
namespace {

// A non-negative decimal int64 (limit, resourceVersion, timeoutSeconds): no sign, no overflow.
bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty() || s[0] == '-') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

ApiResult<ObjectFilter> ApiImpl::filter_from(const Request& req, const Target& t) {
  ObjectFilter f;
  f.rt = t.rt;
  f.ns = t.rt->namespaced ? t.ns : "";
  auto ls = proto::LabelSelector::parse(req.q("labelSelector"));
  if (!ls.is_ok())
    return errors::bad_request("unable to parse requirement: " + ls.status().message());
  f.labels = std::move(*ls);
  std::string fs = req.q("fieldSelector");
  if (!t.name.empty())  // a watch on one object is a watch on metadata.name
    fs = fs.empty() ? "metadata.name=" + t.name : fs + ",metadata.name=" + t.name;
  auto parsed = proto::FieldSelector::parse(fs);
  if (!parsed.is_ok())
    return errors::bad_request("invalid field selector: " + parsed.status().message());
  f.fields = std::move(*parsed);
  if (!f.fields.empty()) {
    // A probe object: every field a type supports yields a value (maybe empty) on it.
    static const json kProbe = {{"metadata", json::object()}, {"spec", json::object()},
                                {"status", json::object()}};
    const auto* rt = t.rt;
    auto bad = f.fields.unsupported_field([&](std::string_view field) {
      return rt->field_value ? rt->field_value(kProbe, field) : std::nullopt;
    });
    if (bad) return errors::bad_request("field label not supported: " + *bad);
  }
  return f;
}

Response ApiImpl::get(const Request& req, const Target& t) {
  auto enc = negotiate(req);
  if (!enc.ok()) return error_response(enc.error());
  auto kv = timed("get", [&] { return store_->get(object_key(*t.rt, t.ns, t.name)); });
  if (!kv.is_ok()) return error_response(errors::from_store(kv.status(), *t.rt, t.name));
  auto obj = read_object(*kv);
  if (!obj.ok()) return error_response(obj.error());
  if (enc.value().table) {
    json meta = {{"resourceVersion", std::to_string(kv->mod_revision)}};
    return json_response(200, render_table(*t.rt, {&obj.value()}, enc.value(), meta));
  }
  return json_response(200, obj.value());
}

Response ApiImpl::list(const Request& req, const Target& t) {
  auto enc = negotiate(req);
  if (!enc.ok()) return error_response(enc.error());
  auto filter = filter_from(req, t);
  if (!filter.ok()) return error_response(filter.error());
  const ObjectFilter& f = filter.value();

  int64_t limit = 0;
  if (req.has_q("limit") && !req.q("limit").empty() && !parse_int(req.q("limit"), &limit))
    return error_response(errors::bad_request("invalid limit: \"" + req.q("limit") + "\""));

  const std::string prefix = list_prefix(*t.rt, f.ns);
  int64_t revision = 0;
  std::string start_after;
  std::string rv = req.q("resourceVersion");
  std::string match = req.q("resourceVersionMatch");
  std::string cont = req.q("continue");
  if (!cont.empty()) {
    if (!rv.empty() && rv != "0")
      return error_response(
          errors::bad_request("specifying resource version is not allowed when using continue"));
    std::string rel;
    if (!decode_continue(cont, &revision, &rel))
      return error_response(errors::bad_request("continue key is not valid: " + cont));
    start_after = prefix + rel;
  } else if (!rv.empty() && rv != "0") {
    int64_t want = 0;
    if (!parse_int(rv, &want))
      return error_response(
          errors::bad_request("resourceVersion: Invalid value: \"" + rv + "\": must be a number"));
    // Exact when asked, and (as in Kubernetes) for a paged list with a revision.
    if (match == "Exact" || (match.empty() && limit > 0)) revision = want;
  }

  json items = json::array();
  std::vector<json> objs;
  std::string last_key;
  bool more = false;
  int64_t list_rev = revision;
  for (;;) {
    int64_t chunk = limit > 0 ? std::max<int64_t>(limit - objs.size(), 64) : 0;
    auto page = timed("list", [&] { return store_->list(prefix, list_rev, chunk, start_after); });
    if (!page.is_ok()) {
      if (page.status().code() == Code::kGone) {
        if (!cont.empty())
          return error_response(errors::expired(
              "The provided continue parameter is too old to display a consistent list result. "
              "You can start a new list without the continue parameter."));
        return error_response(errors::expired("too old resource version: " +
                                              std::to_string(revision) + " (" +
                                              std::to_string(store_->compacted_revision()) + ")"));
      }
      if (page.status().code() == Code::kInvalid)
        return error_response({504, "Timeout",
                               "Too large resource version: " + std::to_string(revision) +
                                   ", current: " + std::to_string(store_->current_revision()),
                               {}});
      return error_response(errors::from_store(page.status(), *t.rt, ""));
    }
    list_rev = page->revision;
    size_t i = 0;
    for (; i < page->items.size(); ++i) {
      const auto& kv = page->items[i];
      start_after = kv.key;
      auto obj = read_object(kv);
      if (!obj.ok() || !f.matches(obj.value())) continue;
      objs.push_back(std::move(obj.value()));
      if (limit > 0 && static_cast<int64_t>(objs.size()) == limit) {
        last_key = kv.key;
        ++i;
        break;
      }
    }
    if (!last_key.empty()) {
      more = i < page->items.size() || page->more;
      break;
    }
    if (!page->more) break;
  }

  json meta = {{"resourceVersion", std::to_string(list_rev)}};
  if (more) meta["continue"] = encode_continue(list_rev, last_key.substr(prefix.size()));
  if (enc.value().table) {
    std::vector<const json*> ptrs;
    for (const auto& o : objs) ptrs.push_back(&o);
    return json_response(200, render_table(*t.rt, ptrs, enc.value(), std::move(meta)));
  }
  for (auto& o : objs) items.push_back(std::move(o));
  return json_response(200, {{"kind", t.rt->list_kind},
                             {"apiVersion", t.rt->api_version()},
                             {"metadata", std::move(meta)},
                             {"items", std::move(items)}});
}

Response ApiImpl::watch(const Request& req, const Target& t) {
  auto enc = negotiate(req);
  if (!enc.ok()) return error_response(enc.error());
  auto filter = filter_from(req, t);
  if (!filter.ok()) return error_response(filter.error());
  WatchRequest w;
  w.rt = t.rt;
  w.filter = std::move(filter.value());
  w.enc = enc.value();
  w.bookmarks = query_bool(req, "allowWatchBookmarks");
  std::string rv = req.q("resourceVersion");
  if (!rv.empty() && rv != "0") {
    int64_t from = 0;
    if (!parse_int(rv, &from))
      return error_response(
          errors::bad_request("resourceVersion: Invalid value: \"" + rv + "\": must be a number"));
    w.from_revision = from;
  }
  int64_t timeout = 0;
  if (req.has_q("timeoutSeconds") && !req.q("timeoutSeconds").empty()) {
    if (!parse_int(req.q("timeoutSeconds"), &timeout))
      return error_response(errors::bad_request("invalid timeoutSeconds: \"" +
                                                req.q("timeoutSeconds") + "\""));
  }
  if (timeout <= 0) {
    // Like kube-apiserver's --min-request-timeout: spread reconnects over 30-60 minutes.
    thread_local std::mt19937 rng{std::random_device{}()};
    timeout = std::uniform_int_distribution<int64_t>(1800, 3600)(rng);
  }
  w.timeout = proto::capped_seconds(timeout);  // any int64 is valid; the clock holds 292 years
  Response r;
  r.status = 200;
  r.content_type = "application/json";
  r.streamer = [this, w = std::move(w)](std::shared_ptr<Stream> s) { watch_.serve(s, w); };
  return r;
}

}  // namespace skiff::apiserver
