// RedisStore's non-blocking calls: same answers as the blocking ones, many
// in flight over one connection, and fail-fast/recovery when Redis dies.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_store.h"
#include "store/redis_test_util.h"

namespace llmcache::store_test {
namespace {

Result<StoreHit> LookupNow(Store& s, std::string_view key) {
  std::promise<Result<StoreHit>> p;
  auto f = p.get_future();
  s.LookupAsync(key, [&p](Result<StoreHit> r) { p.set_value(std::move(r)); });
  return f.get();
}

Status InsertNow(Store& s, std::shared_ptr<const CacheEntry> e) {
  std::promise<Status> p;
  auto f = p.get_future();
  s.InsertAsync(std::move(e), [&p](Status st) { p.set_value(std::move(st)); });
  return f.get();
}

class RedisStoreAsyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = RedisProcess::Server();
    ASSERT_TRUE(server_->Start());
    RedisStoreOptions o;
    o.url = server_->url();
    o.key_prefix = "async:";
    o.clock = clock_;
    o.backoff_initial_ms = 20;
    o.backoff_max_ms = 200;
    auto s = OpenRedisStore(o);
    ASSERT_TRUE(s) << s.error().ToString();
    store_ = std::unique_ptr<RedisStore>(static_cast<RedisStore*>(s->release()));
  }
  int64_t now() const { return clock_->NowMillis(); }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::unique_ptr<RedisProcess> server_;
  std::unique_ptr<RedisStore> store_;
};

TEST_F(RedisStoreAsyncTest, AsyncAndBlockingCallsSeeTheSameEntries) {
  auto e = MakeEntry("a", now());
  e->ttl_ms = 5000;
  ASSERT_TRUE(InsertNow(*store_, e).ok());
  auto hit = LookupNow(*store_, e->key);
  ASSERT_TRUE(hit) << hit.error().ToString();
  EXPECT_EQ(hit->entry->body, e->body);
  EXPECT_EQ(hit->entry->hit_count, 1u);
  EXPECT_STREQ(hit->tier, "redis");
  auto sync_hit = store_->Lookup(e->key);
  ASSERT_TRUE(sync_hit);
  EXPECT_EQ(sync_hit->entry->hit_count, 2u);
  ASSERT_TRUE(store_->Insert(MakeEntry("b", now())).ok());
  EXPECT_TRUE(LookupNow(*store_, KeyFor("b")));
  auto absent = LookupNow(*store_, KeyFor("nobody"));
  ASSERT_FALSE(absent);
  EXPECT_TRUE(absent.error().IsNotFound());
  EXPECT_EQ(InsertNow(*store_, nullptr).code(), StatusCode::kInvalidArgument);
}

TEST_F(RedisStoreAsyncTest, ExpiredAndCorruptEntriesAreDroppedAndCounted) {
  auto e = MakeEntry("ttl", now());
  e->ttl_ms = 1000;
  e->ttl_fixed = true;
  ASSERT_TRUE(InsertNow(*store_, e).ok());
  clock_->Advance(1000);
  auto expired = LookupNow(*store_, e->key);
  ASSERT_FALSE(expired);
  EXPECT_TRUE(expired.error().IsNotFound());
  auto raw = server_->Call({"SET", store_->EntryKey(KeyFor("junk")), "junk"});
  ASSERT_TRUE(raw);
  auto corrupt = LookupNow(*store_, KeyFor("junk"));
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().code(), StatusCode::kCorruption);
  // The removals follow the answers asynchronously.
  ASSERT_TRUE(WaitFor([&] {
    const StoreStats st = store_->Stats();
    return st.expirations == 1 && st.corrupt_dropped == 1;
  }));
  EXPECT_EQ(store_->Stats().entries, 0u);
}

