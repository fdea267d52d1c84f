// RedisStore against real redis-server processes: the conformance suite
// (alone and under a memory tier), then what only a remote store has to
// handle: the server dying and coming back, values written by someone else,
// AUTH, and Redis's own maxmemory eviction.
#include "store/redis_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <limits>
#include <memory>
#include <string>

#include "store/entry_codec.h"
#include "store/redis_test_util.h"
#include "store/store_conformance_test.h"

namespace llmcache::store_test {
namespace {

// One server per test process (CTest runs each test in its own process);
// each store gets a fresh key prefix, so stores never see each other.
RedisProcess& SharedServer() {
  static RedisProcess* server = [] {
    auto s = RedisProcess::Server();
    if (!s->Start()) ADD_FAILURE() << "cannot start redis-server from PATH";
    return s.release();  // killed by the atexit hook below
  }();
  static const int registered = std::atexit([] { SharedServer().Kill(); });
  (void)registered;
  return *server;
}

std::string FreshPrefix() {
  static std::atomic<int> n{0};
  return "t" + std::to_string(getpid()) + "-" + std::to_string(n++) + ":";
}

RedisStoreOptions OptionsFor(const RedisProcess& server) {
  RedisStoreOptions o;
  o.url = server.url();
  o.key_prefix = FreshPrefix();
  o.backoff_initial_ms = 20;
  o.backoff_max_ms = 200;
  return o;
}

std::unique_ptr<RedisStore> OpenOrFail(RedisStoreOptions o) {
  auto s = OpenRedisStore(std::move(o));
  if (!s) {
    ADD_FAILURE() << s.error().ToString();
    return nullptr;
  }
  return std::unique_ptr<RedisStore>(static_cast<RedisStore*>(s->release()));
}

StoreUnderTest MakeRedis(const StoreTestConfig& config) {
  RedisStoreOptions o = OptionsFor(SharedServer());
  o.max_bytes = config.max_bytes;
  o.expiry = config.expiry;
  o.clock = config.clock;
  auto store = OpenRedisStore(std::move(o));
  if (!store) {
    ADD_FAILURE() << store.error().ToString();
    return {nullptr, nullptr};
  }
  return {std::move(*store), nullptr};
}

StoreUnderTest MakeTieredRedis(const StoreTestConfig& config) {
  StoreUnderTest redis = MakeRedis(config);
  if (!redis.store) return redis;
  MemoryStoreOptions mo;
  mo.max_bytes = config.max_bytes;
  mo.expiry = config.expiry;
  mo.clock = config.clock;
  return {NewTieredStore(NewMemoryStore(std::move(mo)), std::move(redis.store)), nullptr};
}

INSTANTIATE_TEST_SUITE_P(Redis, StoreConformanceTest,
                         ::testing::Values(StoreConformanceParam{"redis", MakeRedis},
                                           StoreConformanceParam{"tiered_redis", MakeTieredRedis}),
                         ConformanceParamName);

StatusCode CodeOf(const Result<StoreHit>& r) { return r ? StatusCode::kOk : r.error().code(); }

class RedisStoreTest : public ::testing::Test {
 protected:
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  int64_t now() const { return clock_->NowMillis(); }
};

TEST_F(RedisStoreTest, KilledRedisFailsFastWithUnavailable) {
  auto server = RedisProcess::Server();
  ASSERT_TRUE(server->Start());
  RedisStoreOptions o = OptionsFor(*server);
  o.clock = clock_;
  o.backoff_initial_ms = 60000;  // the circuit stays open for the whole test
  o.backoff_max_ms = 60000;
  std::shared_ptr<const StoreHealth> health;
  auto opened = OpenRedisStore(o, &health);
  ASSERT_TRUE(opened);
  Store& store = **opened;
  auto e = MakeEntry("a", now());
  ASSERT_TRUE(store.Insert(e).ok());
  ASSERT_TRUE(store.Lookup(e->key));
  EXPECT_FALSE(health->degraded());
  const StoreStats before = store.Stats();
  EXPECT_EQ(before.entries, 1u);

  server->Kill();
  // The first call meets the dead connection; every later one must be
  // refused by the open circuit without touching the network.
  EXPECT_EQ(CodeOf(store.Lookup(e->key)), StatusCode::kUnavailable);
  EXPECT_TRUE(health->degraded());
  EXPECT_THAT(health->detail(), ::testing::HasSubstr("degraded"));
  for (int i = 0; i < 50; ++i) {
    auto r = store.Lookup(e->key);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), StatusCode::kUnavailable);
    EXPECT_THAT(r.error().message(), ::testing::HasSubstr("circuit open")) << i;
    Status s = store.Insert(e);
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  }
  EXPECT_EQ(store.Erase(e->key).code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.Maintain().code(), StatusCode::kUnavailable);
  auto erased = store.EraseIf([](const CacheEntry&) { return true; });
  ASSERT_FALSE(erased);
  EXPECT_EQ(erased.error().code(), StatusCode::kUnavailable);
  // Stats never fail: they show the last values read.
  EXPECT_EQ(store.Stats().entries, before.entries);
  EXPECT_EQ(store.Stats().bytes, before.bytes);
}

