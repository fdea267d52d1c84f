#include "store/store_conformance_test.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common/hash.h"

namespace llmcache::store_test {

// Every binary that links the suite must instantiate it; one that links it
// only for the helpers need not.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StoreConformanceTest);

void PrintTo(const StoreConformanceParam& param, std::ostream* os) { *os << param.name; }

std::string ConformanceParamName(const ::testing::TestParamInfo<StoreConformanceParam>& info) {
  return info.param.name;
}

std::string KeyFor(std::string_view name) { return Sha256Hex(name); }

std::shared_ptr<CacheEntry> MakeEntry(std::string_view name, int64_t now_ms, size_t body_bytes,
                                      std::string ns, std::string model) {
  auto e = std::make_shared<CacheEntry>();
  e->key = KeyFor(name);
  e->ns = std::move(ns);
  e->model = std::move(model);
  e->route = Route::kChat;
  e->created_ms = now_ms;
  e->last_access_ms = now_ms;
  e->http_status = 200;
  e->body = "{\"id\":\"" + std::string(name) + "\",\"object\":\"chat.completion\",\"pad\":\"";
  if (e->body.size() + 2 < body_bytes) e->body.append(body_bytes - e->body.size() - 2, 'x');
  e->body += "\"}";
  e->prompt_tokens = 11;
  e->completion_tokens = 22;
  return e;
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "llmcache-store-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for " << pattern;
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void StoreConformanceTest::SetUp() {
  clock_ = std::make_shared<ManualClock>();
  Recreate(StoreTestConfig{});
}

void StoreConformanceTest::TearDown() { Destroy(); }

void StoreConformanceTest::Destroy() {
  sut_.store.reset();
  if (sut_.cleanup) sut_.cleanup();
  sut_.cleanup = nullptr;
}

void StoreConformanceTest::Recreate(StoreTestConfig config) {
  Destroy();
  config.clock = clock_;
  sut_ = GetParam().factory(config);
  ASSERT_NE(sut_.store, nullptr) << "factory for " << GetParam().name << " returned no store";
}

namespace {

constexpr size_t kBigBody = 20000;
constexpr uint64_t kBoundFor3Big = 70000;  // 3.5 entries of kBigBody

bool Has(Store& s, std::string_view name) { return s.Lookup(KeyFor(name)).has_value(); }

StatusCode LookupCode(Store& s, std::string_view name) {
  auto r = s.Lookup(KeyFor(name));
  return r ? StatusCode::kOk : r.error().code();
}

void ExpectSameContent(const CacheEntry& got, const CacheEntry& want) {
  EXPECT_EQ(got.key, want.key);
  EXPECT_EQ(got.ns, want.ns);
  EXPECT_EQ(got.model, want.model);
  EXPECT_EQ(got.route, want.route);
  EXPECT_EQ(got.created_ms, want.created_ms);
  EXPECT_EQ(got.ttl_ms, want.ttl_ms);
  EXPECT_EQ(got.ttl_fixed, want.ttl_fixed);
  EXPECT_EQ(got.http_status, want.http_status);
  EXPECT_EQ(got.body, want.body);
  EXPECT_EQ(got.sse_events, want.sse_events);
  EXPECT_EQ(got.prompt_tokens, want.prompt_tokens);
  EXPECT_EQ(got.completion_tokens, want.completion_tokens);
}

}  // namespace

TEST_P(StoreConformanceTest, NameAndTierStatsAreReported) {
  EXPECT_STRNE(store().Name(), "");
  auto tiers = store().TierStats();
  ASSERT_FALSE(tiers.empty());
  for (const auto& [name, stats] : tiers) {
    EXPECT_STRNE(name, "");
    EXPECT_EQ(stats.entries, 0u);
  }
}

TEST_P(StoreConformanceTest, InsertThenLookupReturnsTheEntry) {
  auto e = MakeEntry("a", now());
  e->ttl_ms = 60000;
  e->http_status = 201;
  e->route = Route::kCompletions;
  ASSERT_TRUE(store().Insert(e).ok());
  auto hit = store().Lookup(e->key);
  ASSERT_TRUE(hit) << hit.error().ToString();
  ASSERT_NE(hit->entry, nullptr);
  ExpectSameContent(*hit->entry, *e);
  EXPECT_STRNE(hit->tier, "");
}

TEST_P(StoreConformanceTest, LookupOfAbsentKeyIsNotFound) {
  auto r = store().Lookup(KeyFor("nobody"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsNotFound()) << r.error().ToString();
  EXPECT_EQ(store().Stats().expirations, 0u);
}

TEST_P(StoreConformanceTest, EraseRemovesAndIsIdempotent) {
  ASSERT_TRUE(store().Insert(MakeEntry("a", now())).ok());
  ASSERT_TRUE(store().Insert(MakeEntry("b", now())).ok());
  EXPECT_TRUE(store().Erase(KeyFor("a")).ok());
  EXPECT_EQ(LookupCode(store(), "a"), StatusCode::kNotFound);
  EXPECT_TRUE(Has(store(), "b"));
  EXPECT_TRUE(store().Erase(KeyFor("a")).ok());
  EXPECT_TRUE(store().Erase(KeyFor("never-inserted")).ok());
  EXPECT_EQ(store().Stats().entries, 1u);
}

TEST_P(StoreConformanceTest, InsertReplacesTheEntryWithTheSameKey) {
  auto v1 = MakeEntry("a", now(), 1000);
  ASSERT_TRUE(store().Insert(v1).ok());
  const uint64_t bytes_v1 = store().Stats().bytes;
  auto v2 = MakeEntry("a", now(), 3000);
  v2->body.replace(v2->body.size() - 3, 1, "y");
  v2->model = "gpt-4o";
  ASSERT_TRUE(store().Insert(v2).ok());
  auto hit = store().Lookup(v2->key);
  ASSERT_TRUE(hit);
  ExpectSameContent(*hit->entry, *v2);
  EXPECT_EQ(store().Stats().entries, 1u);
  EXPECT_GE(store().Stats().bytes, bytes_v1 + 1900);  // 2000 more body, 5 less model
}

TEST_P(StoreConformanceTest, EraseIfByNamespace) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store().Insert(MakeEntry("a" + std::to_string(i), now(), 128, "tenant-a")).ok());
    ASSERT_TRUE(store().Insert(MakeEntry("b" + std::to_string(i), now(), 128, "tenant-b")).ok());
  }
  auto erased = store().EraseIf([](const CacheEntry& e) { return e.ns == "tenant-a"; });
  ASSERT_TRUE(erased) << erased.error().ToString();
  EXPECT_EQ(*erased, 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(LookupCode(store(), "a" + std::to_string(i)), StatusCode::kNotFound);
    EXPECT_TRUE(Has(store(), "b" + std::to_string(i)));
  }
  EXPECT_EQ(store().Stats().entries, 5u);
  auto none = store().EraseIf([](const CacheEntry& e) { return e.ns == "tenant-a"; });
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0u);
}

