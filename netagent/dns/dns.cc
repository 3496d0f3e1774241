#include "netagent/dns/dns.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "common/heap.h"
#include "common/json_path.h"
#include "common/netlink/netlink.h"
#include "netagent/dns/message.h"
#include "netagent/dns/zone.h"
#include "proto/client/informer.h"
#include "proto/endpoints.h"
#include "proto/service.h"

namespace skiff::dns {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kLinkName = "skiff.dns";
constexpr size_t kMaxTcpConnections = 256;
constexpr size_t kMaxForwardsInFlight = 1024;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// Whether two versions of a Service differ in spec (status and metadata changes do not feed
// the zone's index).
bool spec_changed(const nlohmann::json& a, const nlohmann::json& b) {
  const nlohmann::json* sa = find_path(a, {"spec"});
  const nlohmann::json* sb = find_path(b, {"spec"});
  return sa && sb ? *sa != *sb : sa != sb;
}

const proto::ResourceType& service_type() {
  static const proto::ResourceType t = proto::service_resource();
  return t;
}
const proto::ResourceType& endpoints_type() {
  static const proto::ResourceType t = proto::endpoints_resource();
  return t;
}

// "IP" or "IP:port" to an endpoint.
std::optional<udp::endpoint> parse_upstream(const std::string& s) {
  std::string host = s;
  int port = 53;
  size_t colon = s.find(':');
  if (colon != std::string::npos) {
    host = s.substr(0, colon);
    std::string p = s.substr(colon + 1);
    if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    port = std::stoi(p);
    if (port < 1 || port > 65535) return std::nullopt;
  }
  auto ip = parse_ip4(host);
  if (!ip) return std::nullopt;
  return udp::endpoint(asio::ip::address_v4(*ip), static_cast<uint16_t>(port));
}

// The low 4 bits of the flags of a wire message (its rcode), or -1.
int wire_rcode(std::string_view w) {
  return w.size() >= 4 ? (static_cast<uint8_t>(w[3]) & 0xF) : -1;
}

// type_name for the record types worth a metrics label, "other" for the rest: a client can
// send any of 65,536 types and each label value is a time series.
const char* type_label(uint16_t t) {
  static const std::map<uint16_t, std::string> labels = [] {
    std::map<uint16_t, std::string> m;
    for (uint16_t k : {kA, kNS, kCNAME, kSOA, kPTR, kMX, kTXT, kAAAA, kSRV, kANY})
      m[k] = type_name(k);
    return m;
  }();
  auto it = labels.find(t);
  return it == labels.end() ? "other" : it->second.c_str();
}

constexpr std::array<double, 14> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                             0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

}  // namespace

struct DnsServer::Impl {
  std::shared_ptr<client::ApiClient> api;
  Options opts;
  ZoneConfig cfg;
  std::vector<udp::endpoint> upstreams;
  asio::ip::address_v4 listen_ip;

  std::atomic<std::shared_ptr<const Zone>> zone;
  std::atomic<bool> synced{false};

  std::unique_ptr<client::Informer> own_svc_inf, own_eps_inf;  // when none are shared
  client::Informer* svc_inf = nullptr;
  client::Informer* eps_inf = nullptr;
  std::mutex dirty_mu;
  std::condition_variable_any dirty_cv;
  bool dirty = true;
  std::jthread rebuilder;

  asio::io_context io{1};
  std::optional<udp::socket> udp_sock;
  std::optional<tcp::acceptor> acceptor;
  std::thread io_thread;
  bool running = false;
  bool stopped = false;  // start() after stop() is not supported (the I/O context is spent)
  size_t tcp_conns = 0;  // I/O thread only
  size_t forwards = 0;   // I/O thread only
  std::mt19937 rng{std::random_device{}()};

  // Metrics.
  mutable std::mutex m_mu;
  std::map<std::pair<std::string, std::string>, uint64_t> queries;  // (type, rcode)
  std::array<uint64_t, kBuckets.size()> buckets{};
  uint64_t lat_count = 0;
  double lat_sum = 0;
  std::atomic<uint64_t> forwarded{0}, forward_errors{0}, dropped{0}, rebuilds{0}, tcp_rejected{0};

