#include "store/memory_store.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/store_conformance_test.h"

namespace llmcache {
namespace {

using store_test::KeyFor;
using store_test::MakeEntry;

class MemoryStoreTest : public ::testing::Test {
 protected:
  MemoryStore& Make(uint64_t max_bytes = 1 << 20, int64_t idle_ttl_ms = 7LL * 24 * 3600 * 1000) {
    MemoryStoreOptions o;
    o.max_bytes = max_bytes;
    o.expiry.idle_ttl_ms = idle_ttl_ms;
    o.clock = clock_;
    store_ = std::make_unique<MemoryStore>(o);
    return *store_;
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::unique_ptr<MemoryStore> store_;
};

TEST_F(MemoryStoreTest, SteadyStateHitsUpdateInPlaceWithoutCopying) {
  if (!MemoryStore::kUpdatesInPlace) GTEST_SKIP() << "this build always copies";
  MemoryStore& s = Make();
  ASSERT_TRUE(s.Insert(MakeEntry("a", clock_->NowMillis())).ok());
  const CacheEntry* first = nullptr;
  {
    auto hit = s.Lookup(KeyFor("a"));  // first hit takes the store's own copy
    ASSERT_TRUE(hit);
    first = hit->entry.get();
  }
  for (uint32_t i = 2; i <= 5; ++i) {
    clock_->Advance(1);
    auto hit = s.Lookup(KeyFor("a"));
    ASSERT_TRUE(hit);
    EXPECT_EQ(hit->entry.get(), first) << "hit " << i << " copied the entry";
    EXPECT_EQ(hit->entry->hit_count, i);
    EXPECT_EQ(hit->entry->last_access_ms, clock_->NowMillis());
  }
}

TEST_F(MemoryStoreTest, HeldSnapshotIsNeverModified) {
  MemoryStore& s = Make();
  auto inserted = MakeEntry("a", clock_->NowMillis());
  ASSERT_TRUE(s.Insert(inserted).ok());
  auto held = s.Lookup(KeyFor("a"));
  ASSERT_TRUE(held);
  std::vector<std::shared_ptr<const CacheEntry>> later;
  for (int i = 0; i < 3; ++i) {
    clock_->Advance(5);
    auto hit = s.Lookup(KeyFor("a"));
    ASSERT_TRUE(hit);
    EXPECT_NE(hit->entry.get(), held->entry.get());
    later.push_back(hit->entry);
  }
  EXPECT_EQ(held->entry->hit_count, 1u);
  EXPECT_EQ(later[0]->hit_count, 2u);
  EXPECT_EQ(later[2]->hit_count, 4u);
  EXPECT_EQ(inserted->hit_count, 0u);
  EXPECT_EQ(later[2]->body, inserted->body);
}

TEST_F(MemoryStoreTest, EvictsLeastRecentlyUsedAcrossShards) {
  // 64 entries over 16 shards; the bound holds about 40 of them.
  const uint64_t one = MakeEntry("probe", 0, 1000)->ByteSize();
  MemoryStore& s = Make(40 * one + one / 2);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(s.Insert(MakeEntry("e" + std::to_string(i), clock_->NowMillis(), 1000)).ok());
    clock_->Advance(1);
  }
  // Read the oldest ten: the next evictions must take e10..e33 first.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(s.Lookup(KeyFor("e" + std::to_string(i))));
    clock_->Advance(1);
  }
  for (int i = 40; i < 64; ++i) {
    ASSERT_TRUE(s.Insert(MakeEntry("e" + std::to_string(i), clock_->NowMillis(), 1000)).ok());
    clock_->Advance(1);
    ASSERT_LE(s.Stats().bytes, 40 * one + one / 2);
  }
  EXPECT_EQ(s.Stats().evictions, 24u);
  EXPECT_EQ(s.Stats().entries, 40u);
  for (int i = 0; i < 64; ++i) {
    const bool expect_present = i < 10 || i >= 34;
    EXPECT_EQ(s.PeekAccess(KeyFor("e" + std::to_string(i))).has_value(), expect_present) << i;
  }
}

TEST_F(MemoryStoreTest, ZeroBoundRefusesEverything) {
  MemoryStore& s = Make(0);
  EXPECT_EQ(s.Insert(MakeEntry("a", 0)).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.Stats().entries, 0u);
}

TEST_F(MemoryStoreTest, MaintainRekeysDeadlinesExtendedByHits) {
  MemoryStore& s = Make();
  const int64_t t0 = clock_->NowMillis();
  auto e = MakeEntry("a", t0);
  e->ttl_ms = 1000;
  ASSERT_TRUE(s.Insert(e).ok());
  clock_->Set(t0 + 900);
  ASSERT_TRUE(s.Lookup(e->key));  // now lives to t0 + 2000
  clock_->Set(t0 + 1500);
  ASSERT_TRUE(s.Maintain().ok());
  EXPECT_EQ(s.Stats().entries, 1u);
  EXPECT_EQ(s.Stats().expirations, 0u);
  clock_->Set(t0 + 2000);
  ASSERT_TRUE(s.Maintain().ok());
  EXPECT_EQ(s.Stats().entries, 0u);
  EXPECT_EQ(s.Stats().expirations, 1u);
  EXPECT_EQ(s.Stats().bytes, 0u);
}

TEST_F(MemoryStoreTest, ReplacementResetsTheDeadline) {
  MemoryStore& s = Make();
  const int64_t t0 = clock_->NowMillis();
  auto short_lived = MakeEntry("a", t0);
  short_lived->ttl_ms = 100;
  short_lived->ttl_fixed = true;
  ASSERT_TRUE(s.Insert(short_lived).ok());
  ASSERT_TRUE(s.Insert(MakeEntry("a", t0)).ok());  // no TTL
  clock_->Set(t0 + 10'000);
  ASSERT_TRUE(s.Maintain().ok());
  EXPECT_TRUE(s.Lookup(KeyFor("a")));
}

TEST_F(MemoryStoreTest, ReportsReadsOncePerWritebackInterval) {
  MemoryStore& s = Make(1 << 20, /*idle_ttl_ms=*/6400);
  ASSERT_EQ(s.writeback_interval_ms(), 100);
  std::vector<AccessUpdate> reported;
  s.SetAccessListener([&](const std::vector<AccessUpdate>& u) {
    reported.insert(reported.end(), u.begin(), u.end());
  });
  const int64_t t0 = clock_->NowMillis();
  ASSERT_TRUE(s.Insert(MakeEntry("a", t0)).ok());
  clock_->Set(t0 + 50);
  ASSERT_TRUE(s.Lookup(KeyFor("a")));
  EXPECT_TRUE(reported.empty());
  clock_->Set(t0 + 100);
  ASSERT_TRUE(s.Lookup(KeyFor("a")));
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].key, KeyFor("a"));
  EXPECT_EQ(reported[0].access.last_access_ms, t0 + 100);
  EXPECT_EQ(reported[0].access.hit_count, 2u);
  clock_->Set(t0 + 150);
  ASSERT_TRUE(s.Lookup(KeyFor("a")));
  EXPECT_EQ(reported.size(), 1u);  // reported 50 ms ago

