#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "llmcache/store.h"
#include "store/access_tracking.h"
#include "store/memory_store.h"
#include "store/rocksdb_store.h"
#include "store/store_conformance_test.h"

namespace llmcache {
namespace {

using store_test::KeyFor;
using store_test::MakeEntry;
using store_test::TempDir;

constexpr size_t kBody = 1000;

// A persistent tier stand-in that counts what the tiered store asks of it.
class CountingStore : public Store {
 public:
  explicit CountingStore(std::shared_ptr<Clock> clock) {
    MemoryStoreOptions o;
    o.clock = std::move(clock);
    inner_ = NewMemoryStore(std::move(o));
  }
  const char* Name() const override { return "counting"; }
  Result<StoreHit> Lookup(std::string_view key) override {
    ++lookups;
    auto hit = inner_->Lookup(key);
    if (hit) hit->tier = Name();
    return hit;
  }
  Status Insert(std::shared_ptr<const CacheEntry> entry) override {
    ++inserts;
    if (insert_error.code() != StatusCode::kOk) return insert_error;
    return inner_->Insert(std::move(entry));
  }
  Status Erase(std::string_view key) override { return inner_->Erase(key); }
  Result<uint64_t> EraseIf(const std::function<bool(const CacheEntry&)>& pred) override {
    return inner_->EraseIf(pred);
  }
  Status Maintain() override { return inner_->Maintain(); }
  StoreStats Stats() const override { return inner_->Stats(); }

  std::atomic<int> lookups{0};
  std::atomic<int> inserts{0};
  Status insert_error;

 private:
  std::unique_ptr<Store> inner_;
};

class CountingSinkStore final : public CountingStore, public AccessSink {
 public:
  using CountingStore::CountingStore;
  Status RecordAccess(const std::vector<AccessUpdate>& updates) override {
    ++record_calls;
    recorded.insert(recorded.end(), updates.begin(), updates.end());
    return Status::OK();
  }
  void SetAccessOracle(AccessOracle oracle) override { has_oracle = static_cast<bool>(oracle); }

  int record_calls = 0;
  std::vector<AccessUpdate> recorded;
  bool has_oracle = false;
};

// A persistent tier whose async calls take effect at once but report back
// only when the test says so, like a network store whose reply is still on
// its way.
class DeferredStore final : public CountingStore {
 public:
  using CountingStore::CountingStore;
  // Answers what is still pending, as a network store does when it goes.
  ~DeferredStore() override { CompleteAll(); }

  void LookupAsync(std::string_view key, LookupCallback done) override {
    Hold([r = Lookup(key), done = std::move(done)] { done(r); });
  }
  void InsertAsync(std::shared_ptr<const CacheEntry> entry, InsertCallback done) override {
    Hold([s = Insert(std::move(entry)), done = std::move(done)] { done(s); });
  }

  // Runs the held callbacks, oldest first; returns how many ran.
  size_t CompleteAll() {
    std::vector<std::function<void()>> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& h : held) h();
    return held.size();
  }

 private:
  void Hold(std::function<void()> f) {
    std::lock_guard lock(mu_);
    held_.push_back(std::move(f));
  }
  std::mutex mu_;
  std::vector<std::function<void()>> held_;
};

// What an async call delivered, and whether it did before returning.
template <class R>
struct Delivery {
  std::optional<R> result;
  bool inline_ = false;
};

Delivery<Result<StoreHit>> LookupAsyncNow(Store& s, std::string_view key) {
  Delivery<Result<StoreHit>> d;
  s.LookupAsync(key, [&d](Result<StoreHit> r) { d.result.emplace(std::move(r)); });
  d.inline_ = d.result.has_value();
  return d;
}

class TieredStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> OpenDisk(ExpiryOptions expiry = {}) {
    RocksDbStoreOptions o;
    o.path = dir_.path();
    o.expiry = expiry;
    o.clock = clock_;
    auto s = OpenRocksDbStore(std::move(o));
    EXPECT_TRUE(s) << s.error().ToString();
    return s ? std::move(*s) : nullptr;
  }

