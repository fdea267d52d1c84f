#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
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
//
// Non-blocking calls (LookupAsync, InsertAsync) hold no lock while the
// persistent tier works, so they cannot order themselves against other
// writers of the key with the stripe lock alone. Instead every change of a
// key (Insert, Erase, a completed InsertAsync) bumps its stripe's version,
// and EraseIf bumps a purge version; an async call notes both before it
// starts and, on completion, writes memory only if neither moved. If one
// did, memory drops the key (an insert) or keeps what it has (a
// promotion): memory then holds less than it could, never an older
// version, nor an entry a concurrent Erase or EraseIf removed.
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
    if (source_) {
      // Persist the reads only memory knows about, then unhook before either
      // tier is destroyed.
      source_->FlushAccess();
      source_->SetAccessListener(nullptr);
      if (sink_) sink_->SetAccessOracle(nullptr);
    }
    // A persistent tier answers its pending async calls as it goes; their
    // completions use this object's members, which must still be alive.
    persistent_.reset();
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
      BumpVersion(key);
      return persisted;
    } catch (...) {
      return Status::Internal("tiered store: unexpected exception in Insert");
    }
  }

  // A memory hit completes inline; a miss completes when the persistent
  // tier's LookupAsync does (on its thread), after promoting what it found.
  void LookupAsync(std::string_view key, LookupCallback done) override {
    auto hit = memory_->Lookup(key);
    if (hit) return done(std::move(hit));
    const Version seen = VersionOf(key);
    persistent_->LookupAsync(
        key, [this, key = std::string(key), seen, done = std::move(done)](Result<StoreHit> found) {
          if (found) Promote(key, seen, found->entry);
          done(std::move(found));
        });
  }

  // Completes when the persistent tier has the entry (or failed), as
  // Insert returns: the same persistent-first order and the same outcomes.
  void InsertAsync(std::shared_ptr<const CacheEntry> entry, InsertCallback done) override {
    if (!entry) return done(Status::InvalidArgument("tiered store: null entry"));
    const Version seen = VersionOf(entry->key);
    auto inserting = entry;
    persistent_->InsertAsync(std::move(inserting), [this, entry = std::move(entry), seen,
                                                    done = std::move(done)](Status persisted) {
      if (persisted.code() != StatusCode::kResourceExhausted &&
          persisted.code() != StatusCode::kInvalidArgument) {
        SettleInsert(entry, seen);
      }
      done(std::move(persisted));
    });
  }

  Status Erase(std::string_view key) override {
    try {
      std::shared_lock purge(purge_mu_);
      std::lock_guard lock(StripeFor(key));
      Status persisted = persistent_->Erase(key);
      Status memory = memory_->Erase(key);
      BumpVersion(key);
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
      // Bumped at the end: an async call that read below while the purge
      // ran must not promote what it read.
      purge_version_.fetch_add(1, std::memory_order_acq_rel);
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
  struct Version {
    uint64_t stripe = 0;
    uint64_t purge = 0;
    bool operator==(const Version&) const = default;
  };

  static size_t StripeIndex(std::string_view key) { return Xxh3(key) % kStripes; }
  std::mutex& StripeFor(std::string_view key) { return stripes_[StripeIndex(key)]; }
  Version VersionOf(std::string_view key) const {
    return {versions_[StripeIndex(key)].load(std::memory_order_acquire),
            purge_version_.load(std::memory_order_acquire)};
  }
  // REQUIRES: the key's stripe lock.
  void BumpVersion(std::string_view key) {
    versions_[StripeIndex(key)].fetch_add(1, std::memory_order_acq_rel);
  }

  // Completion of an async lookup that found `entry` below. Never waits for
  // a purge (which may take long): the promotion is skipped instead.
  void Promote(const std::string& key, Version seen, std::shared_ptr<const CacheEntry> entry) {
    try {
      std::shared_lock purge(purge_mu_, std::try_to_lock);
      if (!purge.owns_lock()) return;
      std::lock_guard lock(StripeFor(key));
      if (VersionOf(key) == seen) (void)memory_->Insert(std::move(entry));
    } catch (...) {
      // Promotion is an optimisation; the lookup's answer stands.
    }
  }

  // Completion of an async insert the persistent tier took (or failed on,
  // like Insert: memory keeps serving it then).
  void SettleInsert(const std::shared_ptr<const CacheEntry>& entry, Version seen) {
    const std::string& key = entry->key;
    try {
      std::shared_lock purge(purge_mu_, std::try_to_lock);
      if (!purge.owns_lock()) {
        // A purge is running and may have removed this entry below.
        (void)memory_->Erase(key);
        return;
      }
      std::lock_guard lock(StripeFor(key));
      if (VersionOf(key) != seen || !memory_->Insert(entry).ok()) (void)memory_->Erase(key);
      BumpVersion(key);
    } catch (...) {
      (void)memory_->Erase(key);
    }
  }

  std::unique_ptr<Store> memory_;
  std::unique_ptr<Store> persistent_;
  AccessSource* source_ = nullptr;
  AccessSink* sink_ = nullptr;
  // Per-key stripes order the slow paths (promotion, Insert, Erase) of one
  // key, so a promotion cannot resurrect an older version over a newer
  // Insert or an Erase. purge_mu_ does the same for EraseIf.
  std::array<std::mutex, kStripes> stripes_;
  std::shared_mutex purge_mu_;
  // See the class comment: what async calls compare to notice changes.
  std::array<std::atomic<uint64_t>, kStripes> versions_{};
  std::atomic<uint64_t> purge_version_{0};
};

}  // namespace

std::unique_ptr<Store> NewTieredStore(std::unique_ptr<Store> memory,
                                      std::unique_ptr<Store> persistent) {
  return std::make_unique<TieredStore>(std::move(memory), std::move(persistent));
}

}  // namespace llmcache