TEST_P(StoreConformanceTest, EraseIfByModel) {
  ASSERT_TRUE(store().Insert(MakeEntry("x", now(), 128, "t", "gpt-4o")).ok());
  ASSERT_TRUE(store().Insert(MakeEntry("y", now(), 128, "t", "gpt-4o-mini")).ok());
  ASSERT_TRUE(store().Insert(MakeEntry("z", now(), 128, "u", "gpt-4o")).ok());
  auto erased = store().EraseIf([](const CacheEntry& e) { return e.model == "gpt-4o"; });
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, 2u);
  EXPECT_FALSE(Has(store(), "x"));
  EXPECT_TRUE(Has(store(), "y"));
  EXPECT_FALSE(Has(store(), "z"));
}

TEST_P(StoreConformanceTest, StreamEntryRoundTrips) {
  auto e = MakeEntry("stream", now());
  e->body.clear();
  e->sse_events = {R"({"choices":[{"delta":{"role":"assistant"}}]})",
                   R"({"choices":[{"delta":{"content":"h\u00e9llo"}}]})", "",
                   std::string("bin\0ary\xff", 8), std::string(5000, 'e')};
  ASSERT_TRUE(e->is_stream());
  ASSERT_TRUE(store().Insert(e).ok());
  auto hit = store().Lookup(e->key);
  ASSERT_TRUE(hit);
  EXPECT_TRUE(hit->entry->is_stream());
  ExpectSameContent(*hit->entry, *e);
}

TEST_P(StoreConformanceTest, LookupRecordsTheReadInReturnedSnapshots) {
  auto e = MakeEntry("a", now());
  ASSERT_TRUE(store().Insert(e).ok());
  clock().Advance(10);
  auto first = store().Lookup(e->key);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->entry->hit_count, 1u);
  EXPECT_EQ(first->entry->last_access_ms, now());
  clock().Advance(10);
  auto second = store().Lookup(e->key);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->entry->hit_count, 2u);
  EXPECT_EQ(second->entry->last_access_ms, now());
  // Snapshots already handed out do not change, nor does the caller's entry.
  EXPECT_EQ(first->entry->hit_count, 1u);
  EXPECT_EQ(first->entry->last_access_ms, now() - 10);
  EXPECT_EQ(e->hit_count, 0u);
  EXPECT_EQ(e->last_access_ms, now() - 20);
  // Dropping earlier snapshots must not disturb the count either.
  first = Err(Status::NotFound());
  second = Err(Status::NotFound());
  clock().Advance(10);
  auto third = store().Lookup(e->key);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->entry->hit_count, 3u);
  EXPECT_EQ(third->entry->last_access_ms, now());
  ExpectSameContent(*third->entry, *e);
}

