#include "engine/prefix_cache.h"

namespace llmcache::engine {

KvBlockManager::KvBlockManager(KvBlockPool* pool, DiskTier* disk)
    : pool_(pool), disk_(disk), blocks_(pool->n_blocks()) {
  // Low ids first, for readable traces.
  for (uint32_t i = pool->n_blocks(); i > 0; --i) free_.push_back(i - 1);
}

std::optional<uint32_t> KvBlockManager::Allocate() {
  uint32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    Spill(b);
    Unhash(b);
    ++evicted_;
  } else {
    return std::nullopt;
  }
  blocks_[b].refs = 1;
  PublishCounts();
  return b;
}

std::optional<uint32_t> KvBlockManager::Acquire(const BlockHash& hash) {
  auto it = index_.find(hash);
  if (it != index_.end()) {
    Block& block = blocks_[it->second];
    if (block.refs++ == 0) lru_.erase(block.lru);
    PublishCounts();
    return it->second;
  }
  if (disk_ == nullptr || !disk_->Contains(hash)) return std::nullopt;
  std::optional<uint32_t> b = Allocate();
  if (!b.has_value()) return std::nullopt;
  io_.resize(pool_->block_bytes());
  if (!disk_->Load(hash, io_).ok()) {
    Release(*b);
    return std::nullopt;
  }
  pool_->CopyIn(*b, io_);
  Publish(*b, hash);
  disk_hit_tokens_ += pool_->block_tokens();
  return b;
}

void KvBlockManager::Publish(uint32_t block, const BlockHash& hash) {
  Block& b = blocks_[block];
  if (b.hashed || index_.count(hash) != 0) return;
  b.hashed = true;
  b.hash = hash;
  index_[hash] = block;
}

void KvBlockManager::Release(uint32_t block) {
  Block& b = blocks_[block];
  if (b.refs == 0 || --b.refs > 0) {
    PublishCounts();
    return;
  }
  if (b.hashed) {
    lru_.push_back(block);
    b.lru = std::prev(lru_.end());
  } else {
    free_.push_back(block);
  }
  PublishCounts();
}

void KvBlockManager::SpillAll() {
  for (uint32_t i = 0; i < blocks_.size(); ++i) {
    if (blocks_[i].hashed) Spill(i);
  }
}

void KvBlockManager::Spill(uint32_t block) {
  const Block& b = blocks_[block];
  if (disk_ == nullptr || !b.hashed || disk_->Contains(b.hash)) return;
  io_.resize(pool_->block_bytes());
  pool_->CopyOut(block, io_);
  // A failed write only costs a recomputation later.
  if (disk_->Store(b.hash, io_).ok()) ++spilled_;
}

void KvBlockManager::Unhash(uint32_t block) {
  Block& b = blocks_[block];
  if (!b.hashed) return;
  index_.erase(b.hash);
  b.hashed = false;
}

void KvBlockManager::CountQuery(uint64_t prompt_tokens, uint64_t hit_tokens) {
  query_tokens_ += prompt_tokens;
  hit_tokens_ += hit_tokens;
}

void KvBlockManager::PublishCounts() {
  cached_ = static_cast<uint32_t>(lru_.size());
  used_ = static_cast<uint32_t>(blocks_.size() - free_.size() - lru_.size());
}

PrefixCacheStats KvBlockManager::stats() const {
  PrefixCacheStats s;
  s.query_tokens = query_tokens_;
  s.hit_tokens = hit_tokens_;
  s.disk_hit_tokens = disk_hit_tokens_;
  s.evicted_blocks = evicted_;
  s.spilled_blocks = spilled_;
  s.total_blocks = static_cast<uint32_t>(blocks_.size());
  s.used_blocks = used_;
  s.cached_blocks = cached_;
  if (disk_ != nullptr) s.disk = disk_->stats();
  return s;
}

}  // namespace llmcache::engine