  void count(uint16_t type, int rcode, Clock::time_point start) {
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::lock_guard lock(m_mu);
    ++queries[{type_label(type), rcode < 0 ? "none" : rcode_name(static_cast<uint8_t>(rcode))}];
    for (size_t i = 0; i < kBuckets.size(); ++i)
      if (secs <= kBuckets[i]) ++buckets[i];
    ++lat_count;
    lat_sum += secs;
  }

  // The link holding the address: a dummy, as kube-proxy's kube-ipvs0 and NodeLocal DNSCache's
  // nodelocaldns. Kernels built without CONFIG_DUMMY (EOPNOTSUPP) get an empty bridge of the
  // same name instead: it holds a local address just as well (no ports, nothing bridged).
  Status ensure_link() {
    netlink::NlError err;
    auto nl = netlink::Netlink::open(&err);
    if (!nl) return Status::io("rtnetlink for the cluster DNS link: " + err.what, err.err);
    const std::string name = kLinkName;
    auto link = nl->link(name, &err);
    if (!link && err.err == ENODEV) {
      if (nl->create_dummy(name, &err) || err.err == EEXIST) {
        spdlog::info("dns: created dummy link {}", name);
      } else if (err.err == EOPNOTSUPP) {
        std::string why = err.what;
        if (!nl->create_bridge(name, 0, "", &err) && err.err != EEXIST)
          return Status::io("cluster DNS: " + why + "; then " + err.what, err.err);
        spdlog::info("dns: this kernel has no dummy links ({}); created {} as an empty bridge", why,
                     name);
      } else {
        return Status::io("cluster DNS: " + err.what, err.err);
      }
      link = nl->link(name, &err);
    }
    if (!link) return Status::io("cluster DNS: read link " + name + ": " + err.what, err.err);
    if (link->kind != "dummy" && link->kind != "bridge")
      return Status::invalid("cluster DNS: link " + name + " exists with kind \"" + link->kind +
                             "\", not dummy (or bridge): not ours, remove it by hand");
    if (!link->up && !nl->set_link(link->index, std::nullopt, true, &err))
      return Status::io("cluster DNS: " + err.what, err.err);
    netlink::Ip4 ip{listen_ip.to_uint()};
    if (!nl->add_addr(link->index, ip, 32, &err))
      return Status::io("cluster DNS: " + err.what, err.err);
    return Status::ok();
  }

  // ---- zone -----------------------------------------------------------------------------

  void mark_dirty() {
    {
      std::lock_guard lock(dirty_mu);
      dirty = true;
    }
    dirty_cv.notify_one();
  }

  // An Endpoints object changed: the index holds its addresses only when its Service is
  // headless. A Service that is not cached yet rebuilds when it arrives.
  void endpoints_changed(const nlohmann::json& ep) {
    auto svc = svc_inf->get(str_at(ep, {"metadata", "namespace"}) + "/" +
                            str_at(ep, {"metadata", "name"}));
    if (svc && str_at(*svc, {"spec", "clusterIP"}) == "None") mark_dirty();
  }