  std::unique_ptr<MemoryStore> NewMemory(uint64_t max_bytes = 64 << 20, ExpiryOptions expiry = {}) {
    MemoryStoreOptions o;
    o.max_bytes = max_bytes;
    o.expiry = expiry;
    o.clock = clock_;
    return std::make_unique<MemoryStore>(std::move(o));
  }

  // Builds memory-over-rocksdb; mem_/disk_ stay valid while the result lives.
  std::unique_ptr<Store> Open(uint64_t memory_bytes = 64 << 20, ExpiryOptions expiry = {}) {
    auto memory = NewMemory(memory_bytes, expiry);
    auto disk = OpenDisk(expiry);
    mem_ = memory.get();
    disk_ = disk.get();
    return NewTieredStore(std::move(memory), std::move(disk));
  }

  static uint64_t OneEntryBytes() { return MakeEntry("probe", 0, kBody)->ByteSize(); }

  int64_t now() const { return clock_->NowMillis(); }

  // memory-over-DeferredStore; mem_/deferred_ stay valid while the result lives.
  std::unique_ptr<Store> OpenDeferred() {
    auto memory = NewMemory();
    auto deferred = std::make_unique<DeferredStore>(clock_);
    mem_ = memory.get();
    deferred_ = deferred.get();
    return NewTieredStore(std::move(memory), std::move(deferred));
  }

  bool InMemory(std::string_view name) const { return mem_->PeekAccess(KeyFor(name)).has_value(); }

  TempDir dir_;
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  MemoryStore* mem_ = nullptr;
  Store* disk_ = nullptr;
  DeferredStore* deferred_ = nullptr;
};

TEST_F(TieredStoreTest, NamesItsTiers) {
  auto t = Open();
  EXPECT_STREQ(t->Name(), "tiered");
  auto tiers = t->TierStats();
  ASSERT_EQ(tiers.size(), 2u);
  EXPECT_STREQ(tiers[0].first, "memory");
  EXPECT_STREQ(tiers[1].first, "rocksdb");
}

TEST_F(TieredStoreTest, PersistentHitIsPromotedToMemory) {
  {
    auto disk = OpenDisk();
    ASSERT_TRUE(disk->Insert(MakeEntry("a", now())).ok());
  }
  auto t = Open();
  clock_->Advance(5);
  auto first = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(first);
  EXPECT_STREQ(first->tier, "rocksdb");
  EXPECT_EQ(first->entry->hit_count, 1u);
  clock_->Advance(5);
  auto second = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(second);
  EXPECT_STREQ(second->tier, "memory");
  EXPECT_EQ(second->entry->hit_count, 2u);
  EXPECT_EQ(second->entry->last_access_ms, now());
  auto tiers = t->TierStats();
  EXPECT_EQ(tiers[0].second.entries, 1u);
  EXPECT_EQ(tiers[1].second.entries, 1u);
  EXPECT_EQ(t->Stats().entries, 1u);
}

TEST_F(TieredStoreTest, EntryEvictedFromMemoryIsFoundOnDisk) {
  auto t = Open(OneEntryBytes() * 3 / 2);
  ASSERT_TRUE(t->Insert(MakeEntry("a", now(), kBody)).ok());
  clock_->Advance(1);
  ASSERT_TRUE(t->Insert(MakeEntry("b", now(), kBody)).ok());  // evicts "a" from memory
  EXPECT_EQ(mem_->Stats().evictions, 1u);
  EXPECT_EQ(t->Stats().entries, 2u);
  EXPECT_EQ(t->Stats().evictions, 0u);
  clock_->Advance(1);
  auto a = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(a);
  EXPECT_STREQ(a->tier, "rocksdb");
  auto again = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(again);
  EXPECT_STREQ(again->tier, "memory");
  auto b = t->Lookup(KeyFor("b"));  // pushed out by the promotion of "a"
  ASSERT_TRUE(b);
  EXPECT_STREQ(b->tier, "rocksdb");
}

