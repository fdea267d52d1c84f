#include <algorithm>
#include <limits>

#include "llmcache/store.h"
#include "store/expiry_internal.h"

namespace llmcache {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) {
    return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  }
  return r;
}

}  // namespace

int64_t AbsoluteExpiryMs(const ExpiryFields& f, const ExpiryOptions& o) {
  if (f.ttl_ms == 0) return kNever;
  int64_t ttl = f.ttl_ms;
  // A negative TTL is nonsense from upstream arithmetic; it is honoured as
  // "already over" rather than extended, so it can never serve stale data.
  if (ttl > 0 && !f.ttl_fixed) {
    const int64_t cap = std::max(ttl, o.max_extended_ttl_ms);
    const int64_t factor = 1 + static_cast<int64_t>(f.hit_count);
    // ttl * factor <= cap  <=>  ttl <= cap / factor for positive integers;
    // deciding it by division avoids the overflowing product.
    ttl = ttl <= cap / factor ? ttl * factor : cap;
  }
  return SaturatingAdd(f.created_ms, ttl);
}

int64_t ExpiryDeadlineMs(const ExpiryFields& f, const ExpiryOptions& o) {
  int64_t deadline = AbsoluteExpiryMs(f, o);
  if (o.idle_ttl_ms > 0) {
    // An entry never read has been idle since it was created, whatever its
    // last_access_ms says (a default 0 must not make it idle at birth).
    const int64_t last = std::max(f.created_ms, f.last_access_ms);
    deadline = std::min(deadline, SaturatingAdd(last, o.idle_ttl_ms));
  }
  return deadline;
}

int64_t AbsoluteExpiryMs(const CacheEntry& e, const ExpiryOptions& o) {
  return AbsoluteExpiryMs(ExpiryFields::Of(e), o);
}

bool IsExpired(const CacheEntry& e, const ExpiryOptions& o, int64_t now_ms) {
  return IsExpired(ExpiryFields::Of(e), o, now_ms);
}

}  // namespace llmcache
