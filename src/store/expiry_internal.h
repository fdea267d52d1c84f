// Expiry arithmetic on bare fields, so that tiers which keep access data
// beside the entry (or only an index record) decide exactly like
// IsExpired(CacheEntry) does.
#pragma once

#include <cstdint>

#include "llmcache/store.h"

namespace llmcache {

// The facts expiry depends on.
struct ExpiryFields {
  int64_t created_ms = 0;
  int64_t last_access_ms = 0;
  int64_t ttl_ms = 0;
  bool ttl_fixed = false;
  uint32_t hit_count = 0;

  static ExpiryFields Of(const CacheEntry& e) {
    return {e.created_ms, e.last_access_ms, e.ttl_ms, e.ttl_fixed, e.hit_count};
  }
};

int64_t AbsoluteExpiryMs(const ExpiryFields& f, const ExpiryOptions& o);

// The first instant at which the entry is expired (absolute TTL or idle),
// INT64_MAX when never (a saturated sum also reads as never).
// The deadline only grows as the entry is read, which lets tiers index it
// lazily.
int64_t ExpiryDeadlineMs(const ExpiryFields& f, const ExpiryOptions& o);

inline bool IsExpired(const ExpiryFields& f, const ExpiryOptions& o, int64_t now_ms) {
  const int64_t deadline = ExpiryDeadlineMs(f, o);
  return deadline != INT64_MAX && now_ms >= deadline;
}

}  // namespace llmcache
