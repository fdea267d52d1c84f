#include "gateway/canonical_memo.h"

#include <algorithm>

#include "common/hash.h"

namespace llmcache::gateway {

namespace {

// Bookkeeping of a list node, a map slot and the strings' headers, so that
// the bound holds for many small bodies too.
constexpr size_t kEntryOverhead = 256;

}  // namespace

bool CanonicalMemo::Entry::Matches(std::string_view body, Route route,
                                   const CanonicalOptions& options) const {
  return route_ == route && options_ == options && body_ == body;
}

size_t CanonicalMemo::Entry::bytes() const {
  // Each key slot holds a 64-character key and short names.
  return kEntryOverhead + body_.size() + request_.canonical.size() + request_.model.size() +
         request_.last_user_text.size() + kKeySlots * 128;
}

std::string CanonicalMemo::Entry::Key(std::string_view ns, std::string_view revision) const {
  {
    std::lock_guard lock(keys_mu_);
    for (const KeySlot& s : keys_) {
      if (!s.key.empty() && s.ns == ns && s.revision == revision) return s.key;
    }
  }
  std::string key = CacheKey({ns, revision, request_.canonical, route_});
  // Namespaces and revisions are short; a client-chosen huge one is not kept.
  if (ns.size() + revision.size() <= 256) {
    std::lock_guard lock(keys_mu_);
    KeySlot& s = keys_[next_key_slot_];
    next_key_slot_ = (next_key_slot_ + 1) % kKeySlots;
    s.ns.assign(ns);
    s.revision.assign(revision);
    s.key = key;
  }
  return key;
}

CanonicalMemo::CanonicalMemo() : CanonicalMemo(Options{}) {}

CanonicalMemo::CanonicalMemo(Options options)
    : options_(options),
      shard_budget_(options_.max_bytes / std::max<size_t>(1, options_.shards)),
      shards_(std::make_unique<Shard[]>(std::max<size_t>(1, options_.shards))) {
  options_.shards = std::max<size_t>(1, options_.shards);
}

uint64_t CanonicalMemo::SlotHash(Route route, std::string_view body,
                                 const CanonicalOptions& options) const {
  const uint64_t h = options_.hash ? options_.hash(body) : Xxh3(body);
  // Options and route only spread slots; Matches decides.
  const uint64_t salt = static_cast<uint64_t>(route) | (options.normalize_whitespace ? 0x100 : 0) |
                        (static_cast<uint64_t>(options.max_depth) << 16);
  return h ^ (salt * 0x9E3779B97F4A7C15ull);
}

tl::expected<CanonicalMemo::EntryPtr, RequestError> CanonicalMemo::Canonicalize(
    Route route, std::string_view body, const CanonicalOptions& options) {
  const bool memoizable = body.size() <= options_.max_body_bytes && shard_budget_ > 0;
  uint64_t h = 0;
  Shard* shard = nullptr;
  if (memoizable) {
    h = SlotHash(route, body, options);
    shard = &shards_[(h >> 32) % options_.shards];
    std::lock_guard lock(shard->mu);
    auto it = shard->slots.find(h);
    if (it != shard->slots.end() && it->second->second->Matches(body, route, options)) {
      shard->lru.splice(shard->lru.begin(), shard->lru, it->second);
      ++shard->hits;
      return it->second->second;
    }
    ++shard->misses;
  }
  auto canon = gateway::Canonicalize(route, body, options);
  if (!canon) return tl::make_unexpected(std::move(canon.error()));
  auto entry = std::make_shared<const Entry>(std::string(body), route, options, std::move(*canon));
  if (!memoizable || entry->bytes() > shard_budget_) return entry;

  std::lock_guard lock(shard->mu);
  if (auto it = shard->slots.find(h); it != shard->slots.end()) {
    // Another thread's copy of the same body, or a colliding one: the
    // newest takes the slot.
    shard->bytes -= it->second->second->bytes();
    shard->lru.erase(it->second);
    shard->slots.erase(it);
  }
  shard->lru.emplace_front(h, entry);
  shard->slots[h] = shard->lru.begin();
  shard->bytes += entry->bytes();
  while (shard->bytes > shard_budget_) {
    auto& [old_h, old] = shard->lru.back();
    shard->bytes -= old->bytes();
    shard->slots.erase(old_h);
    shard->lru.pop_back();
  }
  return entry;
}

CanonicalMemo::Stats CanonicalMemo::stats() const {
  Stats s;
  for (size_t i = 0; i < options_.shards; ++i) {
    const Shard& shard = shards_[i];
    std::lock_guard lock(shard.mu);
    s.hits += shard.hits;
    s.misses += shard.misses;
    s.entries += shard.lru.size();
    s.bytes += shard.bytes;
  }
  return s;
}

}  // namespace llmcache::gateway
