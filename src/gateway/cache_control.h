// Per-request cache policy from the client's request headers. Pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <tl/expected.hpp>

#include "gateway/canonical.h"  // RequestError

namespace llmcache::gateway {

// TTLs above this are capped (also keeps N * 1000 far from overflow).
inline constexpr int64_t kMaxRequestTtlSeconds = int64_t{10} * 365 * 24 * 3600;

struct RequestCachePolicy {
  // May a cached answer be served? When false the request goes upstream and
  // (if `store`) its answer replaces the cached entry: a refresh.
  bool lookup = true;
  // May the upstream answer be stored?
  bool store = true;
  // A TTL the client asked for, in milliseconds, always > 0. When set, the
  // entry's TTL is fixed (CacheEntry::ttl_fixed); when absent the server's
  // default TTL policy applies.
  std::optional<int64_t> ttl_ms;
};

// Parses `Cache-Control` and `x-llmcache-ttl` (pass "" for an absent
// header; a header repeated on several lines should be joined with ", ").
//
// Cache-Control: comma-separated directives, names case-insensitive,
// optional whitespace anywhere between tokens, values as token or
// quoted-string. Unknown directives are ignored.
//   no-cache   -> lookup = false (refresh; the answer is still stored)
//   no-store   -> store = false (a cached answer may still be served)
//   max-age=N  -> ttl_ms = N * 1000 (N decimal seconds). A malformed value
//                 is ignored (HTTP robustness); when several are valid the
//                 smallest wins.
// x-llmcache-ttl: N  -> N non-negative decimal seconds; wins over max-age.
//   Anything but digits (after trimming spaces/tabs) is a 400 error with
//   param "x-llmcache-ttl".
// A TTL of 0 from the winning source means "no cached answer is fresh
// enough and do not keep this one": lookup = false, store = false, ttl_ms
// unset. (CacheEntry::ttl_ms == 0 means "no absolute TTL", so storing with
// 0 would do the opposite of what the client asked.)
// TTLs above kMaxRequestTtlSeconds are capped to it.
tl::expected<RequestCachePolicy, RequestError> ParseRequestCachePolicy(
    std::string_view cache_control_header, std::string_view x_llmcache_ttl_header);

}  // namespace llmcache::gateway