TEST_F(TieredStoreTest, CorruptionOnDiskPropagates) {
  {
    auto disk = OpenDisk();
    ASSERT_TRUE(disk->Insert(MakeEntry("a", now())).ok());
  }
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {{rocksdb::kDefaultColumnFamilyName, {}},
                                                        {kRocksDbEntriesColumnFamily, {}},
                                                        {kRocksDbAccessColumnFamily, {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir_.path(), cfs, &handles, &db).ok());
    std::string value;
    ASSERT_TRUE(db->Get({}, handles[1], KeyFor("a"), &value).ok());
    value[10] ^= 1;
    ASSERT_TRUE(db->Put({}, handles[1], KeyFor("a"), value).ok());
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  auto t = Open();
  auto r = t->Lookup(KeyFor("a"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsCorruption());
  EXPECT_EQ(t->Stats().corrupt_dropped, 1u);
  r = t->Lookup(KeyFor("a"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsNotFound());
}

TEST_F(TieredStoreTest, EntryHotInMemoryDoesNotIdleExpireOnDisk) {
  ExpiryOptions expiry;
  expiry.idle_ttl_ms = 64000;  // write-back interval: 1 s
  auto t = Open(64 << 20, expiry);
  const int64_t t0 = now();
  ASSERT_TRUE(t->Insert(MakeEntry("hot", t0)).ok());
  ASSERT_TRUE(t->Insert(MakeEntry("cold", t0)).ok());
  clock_->Set(t0 + 999);
  ASSERT_TRUE(t->Lookup(KeyFor("hot")));  // within the interval: not written back
  clock_->Set(t0 + 64000);                // the disk record of "hot" is 64 s old; memory's 63 s
  ASSERT_TRUE(t->Maintain().ok());
  auto tiers = t->TierStats();
  EXPECT_EQ(tiers[0].second.entries, 1u);
  EXPECT_EQ(tiers[1].second.entries, 1u);
  EXPECT_EQ(tiers[1].second.expirations, 1u);  // only "cold"
  clock_->Set(t0 + 64500);
  ASSERT_TRUE(t->Lookup(KeyFor("hot")));  // written back now (interval passed)
  t.reset();

  // The disk alone now knows both reads.
  auto disk = OpenDisk(expiry);
  auto hit = disk->Lookup(KeyFor("hot"));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->entry->hit_count, 3u);
}

TEST_F(TieredStoreTest, EvictionFromMemoryWritesReadsBack) {
  auto t = Open(OneEntryBytes() * 3 / 2);
  ASSERT_TRUE(t->Insert(MakeEntry("a", now(), kBody)).ok());
  for (int i = 0; i < 3; ++i) {
    clock_->Advance(1);
    auto hit = t->Lookup(KeyFor("a"));
    ASSERT_TRUE(hit);
    ASSERT_STREQ(hit->tier, "memory");
  }
  clock_->Advance(1);
  ASSERT_TRUE(t->Insert(MakeEntry("b", now(), kBody)).ok());  // evicts "a", reports its reads
  clock_->Advance(1);
  auto a = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(a);
  EXPECT_STREQ(a->tier, "rocksdb");
  EXPECT_EQ(a->entry->hit_count, 4u);
}

TEST_F(TieredStoreTest, DestructionFlushesUnreportedReads) {
  {
    auto t = Open();
    ASSERT_TRUE(t->Insert(MakeEntry("a", now())).ok());
    clock_->Advance(1);
    ASSERT_TRUE(t->Lookup(KeyFor("a")));
    ASSERT_TRUE(t->Lookup(KeyFor("a")));
  }
  auto disk = OpenDisk();
  auto hit = disk->Lookup(KeyFor("a"));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->entry->hit_count, 3u);
}

TEST_F(TieredStoreTest, MemoryHitsWriteToThePersistentTierOncePerInterval) {
  ExpiryOptions expiry;
  expiry.idle_ttl_ms = 6400;  // write-back interval: 100 ms
  auto sink_owner = std::make_unique<CountingSinkStore>(clock_);
  CountingSinkStore* sink = sink_owner.get();
  auto t = NewTieredStore(NewMemory(64 << 20, expiry), std::move(sink_owner));
  EXPECT_TRUE(sink->has_oracle);
  ASSERT_TRUE(t->Insert(MakeEntry("a", now())).ok());
  for (int i = 0; i < 50; ++i) {
    clock_->Advance(1);
    ASSERT_TRUE(t->Lookup(KeyFor("a")));
  }
  EXPECT_EQ(sink->lookups.load(), 0);
  EXPECT_EQ(sink->record_calls, 0);
  clock_->Advance(50);
  ASSERT_TRUE(t->Lookup(KeyFor("a")));
  EXPECT_EQ(sink->record_calls, 1);
  ASSERT_EQ(sink->recorded.size(), 1u);
  EXPECT_EQ(sink->recorded[0].access.hit_count, 51u);
  EXPECT_EQ(sink->recorded[0].access.last_access_ms, now());
}

TEST_F(TieredStoreTest, WithoutAccessSinkReadsReachThePersistentTierAsLookups) {
  ExpiryOptions expiry;
  expiry.idle_ttl_ms = 6400;
  auto persistent = std::make_unique<CountingStore>(clock_);
  CountingStore* p = persistent.get();
  auto t = NewTieredStore(NewMemory(64 << 20, expiry), std::move(persistent));
  ASSERT_TRUE(t->Insert(MakeEntry("a", now())).ok());
  clock_->Advance(10);
  ASSERT_TRUE(t->Lookup(KeyFor("a")));
  EXPECT_EQ(p->lookups.load(), 0);
  clock_->Advance(100);
  auto hit = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(hit);
  EXPECT_STREQ(hit->tier, "memory");
  EXPECT_EQ(p->lookups.load(), 1);
  EXPECT_STREQ(t->TierStats()[1].first, "counting");
}

TEST_F(TieredStoreTest, PersistentFailureStillServesFromMemory) {
  auto persistent = std::make_unique<CountingStore>(clock_);
  CountingStore* p = persistent.get();
  auto t = NewTieredStore(NewMemory(), std::move(persistent));
  p->insert_error = Status::IOError("disk on fire");
  Status s = t->Insert(MakeEntry("a", now()));
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  auto hit = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(hit);
  EXPECT_STREQ(hit->tier, "memory");
}

TEST_F(TieredStoreTest, PersistentRefusalChangesNeitherTier) {
  auto persistent = std::make_unique<CountingStore>(clock_);
  CountingStore* p = persistent.get();
  auto t = NewTieredStore(NewMemory(), std::move(persistent));
  auto v1 = MakeEntry("a", now(), 100);
  ASSERT_TRUE(t->Insert(v1).ok());
  p->insert_error = Status::ResourceExhausted("too big");
  EXPECT_EQ(t->Insert(MakeEntry("a", now(), 5000)).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(t->Insert(MakeEntry("b", now(), 5000)).code(), StatusCode::kResourceExhausted);
  auto hit = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->entry->body, v1->body);
  EXPECT_FALSE(t->Lookup(KeyFor("b")));
}

TEST_F(TieredStoreTest, MemoryRefusalDropsTheStaleMemoryCopy) {
  auto t = Open(OneEntryBytes() * 3 / 2);
  ASSERT_TRUE(t->Insert(MakeEntry("a", now(), kBody)).ok());
  // Too big for memory, fine for disk: the old version must not be served.
  ASSERT_TRUE(t->Insert(MakeEntry("a", now(), 4 * kBody)).ok());
  auto hit = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(hit);
  EXPECT_STREQ(hit->tier, "rocksdb");
  EXPECT_GE(hit->entry->body.size(), 4 * kBody);
}

TEST_F(TieredStoreTest, EraseAndEraseIfReachBothTiers) {
  auto t = Open();
  ASSERT_TRUE(t->Insert(MakeEntry("a", now(), 100, "t1")).ok());
  ASSERT_TRUE(t->Insert(MakeEntry("b", now(), 100, "t1")).ok());
  ASSERT_TRUE(t->Insert(MakeEntry("c", now(), 100, "t2")).ok());
  ASSERT_TRUE(t->Erase(KeyFor("a")).ok());
  EXPECT_FALSE(mem_->PeekAccess(KeyFor("a")));
  EXPECT_EQ(disk_->Stats().entries, 2u);
  auto erased = t->EraseIf([](const CacheEntry& e) { return e.ns == "t1"; });
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, 1u);
  EXPECT_EQ(mem_->Stats().entries, 1u);
  EXPECT_EQ(disk_->Stats().entries, 1u);
  EXPECT_FALSE(t->Lookup(KeyFor("b")));
  EXPECT_TRUE(t->Lookup(KeyFor("c")));
}

