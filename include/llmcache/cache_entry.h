// A cached upstream answer and the facts needed to expire, evict, purge and
// account for it. The store persists it; the gateway builds and serves it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmcache {

// Which OpenAI route produced the entry.
enum class Route : uint8_t { kChat = 1, kCompletions = 2, kEmbeddings = 3 };

struct CacheEntry {
  // Identity. `key` is the lowercase hex SHA-256 of the canonical request
  // (64 characters); `ns` the effective namespace (tenant), `model` the
  // requested model name. ns/model/route let admin purge and metrics work
  // without re-parsing the body.
  std::string key;
  std::string ns;
  std::string model;
  Route route = Route::kChat;

  // Freshness, all in Unix milliseconds.
  int64_t created_ms = 0;
  int64_t last_access_ms = 0;
  // Base time-to-live from creation; 0 means "no absolute TTL" (idle expiry
  // still applies). When ttl_fixed is false the store may extend it with the
  // hit count (frequency x base TTL, capped); a TTL the client asked for
  // (max-age, x-llmcache-ttl) is fixed and never extended.
  int64_t ttl_ms = 0;
  bool ttl_fixed = false;
  uint32_t hit_count = 0;

  // The answer. Exactly one of `body` (a complete non-stream JSON response)
  // and `sse_events` (the `data:` payloads of a complete SSE stream, in order,
  // without the final [DONE]) is non-empty.
  int http_status = 200;
  std::string body;
  std::vector<std::string> sse_events;

  // Accounting, from the answer's `usage`.
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;

  bool is_stream() const { return !sse_events.empty(); }
  // Approximate bytes the entry occupies, for byte-bounded tiers.
  size_t ByteSize() const;
};

}  // namespace llmcache
