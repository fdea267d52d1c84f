// The semantic cache's replication log in a Redis stream (see replication.h).
//
// One stream entry per change, appended with `XADD <key> MAXLEN ~ max_len *`:
//   o  the writing replica          k  "insert" | "invalidate" | "erase"
//   e  (insert) the entry, in the checksummed SemanticEntry encoding
//   m  (insert) the embedder id     u  (insert) its unknown_fraction
//   d  (invalidate) the document hash
//   x  (erase) the exact key
// Reads take one MULTI/EXEC snapshot: XINFO STREAM, XRANGE of the last
// position and XREAD after it. The position itself still in the stream means
// nothing was lost since; otherwise the stream was trimmed past it (XINFO's
// max-deleted-entry-id tells whether unread entries went too) or vanished
// (flush, eviction, restart without persistence): a gap, after which reading
// goes on from the oldest entry the stream holds. Waiting for new entries is
// a blocking XREAD on its own connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "llmcache/status.h"
#include "semantic/replication.h"

namespace llmcache::semantic {

struct RedisSemanticLogOptions {
  // The store's URL forms and password handling (docs/redis.md):
  // redis://... or redis-sentinel://...
  std::string url = "redis://127.0.0.1:6379";
  std::string password_env;
  // Replicas sharing a cache must use the same key (the gateway puts it
  // under the store's key prefix).
  std::string stream_key = "llmcache:semantic:stream";
  // Entries kept (approximately, `MAXLEN ~`). An insert of a 512-d vector
  // takes ~2.5 KB, so the default holds ~50 MB. A replica that is away for
  // more changes than this finds a gap when it comes back.
  uint64_t max_len = 20'000;
  // Entries larger than this are refused when read (not written by us).
  size_t max_entry_bytes = 1 << 20;
  int64_t connect_timeout_ms = 250;
  // Plus the read's wait for a blocking XREAD.
  int64_t command_timeout_ms = 500;
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 5000;
};

// InvalidArgument for a bad URL or options; never fails because Redis is
// unreachable (calls then return Unavailable).
Result<std::unique_ptr<SemanticReplicationLog>> OpenRedisSemanticLog(
    RedisSemanticLogOptions options);

// The gateway's setup: `local` (opened under data_dir) shared through the
// stream, its position saved as <data_dir>/stream.pos. Redis being
// unreachable is no error: the cache starts local and catches up later.
Result<std::shared_ptr<SemanticCache>> ReplicateThroughRedis(std::shared_ptr<SemanticCache> local,
                                                             std::string embedder_id,
                                                             const std::string& data_dir,
                                                             RedisSemanticLogOptions options);

// Compares two stream ids ("ms-seq"); a malformed id sorts first.
int CompareStreamIds(std::string_view a, std::string_view b);

}  // namespace llmcache::semantic
