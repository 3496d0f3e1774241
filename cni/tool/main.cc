// skiff-cni-tool: drives CniInvoker from the command line for test/integration/cni_invoker_test.
// Not installed; not a user interface.
//
//   skiff-cni-tool --conf-dir D --bin-dir B [--bin-dir B2] --cache-dir C [--timeout S]
//                  add|check|del CONTAINER_ID NETNS_PATH [IFNAME] [KEY=VALUE ...]
// add prints the result JSON on stdout and "ip <first IPv4>" on stderr.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cni/invoker.h"

using namespace skiff::cni;

int main(int argc, char** argv) {
  CniInvoker::Options o;
  o.bin_dirs.clear();
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--conf-dir" && i + 1 < argc)
      o.conf_dir = argv[++i];
    else if (a == "--bin-dir" && i + 1 < argc)
      o.bin_dirs.push_back(argv[++i]);
    else if (a == "--cache-dir" && i + 1 < argc)
      o.cache_dir = argv[++i];
    else if (a == "--timeout" && i + 1 < argc)
      o.timeout = std::chrono::seconds(std::atoi(argv[++i]));
    else
      pos.push_back(a);
  }
  if (o.bin_dirs.empty()) o.bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  if (pos.size() < 3) {
    std::fprintf(stderr,
                 "usage: skiff-cni-tool [--conf-dir D] [--bin-dir B]... [--cache-dir C] "
                 "add|check|del ID NETNS [IFNAME] [K=V...]\n");
    return 2;
  }
  CniInvoker inv(o);
  if (auto st = inv.load(); !st) {
    std::fprintf(stderr, "skiff-cni-tool: %s\n", st.to_string().c_str());
    return 1;
  }
  RuntimeConf rt;
  rt.container_id = pos[1];
  rt.netns = pos[2];
  size_t i = 3;
  if (pos.size() > 3 && pos[3].find('=') == std::string::npos) rt.ifname = pos[i++];
  for (; i < pos.size(); ++i) {
    auto eq = pos[i].find('=');
    rt.args.emplace_back(pos[i].substr(0, eq), pos[i].substr(eq + 1));
  }
  skiff::Status st;
  if (pos[0] == "add") {
    auto r = inv.add(rt);
    if (r) {
      std::printf("%s\n", r->raw_json.c_str());
      std::fprintf(stderr, "ip %s\n", r->first_ipv4().c_str());
      return 0;
    }
    st = r.status();
  } else if (pos[0] == "check") {
    st = inv.check(rt);
  } else if (pos[0] == "del") {
    st = inv.del(rt);
  } else {
    std::fprintf(stderr, "skiff-cni-tool: unknown command %s\n", pos[0].c_str());
    return 2;
  }
  if (!st) {
    std::fprintf(stderr, "skiff-cni-tool: %s\n", st.to_string().c_str());
    return 1;
  }
  return 0;
}
