// The shared Redis tier. Declared here (not only behind OpenRedisStore) so
// tests and the tiered store can reach its AccessSink side and its health.
//
// Data model, all under options.key_prefix (P):
//   P e:<key>  hash  v = EncodeEntry bytes (checksummed), h = hit count,
//                    l = last access (ms), c/t/f = created, ttl, ttl_fixed
//                    (so Maintain decides expiry without the value);
//                    PEXPIRE = logical deadline + expire_grace_ms.
//   P i:lru    zset  key -> last access   (LRU order for max_bytes)
//   P i:exp    zset  key -> a lower bound of the expiry deadline (deadlines
//                    only grow with reads, so it is corrected lazily)
//   P i:sz     hash  key -> encoded bytes (HLEN = entries)
//   P i:bytes  int   sum of i:sz
// Every mutation of one entry and its index rows is one Lua script (atomic,
// one round trip). Cost per call: Lookup 1 round trip (EVALSHA: type and
// size check, HMGET, HINCRBY, ZADD GT, PEXPIRE), Insert 1 (+ eviction when
// over max_bytes), Erase 1, Stats 1 (HLEN + GET), Maintain 1 when nothing
// is due.
//
// The index keys are approximate when Redis itself removes entries (PEXPIRE
// or maxmemory eviction; both may also evict an index key): Stats().entries
// and bytes then over-count until Maintain or eviction meets the stale rows
// and drops them. A Lookup is never wrong: it reads the entry key itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/store.h"
#include "store/access_tracking.h"
#include "store/redis_store_async.h"
#include "store/redis_store_pool.h"

namespace llmcache {

struct RedisLuaScript;

class RedisStore final : public Store, public AccessSink {
 public:
  // REQUIRES: options validated by OpenRedisStore.
  RedisStore(RedisStoreOptions options, std::shared_ptr<RedisPool> pool);
  ~RedisStore() override;

  const char* Name() const override { return "redis"; }
  Result<StoreHit> Lookup(std::string_view key) override;
  Status Insert(std::shared_ptr<const CacheEntry> entry) override;
  Status Erase(std::string_view key) override;
  // SCANs the prefix in batches of 512 keys, reading each value once; pred
  // sees access data as of the insert (hit counts may lag).
  Result<uint64_t> EraseIf(const std::function<bool(const CacheEntry&)>& pred) override;
  // Sweeps up to 1024 entries whose indexed deadline has passed, then
  // enforces max_bytes. When Redis is unreachable it returns Unavailable.
  Status Maintain() override;
  // entries/bytes come from the index (see above); when Redis is
  // unreachable, the last values read. Counters are this process's.
  StoreStats Stats() const override;

  // Non-blocking: one pipelined connection driven by one I/O thread per
  // store (started on first use), shared by every in-flight call. `done`
  // runs on that thread, or inline when Redis is known to be down (fail
  // fast). InsertAsync with max_bytes > 0 runs the blocking Insert inline.
  void LookupAsync(std::string_view key, LookupCallback done) override;
  void InsertAsync(std::shared_ptr<const CacheEntry> entry, InsertCallback done) override;

  // AccessSink
  Status RecordAccess(const std::vector<AccessUpdate>& updates) override;
  void SetAccessOracle(AccessOracle oracle) override;

  // The health handle reports the blocking pool's state; this also
  // reports the async link's.
  bool degraded() const;
  std::shared_ptr<const StoreHealth> health() const { return pool_; }

  // The Redis key of an entry; for tests and tools.
  std::string EntryKey(std::string_view key) const;

 private:
  // What a lookup's reply means, and what must follow it.
  struct LookupDecision {
    Result<StoreHit> result = Err(Status::NotFound());
    enum FollowUp { kNone, kDropCorrupt, kDropExpired, kExtendExpiry } follow_up = kNone;
    std::string created;     // kDropExpired: remove only if still this version
    int64_t pexpire_ms = 0;  // kExtendExpiry
  };
  std::vector<std::string> LookupArgs(std::string_view key, int64_t now) const;
  LookupDecision InterpretLookup(std::string_view key, int64_t now, const redisReply* r) const;
  void CountRemoval(LookupDecision::FollowUp why, const Result<int>& removed);
  Result<std::vector<std::string>> InsertArgs(const CacheEntry& entry) const;
  Result<int64_t> InsertResult(const redisReply* r);
  std::vector<std::string> RemoveArgs(std::string_view key, std::string_view expected_created = {},
                                      std::string_view expected_last = {}) const;
  Result<int> RemoveResult(const redisReply* r);
  RedisAsyncLink& Link();
  void SendScript(const RedisLuaScript& script, std::vector<std::string> args,
                  RedisAsyncLink::Callback done);

  Result<std::vector<RedisReplyPtr>> RunScripts(const RedisLuaScript& script,
                                                std::vector<std::vector<std::string>> calls);
  // Removes key and its index rows. When expected_created (and
  // expected_last) are not empty, only if the stored entry still has them.
  // Returns 1 when an entry was removed, 0 when none was there, -1 when it
  // was left because it changed.
  Result<int> Remove(std::string_view key, std::string_view expected_created = {},
                     std::string_view expected_last = {});
  Status EvictToBound(int64_t bytes);
  Status SweepExpired();
  int64_t Now() const { return clock_->NowMillis(); }
  int64_t TouchTtlMs() const;

  const RedisStoreOptions options_;
  const std::shared_ptr<Clock> clock_;
  const std::shared_ptr<RedisPool> pool_;
  const std::string lru_key_, exp_key_, sz_key_, bytes_key_;
  AccessOracle oracle_;
  std::once_flag link_once_;
  std::unique_ptr<RedisAsyncLink> link_;
  std::atomic<const RedisAsyncLink*> link_started_{nullptr};  // link_, once it exists

  mutable std::atomic<uint64_t> last_entries_{0};
  mutable std::atomic<uint64_t> last_bytes_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> expirations_{0};
  std::atomic<uint64_t> corrupt_dropped_{0};
};

}  // namespace llmcache
