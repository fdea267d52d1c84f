// A bounded memo of Canonicalize and CacheKey for request bodies seen before.
//
// The exact cache's hits are, by definition, bodies the gateway has seen
// before; parsing, canonicalizing and SHA-256 hashing them again was a sixth
// of a hit's CPU. The memo returns exactly what Canonicalize and CacheKey
// would: a slot is found by a fast hash, but an entry is used only when the
// body's bytes, the route and every CanonicalOptions field are equal to the
// ones it was made from (compared in full), and a key is reused only for the
// same namespace and model revision. A hash collision therefore costs a
// recomputation, never a wrong key. Errors are not memoized (they are not
// the hot path, and their messages stay fresh).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "gateway/canonical.h"

namespace llmcache::gateway {

class CanonicalMemo {
 public:
  struct Options {
    // Bytes of bodies, canonical forms and keys held, all shards together:
    // about 1,600 bodies of 1 KB, the head of a skewed workload.
    size_t max_bytes = 4 << 20;
    // Bodies larger than this are canonicalized every time.
    size_t max_body_bytes = 64 << 10;
    // Independent LRU lists, each with its own lock.
    size_t shards = 16;
    // Picks the slot; tests make it collide on purpose. Default: XXH3.
    uint64_t (*hash)(std::string_view) = nullptr;
  };

  // One canonicalized body. Shared: callers keep it for the whole request.
  class Entry {
   public:
    Entry(std::string body, Route route, const CanonicalOptions& options, CanonicalRequest request)
        : body_(std::move(body)), route_(route), options_(options), request_(std::move(request)) {}
    const CanonicalRequest& request() const { return request_; }
    // CacheKey({ns, revision, request().canonical, route}); the last few
    // (ns, revision) pairs are remembered.
    std::string Key(std::string_view ns, std::string_view revision) const;
    // Whether this entry was made from exactly these inputs.
    bool Matches(std::string_view body, Route route, const CanonicalOptions& options) const;
    size_t bytes() const;

   private:
    struct KeySlot {
      std::string ns, revision, key;
    };
    static constexpr size_t kKeySlots = 4;
    std::string body_;
    Route route_;
    CanonicalOptions options_;
    CanonicalRequest request_;
    mutable std::mutex keys_mu_;
    mutable std::array<KeySlot, kKeySlots> keys_;
    mutable size_t next_key_slot_ = 0;
  };
  using EntryPtr = std::shared_ptr<const Entry>;

  CanonicalMemo();
  explicit CanonicalMemo(Options options);

  // Canonicalize(route, body, options), from the memo when it holds this
  // body, else computed (and remembered when the body is small enough).
  tl::expected<EntryPtr, RequestError> Canonicalize(Route route, std::string_view body,
                                                    const CanonicalOptions& options);

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    size_t entries = 0;
    size_t bytes = 0;
  };
  Stats stats() const;

 private:
  struct Shard {
    mutable std::mutex mu;
    // (slot hash, entry), most recently used first.
    std::list<std::pair<uint64_t, std::shared_ptr<const Entry>>> lru;
    std::unordered_map<uint64_t, decltype(lru)::iterator> slots;
    size_t bytes = 0;
    uint64_t hits = 0;
    uint64_t misses = 0;
  };
  uint64_t SlotHash(Route route, std::string_view body, const CanonicalOptions& options) const;

  Options options_;
  size_t shard_budget_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace llmcache::gateway