// hiredis writes with write(2); a large write to a server that died resets
// the connection mid-write, which raises SIGPIPE. The store must turn that
// into Unavailable, not die of it.
TEST_F(RedisStoreTest, LargeWriteToADeadServerIsUnavailableNotSigpipe) {
  auto server = RedisProcess::Server();
  ASSERT_TRUE(server->Start());
  RedisStoreOptions o = OptionsFor(*server);
  o.clock = clock_;
  auto store = OpenOrFail(o);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Insert(MakeEntry("small", now())).ok());  // a pooled connection
  server->Kill();
  Status s = store->Insert(MakeEntry("large", now(), 8 << 20));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
}

TEST_F(RedisStoreTest, RestartedRedisIsUsedAgain) {
  auto server = RedisProcess::Server();
  ASSERT_TRUE(server->Start());
  RedisStoreOptions o = OptionsFor(*server);
  o.clock = clock_;
  std::shared_ptr<const StoreHealth> health;
  auto opened = OpenRedisStore(o, &health);
  ASSERT_TRUE(opened);
  Store& store = **opened;
  ASSERT_TRUE(store.Insert(MakeEntry("before", now())).ok());

  server->Kill();
  EXPECT_EQ(CodeOf(store.Lookup(KeyFor("before"))), StatusCode::kUnavailable);
  EXPECT_TRUE(health->degraded());
  ASSERT_TRUE(server->Restart());
  // Reconnects after its backoff; the restarted server is empty (no
  // persistence) and has no scripts cached.
  ASSERT_TRUE(WaitFor([&] { return store.Insert(MakeEntry("after", now())).ok(); }));
  auto hit = store.Lookup(KeyFor("after"));
  ASSERT_TRUE(hit) << hit.error().ToString();
  EXPECT_EQ(CodeOf(store.Lookup(KeyFor("before"))), StatusCode::kNotFound);
  EXPECT_FALSE(health->degraded());
}

TEST_F(RedisStoreTest, UnreachableRedisStillOpensDegraded) {
  RedisStoreOptions o;
  o.url = "redis://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  o.key_prefix = FreshPrefix();
  std::shared_ptr<const StoreHealth> health;
  auto opened = OpenRedisStore(o, &health);
  ASSERT_TRUE(opened) << opened.error().ToString();
  EXPECT_TRUE(health->degraded());
  EXPECT_EQ(CodeOf((*opened)->Lookup(KeyFor("x"))), StatusCode::kUnavailable);
}

TEST_F(RedisStoreTest, BadOptionsAreRefused) {
  RedisStoreOptions o;
  o.url = "redis://h:0";
  EXPECT_EQ(OpenRedisStore(o).error().code(), StatusCode::kInvalidArgument);
  o.url = "redis://127.0.0.1:1";
  o.key_prefix = "";
  EXPECT_EQ(OpenRedisStore(o).error().code(), StatusCode::kInvalidArgument);
  o.key_prefix = "p:";
  o.max_connections = 0;
  EXPECT_EQ(OpenRedisStore(o).error().code(), StatusCode::kInvalidArgument);
}

class RedisForeignValueTest : public RedisStoreTest {
 protected:
  void SetUp() override {
    RedisStoreOptions o = OptionsFor(SharedServer());
    o.clock = clock_;
    o.max_value_bytes = 4096;
    store_ = OpenOrFail(o);
    ASSERT_NE(store_, nullptr);
  }
  // Writes raw under the entry key of name, as another client would.
  void Raw(std::vector<std::string> argv) {
    auto r = SharedServer().Call(argv);
    ASSERT_TRUE(r);
    ASSERT_NE(r->type, REDIS_REPLY_ERROR) << ReplyText(r);
  }
  void ExpectRefusedAndDropped(std::string_view name, uint64_t dropped_before) {
    auto r = store_->Lookup(KeyFor(name));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().ToString();
    EXPECT_EQ(store_->Stats().corrupt_dropped, dropped_before + 1);
    auto exists = SharedServer().Call({"EXISTS", store_->EntryKey(KeyFor(name))});
    EXPECT_EQ(ReplyText(exists), "0");
    EXPECT_EQ(CodeOf(store_->Lookup(KeyFor(name))), StatusCode::kNotFound);
  }
  std::unique_ptr<RedisStore> store_;
};

