// FileIpam: the skiff plugin's address allocator for one node's pod CIDR.
//
// State lives in a directory (one per network, e.g. /var/lib/skiff/cni/networks/<name>):
//   lock                  flock(2)ed for every operation: plugin processes run concurrently
//   <a.b.c.d>             one file per allocated address: "<containerID>\n<ifname>\n"
//   last_reserved_ip      the last address handed out; the search starts after it so a freed
//                         address is not reused at once (stale ARP and conntrack entries)
// The layout is host-local's, so an operator knows it. Crash safety: an address file is written
// in full to a temp file and then link(2)ed to its name, which fails atomically when the
// address is taken; so a plugin killed at any point leaves each address file absent or
// complete, plus at most a temp file, which the next operation deletes. A file whose content
// cannot be read still reserves its address (never hand out an address we are unsure about).
// There is deliberately no fsync (it cost ~2 ms per ADD): a power loss kills every pod of the
// node too, so losing the newest allocations with it frees only addresses of dead pods, and an
// empty file left behind merely keeps an address reserved until DEL/GC.
//
// Thread-compatible; processes coordinate through the lock. Addresses: network+2 ..
// broadcast-1 (network+1 is the gateway).
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cni/plugin/config.h"
#include "cni/plugin/error.h"

namespace skiff::cni::plugin {

struct Lease {
  Ip4 ip;
  bool reused = false;  // the container already held it (a repeated ADD)
};

class FileIpam {
 public:
  // `lock_timeout`: how long to wait for the lock before failing with code 11 (try again).
  FileIpam(std::string dir, Ip4Net subnet,
           std::chrono::milliseconds lock_timeout = std::chrono::seconds(10));

  // The address of (container_id, ifname) if it has one, else a free one, recorded durably.
  // Errors: 11 when the range is exhausted or the lock is busy, 5 on I/O errors.
  CniResult<Lease> allocate(const std::string& container_id, const std::string& ifname);
  // The recorded address, if any.
  CniResult<std::optional<Ip4>> find(const std::string& container_id, const std::string& ifname);
  // Frees every address of (container_id, ifname). Idempotent: nothing to free is success.
  CniStatus release(const std::string& container_id, const std::string& ifname);
  // CNI GC: frees every address whose owner is not in `keep` (an empty ifname in `keep` keeps
  // all of that container's addresses). Returns what it freed.
  struct Entry {
    Ip4 ip;
    std::string container_id;  // empty when the file was unreadable
    std::string ifname;
  };
  CniResult<std::vector<Entry>> gc(const std::vector<Attachment>& keep);

  // Every recorded allocation, address order. For tests and CHECK.
  CniResult<std::vector<Entry>> list();

 private:
  class Lock;
  CniResult<int> lock();                 // the locked fd; closing it unlocks
  CniResult<std::vector<Entry>> scan();  // REQUIRES: locked
  CniStatus remove(Ip4 ip);              // REQUIRES: locked

  std::string dir_;
  Ip4Net subnet_;
  std::chrono::milliseconds lock_timeout_;
};

}  // namespace skiff::cni::plugin
