// The disk tier of the prefix KV cache: blocks evicted from RAM are written
// here and read back when a later request's prefix hashes to them.
//
// One file per block, named by its hash (`<32 hex digits>.kvb`): a 48-byte
// header (magic, the hash, payload size, XXH3 checksums of payload and
// header) and the block's bytes (KvBlockPool::CopyOut). Files are written to
// a temporary name and renamed, so a crash leaves no half file under a real
// name. A file that fails any check when loaded (truncated, flipped bits,
// wrong hash or size) is deleted and counted, and the caller recomputes the
// block: corrupt KV is never used.
//
// Open() re-scans the directory, so blocks survive restarts; the least
// recently used files (file modification time across restarts, which Load
// refreshes) are deleted beyond the byte budget. Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "engine/kv_hash.h"
#include "llmcache/status.h"

namespace llmcache::engine {

struct DiskTierOptions {
  std::string dir;  // created when missing
  // Total bytes of block files kept; the least recently used go first.
  uint64_t budget_bytes = uint64_t{4} << 30;
};

struct DiskTierStats {
  uint64_t blocks = 0;           // files indexed now
  uint64_t bytes = 0;            // their total size
  uint64_t stored = 0;           // blocks written since Open
  uint64_t loaded = 0;           // blocks read back and verified
  uint64_t corrupt_dropped = 0;  // files deleted because a check failed
  uint64_t evicted = 0;          // files deleted for the budget
};

class DiskTier {
 public:
  static Result<std::unique_ptr<DiskTier>> Open(const DiskTierOptions& options);

  bool Contains(const BlockHash& hash) const;
  // Writes the block unless a file for this hash exists already.
  Status Store(const BlockHash& hash, std::span<const uint8_t> payload);
  // Reads the block into `out` (exactly out.size() payload bytes expected).
  // NotFound when absent; Corruption when the file failed a check (it is
  // gone afterwards).
  Status Load(const BlockHash& hash, std::span<uint8_t> out);
  DiskTierStats stats() const;
  // The file that holds `hash` (whether or not it exists); for tests.
  std::string PathOf(const BlockHash& hash) const;

 private:
  explicit DiskTier(DiskTierOptions options) : options_(std::move(options)) {}
  struct Entry {
    uint64_t bytes = 0;
    std::list<BlockHash>::iterator lru;
  };
  void Drop(const BlockHash& hash);  // REQUIRES: mu_ held, hash indexed
  void EnforceBudget();              // REQUIRES: mu_ held

  DiskTierOptions options_;
  mutable std::mutex mu_;
  std::list<BlockHash> lru_;  // front: least recently used
  std::unordered_map<BlockHash, Entry, BlockHashHasher> index_;
  DiskTierStats stats_;
};

}  // namespace llmcache::engine