TEST_F(RedisForeignValueTest, StringValueIsRefused) {
  Raw({"SET", store_->EntryKey(KeyFor("s")), "{\"choices\":[]}"});
  ExpectRefusedAndDropped("s", 0);
}

TEST_F(RedisForeignValueTest, GarbageInTheValueFieldIsRefused) {
  Raw({"HSET", store_->EntryKey(KeyFor("g")), "v", "garbage", "h", "0", "l", "0"});
  ExpectRefusedAndDropped("g", 0);
}

TEST_F(RedisForeignValueTest, FlippedByteFailsTheChecksum) {
  auto e = MakeEntry("f", now());
  std::string v;
  ASSERT_TRUE(EncodeEntry(*e, &v).ok());
  v[v.size() / 2] ^= 0x20;
  Raw({"HSET", store_->EntryKey(e->key), "v", v, "h", "0", "l", "0"});
  ExpectRefusedAndDropped("f", 0);
}

TEST_F(RedisForeignValueTest, ValueOfAnotherKeyIsRefused) {
  auto other = MakeEntry("other", now());
  std::string v;
  ASSERT_TRUE(EncodeEntry(*other, &v).ok());
  Raw({"HSET", store_->EntryKey(KeyFor("mine")), "v", v, "h", "0", "l", "0"});
  ExpectRefusedAndDropped("mine", 0);
}

TEST_F(RedisForeignValueTest, OversizedValueIsRefusedUnread) {
  auto e = MakeEntry("big", now(), 8000);  // over max_value_bytes (4096)
  std::string v;
  ASSERT_TRUE(EncodeEntry(*e, &v).ok());
  Raw({"HSET", store_->EntryKey(e->key), "v", v, "h", "0", "l", "0"});
  ExpectRefusedAndDropped("big", 0);
  EXPECT_EQ(store_->Insert(e).code(), StatusCode::kResourceExhausted);
}

TEST_F(RedisForeignValueTest, BadAccessFieldsAreRefused) {
  auto e = MakeEntry("acc", now());
  std::string v;
  ASSERT_TRUE(EncodeEntry(*e, &v).ok());
  Raw({"HSET", store_->EntryKey(e->key), "v", v, "h", "many", "l", "0"});
  ExpectRefusedAndDropped("acc", 0);
}

TEST_F(RedisForeignValueTest, EraseIfDropsForeignValuesAndCountsThem) {
  ASSERT_TRUE(store_->Insert(MakeEntry("good", now())).ok());
  Raw({"SET", store_->EntryKey(KeyFor("bad1")), "x"});
  Raw({"HSET", store_->EntryKey(KeyFor("bad2")), "v", "y"});
  auto erased = store_->EraseIf([](const CacheEntry&) { return false; });
  ASSERT_TRUE(erased) << erased.error().ToString();
  EXPECT_EQ(*erased, 0u);
  EXPECT_EQ(store_->Stats().corrupt_dropped, 2u);
  EXPECT_TRUE(store_->Lookup(KeyFor("good")));
}

TEST_F(RedisStoreTest, AuthWithPasswordFromTheEnvironment) {
  auto server = RedisProcess::Server({"--requirepass", "s3cret-pw"});
  ASSERT_TRUE(server->Start("s3cret-pw"));
  ASSERT_EQ(setenv("LLMCACHE_TEST_REDIS_PASSWORD", "s3cret-pw", 1), 0);

  RedisStoreOptions o = OptionsFor(*server);
  o.clock = clock_;
  o.password_env = "LLMCACHE_TEST_REDIS_PASSWORD";
  auto with_env = OpenOrFail(o);
  ASSERT_NE(with_env, nullptr);
  auto e = MakeEntry("a", now());
  ASSERT_TRUE(with_env->Insert(e).ok());
  ASSERT_TRUE(with_env->Lookup(e->key));

  // The environment wins over a wrong password in the URL.
  RedisStoreOptions wrong_url = o;
  wrong_url.url = "redis://:wrong@127.0.0.1:" + std::to_string(server->port());
  auto env_wins = OpenOrFail(wrong_url);
  ASSERT_NE(env_wins, nullptr);
  EXPECT_TRUE(env_wins->Lookup(e->key));

  RedisStoreOptions url_only = o;
  url_only.password_env.clear();
  url_only.url = "redis://:s3cret-pw@127.0.0.1:" + std::to_string(server->port());
  auto from_url = OpenOrFail(url_only);
  ASSERT_NE(from_url, nullptr);
  EXPECT_TRUE(from_url->Lookup(e->key));

  RedisStoreOptions none = o;
  none.password_env = "LLMCACHE_TEST_REDIS_PASSWORD_UNSET";
  auto no_password = OpenOrFail(none);
  ASSERT_NE(no_password, nullptr);
  auto r = no_password->Lookup(e->key);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kUnavailable) << r.error().ToString();
  unsetenv("LLMCACHE_TEST_REDIS_PASSWORD");
}

