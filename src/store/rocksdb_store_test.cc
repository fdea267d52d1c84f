#include "store/rocksdb_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "llmcache/store.h"
#include "store/access_tracking.h"
#include "store/entry_codec.h"
#include "store/store_conformance_test.h"

namespace llmcache {
namespace {

using store_test::KeyFor;
using store_test::MakeEntry;
using store_test::TempDir;

class RocksDbStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open(uint64_t max_disk_bytes = 64ull << 20, ExpiryOptions expiry = {}) {
    RocksDbStoreOptions o;
    o.path = dir_.path();
    o.max_disk_bytes = max_disk_bytes;
    o.expiry = expiry;
    o.clock = clock_;
    auto s = OpenRocksDbStore(std::move(o));
    EXPECT_TRUE(s) << s.error().ToString();
    return s ? std::move(*s) : nullptr;
  }

  // Runs fn on the raw database (the store must be closed).
  void WithRawDb(const std::function<void(rocksdb::DB*, rocksdb::ColumnFamilyHandle* entries,
                                          rocksdb::ColumnFamilyHandle* access)>& fn) {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
        {kRocksDbEntriesColumnFamily, rocksdb::ColumnFamilyOptions()},
        {kRocksDbAccessColumnFamily, rocksdb::ColumnFamilyOptions()}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(rocksdb::DBOptions(), dir_.path(), cfs, &handles, &db);
    ASSERT_TRUE(s.ok()) << s.ToString();
    fn(db, handles[1], handles[2]);
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }

  int64_t now() const { return clock_->NowMillis(); }

  TempDir dir_;
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
};

TEST_F(RocksDbStoreTest, EntriesHitCountsAndSizesSurviveReopen) {
  StoreStats before;
  {
    auto s = Open();
    ASSERT_TRUE(s);
    for (const char* name : {"a", "b", "c"})
      ASSERT_TRUE(s->Insert(MakeEntry(name, now(), 3000)).ok());
    auto stream = MakeEntry("stream", now());
    stream->body.clear();
    stream->sse_events = {"one", "two"};
    ASSERT_TRUE(s->Insert(stream).ok());
    clock_->Advance(10);
    ASSERT_TRUE(s->Lookup(KeyFor("b")));
    clock_->Advance(10);
    ASSERT_TRUE(s->Lookup(KeyFor("b")));
    ASSERT_TRUE(s->Erase(KeyFor("c")).ok());
    before = s->Stats();
    EXPECT_EQ(before.entries, 3u);
  }
  auto s = Open();
  ASSERT_TRUE(s);
  const StoreStats after = s->Stats();
  EXPECT_EQ(after.entries, before.entries);
  EXPECT_EQ(after.bytes, before.bytes);
  clock_->Advance(10);
  auto b = s->Lookup(KeyFor("b"));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->entry->hit_count, 3u);
  EXPECT_EQ(b->entry->last_access_ms, now());
  EXPECT_STREQ(b->tier, "rocksdb");
  auto stream = s->Lookup(KeyFor("stream"));
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->entry->sse_events, (std::vector<std::string>{"one", "two"}));
  EXPECT_FALSE(s->Lookup(KeyFor("c")));
  EXPECT_TRUE(s->Lookup(KeyFor("a")));
}

TEST_F(RocksDbStoreTest, AcknowledgedInsertSurvivesKill9) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The death-test child re-runs this test from the start; the environment
  // hands it the parent's directory.
  const char* inherited = std::getenv("LLMCACHE_STORE_KILL9_DIR");
  const std::string path = inherited ? inherited : dir_.path();
  setenv("LLMCACHE_STORE_KILL9_DIR", path.c_str(), 1);
  auto insert_and_die = [&] {
    // The child's own (unused) fixture directory would outlive SIGKILL.
    if (dir_.path() != path) std::filesystem::remove_all(dir_.path());
    RocksDbStoreOptions o;
    o.path = path;
    o.clock = clock_;
    auto s = OpenRocksDbStore(std::move(o));
    if (!s) std::_Exit(3);
    if (!(*s)->Insert(MakeEntry("durable", now())).ok()) std::_Exit(4);
    std::raise(SIGKILL);  // no destructor, no flush: only the WAL has it
  };
  EXPECT_EXIT(insert_and_die(), ::testing::KilledBySignal(SIGKILL), "");
  unsetenv("LLMCACHE_STORE_KILL9_DIR");
  RocksDbStoreOptions o;
  o.path = path;
  o.clock = clock_;
  auto s = OpenRocksDbStore(std::move(o));
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ((*s)->Stats().entries, 1u);
  EXPECT_TRUE((*s)->Lookup(KeyFor("durable")));
}

