#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <atomic>
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

  TempDir dir_;
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  MemoryStore* mem_ = nullptr;
  Store* disk_ = nullptr;
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

}  // namespace
}  // namespace llmcache
