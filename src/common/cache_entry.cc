#include "llmcache/cache_entry.h"

namespace llmcache {

size_t CacheEntry::ByteSize() const {
  // Fixed overhead approximates the struct, allocator headers and the index
  // node that holds it; tiers bound memory with this figure.
  size_t n = sizeof(CacheEntry) + 64 + key.size() + ns.size() + model.size() + body.size();
  for (const auto& e : sse_events) n += e.size() + sizeof(std::string);
  return n;
}

}  // namespace llmcache