TEST_F(RedisStoreTest, MaxmemoryAllkeysLruEvictionReadsAsMisses) {
  auto server = RedisProcess::Server({"--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"});
  ASSERT_TRUE(server->Start());
  RedisStoreOptions o = OptionsFor(*server);
  o.clock = clock_;
  auto store = OpenOrFail(o);
  ASSERT_NE(store, nullptr);
  constexpr int kEntries = 200;  // ~4 MB of 20 KB entries into 2 MB
  for (int i = 0; i < kEntries; ++i) {
    Status s = store->Insert(MakeEntry("e" + std::to_string(i), now(), 20000));
    ASSERT_TRUE(s.ok()) << i << ": " << s.ToString();
  }
  int found = 0, missing = 0;
  for (int i = 0; i < kEntries; ++i) {
    auto r = store->Lookup(KeyFor("e" + std::to_string(i)));
    if (r) {
      ++found;
      EXPECT_EQ(r->entry->key, KeyFor("e" + std::to_string(i)));
    } else {
      ASSERT_TRUE(r.error().IsNotFound()) << i << ": " << r.error().ToString();
      ++missing;
    }
  }
  EXPECT_GT(missing, 0);
  EXPECT_GT(found, 0);
  EXPECT_EQ(store->Stats().corrupt_dropped, 0u);
  // Maintenance and purges cope with rows whose entries Redis dropped.
  EXPECT_TRUE(store->Maintain().ok());
  auto erased = store->EraseIf([](const CacheEntry&) { return true; });
  ASSERT_TRUE(erased) << erased.error().ToString();
  // Reads write too (access data), so Redis may have evicted more since.
  EXPECT_LE(*erased, static_cast<uint64_t>(found));
  EXPECT_EQ(store->Stats().corrupt_dropped, 0u);
  for (int i = 0; i < kEntries; ++i) {
    ASSERT_EQ(CodeOf(store->Lookup(KeyFor("e" + std::to_string(i)))), StatusCode::kNotFound);
  }
}

TEST_F(RedisStoreTest, HugeTtlsStayWithinRedisExpiryRange) {
  RedisStoreOptions o = OptionsFor(SharedServer());
  o.clock = clock_;
  o.expiry.idle_ttl_ms = std::numeric_limits<int64_t>::max() / 2;
  o.expiry.max_extended_ttl_ms = std::numeric_limits<int64_t>::max();
  auto store = OpenOrFail(o);
  ASSERT_NE(store, nullptr);
  auto e = MakeEntry("forever", now());
  e->ttl_ms = std::numeric_limits<int64_t>::max() / 4;
  Status s = store->Insert(e);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (int i = 0; i < 3; ++i) {
    auto hit = store->Lookup(e->key);
    ASSERT_TRUE(hit) << hit.error().ToString();
  }
  auto pttl = SharedServer().Call({"PTTL", store->EntryKey(e->key)});
  ASSERT_TRUE(pttl);
  EXPECT_GT(pttl->integer, 0);
}

TEST_F(RedisStoreTest, StoresWithDifferentPrefixesDoNotSeeEachOther) {
  RedisStoreOptions o = OptionsFor(SharedServer());
  o.clock = clock_;
  auto a = OpenOrFail(o);
  o.key_prefix = FreshPrefix();
  auto b = OpenOrFail(o);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Insert(MakeEntry("x", now())).ok());
  EXPECT_EQ(CodeOf(b->Lookup(KeyFor("x"))), StatusCode::kNotFound);
  EXPECT_EQ(b->Stats().entries, 0u);
  auto erased = b->EraseIf([](const CacheEntry&) { return true; });
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, 0u);
  EXPECT_TRUE(a->Lookup(KeyFor("x")));
}

TEST_F(RedisStoreTest, TwoStoresOnOnePrefixShareEntriesAndHits) {
  RedisStoreOptions o = OptionsFor(SharedServer());
  o.clock = clock_;
  auto a = OpenOrFail(o);
  auto b = OpenOrFail(o);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Insert(MakeEntry("shared", now())).ok());
  auto hit_b = b->Lookup(KeyFor("shared"));
  ASSERT_TRUE(hit_b);
  EXPECT_EQ(hit_b->entry->hit_count, 1u);
  auto hit_a = a->Lookup(KeyFor("shared"));
  ASSERT_TRUE(hit_a);
  EXPECT_EQ(hit_a->entry->hit_count, 2u);
  ASSERT_TRUE(b->Erase(KeyFor("shared")).ok());
  EXPECT_EQ(CodeOf(a->Lookup(KeyFor("shared"))), StatusCode::kNotFound);
}

}  // namespace
}  // namespace llmcache::store_test