TEST_F(RocksDbStoreTest, CorruptValueIsDroppedAndReported) {
  {
    auto s = Open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->Insert(MakeEntry("victim", now(), 500)).ok());
    ASSERT_TRUE(s->Insert(MakeEntry("bystander", now(), 500)).ok());
  }
  WithRawDb(
      [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* entries, rocksdb::ColumnFamilyHandle*) {
        std::string value;
        ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), entries, KeyFor("victim"), &value).ok());
        value[value.size() / 2] ^= 0x20;
        ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), entries, KeyFor("victim"), value).ok());
      });
  auto s = Open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Stats().entries, 2u);  // not known to be corrupt until read
  auto r = s->Lookup(KeyFor("victim"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsCorruption()) << r.error().ToString();
  StoreStats st = s->Stats();
  EXPECT_EQ(st.corrupt_dropped, 1u);
  EXPECT_EQ(st.entries, 1u);
  r = s->Lookup(KeyFor("victim"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsNotFound());
  EXPECT_EQ(s->Stats().corrupt_dropped, 1u);
  EXPECT_TRUE(s->Lookup(KeyFor("bystander")));
}

TEST_F(RocksDbStoreTest, EntryStoredUnderTheWrongKeyIsCorruption) {
  {
    auto s = Open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->Insert(MakeEntry("a", now())).ok());
  }
  WithRawDb(
      [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* entries, rocksdb::ColumnFamilyHandle*) {
        std::string value;
        ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), entries, KeyFor("a"), &value).ok());
        ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), entries, KeyFor("b"), value).ok());
      });
  auto s = Open();
  ASSERT_TRUE(s);
  auto r = s->Lookup(KeyFor("b"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsCorruption());
  EXPECT_EQ(s->Stats().corrupt_dropped, 1u);
  EXPECT_EQ(s->Stats().entries, 1u);  // "b" had no access record: never counted
  EXPECT_TRUE(s->Lookup(KeyFor("a")));
}

TEST_F(RocksDbStoreTest, CorruptAccessRecordIsDroppedAtOpen) {
  {
    auto s = Open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->Insert(MakeEntry("a", now())).ok());
    ASSERT_TRUE(s->Insert(MakeEntry("b", now())).ok());
  }
  WithRawDb(
      [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle*, rocksdb::ColumnFamilyHandle* access) {
        ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), access, KeyFor("a"), "short").ok());
      });
  auto s = Open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Stats().entries, 1u);
  EXPECT_EQ(s->Stats().corrupt_dropped, 1u);
  EXPECT_FALSE(s->Lookup(KeyFor("a")));
  EXPECT_TRUE(s->Lookup(KeyFor("b")));
}

TEST_F(RocksDbStoreTest, EntryWithoutAccessRecordIsAdopted) {
  {
    auto s = Open();
    ASSERT_TRUE(s);
  }
  WithRawDb(
      [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* entries, rocksdb::ColumnFamilyHandle*) {
        std::string value;
        ASSERT_TRUE(EncodeEntry(*MakeEntry("foreign", now()), &value).ok());
        ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), entries, KeyFor("foreign"), value).ok());
      });
  auto s = Open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Stats().entries, 0u);
  auto hit = s->Lookup(KeyFor("foreign"));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->entry->hit_count, 1u);
  EXPECT_EQ(s->Stats().entries, 1u);
  EXPECT_GT(s->Stats().bytes, 0u);
  ASSERT_TRUE(s->Erase(KeyFor("foreign")).ok());
  EXPECT_EQ(s->Stats().entries, 0u);
  EXPECT_EQ(s->Stats().bytes, 0u);
}

