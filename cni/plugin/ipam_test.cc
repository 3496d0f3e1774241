#include "cni/plugin/ipam.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

using namespace skiff::cni::plugin;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/skiff-ipam-test.XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

Ip4Net net(const char* s) { return *parse_ip4_net(s); }

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("ipam: allocates after the gateway, records the owner, reuses on repeat") {
  TempDir t;
  const std::string dir = t.path + "/net";  // created on demand
  FileIpam ipam(dir, net("10.1.2.0/24"));
  auto a = ipam.allocate("c1", "eth0");
  REQUIRE(a.is_ok());
  CHECK(a->ip.str() == "10.1.2.2");
  CHECK_FALSE(a->reused);
  CHECK(slurp(dir + "/10.1.2.2") == "c1\neth0\n");
  auto again = ipam.allocate("c1", "eth0");
  REQUIRE(again.is_ok());
  CHECK(again->ip == a->ip);
  CHECK(again->reused);
  auto b = ipam.allocate("c1", "eth1");  // another interface of the same container
  REQUIRE(b.is_ok());
  CHECK(b->ip.str() == "10.1.2.3");
  auto found = ipam.find("c1", "eth1");
  REQUIRE(found.is_ok());
  CHECK(found->value() == b->ip);
  CHECK_FALSE(ipam.find("zz", "eth0")->has_value());
}

TEST_CASE("ipam: release is idempotent and a freed address is not reused at once") {
  TempDir t;
  FileIpam ipam(t.path, net("10.1.2.0/24"));
  auto a = ipam.allocate("c1", "eth0");
  REQUIRE(a.is_ok());
  CHECK(ipam.release("c1", "eth0").is_ok());
  CHECK_FALSE(fs::exists(t.path + "/" + a->ip.str()));
  CHECK(ipam.release("c1", "eth0").is_ok());
  CHECK(ipam.release("never", "eth0").is_ok());
  auto b = ipam.allocate("c2", "eth0");
  REQUIRE(b.is_ok());
  CHECK(b->ip.str() == "10.1.2.3");  // after the last one handed out
  // Release in a data dir that was never created succeeds (DEL before any ADD).
  FileIpam none(t.path + "/missing", net("10.1.2.0/24"));
  CHECK(none.release("c1", "eth0").is_ok());
  CHECK_FALSE(fs::exists(t.path + "/missing"));
}

TEST_CASE("ipam: a /29 holds 5 pods; the 6th gets code 11 naming the range") {
  TempDir t;
  FileIpam ipam(t.path, net("10.1.2.8/29"));
  std::set<std::string> got;
  for (int i = 0; i < 5; ++i) {
    auto a = ipam.allocate("c" + std::to_string(i), "eth0");
    REQUIRE(a.is_ok());
    got.insert(a->ip.str());
  }
  CHECK(got ==
        std::set<std::string>{"10.1.2.10", "10.1.2.11", "10.1.2.12", "10.1.2.13", "10.1.2.14"});
  auto full = ipam.allocate("c5", "eth0");
  REQUIRE_FALSE(full.is_ok());
  CHECK(full.error().code == kTryAgainLater);
  CHECK_THAT(full.error().details, Catch::Contains("10.1.2.8/29"));
  // The repeated ADD of a holder still works when full; a release makes room, wrapping around.
  CHECK(ipam.allocate("c3", "eth0").is_ok());
  REQUIRE(ipam.release("c1", "eth0").is_ok());
  auto again = ipam.allocate("c5", "eth0");
  REQUIRE(again.is_ok());
  CHECK(again->ip.str() == "10.1.2.11");
}

TEST_CASE("ipam: crash leftovers") {
  TempDir t;
  FileIpam ipam(t.path, net("10.1.2.0/24"));
  REQUIRE(ipam.allocate("c0", "eth0").is_ok());  // creates the dir
  // A process that died between writing its temp file and linking it: reserves nothing.
  std::ofstream(t.path + "/.tmp-99999") << "dead\neth0\n";
  // A file whose owner cannot be read (truncated by hand, or a foreign tool) keeps its address.
  std::ofstream(t.path + "/10.1.2.3") << "";
  // Garbage that is not an address, and an address outside the subnet, are ignored.
  std::ofstream(t.path + "/README") << "x";
  std::ofstream(t.path + "/10.9.9.9") << "other\neth0\n";
  // A torn hint file.
  std::ofstream(t.path + "/last_reserved_ip") << "10.1.";
  auto a = ipam.allocate("c1", "eth0");
  REQUIRE(a.is_ok());
  CHECK(a->ip.str() == "10.1.2.4");  // .2 is c0's, .3 is unreadable
  CHECK_FALSE(fs::exists(t.path + "/.tmp-99999"));
  auto l = ipam.list();
  REQUIRE(l.is_ok());
  REQUIRE(l->size() == 3);
  CHECK((*l)[1].ip.str() == "10.1.2.3");
  CHECK((*l)[1].container_id.empty());
  // A stale lock file from a dead process is no obstacle: flock dies with its holder.
  CHECK(ipam.release("c1", "eth0").is_ok());
}

TEST_CASE("ipam: a held lock gives code 11 after the timeout") {
  TempDir t;
  FileIpam ipam(t.path, net("10.1.2.0/24"), std::chrono::milliseconds(50));
  REQUIRE(ipam.allocate("c0", "eth0").is_ok());
  int fd = ::open((t.path + "/lock").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX) == 0);  // another open file description: conflicts
  auto a = ipam.allocate("c1", "eth0");
  REQUIRE_FALSE(a.is_ok());
  CHECK(a.error().code == kTryAgainLater);
  ::close(fd);
  CHECK(ipam.allocate("c1", "eth0").is_ok());
}

TEST_CASE("ipam: concurrent processes get distinct addresses") {
  TempDir t;
  const int kProcs = 8, kEach = 5;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      FileIpam ipam(t.path, net("10.1.2.0/24"));
      for (int i = 0; i < kEach; ++i)
        if (!ipam.allocate("p" + std::to_string(p) + "-" + std::to_string(i), "eth0").is_ok())
          ::_exit(1);
      ::_exit(0);
    }
  }
  for (int p = 0; p < kProcs; ++p) {
    int st = 0;
    ::wait(&st);
    CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  }
  FileIpam ipam(t.path, net("10.1.2.0/24"));
  auto l = ipam.list();
  REQUIRE(l.is_ok());
  std::set<uint32_t> ips;
  std::set<std::string> owners;
  for (const auto& e : *l) {
    ips.insert(e.ip.v);
    owners.insert(e.container_id);
  }
  CHECK(l->size() == kProcs * kEach);
  CHECK(ips.size() == kProcs * kEach);
  CHECK(owners.size() == kProcs * kEach);
}

TEST_CASE("ipam: GC frees what is not a valid attachment") {
  TempDir t;
  FileIpam ipam(t.path, net("10.1.2.0/24"));
  REQUIRE(ipam.allocate("keep", "eth0").is_ok());
  REQUIRE(ipam.allocate("keep", "eth1").is_ok());
  REQUIRE(ipam.allocate("drop", "eth0").is_ok());
  auto freed = ipam.gc({{"keep", ""}});
  REQUIRE(freed.is_ok());
  REQUIRE(freed->size() == 1);
  CHECK((*freed)[0].container_id == "drop");
  CHECK(ipam.list()->size() == 2);
  freed = ipam.gc({{"keep", "eth0"}});
  REQUIRE(freed.is_ok());
  CHECK(freed->size() == 1);
}
