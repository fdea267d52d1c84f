// The in-process tier: a byte-bounded, sharded LRU map. Declared here (not
// only behind NewMemoryStore) so the tiered store and tests can reach the
// AccessSource side of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/store.h"
#include "store/access_tracking.h"
#include "store/expiry_internal.h"

#if defined(__SANITIZE_THREAD__)
#define LLMCACHE_STORE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LLMCACHE_STORE_TSAN 1
#endif
#endif

namespace llmcache {

// Cost model (the gateway's hot path):
// - Lookup hit: one XXH3 of the key, one shard mutex, a probe of an
//   open-addressing table whose node holds the key inline, an LRU splice
//   and, in the common case, no copy: access data lives in the node, and the
//   stored entry is updated in place when no caller still holds it (the
//   store owns that object and its reference count says it is unshared). An
//   inserted entry is owned when Insert received the caller's only
//   reference (the gateway hands its new entries over that way); otherwise
//   (the caller keeps a reference) it is copied on its first hit, once,
//   under the lock. It is also copied when an earlier reader still holds it
//   (outside the lock).
// - Insert may evict; eviction picks, among the 16 shards' LRU tails, the
//   least recently used one, so the bound is global and the order is LRU to
//   the millisecond of the clock.
// - Maintain pops a per-shard min-heap of expiry deadlines; deadlines only
//   grow with reads, so stale heap keys are fixed lazily when popped, and a
//   call with nothing expired costs 16 lock/unlock pairs.
// Entries returned by Lookup are never modified afterwards; entries passed to
// Insert are never modified while anyone but the store can reach them. So an
// entry handed over as the only reference must not be a const object
// (make_shared<CacheEntry>, not make_shared<const CacheEntry>).
class MemoryStore final : public Store, public AccessSource {
 public:
  explicit MemoryStore(MemoryStoreOptions options);
  ~MemoryStore() override;

  const char* Name() const override { return "memory"; }
  Result<StoreHit> Lookup(std::string_view key) override;
  Status Insert(std::shared_ptr<const CacheEntry> entry) override;
  Status Erase(std::string_view key) override;
  // pred runs under a shard lock: it must not call into this store. It sees
  // the entry as stored; its access fields may lag the true ones.
  Result<uint64_t> EraseIf(const std::function<bool(const CacheEntry&)>& pred) override;
  Status Maintain() override;
  StoreStats Stats() const override;

  // AccessSource. Reads are reported at most once per write-back interval
  // per entry: idle_ttl/64 (1 h when idle expiry is off), at least 1 ms.
  void SetAccessListener(AccessListener listener) override;
  std::optional<AccessData> PeekAccess(std::string_view key) const override;
  void FlushAccess() override;

  int64_t writeback_interval_ms() const { return writeback_interval_ms_; }

  static constexpr size_t kShards = 16;
  // ThreadSanitizer does not model the fence that makes the in-place update
  // race-free (see Lookup), so TSan builds always copy instead.
#ifdef LLMCACHE_STORE_TSAN
  static constexpr bool kUpdatesInPlace = false;
#else
  static constexpr bool kUpdatesInPlace = true;
#endif

 private:
  struct Node;
  class NodeTable;
  struct Shard;

  Shard& ShardFor(size_t hash) const;
  // Removes it from every index of s; caller holds s.mu and adjusts counters.
  void RemoveLocked(Shard& s, Node* n);
  // Evicts LRU entries (never `keep`) until the byte total fits the bound.
  void EvictForSpace(const CacheEntry* keep, std::vector<AccessUpdate>* reports);
  void Report(const std::vector<AccessUpdate>& reports) const;

  const MemoryStoreOptions options_;
  const std::shared_ptr<Clock> clock_;
  const int64_t writeback_interval_ms_;
  AccessListener listener_;
  std::unique_ptr<Shard[]> shards_;

  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> expirations_{0};
};

}  // namespace llmcache