TEST_F(RocksDbStoreTest, EvictionAfterReopenFollowsPersistedLastAccess) {
  constexpr size_t kBody = 20000;
  constexpr uint64_t kBound = 70000;
  {
    auto s = Open(kBound);
    ASSERT_TRUE(s);
    for (const char* name : {"a", "b", "c"}) {
      ASSERT_TRUE(s->Insert(MakeEntry(name, now(), kBody)).ok());
      clock_->Advance(1);
    }
    ASSERT_TRUE(s->Lookup(KeyFor("a")));
    clock_->Advance(1);
  }
  auto s = Open(kBound);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Insert(MakeEntry("d", now(), kBody)).ok());
  EXPECT_EQ(s->Stats().evictions, 1u);
  EXPECT_FALSE(s->Lookup(KeyFor("b")));
  EXPECT_TRUE(s->Lookup(KeyFor("a")));
  EXPECT_TRUE(s->Lookup(KeyFor("c")));
  EXPECT_TRUE(s->Lookup(KeyFor("d")));
}

TEST_F(RocksDbStoreTest, MaintainEvictsOldestDownToTheTargetAfterTheBoundShrinks) {
  {
    auto s = Open();
    ASSERT_TRUE(s);
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(s->Insert(MakeEntry("e" + std::to_string(i), now(), 10000)).ok());
      clock_->Advance(1);
    }
    // Reading e0 makes it the most recent.
    ASSERT_TRUE(s->Lookup(KeyFor("e0")));
  }
  const uint64_t per_entry = [&] {
    auto s = Open();
    return s->Stats().bytes / 10;
  }();
  const uint64_t bound = 6 * per_entry;  // target: 90% = 5.4 entries
  auto s = Open(bound);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Stats().entries, 10u);
  ASSERT_TRUE(s->Maintain().ok());
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.entries, 5u);
  EXPECT_EQ(st.evictions, 5u);
  EXPECT_LE(st.bytes, static_cast<uint64_t>(bound * kRocksDbEvictTargetFraction));
  for (int i : {0, 6, 7, 8, 9}) EXPECT_TRUE(s->Lookup(KeyFor("e" + std::to_string(i)))) << i;
  for (int i : {1, 2, 3, 4, 5}) EXPECT_FALSE(s->Lookup(KeyFor("e" + std::to_string(i)))) << i;
}

TEST_F(RocksDbStoreTest, RecordAccessMergesByMaximum) {
  auto s = Open();
  ASSERT_TRUE(s);
  auto* sink = dynamic_cast<AccessSink*>(s.get());
  ASSERT_NE(sink, nullptr);
  const int64_t t0 = now();
  ASSERT_TRUE(s->Insert(MakeEntry("a", t0)).ok());
  ASSERT_TRUE(sink->RecordAccess({{KeyFor("a"), {t0 + 500, 7}},
                                  {KeyFor("a"), {t0 + 100, 3}},  // older report: no effect
                                  {KeyFor("absent"), {t0 + 100, 3}}})
                  .ok());
  EXPECT_EQ(s->Stats().entries, 1u);  // the absent key was not created
  clock_->Set(t0 + 1000);
  auto hit = s->Lookup(KeyFor("a"));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->entry->hit_count, 8u);
}

TEST_F(RocksDbStoreTest, RecordAccessBatchMergesRepeatedKeysAcrossStripes) {
  auto s = Open();
  ASSERT_TRUE(s);
  auto* sink = dynamic_cast<AccessSink*>(s.get());
  ASSERT_NE(sink, nullptr);
  const int64_t t0 = now();
  constexpr int kKeys = 300;  // spread over every stripe
  std::vector<AccessUpdate> updates;
  for (int i = 0; i < kKeys; ++i) {
    const std::string name = "k" + std::to_string(i);
    ASSERT_TRUE(s->Insert(MakeEntry(name, t0)).ok());
    // A newer and an older report of the same key in one call, either order.
    AccessUpdate newer{KeyFor(name), {t0 + 500, static_cast<uint32_t>(10 + i)}};
    AccessUpdate older{KeyFor(name), {t0 + 100, 2}};
    if (i % 2) std::swap(newer, older);
    updates.push_back(newer);
    updates.push_back(older);
  }
  ASSERT_TRUE(sink->RecordAccess(updates).ok());
  for (int i = 0; i < kKeys; ++i) {
    auto hit = s->Lookup(KeyFor("k" + std::to_string(i)));
    ASSERT_TRUE(hit) << i;
    EXPECT_EQ(hit->entry->hit_count, static_cast<uint32_t>(10 + i + 1)) << i;  // max, plus this read
  }
}

