#include <array>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <utility>

#include "common/hash.h"
#include "llmcache/store.h"
#include "store/access_tracking.h"

namespace llmcache {
namespace {

constexpr size_t kStripes = 64;

// The persistent tier is the store of record; memory holds a subset of it.
//
// Access data: a memory hit never writes to the persistent tier directly.
// When both tiers support access tracking (MemoryStore over RocksDbStore),
// the memory tier reports an entry's reads to the persistent tier at most
// once per write-back interval (idle_ttl/64), when it evicts an entry with
// unreported reads, and when this store is destroyed; and the persistent
// tier asks the memory tier for its fresher data before it expires or
// evicts anything. So an entry hot in memory is never idle-expired or
// evicted on disk, and after a restart the disk's access data is at most
// one interval stale. With other tiers, memory reports reach the
// persistent tier as a Lookup (one hit each), and nothing is consulted.
class TieredStore final : public Store {
 public:
  TieredStore(std::unique_ptr<Store> memory, std::unique_ptr<Store> persistent)
      : memory_(std::move(memory)), persistent_(std::move(persistent)) {
    source_ = dynamic_cast<AccessSource*>(memory_.get());
    sink_ = dynamic_cast<AccessSink*>(persistent_.get());
    if (!source_) return;
    if (sink_) {
      AccessSink* sink = sink_;
      AccessSource* source = source_;
      source_->SetAccessListener(
          [sink](const std::vector<AccessUpdate>& updates) { (void)sink->RecordAccess(updates); });
      sink_->SetAccessOracle([source](std::string_view key) { return source->PeekAccess(key); });
    } else {
      Store* persistent = persistent_.get();
      source_->SetAccessListener([persistent](const std::vector<AccessUpdate>& updates) {
        for (const auto& u : updates) (void)persistent->Lookup(u.key);
      });
    }
  }

  ~TieredStore() override {
    if (!source_) return;
    // Persist the reads only memory knows about, then unhook before either
    // tier is destroyed.
    source_->FlushAccess();
    source_->SetAccessListener(nullptr);
    if (sink_) sink_->SetAccessOracle(nullptr);
  }

  const char* Name() const override { return "tiered"; }

  Result<StoreHit> Lookup(std::string_view key) override {
    // Hot path: memory only, no lock of ours.
    auto hit = memory_->Lookup(key);
    if (hit) return hit;
    try {
      std::shared_lock purge(purge_mu_);
      std::lock_guard lock(StripeFor(key));
      // Another reader may have promoted the entry while we waited.
      hit = memory_->Lookup(key);
      if (hit) return hit;
      auto found = persistent_->Lookup(key);
      if (!found) return found;
      // Promotion is an optimisation: if memory refuses (too large), the
      // next read comes from the persistent tier again.
      (void)memory_->Insert(found->entry);
      return found;
    } catch (...) {
      return Err(Status::Internal("tiered store: unexpected exception in Lookup"));
    }
  }

  // Writes the persistent tier first, so that what memory serves is (in the
  // normal case) already durable. If the persistent tier refuses the entry
  // itself (ResourceExhausted, InvalidArgument), neither tier changes, as
  // for a single store. If it fails for any other reason (I/O, unavailable),
  // the entry still goes to memory so this process keeps serving it, and the
  // persistent error is returned.
  Status Insert(std::shared_ptr<const CacheEntry> entry) override {
    if (!entry) return Status::InvalidArgument("tiered store: null entry");
    try {
      std::shared_lock purge(purge_mu_);
      std::lock_guard lock(StripeFor(entry->key));
      const std::string key = entry->key;
      Status persisted = persistent_->Insert(entry);
      if (persisted.code() == StatusCode::kResourceExhausted ||
          persisted.code() == StatusCode::kInvalidArgument) {
        return persisted;
      }
      if (!memory_->Insert(std::move(entry)).ok()) {
        // Memory must not keep serving an older version of this key.
        (void)memory_->Erase(key);
      }
      return persisted;
    } catch (...) {
      return Status::Internal("tiered store: unexpected exception in Insert");
    }
  }

  Status Erase(std::string_view key) override {
    try {
      std::shared_lock purge(purge_mu_);
      std::lock_guard lock(StripeFor(key));
      Status persisted = persistent_->Erase(key);
      Status memory = memory_->Erase(key);
      return persisted.ok() ? memory : persisted;
    } catch (...) {
      return Status::Internal("tiered store: unexpected exception in Erase");
    }
  }

  // Counts what the persistent tier (the store of record) removed.
  Result<uint64_t> EraseIf(const std::function<bool(const CacheEntry&)>& pred) override {
    try {
      // Exclusive: no promotion or insert may slip an entry back into
      // memory between the two purges.
      std::unique_lock purge(purge_mu_);
      auto persisted = persistent_->EraseIf(pred);
      auto memory = memory_->EraseIf(pred);
      if (!persisted) return persisted;
      if (!memory) return Err(memory.error());
      return persisted;
    } catch (...) {
      return Err(Status::Internal("tiered store: unexpected exception in EraseIf"));
    }
  }

  Status Maintain() override {
    // Memory first: what it expires is then found expired on disk too
    // (memory's access data is never older than the disk's).
    Status memory = memory_->Maintain();
    Status persisted = persistent_->Maintain();
    return persisted.ok() ? memory : persisted;
  }

  StoreStats Stats() const override { return persistent_->Stats(); }

  std::vector<std::pair<const char*, StoreStats>> TierStats() const override {
    auto tiers = memory_->TierStats();
    auto below = persistent_->TierStats();
    tiers.insert(tiers.end(), below.begin(), below.end());
    return tiers;
  }

 private:
  std::mutex& StripeFor(std::string_view key) { return stripes_[Xxh3(key) % kStripes]; }

  std::unique_ptr<Store> memory_;
  std::unique_ptr<Store> persistent_;
  AccessSource* source_ = nullptr;
  AccessSink* sink_ = nullptr;
  // Per-key stripes order the slow paths (promotion, Insert, Erase) of one
  // key, so a promotion cannot resurrect an older version over a newer
  // Insert or an Erase. purge_mu_ does the same for EraseIf.
  std::array<std::mutex, kStripes> stripes_;
  std::shared_mutex purge_mu_;
};

}  // namespace

std::unique_ptr<Store> NewTieredStore(std::unique_ptr<Store> memory,
                                      std::unique_ptr<Store> persistent) {
  return std::make_unique<TieredStore>(std::move(memory), std::move(persistent));
}

}  // namespace llmcache
