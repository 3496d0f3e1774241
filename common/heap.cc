#include "common/heap.h"

#include <malloc.h>

#include <cstdint>

// jemalloc's control interface, present only when the binary links jemalloc (weak: null
// otherwise). jemalloc as Debian builds it has no symbol prefix.
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen)
    __attribute__((weak));

namespace skiff {
namespace {

size_t jemalloc_stat(const char* name) {
  size_t v = 0, len = sizeof v;
  return mallctl(name, &v, &len, nullptr, 0) == 0 ? v : 0;
}

}  // namespace

HeapStats heap_stats() {
  HeapStats s;
  if (mallctl) {
    // The statistics are a snapshot refreshed by writing the epoch.
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);
    s.allocator = "jemalloc";
    s.allocated = jemalloc_stat("stats.allocated");
    size_t resident = jemalloc_stat("stats.resident");
    // resident also counts jemalloc's own metadata; the rest beyond allocated is free pages
    // not yet purged and unused space in partly used pages.
    s.held_free = resident > s.allocated ? resident - s.allocated : 0;
    return s;
  }
  struct mallinfo2 mi = ::mallinfo2();
  s.allocator = "glibc";
  s.allocated = mi.uordblks + mi.hblkhd;
  s.held_free = mi.fordblks;
  return s;
}

void release_free_heap() {
  if (mallctl) {
    // The calling thread's cache of freed objects first (after its peak it holds MBs that
    // jemalloc counts as allocated), then every arena's unused pages (MALLCTL_ARENAS_ALL is
    // 4096 in jemalloc 5).
    mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
    return;
  }
  malloc_trim(0);
}

}  // namespace skiff