TEST_F(RocksDbStoreTest, OracleKeepsEntriesFromIdleExpiry) {
  ExpiryOptions expiry;
  expiry.idle_ttl_ms = 1000;
  auto s = Open(64ull << 20, expiry);
  ASSERT_TRUE(s);
  auto* sink = dynamic_cast<AccessSink*>(s.get());
  ASSERT_NE(sink, nullptr);
  const int64_t t0 = now();
  ASSERT_TRUE(s->Insert(MakeEntry("hot", t0)).ok());
  ASSERT_TRUE(s->Insert(MakeEntry("cold", t0)).ok());
  sink->SetAccessOracle([&](std::string_view key) -> std::optional<AccessData> {
    if (key == KeyFor("hot")) return AccessData{now(), 5};
    return std::nullopt;
  });
  clock_->Set(t0 + 5000);
  ASSERT_TRUE(s->Maintain().ok());
  EXPECT_EQ(s->Stats().entries, 1u);
  EXPECT_EQ(s->Stats().expirations, 1u);
  sink->SetAccessOracle(nullptr);
}

TEST_F(RocksDbStoreTest, SweepCoversLargeStoresAcrossCalls) {
  auto s = Open();
  ASSERT_TRUE(s);
  const int64_t t0 = now();
  constexpr int kEntries = 12000;  // more than one sweep batch
  for (int i = 0; i < kEntries; ++i) {
    auto e = MakeEntry("s" + std::to_string(i), t0, 16);
    e->ttl_ms = 1000;
    e->ttl_fixed = true;
    ASSERT_TRUE(s->Insert(e).ok());
  }
  clock_->Set(t0 + 1000);
  ASSERT_TRUE(s->Maintain().ok());
  EXPECT_LT(s->Stats().expirations, static_cast<uint64_t>(kEntries));
  EXPECT_GT(s->Stats().expirations, 0u);
  ASSERT_TRUE(s->Maintain().ok());
  EXPECT_EQ(s->Stats().expirations, static_cast<uint64_t>(kEntries));
  EXPECT_EQ(s->Stats().entries, 0u);
  EXPECT_EQ(s->Stats().bytes, 0u);
}

TEST_F(RocksDbStoreTest, SecondOpenOfTheSameDirectoryFailsCleanly) {
  auto first = Open();
  ASSERT_TRUE(first);
  RocksDbStoreOptions o;
  o.path = dir_.path();
  auto second = OpenRocksDbStore(std::move(o));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), StatusCode::kIOError) << second.error().ToString();
}

TEST_F(RocksDbStoreTest, OpenCreatesMissingParentsAndRejectsEmptyPath) {
  RocksDbStoreOptions o;
  o.path = dir_.path() + "/nested/deeper/db";
  auto s = OpenRocksDbStore(o);
  ASSERT_TRUE(s) << s.error().ToString();
  RocksDbStoreOptions empty;
  auto e = OpenRocksDbStore(empty);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code(), StatusCode::kInvalidArgument);
}

TEST_F(RocksDbStoreTest, EraseIfDropsCorruptEntriesWithoutCountingThem) {
  {
    auto s = Open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->Insert(MakeEntry("a", now(), 500, "t1")).ok());
    ASSERT_TRUE(s->Insert(MakeEntry("b", now(), 500, "t1")).ok());
    ASSERT_TRUE(s->Insert(MakeEntry("c", now(), 500, "t2")).ok());
  }
  WithRawDb(
      [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* entries, rocksdb::ColumnFamilyHandle*) {
        ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), entries, KeyFor("a"), "garbage").ok());
      });
  auto s = Open();
  ASSERT_TRUE(s);
  auto erased = s->EraseIf([](const CacheEntry& e) { return e.ns == "t1"; });
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, 1u);
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.corrupt_dropped, 1u);
  EXPECT_EQ(st.entries, 1u);
  EXPECT_TRUE(s->Lookup(KeyFor("c")));
}

TEST_F(RocksDbStoreTest, SyncWritesWork) {
  RocksDbStoreOptions o;
  o.path = dir_.path();
  o.sync_writes = true;
  o.clock = clock_;
  auto s = OpenRocksDbStore(std::move(o));
  ASSERT_TRUE(s);
  ASSERT_TRUE((*s)->Insert(MakeEntry("a", now())).ok());
  EXPECT_TRUE((*s)->Lookup(KeyFor("a")));
}

}  // namespace
}  // namespace llmcache
