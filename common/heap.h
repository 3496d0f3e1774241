// What the process's allocator holds, and giving its free pages back, whichever malloc the binary
// links: jemalloc (skiff-netagent links it; see netagent/README.md) or glibc's.
#pragma once

#include <cstddef>

namespace skiff {

struct HeapStats {
  const char* allocator = "";  // "jemalloc" or "glibc"
  size_t allocated = 0;        // bytes handed out by malloc/new and not freed
  size_t held_free = 0;        // bytes the allocator keeps mapped and resident but unused
};

HeapStats heap_stats();

// Returns the allocator's unused pages to the kernel now (jemalloc: flushes the calling
// thread's cache, purges every arena; glibc: malloc_trim(0)). For after a large transient peak,
// on the thread that had it.
void release_free_heap();

}  // namespace skiff