TEST_F(TieredStoreTest, AsyncCallsOverAnInlineTierCompleteBeforeReturning) {
  auto t = Open(OneEntryBytes() * 3 / 2);
  std::optional<Status> inserted;
  t->InsertAsync(MakeEntry("a", now(), kBody), [&](Status s) { inserted = s; });
  ASSERT_TRUE(inserted.has_value()) << "RocksDB's default async insert runs inline";
  EXPECT_TRUE(inserted->ok()) << inserted->ToString();
  EXPECT_EQ(disk_->Stats().entries, 1u);

  auto memory_hit = LookupAsyncNow(*t, KeyFor("a"));
  EXPECT_TRUE(memory_hit.inline_);
  ASSERT_TRUE(memory_hit.result && *memory_hit.result);
  EXPECT_STREQ((*memory_hit.result)->tier, "memory");

  ASSERT_TRUE(t->Insert(MakeEntry("b", now(), kBody)).ok());  // evicts "a" from memory
  auto disk_hit = LookupAsyncNow(*t, KeyFor("a"));
  ASSERT_TRUE(disk_hit.inline_ && *disk_hit.result);
  EXPECT_STREQ((*disk_hit.result)->tier, "rocksdb");
  EXPECT_TRUE(InMemory("a")) << "an async hit below is promoted";

  auto miss = LookupAsyncNow(*t, KeyFor("absent"));
  ASSERT_TRUE(miss.inline_);
  ASSERT_FALSE(*miss.result);
  EXPECT_TRUE(miss.result->error().IsNotFound());
}

