// Hand-written Prometheus text exposition (format 0.0.4). One mutex guards everything: metric
// updates are a few map operations, far cheaper than the request they describe.
#include "apiserver/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <tuple>

namespace skiff::apiserver::metrics {
namespace {

constexpr std::array<double, 16> kRequestBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6,
                                                    0.8,   1.0,  2.0,   5.0,  10,  20,  30,  60};
constexpr std::array<double, 12> kStoreBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                  0.01,   0.025,   0.05,   0.1,   0.25,   1.0};

template <size_t N>
struct Histogram {
  std::array<uint64_t, N> buckets{};  // non-cumulative; rendered cumulatively
  uint64_t count = 0;
  double sum = 0;
  void observe(const std::array<double, N>& bounds, double v) {
    for (size_t i = 0; i < N; ++i) {
      if (v <= bounds[i]) {
        ++buckets[i];
        break;
      }
    }
    ++count;
    sum += v;
  }
};

struct Registry {
  std::mutex mu;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests;
  std::map<std::pair<std::string, std::string>, Histogram<kRequestBuckets.size()>> latency;
  std::map<std::string, int64_t> watchers;
  std::map<std::string, Histogram<kStoreBuckets.size()>> store;
};

Registry& reg() {
  static Registry* r = new Registry();  // never destroyed: metrics may be touched during exit
  return *r;
}

// Label values escape backslash, quote and newline.
std::string esc(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string num(double v) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

template <size_t N>
void render_histogram(std::string& out, const std::string& name, const std::string& labels,
                      const std::array<double, N>& bounds, const Histogram<N>& h) {
  uint64_t cum = 0;
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < N; ++i) {
    cum += h.buckets[i];
    out += name + "_bucket{" + labels + sep + "le=\"" + num(bounds[i]) + "\"} " +
           std::to_string(cum) + "\n";
  }
  out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(h.count) + "\n";
  out += name + "_sum{" + labels + "} " + num(h.sum) + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(h.count) + "\n";
}

void render_process(std::string& out) {
  long page = sysconf(_SC_PAGESIZE);
  std::ifstream statm("/proc/self/statm");
  long size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) {
    out += "# HELP process_resident_memory_bytes Resident memory size in bytes.\n";
    out += "# TYPE process_resident_memory_bytes gauge\n";
    out += "process_resident_memory_bytes " + std::to_string(resident_pages * page) + "\n";
    out += "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n";
    out += "# TYPE process_virtual_memory_bytes gauge\n";
    out += "process_virtual_memory_bytes " + std::to_string(size_pages * page) + "\n";
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    long n = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    out += "# HELP process_open_fds Number of open file descriptors.\n";
    out += "# TYPE process_open_fds gauge\n";
    out += "process_open_fds " + std::to_string(n - 1) + "\n";  // minus the one opendir used
  }
}

}  // namespace

void observe_request(std::string_view verb, std::string_view resource, int code, double seconds) {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  ++r.requests[{std::string(verb), std::string(resource), code}];
  r.latency[{std::string(verb), std::string(resource)}].observe(kRequestBuckets, seconds);
}

void watch_opened(std::string_view resource) {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  ++r.watchers[std::string(resource)];
}

void watch_closed(std::string_view resource) {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  --r.watchers[std::string(resource)];
}

void observe_store(std::string_view op, double seconds) {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  r.store[std::string(op)].observe(kStoreBuckets, seconds);
}

std::string render() {
  std::string out;
  {
    auto& r = reg();
    std::lock_guard lk(r.mu);
    out += "# HELP apiserver_request_total Counter of API requests by verb, resource and code.\n";
    out += "# TYPE apiserver_request_total counter\n";
    for (const auto& [k, v] : r.requests) {
      out += "apiserver_request_total{verb=\"" + esc(std::get<0>(k)) + "\",resource=\"" +
             esc(std::get<1>(k)) + "\",code=\"" + std::to_string(std::get<2>(k)) + "\"} " +
             std::to_string(v) + "\n";
    }
    out += "# HELP apiserver_request_duration_seconds Response latency by verb and resource.\n";
    out += "# TYPE apiserver_request_duration_seconds histogram\n";
    for (const auto& [k, h] : r.latency) {
      render_histogram(out, "apiserver_request_duration_seconds",
                       "verb=\"" + esc(k.first) + "\",resource=\"" + esc(k.second) + "\"",
                       kRequestBuckets, h);
    }
    out += "# HELP apiserver_registered_watchers Open watches by resource.\n";
    out += "# TYPE apiserver_registered_watchers gauge\n";
    for (const auto& [k, v] : r.watchers) {
      out += "apiserver_registered_watchers{resource=\"" + esc(k) + "\"} " + std::to_string(v) +
             "\n";
    }
    out += "# HELP skiff_store_duration_seconds Store operation latency by operation.\n";
    out += "# TYPE skiff_store_duration_seconds histogram\n";
    for (const auto& [k, h] : r.store) {
      render_histogram(out, "skiff_store_duration_seconds", "operation=\"" + esc(k) + "\"",
                       kStoreBuckets, h);
    }
  }
  render_process(out);
  return out;
}

}  // namespace skiff::apiserver::metrics