TEST_P(StoreConformanceTest, AbsoluteTtlExpires) {
  auto e = MakeEntry("a", now());
  e->ttl_ms = 1000;
  e->ttl_fixed = true;
  ASSERT_TRUE(store().Insert(e).ok());
  clock().Advance(999);
  EXPECT_TRUE(Has(store(), "a"));
  clock().Advance(1);
  EXPECT_EQ(LookupCode(store(), "a"), StatusCode::kNotFound);
  const StoreStats st = store().Stats();
  EXPECT_EQ(st.expirations, 1u);
  EXPECT_EQ(st.entries, 0u);
  EXPECT_EQ(st.bytes, 0u);
  EXPECT_EQ(LookupCode(store(), "a"), StatusCode::kNotFound);
  EXPECT_EQ(store().Stats().expirations, 1u);
}

TEST_P(StoreConformanceTest, IdleEntryExpires) {
  StoreTestConfig config;
  config.expiry.idle_ttl_ms = 1000;
  Recreate(config);
  ASSERT_TRUE(store().Insert(MakeEntry("a", now())).ok());
  ASSERT_TRUE(store().Insert(MakeEntry("b", now())).ok());
  clock().Advance(999);
  EXPECT_TRUE(Has(store(), "a"));  // each read restarts the idle window
  clock().Advance(999);
  EXPECT_TRUE(Has(store(), "a"));
  EXPECT_EQ(LookupCode(store(), "b"), StatusCode::kNotFound);
  clock().Advance(1000);
  EXPECT_EQ(LookupCode(store(), "a"), StatusCode::kNotFound);
  EXPECT_EQ(store().Stats().expirations, 2u);
  EXPECT_EQ(store().Stats().entries, 0u);
}

