// Ownership of the KV blocks of a shared pool, and automatic prefix caching.
//
// Every block is in exactly one state:
//   free      no owner, no hash: handed out first by Allocate;
//   cached    no owner, keeps its hash: found again by Acquire on a hash
//             match; Allocate takes the least recently released one when
//             there is no free block (eviction; spilled to the disk tier);
//   in use    refcount > 0, owned by that many sequences; with a hash when
//             it is full and was published.
// A sequence acquires the blocks of its prompt's cached prefix, allocates the
// rest, publishes each block once it is full (prompt or generated tokens) and
// releases all of them when it retires. Not thread-safe (the engine's worker
// owns it); stats() may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/disk_tier.h"
#include "engine/kv_hash.h"
#include "engine/model.h"

namespace llmcache::engine {

struct PrefixCacheStats {
  // In prompt tokens, as vLLM counts them: every prompt token is a query,
  // every token whose KV came from the cache (RAM or disk) a hit.
  uint64_t query_tokens = 0;
  uint64_t hit_tokens = 0;
  uint64_t disk_hit_tokens = 0;  // the part of hit_tokens loaded from disk
  uint64_t evicted_blocks = 0;   // cached blocks whose RAM was reused
  uint64_t spilled_blocks = 0;   // blocks written to the disk tier
  uint32_t total_blocks = 0;
  uint32_t used_blocks = 0;    // refcount > 0
  uint32_t cached_blocks = 0;  // unreferenced, keeping a hash
  DiskTierStats disk;
};

class KvBlockManager {
 public:
  // REQUIRES: pool (and disk, when not null) outlive the manager.
  KvBlockManager(KvBlockPool* pool, DiskTier* disk);

  uint32_t total() const { return static_cast<uint32_t>(blocks_.size()); }
  // Blocks Allocate can hand out now (free + cached).
  uint32_t available() const { return static_cast<uint32_t>(free_.size() + lru_.size()); }

  // A block for new KV, refcount 1. Evicts the least recently released
  // cached block (writing it to the disk tier first) when nothing is free.
  // nullopt when every block is in use.
  std::optional<uint32_t> Allocate();
  // The block holding `hash`, refcount + 1: from RAM, or read back from the
  // disk tier into a newly allocated block. nullopt on a miss, and when a
  // disk copy fails its checks (dropped there; the caller recomputes).
  std::optional<uint32_t> Acquire(const BlockHash& hash);
  // Makes a full, in-use block findable by `hash`. When another block holds
  // that hash already (two sequences computed the same prefix together),
  // the first one stays the cached copy.
  void Publish(uint32_t block, const BlockHash& hash);
  // Drops one reference; an unreferenced block becomes cached (with a hash)
  // or free (without).
  void Release(uint32_t block);
  // Writes every block with a hash to the disk tier (at shutdown, so a
  // restart finds them).
  void SpillAll();

  void CountQuery(uint64_t prompt_tokens, uint64_t hit_tokens);
  PrefixCacheStats stats() const;

 private:
  struct Block {
    uint32_t refs = 0;
    bool hashed = false;
    BlockHash hash;
    std::list<uint32_t>::iterator lru;  // valid while cached
  };
  void Spill(uint32_t block);
  void Unhash(uint32_t block);
  void PublishCounts();

  KvBlockPool* pool_;
  DiskTier* disk_;
  std::vector<Block> blocks_;
  std::vector<uint32_t> free_;
  std::list<uint32_t> lru_;  // cached blocks; front: least recently released
  std::unordered_map<BlockHash, uint32_t, BlockHashHasher> index_;
  std::vector<uint8_t> io_;

  std::atomic<uint64_t> query_tokens_{0}, hit_tokens_{0}, disk_hit_tokens_{0}, evicted_{0},
      spilled_{0};
  std::atomic<uint32_t> used_{0}, cached_{0};
};

}  // namespace llmcache::engine