  auto peek = s.PeekAccess(KeyFor("a"));
  ASSERT_TRUE(peek);
  EXPECT_EQ(peek->hit_count, 3u);
  EXPECT_EQ(peek->last_access_ms, t0 + 150);
  EXPECT_FALSE(s.PeekAccess(KeyFor("b")));

  s.FlushAccess();
  ASSERT_EQ(reported.size(), 2u);
  EXPECT_EQ(reported[1].access.hit_count, 3u);
  s.FlushAccess();
  EXPECT_EQ(reported.size(), 2u);  // nothing new
}

TEST_F(MemoryStoreTest, ReportsUnreportedReadsOfEvictedEntries) {
  const uint64_t one = MakeEntry("probe", 0, 1000)->ByteSize();
  MemoryStore& s = Make(2 * one + one / 2);
  std::vector<AccessUpdate> reported;
  s.SetAccessListener([&](const std::vector<AccessUpdate>& u) {
    reported.insert(reported.end(), u.begin(), u.end());
  });
  ASSERT_TRUE(s.Insert(MakeEntry("read", clock_->NowMillis(), 1000)).ok());
  clock_->Advance(1);
  ASSERT_TRUE(s.Insert(MakeEntry("unread", clock_->NowMillis(), 1000)).ok());
  clock_->Advance(1);
  ASSERT_TRUE(s.Lookup(KeyFor("read")));
  clock_->Advance(1);
  ASSERT_TRUE(s.Insert(MakeEntry("c", clock_->NowMillis(), 1000)).ok());  // evicts "unread"
  EXPECT_TRUE(reported.empty());  // it had nothing to report
  clock_->Advance(1);
  ASSERT_TRUE(s.Insert(MakeEntry("d", clock_->NowMillis(), 1000)).ok());  // evicts "read"
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].key, KeyFor("read"));
  EXPECT_EQ(reported[0].access.hit_count, 1u);
  EXPECT_EQ(s.Stats().evictions, 2u);
}

