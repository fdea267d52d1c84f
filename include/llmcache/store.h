// Where cache entries live. Every implementation (memory tier, RocksDB,
// tiered, Redis) passes the one conformance suite in
// src/store/store_conformance_test.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmcache/cache_entry.h"
#include "llmcache/clock.h"
#include "llmcache/status.h"

namespace llmcache {

// How entries age. Shared by every tier so that all tiers agree on what is
// expired.
struct ExpiryOptions {
  // An entry that has not been read for this long expires. 0 disables idle
  // expiry. Default: 7 days.
  int64_t idle_ttl_ms = 7LL * 24 * 3600 * 1000;
  // When an entry's TTL is not fixed, each hit extends it: the effective TTL
  // is min(ttl_ms * (1 + hit_count), max(ttl_ms, max_extended_ttl_ms)).
  // Default cap: 30 days.
  int64_t max_extended_ttl_ms = 30LL * 24 * 3600 * 1000;
};

// The instant (Unix ms) at which the entry's absolute TTL ends, or INT64_MAX
// when it has none. Idle expiry is separate.
int64_t AbsoluteExpiryMs(const CacheEntry& e, const ExpiryOptions& o);
// True when the entry must not be served at now_ms (absolute TTL ended, or
// idle for idle_ttl_ms or longer).
bool IsExpired(const CacheEntry& e, const ExpiryOptions& o, int64_t now_ms);

struct StoreStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;            // approximate bytes held by the tier
  uint64_t evictions = 0;        // removed to respect a bound
  uint64_t expirations = 0;      // removed because expired
  uint64_t corrupt_dropped = 0;  // removed because they failed their checksum
};

struct StoreHit {
  std::shared_ptr<const CacheEntry> entry;
  // Name of the tier that held the entry ("memory", "rocksdb", ...); static.
  const char* tier = "";
};

// Thread-safe: every method may be called from any thread concurrently.
class Store {
 public:
  virtual ~Store() = default;

  // Short static name of this store, used as the `tier` metrics label.
  virtual const char* Name() const = 0;

  // Finds a live entry and records the read (last_access_ms = now,
  // hit_count + 1; the returned entry shows the values after this read).
  // NotFound: absent or expired (an expired entry is removed and counted).
  // Corruption: the stored bytes failed their checksum or did not decode;
  //   the entry was removed and counted; never served.
  // Any other code: the store itself failed; callers treat it as a miss.
  virtual Result<StoreHit> Lookup(std::string_view key) = 0;

  // Inserts or replaces the entry with entry->key. When it returns OK on a
  // persistent store, the entry survives a crash of the process (it is in the
  // write-ahead log). May evict other entries to respect a bound; an entry
  // larger than the whole bound is refused with ResourceExhausted.
  virtual Status Insert(std::shared_ptr<const CacheEntry> entry) = 0;

  // Removes the entry if present. OK whether or not it was present.
  virtual Status Erase(std::string_view key) = 0;

  // Removes every entry for which pred returns true; returns how many.
  virtual Result<uint64_t> EraseIf(const std::function<bool(const CacheEntry&)>& pred) = 0;

  // Removes expired entries and enforces bounds. Cheap when there is nothing
  // to do; the gateway calls it periodically.
  virtual Status Maintain() = 0;

  virtual StoreStats Stats() const = 0;

  // Non-blocking forms, for stores that wait on the network (Redis): the
  // caller's event loop thread is not held while the store waits. `done`
  // runs exactly once, either inline (before the call returns) or on a
  // thread of the store's (never a thread per call); it must not block, and
  // should hand the result back to the caller's executor. The defaults run
  // the blocking form inline.
  using LookupCallback = std::function<void(Result<StoreHit>)>;
  using InsertCallback = std::function<void(Status)>;
  virtual void LookupAsync(std::string_view key, LookupCallback done) { done(Lookup(key)); }
  virtual void InsertAsync(std::shared_ptr<const CacheEntry> entry, InsertCallback done) {
    done(Insert(std::move(entry)));
  }