  void rebuild_loop(std::stop_token stop) {
    while (!stop.stop_requested()) {
      {
        std::unique_lock lock(dirty_mu);
        // Poll while not synced: an empty list fires no handler.
        dirty_cv.wait_for(lock, stop, std::chrono::milliseconds(synced ? 60'000 : 100),
                          [&] { return dirty; });
        if (stop.stop_requested()) return;
        if (!dirty && synced) continue;
        dirty = false;
      }
      if (!svc_inf->has_synced() || !eps_inf->has_synced()) {
        std::lock_guard lock(dirty_mu);
        dirty = true;  // try again on the next poll
        continue;
      }
      auto t0 = Clock::now();
      auto z = Zone::build(
          cfg, [&](const std::function<void(const nlohmann::json&)>& fn) { svc_inf->for_each(fn); },
          [svcs = svc_inf](const std::string& key) { return svcs->get(key); },
          [eps = eps_inf](const std::string& key) { return eps->get(key); });
      size_t n = z->record_count();
      zone.store(std::move(z));
      ++rebuilds;
      if (!synced.exchange(true)) {
        // The first build walked every cached Service at once; give its pages back.
        release_free_heap();
        spdlog::info(
            "dns: zone ready ({} records, built in {} ms)", n,
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
      }
      // Coalesce a burst of events (an Endpoints churn) into one rebuild.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // ---- answering ------------------------------------------------------------------------

  // The local answer, or nullopt when the query must be forwarded (`req` is then filled).
  // `drop` is set when nothing should be sent at all.
  std::optional<std::string> answer_local(std::string_view wire, bool tcp, Message& req, bool& drop,
                                          uint16_t& qtype, int& rcode) {
    drop = false;
    qtype = 0;
    ParseResult pr = parse(wire);
    if (pr.error == ParseError::kTooShort || pr.msg.qr) {
      drop = true;  // nothing to answer, or a response (never answer those: loops)
      ++dropped;
      return std::nullopt;
    }
    req = std::move(pr.msg);
    Message resp = reply_to(req);
    resp.ra = true;
    size_t max = tcp ? 0 : (req.edns_udp_size ? *resp.edns_udp_size : 512);
    if (pr.error == ParseError::kMalformed) {
      spdlog::debug("dns: FORMERR: {}", pr.why);
      resp.questions.clear();
      resp.edns_udp_size.reset();
      resp.rcode = rcode = kFormErr;
      return build(resp, max);
    }
    if (req.opcode != 0) {
      resp.rcode = rcode = kNotImp;
      return build(resp, max);
    }
    if (req.questions.size() != 1) {
      resp.rcode = rcode = kFormErr;
      return build(resp, max);
    }
    const Question& q = req.questions[0];
    qtype = q.type;
    auto z = zone.load();
    if (!z->authoritative(q.name)) return std::nullopt;
    if (!synced) {
      resp.rcode = rcode = kServFail;
      return build(resp, max);
    }
    Answer a = z->lookup(q);
    resp.aa = a.rcode == kNoError || a.rcode == kNxDomain;
    resp.rcode = rcode = a.rcode;
    resp.answers = std::move(a.answers);
    resp.authority = std::move(a.authority);
    return build(resp, max);
  }

  std::string servfail(const Message& req, bool tcp) {
    Message resp = reply_to(req);
    resp.ra = true;
    resp.rcode = kServFail;
    return build(resp, tcp ? 0 : 512);
  }

  // Forwards over UDP to each upstream in turn; the answer with the client's id, or nullopt.
  asio::awaitable<std::optional<std::string>> forward_udp(std::string wire) {
    auto ex = co_await asio::this_coro::executor;
    const uint16_t client_id =
        static_cast<uint16_t>((static_cast<uint8_t>(wire[0]) << 8) | static_cast<uint8_t>(wire[1]));
    std::vector<char> buf(65535);
    for (const auto& up : upstreams) {
      // A fresh socket (random source port) and a random id per try: off-path spoofing needs
      // both (RFC 5452).
      udp::socket s(ex);
      boost::system::error_code ec;
      s.open(udp::v4(), ec);
      if (ec) continue;
      uint16_t id = static_cast<uint16_t>(rng());
      wire[0] = static_cast<char>(id >> 8);
      wire[1] = static_cast<char>(id & 0xFF);
      auto [sec, sent] = co_await s.async_send_to(asio::buffer(wire), up, kTuple);
      if (sec) {
        spdlog::debug("dns: forward to {}: {}", up.address().to_string(), sec.message());
        continue;
      }
      asio::steady_timer timer(ex, std::chrono::milliseconds(opts.upstream_timeout_ms));
      bool timed_out = false;
      while (!timed_out) {
        udp::endpoint from;
        auto r = co_await (s.async_receive_from(asio::buffer(buf), from, kTuple) ||
                           timer.async_wait(kTuple));
        if (r.index() == 1) {
          timed_out = true;
          break;
        }
        auto [rec, n] = std::get<0>(r);
        if (rec) break;
        if (from != up || n < 12) continue;
        uint16_t got = static_cast<uint16_t>((static_cast<uint8_t>(buf[0]) << 8) |
                                             static_cast<uint8_t>(buf[1]));
        if (got != id) continue;
        std::string resp(buf.data(), n);
        resp[0] = static_cast<char>(client_id >> 8);
        resp[1] = static_cast<char>(client_id & 0xFF);
        co_return resp;
      }
      spdlog::debug("dns: upstream {} did not answer", up.address().to_string());
    }
    co_return std::nullopt;
  }

  // Forwards over TCP (length-framed) to each upstream in turn.
  asio::awaitable<std::optional<std::string>> forward_tcp(std::string wire) {
    auto ex = co_await asio::this_coro::executor;
    for (const auto& up : upstreams) {
      tcp::socket s(ex);
      asio::steady_timer timer(ex, std::chrono::milliseconds(opts.upstream_timeout_ms));
      tcp::endpoint ep(up.address(), up.port());
      auto c = co_await (s.async_connect(ep, kTuple) || timer.async_wait(kTuple));
      if (c.index() == 1 || std::get<0>(std::get<0>(c))) continue;
      std::string framed;
      framed += static_cast<char>(wire.size() >> 8);
      framed += static_cast<char>(wire.size() & 0xFF);
      framed += wire;
      auto w =
          co_await (asio::async_write(s, asio::buffer(framed), kTuple) || timer.async_wait(kTuple));
      if (w.index() == 1 || std::get<0>(std::get<0>(w))) continue;
      std::array<uint8_t, 2> len{};
      auto l =
          co_await (asio::async_read(s, asio::buffer(len), kTuple) || timer.async_wait(kTuple));
      if (l.index() == 1 || std::get<0>(std::get<0>(l))) continue;
      std::string resp((len[0] << 8) | len[1], '\0');
      auto b =
          co_await (asio::async_read(s, asio::buffer(resp), kTuple) || timer.async_wait(kTuple));
      if (b.index() == 1 || std::get<0>(std::get<0>(b)) || resp.size() < 12) continue;
      co_return resp;
    }
    co_return std::nullopt;
  }

  // The reply to one query (nullopt: send nothing).
  asio::awaitable<std::optional<std::string>> handle(std::string wire, bool tcp) {
    auto start = Clock::now();
    Message req;
    bool drop = false;
    uint16_t qtype = 0;
    int rcode = -1;
    auto local = answer_local(wire, tcp, req, drop, qtype, rcode);
    if (drop) co_return std::nullopt;
    if (local) {
      count(qtype, rcode, start);
      co_return local;
    }
    if (upstreams.empty() || forwards >= kMaxForwardsInFlight) {
      ++forward_errors;
      count(qtype, kServFail, start);
      co_return servfail(req, tcp);
    }
    ++forwarded;
    ++forwards;
    // No co_await inside ?: (GCC 12 destroys the temporaries of both arms).
    std::optional<std::string> resp;
    if (tcp)
      resp = co_await forward_tcp(std::move(wire));
    else
      resp = co_await forward_udp(std::move(wire));
    --forwards;
    if (!resp) {
      ++forward_errors;
      count(qtype, kServFail, start);
      co_return servfail(req, tcp);
    }
    count(qtype, wire_rcode(*resp), start);
    co_return resp;
  }

  // ---- servers --------------------------------------------------------------------------

  asio::awaitable<void> udp_loop() {
    std::vector<char> buf(65535);
    for (;;) {
      udp::endpoint from;
      auto [ec, n] = co_await udp_sock->async_receive_from(asio::buffer(buf), from, kTuple);
      if (ec == asio::error::operation_aborted || !udp_sock->is_open()) co_return;
      if (ec) continue;  // e.g. ICMP-induced errors: keep serving
      std::string wire(buf.data(), n);
      // Local answers need no suspension; a forward runs on its own so others are not held.
      asio::co_spawn(
          io,
          [this, wire = std::move(wire), from]() mutable -> asio::awaitable<void> {
            auto resp = co_await handle(std::move(wire), false);
            if (resp && udp_sock && udp_sock->is_open())
              co_await udp_sock->async_send_to(asio::buffer(*resp), from, kTuple);
          },
          [](std::exception_ptr e) { log_exception(e, "udp query"); });
    }
  }

  asio::awaitable<void> tcp_session(tcp::socket s) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    for (;;) {
      timer.expires_after(std::chrono::milliseconds(opts.tcp_idle_timeout_ms));
      std::array<uint8_t, 2> len{};
      auto l =
          co_await (asio::async_read(s, asio::buffer(len), kTuple) || timer.async_wait(kTuple));
      if (l.index() == 1 || std::get<0>(std::get<0>(l))) break;  // idle, closed or error
      size_t n = (len[0] << 8) | len[1];
      if (n == 0) break;
      std::string wire(n, '\0');
      timer.expires_after(std::chrono::milliseconds(opts.tcp_idle_timeout_ms));
      auto b =
          co_await (asio::async_read(s, asio::buffer(wire), kTuple) || timer.async_wait(kTuple));
      if (b.index() == 1 || std::get<0>(std::get<0>(b))) break;
      auto resp = co_await handle(std::move(wire), true);
      if (!resp) break;  // garbage: hang up
      std::string framed;
      framed += static_cast<char>(resp->size() >> 8);
      framed += static_cast<char>(resp->size() & 0xFF);
      framed += *resp;
      timer.expires_after(std::chrono::milliseconds(opts.tcp_idle_timeout_ms));
      auto w =
          co_await (asio::async_write(s, asio::buffer(framed), kTuple) || timer.async_wait(kTuple));
      if (w.index() == 1 || std::get<0>(std::get<0>(w))) break;
    }
    boost::system::error_code ignored;
    s.shutdown(tcp::socket::shutdown_both, ignored);
    s.close(ignored);
  }

  asio::awaitable<void> tcp_loop() {
    for (;;) {
      auto [ec, s] = co_await acceptor->async_accept(kTuple);
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (ec) {
        // EMFILE and friends: back off briefly instead of spinning.
        asio::steady_timer t(io, std::chrono::milliseconds(50));
        co_await t.async_wait(kTuple);
        continue;
      }
      if (tcp_conns >= kMaxTcpConnections) {
        ++tcp_rejected;
        continue;  // the socket closes as it goes out of scope
      }
      ++tcp_conns;
      asio::co_spawn(io, tcp_session(std::move(s)), [this](std::exception_ptr e) {
        --tcp_conns;
        log_exception(e, "tcp session");
      });
    }
  }

  static void log_exception(std::exception_ptr e, const char* what) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::warn("dns: {} failed: {}", what, ex.what());
    } catch (...) {
      spdlog::warn("dns: {} failed", what);
    }
  }
};

DnsServer::DnsServer(std::shared_ptr<client::ApiClient> api, Options opts)
    : impl_(std::make_unique<Impl>()) {
  impl_->api = std::move(api);
  impl_->opts = std::move(opts);
}

DnsServer::~DnsServer() { stop(); }

Status DnsServer::start() {
  Impl& d = *impl_;
  if (d.running) return Status::ok();
  if (d.stopped) return Status::internal("cluster DNS: start() after stop(): make a new DnsServer");
  const Options& o = d.opts;
  auto ip = parse_ip4(o.cluster_dns);
  if (!ip)
    return Status::invalid("cluster DNS address \"" + o.cluster_dns + "\": not an IPv4 address");
  d.listen_ip = asio::ip::address_v4(*ip);
  std::string domain = lower(o.cluster_domain);
  while (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (domain.empty() || domain.front() == '.' || domain.find("..") != std::string::npos ||
      domain.size() > 200)
    return Status::invalid("cluster domain \"" + o.cluster_domain + "\": not a DNS name");
  auto scidr = parse_cidr(o.service_cidr);
  if (!scidr) return Status::invalid("service CIDR \"" + o.service_cidr + "\": want A.B.C.D/N");
  auto ccidr = parse_cidr(o.cluster_cidr);
  if (!ccidr) return Status::invalid("cluster CIDR \"" + o.cluster_cidr + "\": want A.B.C.D/N");
  if (o.port < 1 || o.port > 65535)
    return Status::invalid("DNS port " + std::to_string(o.port) + ": want 1-65535");
  if (o.ttl_seconds < 0 || o.upstream_timeout_ms < 1 || o.tcp_idle_timeout_ms < 1)
    return Status::invalid(
        "DNS options: ttl, upstream timeout and TCP idle timeout must be positive");
  if (!o.services != !o.endpoints)
    return Status::invalid("DNS: share both the Service and the Endpoints informer, or neither");
  d.cfg.domain = domain;
  d.cfg.service_cidr = *scidr;
  d.cfg.cluster_cidr = *ccidr;
  d.cfg.ttl = static_cast<uint32_t>(o.ttl_seconds);
  d.cfg.dns_ip = *ip;

  d.upstreams.clear();
  if (!o.upstreams.empty()) {
    for (const auto& u : o.upstreams) {
      auto ep = parse_upstream(u);
      if (!ep) return Status::invalid("DNS upstream \"" + u + "\": want IPv4[:port]");
      d.upstreams.push_back(*ep);
    }
  } else {
    std::ifstream in(o.resolv_conf);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string key, val;
      if (!(ls >> key >> val) || key != "nameserver") continue;
      auto ep = parse_upstream(val);  // IPv6 nameservers are skipped (IPv4 only)
      if (ep && ep->address().to_v4() != d.listen_ip) d.upstreams.push_back(*ep);
    }
  }
  if (d.upstreams.empty())
    spdlog::warn("dns: no upstream resolver: names outside {} get SERVFAIL", domain);

  if (o.manage_link) SKIFF_RETURN_IF_ERROR(d.ensure_link());

  boost::system::error_code ec;
  udp::endpoint uep(d.listen_ip, static_cast<uint16_t>(o.port));
  d.udp_sock.emplace(d.io);
  d.udp_sock->open(udp::v4(), ec);
  if (!ec) d.udp_sock->bind(uep, ec);
  if (!ec) {
    // Every pod on the node asks here; the default receive buffer (~200 KiB) drops a burst of
    // a few hundred queries while the one I/O thread is busy. As root SO_RCVBUFFORCE passes
    // net.core.rmem_max; otherwise the kernel caps SO_RCVBUF at it. Best effort either way.
    int bytes = 4 << 20;
    if (::setsockopt(d.udp_sock->native_handle(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes,
                     sizeof bytes) != 0)
      ::setsockopt(d.udp_sock->native_handle(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  if (ec) {
    d.udp_sock.reset();
    return Status(Code::kIo, "cluster DNS: bind UDP " + o.cluster_dns + ":" +
                                 std::to_string(o.port) + ": " + ec.message());
  }
  tcp::endpoint tep(d.listen_ip, static_cast<uint16_t>(o.port));
  d.acceptor.emplace(d.io);
  d.acceptor->open(tcp::v4(), ec);
  if (!ec) d.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) d.acceptor->bind(tep, ec);
  if (!ec) d.acceptor->listen(128, ec);
  if (ec) {
    d.udp_sock.reset();
    d.acceptor.reset();
    return Status(Code::kIo, "cluster DNS: listen TCP " + o.cluster_dns + ":" +
                                 std::to_string(o.port) + ": " + ec.message());
  }

  d.zone.store(Zone::build(d.cfg, std::vector<nlohmann::json>{}, std::vector<nlohmann::json>{}));
  if (o.services) {
    d.svc_inf = o.services;
    d.eps_inf = o.endpoints;
  } else if (d.api) {
    d.own_svc_inf = std::make_unique<client::Informer>(d.api, service_type());
    d.own_eps_inf = std::make_unique<client::Informer>(d.api, endpoints_type());
    d.svc_inf = d.own_svc_inf.get();
    d.eps_inf = d.own_eps_inf.get();
  }
  if (d.svc_inf) {
    d.synced = false;
    // Names are answered from the caches at query time; only the zone's index (namespaces,
    // PTR targets, the record count) needs a rebuild, and only a Service's spec or a headless
    // Service's Endpoints feed it. Endpoints of the other Services churn with every pod and
    // cost nothing here (a rebuild walks every Service: ~60 ms at 10,000).
    client::InformerHandlers sh;
    sh.on_add = [&d](const nlohmann::json&) { d.mark_dirty(); };
    sh.on_update = [&d](const nlohmann::json& old_obj, const nlohmann::json& new_obj) {
      if (spec_changed(old_obj, new_obj)) d.mark_dirty();
    };
    sh.on_delete = [&d](const nlohmann::json&) { d.mark_dirty(); };
    d.svc_inf->add_handlers(std::move(sh));
    client::InformerHandlers eh;
    eh.on_add = [&d](const nlohmann::json& ep) { d.endpoints_changed(ep); };
    eh.on_update = [&d](const nlohmann::json&, const nlohmann::json& ep) {
      d.endpoints_changed(ep);
    };
    eh.on_delete = [&d](const nlohmann::json& ep) { d.endpoints_changed(ep); };
    d.eps_inf->add_handlers(std::move(eh));
    if (d.own_svc_inf) d.own_svc_inf->start();
    if (d.own_eps_inf) d.own_eps_inf->start();
    d.rebuilder = std::jthread([&d](std::stop_token st) { d.rebuild_loop(st); });
  } else {
    d.synced = true;
  }

  asio::co_spawn(d.io, d.udp_loop(),
                 [](std::exception_ptr e) { Impl::log_exception(e, "udp server"); });
  asio::co_spawn(d.io, d.tcp_loop(),
                 [](std::exception_ptr e) { Impl::log_exception(e, "tcp server"); });
  d.io.restart();
  d.io_thread = std::thread([&d] { d.io.run(); });
  d.running = true;
  spdlog::info(
      "dns: serving {} on {}:{} (UDP, TCP); upstreams: {}", domain, o.cluster_dns, o.port, [&] {
        std::string s;
        for (const auto& u : d.upstreams)
          s += (s.empty() ? "" : ", ") + u.address().to_string() + ":" + std::to_string(u.port());
        return s.empty() ? std::string("none") : s;
      }());
  return Status::ok();
}

void DnsServer::stop() {
  Impl& d = *impl_;
  if (!d.running) return;
  d.running = false;
  d.stopped = true;
  if (d.own_svc_inf) d.own_svc_inf->stop();
  if (d.own_eps_inf) d.own_eps_inf->stop();
  if (d.rebuilder.joinable()) {
    d.rebuilder.request_stop();
    d.rebuilder.join();
  }
  d.io.stop();
  if (d.io_thread.joinable()) d.io_thread.join();
  boost::system::error_code ignored;
  if (d.udp_sock) d.udp_sock->close(ignored);
  if (d.acceptor) d.acceptor->close(ignored);
  d.udp_sock.reset();
  d.acceptor.reset();
  d.svc_inf = d.eps_inf = nullptr;
  d.own_svc_inf.reset();
  d.own_eps_inf.reset();
}

std::string DnsServer::metrics_text() const {
  const Impl& d = *impl_;
  std::ostringstream o;
  o << "# HELP skiff_dns_queries_total DNS queries answered, by query type and response code.\n"
       "# TYPE skiff_dns_queries_total counter\n";
  std::array<uint64_t, kBuckets.size()> buckets;
  uint64_t count;
  double sum;
  {
    std::lock_guard lock(d.m_mu);
    for (const auto& [k, v] : d.queries)
      o << "skiff_dns_queries_total{type=\"" << k.first << "\",rcode=\"" << k.second << "\"} " << v
        << "\n";
    buckets = d.buckets;
    count = d.lat_count;
    sum = d.lat_sum;
  }
  o << "# HELP skiff_dns_request_duration_seconds Time from a query's arrival to its answer.\n"
       "# TYPE skiff_dns_request_duration_seconds histogram\n";
  for (size_t i = 0; i < kBuckets.size(); ++i)
    o << "skiff_dns_request_duration_seconds_bucket{le=\"" << kBuckets[i] << "\"} " << buckets[i]
      << "\n";
  o << "skiff_dns_request_duration_seconds_bucket{le=\"+Inf\"} " << count << "\n"
    << "skiff_dns_request_duration_seconds_sum " << sum << "\n"
    << "skiff_dns_request_duration_seconds_count " << count << "\n";
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
      << name << " " << v << "\n";
  };
  counter("skiff_dns_forwarded_total", "Queries forwarded to an upstream resolver.", d.forwarded);
  counter("skiff_dns_forward_errors_total",
          "Forwarded queries that got SERVFAIL (no upstream, or none answered).", d.forward_errors);
  counter("skiff_dns_dropped_total", "Packets dropped unanswered (too short, or responses).",
          d.dropped);
  counter("skiff_dns_zone_rebuilds_total", "Cluster zone rebuilds after API changes.", d.rebuilds);
  counter("skiff_dns_tcp_rejected_total", "TCP connections refused over the connection limit.",
          d.tcp_rejected);
  auto z = const_cast<Impl&>(d).zone.load();
  o << "# HELP skiff_dns_zone_records Records in the cluster zone.\n"
       "# TYPE skiff_dns_zone_records gauge\nskiff_dns_zone_records "
    << (z ? z->record_count() : 0) << "\n"
    << "# HELP skiff_dns_synced 1 once the Service and Endpoints lists are loaded.\n"
       "# TYPE skiff_dns_synced gauge\nskiff_dns_synced "
    << (d.synced ? 1 : 0) << "\n";
  return o.str();
}

}  // namespace skiff::dns