TEST_F(MemoryStoreTest, ManyEntriesStayReachable) {
  MemoryStore& s = Make(256ull << 20);
  constexpr int kEntries = 20000;
  for (int i = 0; i < kEntries; ++i) {
    ASSERT_TRUE(s.Insert(MakeEntry("n" + std::to_string(i), clock_->NowMillis(), 64)).ok());
  }
  EXPECT_EQ(s.Stats().entries, static_cast<uint64_t>(kEntries));
  for (int i = 0; i < kEntries; i += 97) {
    auto hit = s.Lookup(KeyFor("n" + std::to_string(i)));
    ASSERT_TRUE(hit) << i;
    EXPECT_EQ(hit->entry->key, KeyFor("n" + std::to_string(i)));
  }
  auto erased =
      s.EraseIf([](const CacheEntry& e) { return e.body.find("\"n1") != std::string::npos; });
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, 11111u);  // n1, n10-n19, n100-n199, n1000-n1999, n10000-n19999
  EXPECT_EQ(s.Stats().entries, static_cast<uint64_t>(kEntries) - 11111u);
}

TEST_F(MemoryStoreTest, RandomInsertEraseLookupMatchesAModel) {
  MemoryStore& s = Make(256ull << 20);
  std::set<int> model;
  uint64_t x = 0x2545f4914f6cdd1dull;
  auto next = [&x] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  };
  for (int op = 0; op < 30000; ++op) {
    const int k = static_cast<int>(next() % 3000);
    const std::string name = "m" + std::to_string(k);
    switch (next() % 4) {
      case 0:
      case 1:
        ASSERT_TRUE(s.Insert(MakeEntry(name, clock_->NowMillis(), 32)).ok());
        model.insert(k);
        break;
      case 2:
        ASSERT_TRUE(s.Erase(KeyFor(name)).ok());
        model.erase(k);
        break;
      default: {
        auto hit = s.Lookup(KeyFor(name));
        ASSERT_EQ(hit.has_value(), model.count(k) == 1) << "op " << op << " key " << k;
        if (hit) {
          ASSERT_EQ(hit->entry->key, KeyFor(name));
        }
      }
    }
  }
  EXPECT_EQ(s.Stats().entries, model.size());
  for (int k = 0; k < 3000; ++k) {
    EXPECT_EQ(s.PeekAccess(KeyFor("m" + std::to_string(k))).has_value(), model.count(k) == 1) << k;
  }
}

TEST_F(MemoryStoreTest, ConcurrentInsertsUnderEvictionKeepCountersExact) {
  const uint64_t one = MakeEntry("probe", 0, 700)->ByteSize();
  const uint64_t bound = 50 * one;
  MemoryStore& s = Make(bound);
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string name = "t" + std::to_string(t) + "-" + std::to_string(i % 120);
        if (i % 3 == 2) {
          (void)s.Lookup(KeyFor(name));
        } else if (i % 50 == 49) {
          (void)s.Erase(KeyFor(name));
        } else {
          ASSERT_TRUE(s.Insert(MakeEntry(name, 0, 700)).ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(s.Maintain().ok());
  const StoreStats st = s.Stats();
  EXPECT_LE(st.bytes, bound);
  EXPECT_GT(st.evictions, 0u);
  uint64_t present = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < 120; ++i) {
      present += s.PeekAccess(KeyFor("t" + std::to_string(t) + "-" + std::to_string(i))) ? 1 : 0;
    }
  }
  EXPECT_EQ(st.entries, present);
  EXPECT_EQ(st.bytes, present * one);
}

}  // namespace
}  // namespace llmcache