  // Stats of each tier inside this store, outermost first; a single-tier
  // store reports itself.
  virtual std::vector<std::pair<const char*, StoreStats>> TierStats() const {
    return {{Name(), Stats()}};
  }
};

struct MemoryStoreOptions {
  // Upper bound on ByteSize() summed over entries; least recently used
  // entries are evicted past it. Required (> 0).
  uint64_t max_bytes = 256ull << 20;
  ExpiryOptions expiry;
  std::shared_ptr<Clock> clock;  // null: SystemClock()
};
std::unique_ptr<Store> NewMemoryStore(MemoryStoreOptions options);

struct RocksDbStoreOptions {
  std::string path;  // directory; created if missing
  // Upper bound on the bytes of stored entries; least recently accessed
  // entries are evicted past it (by Maintain and by Insert).
  uint64_t max_disk_bytes = 10ull << 30;
  ExpiryOptions expiry;
  std::shared_ptr<Clock> clock;  // null: SystemClock()
  // fsync the WAL on every insert. Off by default: without it an acknowledged
  // entry survives a crash of the process (kill -9) but not of the machine.
  bool sync_writes = false;
};
Result<std::unique_ptr<Store>> OpenRocksDbStore(RocksDbStoreOptions options);

// Health of a store that depends on a remote service (Redis). Readable from
// any thread; it outlives the store it describes (a destroyed store reads as
// degraded). The gateway exports it on /healthz and in metrics.
class StoreHealth {
 public:
  virtual ~StoreHealth() = default;
  // True while the remote cannot be used: calls fail fast with Unavailable
  // and the caller falls back to its local tier and the upstream.
  virtual bool degraded() const = 0;
  // One line on the current state (last error, retry time); no secrets.
  virtual std::string detail() const = 0;
};

// A shared Redis tier (see docs/redis.md). Entries live under
// `<key_prefix>e:<key>` as hashes holding the checksummed entry encoding and
// the entry's access data; a few index keys under `<key_prefix>i:` keep the
// byte total, the LRU order and the expiry order.
struct RedisStoreOptions {
  // redis://[[user]:password@]HOST:PORT[/DB] or
  // redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB].
  std::string url = "redis://127.0.0.1:6379";
  // Name of an environment variable holding the password; when set and
  // non-empty it overrides a password in the URL. Empty: none.
  std::string password_env;
  // Prefix of every key this store touches; stores with different prefixes
  // share one Redis without seeing each other.
  std::string key_prefix = "llmcache:";
  // Bound on the encoded bytes this store keeps (least recently used
  // entries are evicted past it). 0: no bound of our own; rely on Redis
  // `maxmemory` + `allkeys-lru` (the recommended production setup).
  uint64_t max_bytes = 0;
  // A value read back larger than this is treated as corrupt (another
  // writer), never transferred; inserts larger than it are refused.
  uint64_t max_value_bytes = 64ull << 20;
  ExpiryOptions expiry;
  std::shared_ptr<Clock> clock;  // null: SystemClock()
  int max_connections = 8;
  int64_t connect_timeout_ms = 250;
  int64_t command_timeout_ms = 500;
  // While Redis is unreachable, calls fail at once (Unavailable) for this
  // long after a failure, doubling per failed reconnect up to the max.
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 5000;
  // Redis's own expiry (PEXPIRE) is set this long after the entry's logical
  // deadline: the store decides expiry by `clock`; Redis expiry only
  // collects what nobody reads, so clock skew between replicas and Redis
  // never serves an expired entry.
  int64_t expire_grace_ms = 60000;
};
// Never fails because Redis is unreachable (the store starts degraded and
// reconnects); InvalidArgument for a bad URL or options. When health is not
// null it receives the store's health handle.
Result<std::unique_ptr<Store>> OpenRedisStore(RedisStoreOptions options,
                                              std::shared_ptr<const StoreHealth>* health = nullptr);

// A memory tier in front of a persistent store: lookups try memory first and
// promote what they find below; inserts write through to both. Hits served
// from memory update the persistent copy's access data lazily.
std::unique_ptr<Store> NewTieredStore(std::unique_ptr<Store> memory,
                                      std::unique_ptr<Store> persistent);

}  // namespace llmcache