TEST_F(TieredStoreTest, AsyncMissCompletesWithThePersistentTierAndIsThenPromoted) {
  auto t = OpenDeferred();
  ASSERT_TRUE(deferred_->Insert(MakeEntry("a", now())).ok());
  auto first = LookupAsyncNow(*t, KeyFor("a"));
  EXPECT_FALSE(first.inline_) << "a memory miss waits for the persistent tier";
  EXPECT_FALSE(InMemory("a"));
  EXPECT_EQ(deferred_->CompleteAll(), 1u);
  ASSERT_TRUE(first.result && *first.result);
  EXPECT_STREQ((*first.result)->tier, "counting");
  EXPECT_TRUE(InMemory("a"));

  auto second = LookupAsyncNow(*t, KeyFor("a"));
  EXPECT_TRUE(second.inline_) << "the promoted entry is a memory hit";
  ASSERT_TRUE(second.result && *second.result);
  EXPECT_STREQ((*second.result)->tier, "memory");
  EXPECT_EQ(deferred_->lookups.load(), 1);
}

TEST_F(TieredStoreTest, AsyncInsertCompletesOnlyOnceThePersistentTierHasTheEntry) {
  auto t = OpenDeferred();
  std::optional<Status> inserted;
  t->InsertAsync(MakeEntry("a", now()), [&](Status s) { inserted = s; });
  EXPECT_FALSE(inserted.has_value());
  EXPECT_EQ(deferred_->CompleteAll(), 1u);
  ASSERT_TRUE(inserted.has_value());
  EXPECT_TRUE(inserted->ok());
  EXPECT_TRUE(InMemory("a"));
  EXPECT_EQ(deferred_->inserts.load(), 1);

  // Failing below: reported, and memory still serves this process.
  deferred_->insert_error = Status::IOError("disk on fire");
  inserted.reset();
  t->InsertAsync(MakeEntry("b", now()), [&](Status s) { inserted = s; });
  deferred_->CompleteAll();
  ASSERT_TRUE(inserted.has_value());
  EXPECT_EQ(inserted->code(), StatusCode::kIOError);
  EXPECT_TRUE(InMemory("b"));

  // Refused below: neither tier changes, as for Insert.
  deferred_->insert_error = Status::ResourceExhausted("too big");
  inserted.reset();
  t->InsertAsync(MakeEntry("c", now()), [&](Status s) { inserted = s; });
  deferred_->CompleteAll();
  ASSERT_TRUE(inserted.has_value());
  EXPECT_EQ(inserted->code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(InMemory("c"));
}

TEST_F(TieredStoreTest, LateAsyncPromotionDoesNotHideANewerInsert) {
  auto t = OpenDeferred();
  auto v1 = MakeEntry("a", now(), 100);
  ASSERT_TRUE(deferred_->Insert(v1).ok());
  auto read = LookupAsyncNow(*t, KeyFor("a"));  // reads v1 below; the answer is on its way
  auto v2 = MakeEntry("a", now(), 300);
  ASSERT_TRUE(t->Insert(v2).ok());
  deferred_->CompleteAll();
  ASSERT_TRUE(read.result && *read.result);
  EXPECT_EQ((*read.result)->entry->body, v1->body);
  auto now_served = t->Lookup(KeyFor("a"));
  ASSERT_TRUE(now_served);
  EXPECT_EQ(now_served->entry->body, v2->body) << "the late promotion of v1 replaced v2";
}

TEST_F(TieredStoreTest, EraseDuringAnAsyncInsertKeepsTheEntryOutOfMemory) {
  auto t = OpenDeferred();
  std::optional<Status> inserted;
  t->InsertAsync(MakeEntry("a", now()), [&](Status s) { inserted = s; });
  ASSERT_TRUE(t->Erase(KeyFor("a")).ok());
  deferred_->CompleteAll();
  ASSERT_TRUE(inserted.has_value());
  EXPECT_FALSE(InMemory("a")) << "memory resurrected an erased entry";
  EXPECT_FALSE(t->Lookup(KeyFor("a")));
}

TEST_F(TieredStoreTest, PurgeDuringAnAsyncLookupIsNotUndoneByItsPromotion) {
  auto t = OpenDeferred();
  ASSERT_TRUE(deferred_->Insert(MakeEntry("a", now())).ok());
  auto read = LookupAsyncNow(*t, KeyFor("a"));
  auto purged = t->EraseIf([](const CacheEntry&) { return true; });
  ASSERT_TRUE(purged);
  EXPECT_EQ(*purged, 1u);
  deferred_->CompleteAll();
  ASSERT_TRUE(read.result);
  EXPECT_FALSE(InMemory("a")) << "a promotion brought a purged entry back";
  EXPECT_FALSE(t->Lookup(KeyFor("a")));
}

TEST_F(TieredStoreTest, DestroyingTheStoreAnswersPendingAsyncCalls) {
  auto t = OpenDeferred();
  ASSERT_TRUE(deferred_->Insert(MakeEntry("a", now())).ok());
  auto read = LookupAsyncNow(*t, KeyFor("a"));
  std::optional<Status> inserted;
  t->InsertAsync(MakeEntry("b", now()), [&](Status s) { inserted = s; });
  t.reset();  // the persistent tier answers as it goes, while the memory tier still lives
  EXPECT_TRUE(read.result.has_value());
  EXPECT_TRUE(inserted.has_value());
}

}  // namespace
}  // namespace llmcache