TEST_P(StoreConformanceTest, EntryWithoutTtlLivesUntilIdle) {
  StoreTestConfig config;
  config.expiry.idle_ttl_ms = 1000;
  Recreate(config);
  ASSERT_TRUE(store().Insert(MakeEntry("a", now())).ok());
  for (int i = 0; i < 20; ++i) {
    clock().Advance(900);
    ASSERT_TRUE(Has(store(), "a")) << "read " << i;
  }
  clock().Advance(1000);
  EXPECT_EQ(LookupCode(store(), "a"), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, HitsExtendTheTtl) {
  StoreTestConfig config;
  config.expiry.max_extended_ttl_ms = 10000;
  Recreate(config);
  const int64_t t0 = now();
  auto extensible = MakeEntry("ext", t0);
  extensible->ttl_ms = 1000;
  auto fixed = MakeEntry("fixed", t0);
  fixed->ttl_ms = 1000;
  fixed->ttl_fixed = true;
  ASSERT_TRUE(store().Insert(extensible).ok());
  ASSERT_TRUE(store().Insert(fixed).ok());

  clock().Set(t0 + 900);
  ASSERT_TRUE(Has(store(), "ext"));    // hit 1: lives to t0 + 2000
  ASSERT_TRUE(Has(store(), "fixed"));  // fixed: still t0 + 1000
  clock().Set(t0 + 1800);
  EXPECT_EQ(LookupCode(store(), "fixed"), StatusCode::kNotFound);
  ASSERT_TRUE(Has(store(), "ext"));  // hit 2: t0 + 3000
  clock().Set(t0 + 2900);
  ASSERT_TRUE(Has(store(), "ext"));  // hit 3: t0 + 4000
  clock().Set(t0 + 3999);
  ASSERT_TRUE(Has(store(), "ext"));  // hit 4: t0 + 5000
  clock().Set(t0 + 5000);
  EXPECT_EQ(LookupCode(store(), "ext"), StatusCode::kNotFound);
  EXPECT_EQ(store().Stats().expirations, 2u);
}

TEST_P(StoreConformanceTest, ExtendedTtlIsCapped) {
  StoreTestConfig config;
  config.expiry.max_extended_ttl_ms = 3000;
  Recreate(config);
  const int64_t t0 = now();
  auto e = MakeEntry("a", t0);
  e->ttl_ms = 1000;
  ASSERT_TRUE(store().Insert(e).ok());
  for (int i = 1; i <= 10; ++i) {
    clock().Set(t0 + 10 * i);
    ASSERT_TRUE(Has(store(), "a"));  // 10 hits would give 11 s uncapped
  }
  clock().Set(t0 + 2999);
  ASSERT_TRUE(Has(store(), "a"));
  clock().Set(t0 + 3000);
  EXPECT_EQ(LookupCode(store(), "a"), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, ByteBoundEvictsTheLeastRecentlyUsed) {
  StoreTestConfig config;
  config.max_bytes = kBoundFor3Big;
  Recreate(config);
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_TRUE(store().Insert(MakeEntry(name, now(), kBigBody)).ok());
    clock().Advance(1);
  }
  EXPECT_EQ(store().Stats().entries, 3u);
  EXPECT_EQ(store().Stats().evictions, 0u);
  ASSERT_TRUE(Has(store(), "a"));  // "b" is now the least recently used
  clock().Advance(1);
  ASSERT_TRUE(store().Insert(MakeEntry("d", now(), kBigBody)).ok());

  const StoreStats st = store().Stats();
  EXPECT_EQ(st.evictions, 1u);
  EXPECT_EQ(st.entries, 3u);
  EXPECT_LE(st.bytes, kBoundFor3Big);
  EXPECT_EQ(st.expirations, 0u);
  EXPECT_EQ(LookupCode(store(), "b"), StatusCode::kNotFound);
  EXPECT_TRUE(Has(store(), "a"));
  EXPECT_TRUE(Has(store(), "c"));
  EXPECT_TRUE(Has(store(), "d"));
}

TEST_P(StoreConformanceTest, ByteBoundHoldsUnderManyInserts) {
  StoreTestConfig config;
  config.max_bytes = kBoundFor3Big;
  Recreate(config);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(store().Insert(MakeEntry("e" + std::to_string(i), now(), kBigBody)).ok());
    clock().Advance(1);
    const StoreStats st = store().Stats();
    ASSERT_LE(st.bytes, kBoundFor3Big) << "after insert " << i;
    ASSERT_LE(st.entries, 3u);
  }
  EXPECT_GE(store().Stats().evictions, 17u);
  EXPECT_TRUE(Has(store(), "e19"));
  EXPECT_TRUE(store().Maintain().ok());
  EXPECT_LE(store().Stats().bytes, kBoundFor3Big);
}

TEST_P(StoreConformanceTest, EntryLargerThanTheBoundIsRefused) {
  StoreTestConfig config;
  config.max_bytes = kBoundFor3Big;
  Recreate(config);
  ASSERT_TRUE(store().Insert(MakeEntry("small", now(), 1000)).ok());
  ASSERT_TRUE(store().Insert(MakeEntry("kept", now(), 1000)).ok());
  Status s = store().Insert(MakeEntry("huge", now(), kBoundFor3Big + 1));
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(LookupCode(store(), "huge"), StatusCode::kNotFound);
  // A refused replacement leaves the previous version in place.
  s = store().Insert(MakeEntry("kept", now(), kBoundFor3Big + 1));
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  auto kept = store().Lookup(KeyFor("kept"));
  ASSERT_TRUE(kept);
  EXPECT_LT(kept->entry->body.size(), 2000u);
  EXPECT_TRUE(Has(store(), "small"));
  EXPECT_EQ(store().Stats().entries, 2u);
  EXPECT_EQ(store().Stats().evictions, 0u);
}

TEST_P(StoreConformanceTest, StatsCountEntriesAndBytes) {
  StoreStats st = store().Stats();
  EXPECT_EQ(st.entries, 0u);
  EXPECT_EQ(st.bytes, 0u);
  EXPECT_EQ(st.evictions, 0u);
  EXPECT_EQ(st.expirations, 0u);
  EXPECT_EQ(st.corrupt_dropped, 0u);
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_TRUE(store().Insert(MakeEntry(name, now(), 1000)).ok());
  }
  st = store().Stats();
  EXPECT_EQ(st.entries, 3u);
  EXPECT_GE(st.bytes, 3000u);
  EXPECT_LT(st.bytes, 3u * 3000u);
  const uint64_t three = st.bytes;
  ASSERT_TRUE(store().Insert(MakeEntry("a", now(), 1000)).ok());  // replace
  EXPECT_EQ(store().Stats().entries, 3u);
  EXPECT_EQ(store().Stats().bytes, three);
  ASSERT_TRUE(store().Lookup(KeyFor("a")));  // reads do not change the size
  EXPECT_EQ(store().Stats().bytes, three);
  ASSERT_TRUE(store().Erase(KeyFor("a")).ok());
  st = store().Stats();
  EXPECT_EQ(st.entries, 2u);
  EXPECT_LT(st.bytes, three);
  ASSERT_TRUE(store().EraseIf([](const CacheEntry&) { return true; }));
  st = store().Stats();
  EXPECT_EQ(st.entries, 0u);
  EXPECT_EQ(st.bytes, 0u);
  EXPECT_EQ(st.evictions, 0u);
  EXPECT_EQ(st.expirations, 0u);
}