TEST_F(RedisStoreAsyncTest, ManyCallsInFlightAreAnsweredInOrderOfTheirKeys) {
  constexpr int kKeys = 32;
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(store_->Insert(MakeEntry("k" + std::to_string(k), now())).ok());
  }
  constexpr int kThreads = 4, kPerThread = 100;
  std::atomic<int> wrong{0}, answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string name = "k" + std::to_string((i * 7 + t) % kKeys);
        // Not awaited here: every call is in flight at once.
        store_->LookupAsync(KeyFor(name), [&, name](Result<StoreHit> r) {
          if (!r || r->entry->key != KeyFor(name)) ++wrong;
          ++answered;
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(WaitFor([&] { return answered.load() == kThreads * kPerThread; }));
  EXPECT_EQ(wrong.load(), 0);
  uint64_t hits = 0;
  for (int k = 0; k < kKeys; ++k) {
    auto r = store_->Lookup(KeyFor("k" + std::to_string(k)));
    ASSERT_TRUE(r);
    hits += r->entry->hit_count - 1;
  }
  EXPECT_EQ(hits, static_cast<uint64_t>(kThreads * kPerThread));
}

TEST_F(RedisStoreAsyncTest, DeadRedisFailsFastAndARestartedOneIsUsedAgain) {
  auto e = MakeEntry("a", now());
  ASSERT_TRUE(InsertNow(*store_, e).ok());
  server_->Kill();
  auto first = LookupNow(*store_, e->key);
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(store_->degraded());
  for (int i = 0; i < 20; ++i) {
    auto r = LookupNow(*store_, e->key);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), StatusCode::kUnavailable);
  }
  ASSERT_TRUE(server_->Restart());
  // The restarted server has no scripts cached: EVALSHA falls back to EVAL.
  ASSERT_TRUE(WaitFor([&] { return InsertNow(*store_, e).ok(); }));
  EXPECT_TRUE(LookupNow(*store_, e->key));
}

TEST_F(RedisStoreAsyncTest, DestroyingTheStoreAnswersPendingCalls) {
  ASSERT_TRUE(store_->Insert(MakeEntry("a", now())).ok());
  std::atomic<int> answered{0};
  for (int i = 0; i < 50; ++i) {
    store_->LookupAsync(KeyFor("a"), [&](Result<StoreHit>) { ++answered; });
  }
  store_.reset();
  EXPECT_EQ(answered.load(), 50);
}

// The gateway's stack: a memory tier in front of Redis, called async only.
TEST_F(RedisStoreAsyncTest, TieredStoreOverRedisPromotesAsyncHitsAndWritesThrough) {
  MemoryStoreOptions mo;
  mo.clock = clock_;
  auto memory = NewMemoryStore(mo);
  Store* mem = memory.get();
  RedisStore* redis = store_.get();
  auto tiered = NewTieredStore(std::move(memory), std::move(store_));
  auto e = MakeEntry("a", now());
  ASSERT_TRUE(InsertNow(*tiered, e).ok());
  EXPECT_TRUE(redis->Lookup(e->key)) << "the async insert did not reach Redis";
  ASSERT_TRUE(mem->Erase(e->key).ok());  // as if evicted from memory

  auto from_redis = LookupNow(*tiered, e->key);
  ASSERT_TRUE(from_redis) << from_redis.error().ToString();
  EXPECT_STREQ(from_redis->tier, "redis");
  EXPECT_EQ(from_redis->entry->body, e->body);
  auto from_memory = LookupNow(*tiered, e->key);
  ASSERT_TRUE(from_memory);
  EXPECT_STREQ(from_memory->tier, "memory") << "the Redis hit was not promoted";

  server_->Kill();
  auto absent = LookupNow(*tiered, KeyFor("absent"));
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().code(), StatusCode::kUnavailable);
  // Redis down: the insert reports it, and memory still serves this process.
  EXPECT_EQ(InsertNow(*tiered, MakeEntry("b", now())).code(), StatusCode::kUnavailable);
  auto b = LookupNow(*tiered, KeyFor("b"));
  ASSERT_TRUE(b);
  EXPECT_STREQ(b->tier, "memory");
}

}  // namespace
}  // namespace llmcache::store_test