TEST_P(StoreConformanceTest, MaintainSweepsExpiredEntries) {
  StoreTestConfig config;
  config.expiry.idle_ttl_ms = 5000;
  Recreate(config);
  for (int i = 0; i < 5; ++i) {
    auto e = MakeEntry("ttl" + std::to_string(i), now());
    e->ttl_ms = 1000;
    e->ttl_fixed = true;
    ASSERT_TRUE(store().Insert(e).ok());
  }
  ASSERT_TRUE(store().Insert(MakeEntry("idle", now())).ok());
  ASSERT_TRUE(store().Insert(MakeEntry("live", now())).ok());
  clock().Advance(1000);
  ASSERT_TRUE(store().Maintain().ok());
  StoreStats st = store().Stats();
  EXPECT_EQ(st.entries, 2u);
  EXPECT_EQ(st.expirations, 5u);
  clock().Advance(3000);
  ASSERT_TRUE(Has(store(), "live"));
  clock().Advance(2000);  // "idle" unread for 6 s, "live" for 2 s
  ASSERT_TRUE(store().Maintain().ok());
  st = store().Stats();
  EXPECT_EQ(st.entries, 1u);
  EXPECT_EQ(st.expirations, 6u);
  EXPECT_TRUE(Has(store(), "live"));
  EXPECT_EQ(LookupCode(store(), "idle"), StatusCode::kNotFound);
  EXPECT_EQ(store().Stats().expirations, 6u);  // already swept, not counted again
}

TEST_P(StoreConformanceTest, MaintainWithNothingToDoKeepsEverything) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(store().Insert(MakeEntry("k" + std::to_string(i), now())).ok());
  }
  ASSERT_TRUE(store().Maintain().ok());
  ASSERT_TRUE(store().Maintain().ok());
  const StoreStats st = store().Stats();
  EXPECT_EQ(st.entries, 10u);
  EXPECT_EQ(st.expirations, 0u);
  EXPECT_EQ(st.evictions, 0u);
}

TEST_P(StoreConformanceTest, NullEntryIsRejected) {
  Status s = store().Insert(nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(store().Stats().entries, 0u);
}

TEST_P(StoreConformanceTest, ConcurrentInsertAndLookupStayConsistent) {
  constexpr int kKeys = 16;
  constexpr int kThreads = 4;
  constexpr int kOpsPerThread = 250;
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(store().Insert(MakeEntry("k" + std::to_string(k), now(), 512)).ok());
  }
  std::atomic<int> bad{0};
  std::atomic<int> hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOpsPerThread; ++i) {
        const std::string name = "k" + std::to_string((i * 7 + t) % kKeys);
        if (i % 4 == 0) {
          if (!store().Insert(MakeEntry(name, now(), 512 + 64 * t)).ok()) ++bad;
        } else if (i % 29 == 0) {
          if (!store().Maintain().ok()) ++bad;
        } else {
          auto hit = store().Lookup(KeyFor(name));
          if (!hit) {
            ++bad;  // nothing expires or is evicted here
          } else if (hit->entry->key != KeyFor(name) ||
                     hit->entry->body.find("\"id\":\"" + name + "\"") == std::string::npos) {
            ++bad;
          } else {
            ++hits;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(hits.load(), 0);
  EXPECT_EQ(store().Stats().entries, static_cast<uint64_t>(kKeys));
  for (int k = 0; k < kKeys; ++k) EXPECT_TRUE(Has(store(), "k" + std::to_string(k)));
}

TEST_P(StoreConformanceTest, ConcurrentLookupsCountEveryHit) {
  constexpr int kThreads = 4;
  constexpr int kLookups = 100;
  ASSERT_TRUE(store().Insert(MakeEntry("hot", now())).ok());
  std::vector<std::thread> threads;
  std::atomic<int> misses{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kLookups; ++i) {
        if (!store().Lookup(KeyFor("hot"))) ++misses;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(misses.load(), 0);
  auto hit = store().Lookup(KeyFor("hot"));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->entry->hit_count, static_cast<uint32_t>(kThreads * kLookups + 1));
}

}  // namespace llmcache::store_test
