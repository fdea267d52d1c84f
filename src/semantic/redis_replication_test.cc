// Semantic caches of two replicas sharing one real redis-server stream:
// inserts, invalidations and erases travel both ways, a restarted replica
// catches up from its saved position, gaps (trimmed or vanished stream) and
// foreign records are survived, and a dead Redis leaves each cache working
// locally until it returns.
#include "semantic/redis_replication.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <mutex>

#include "semantic/semantic_cache_test_util.h"
#include "store/redis_test_util.h"

namespace llmcache::semantic {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using store_test::RedisProcess;
using store_test::WaitFor;
using testing::FakeEmbedder;

constexpr const char* kStream = "test:semantic:stream";
const std::vector<std::string> kDistinct = {"local question here", "seen question here",
                                            "lost question here", "after the gap here"};

json::value Chat(std::string_view user) {
  json::object o;
  o["model"] = "m";
  json::array msgs;
  msgs.push_back(json::object{{"role", "system"}, {"content", "be brief"}});
  msgs.push_back(json::object{{"role", "user"}, {"content", user}});
  o["messages"] = std::move(msgs);
  return o;
}

// One replica: a local cache (memory only, or under dir) behind the
// replication through the shared stream.
struct Replica {
  std::shared_ptr<FakeEmbedder> embedder;
  std::shared_ptr<SemanticCache> cache;
  std::mutex mu;
  std::vector<std::string> removed;  // what the removal listener got

  SemanticQuery Q(std::string_view user) {
    return cache->Prepare(Chat(user), SemanticKey{"t", "m", "", Route::kChat});
  }
  Status Put(std::string_view user, std::string_view key, std::vector<std::string> docs = {}) {
    SemanticQuery q = Q(user);
    return cache->Insert(&q, key, docs);
  }
  std::string HitKey(std::string_view user) {
    SemanticQuery q = Q(user);
    auto r = cache->Lookup(&q);
    return r.hit ? r.hit->exact_key : "";
  }
  std::vector<std::string> Removed() {
    std::lock_guard<std::mutex> l(mu);
    return removed;
  }
};

class SemanticReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = RedisProcess::Server();
    ASSERT_TRUE(redis_->Start());
  }

  std::unique_ptr<Replica> Open(const std::string& data_dir = "", uint64_t max_len = 1000,
                                std::string embedder_id = "fake") {
    auto r = std::make_unique<Replica>();
    r->embedder = std::make_shared<FakeEmbedder>(16, embedder_id);
    // Questions whose answers must not be confused get orthogonal vectors
    // (hashed words could collide in 16 dimensions).
    for (size_t i = 0; i < kDistinct.size(); ++i) {
      std::vector<float> axis(16, 0);
      axis[i + 1] = 1;
      r->embedder->Set(kDistinct[i], axis);
    }
    SemanticCacheOptions so;
    so.embedder = r->embedder;
    so.thresholds = {true, 0.85, 0.90};
    so.short_query_words = 2;
    so.data_dir = data_dir;
    testing::UseFlatTestIndex(&so);
    auto local = OpenSemanticCache(so);
    EXPECT_TRUE(local) << local.error().ToString();
    if (!local) return nullptr;

    RedisSemanticLogOptions lo;
    lo.url = redis_->url();
    lo.stream_key = kStream;
    lo.max_len = max_len;
    lo.backoff_initial_ms = 20;
    lo.backoff_max_ms = 200;
    auto log = OpenRedisSemanticLog(lo);
    EXPECT_TRUE(log) << log.error().ToString();
    if (!log) return nullptr;

    SemanticReplicationOptions ro;
    ro.embedder_id = embedder_id;
    if (!data_dir.empty()) ro.position_path = (fs::path(data_dir) / "stream.pos").string();
    ro.wait_ms = 100;
    ro.backoff_initial_ms = 20;
    ro.backoff_max_ms = 200;
    auto c =
        NewReplicatedSemanticCache(std::shared_ptr<SemanticCache>(std::move(*local)),
                                   std::shared_ptr<SemanticReplicationLog>(std::move(*log)), ro);
    EXPECT_TRUE(c) << c.error().ToString();
    if (!c) return nullptr;
    r->cache = std::move(*c);
    Replica* raw = r.get();
    r->cache->SetRemoteRemovalListener([raw](const std::vector<std::string>& keys) {
      std::lock_guard<std::mutex> l(raw->mu);
      raw->removed.insert(raw->removed.end(), keys.begin(), keys.end());
    });
    return r;
  }

  std::string Dir(const std::string& name) {
    fs::path d = fs::path(::testing::TempDir()) /
                 ("semrepl-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" + name);
    fs::remove_all(d);
    dirs_.push_back(d);
    return d.string();
  }
  void TearDown() override {
    for (const auto& d : dirs_) fs::remove_all(d);
  }

  std::unique_ptr<RedisProcess> redis_;
  std::vector<fs::path> dirs_;
};

TEST(StreamIdTest, ComparesNumerically) {
  EXPECT_LT(CompareStreamIds("9-0", "10-0"), 0);
  EXPECT_LT(CompareStreamIds("10-2", "10-10"), 0);
  EXPECT_EQ(CompareStreamIds("10-2", "10-2"), 0);
  EXPECT_GT(CompareStreamIds("11-0", "10-99"), 0);
  EXPECT_LT(CompareStreamIds("", "0-0"), 0);
  EXPECT_LT(CompareStreamIds("x-1", "0-1"), 0);
}

TEST_F(SemanticReplicationTest, InsertOnOneReplicaIsASemanticHitOnTheOther) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  a->embedder->Set("how do I reset my password", a->embedder->AtCosine(1.0));
  b->embedder->Set("how can I reset my password", b->embedder->AtCosine(0.95));
  ASSERT_TRUE(a->Put("how do I reset my password", "exact-1").ok());
  ASSERT_TRUE(WaitFor([&] { return b->cache->Stats().indexed == 1; }, 5000))
      << "A's entry never reached B's index";
  // B took A's vector (same embedder) instead of embedding the question.
  EXPECT_EQ(b->embedder->calls(), 0);
  EXPECT_EQ(b->HitKey("how can I reset my password"), "exact-1");

  ASSERT_TRUE(b->Put("where is the cafeteria", "exact-2").ok());
  EXPECT_TRUE(WaitFor([&] { return a->HitKey("where is the cafeteria") == "exact-2"; }, 5000));

  // Each applied the other's change once and never its own.
  const auto sa = a->cache->Stats(), sb = b->cache->Stats();
  EXPECT_TRUE(sa.replicated);
  EXPECT_EQ(sa.replication_appended, 1u);
  EXPECT_EQ(sa.replication_applied, 1u);
  EXPECT_EQ(sb.replication_applied, 1u);
  EXPECT_EQ(sa.entries, 2u);
  EXPECT_EQ(sb.entries, 2u);
  EXPECT_EQ(sa.replication_gaps + sb.replication_gaps, 0u);
}

TEST_F(SemanticReplicationTest, InvalidationOnOneReplicaRemovesTheEntryOnTheOther) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Put("how many vacation days do I get", "k-vacation", {"handbook-v1"}).ok());
  ASSERT_TRUE(a->Put("where is the cafeteria", "k-cafeteria").ok());
  ASSERT_TRUE(WaitFor([&] { return b->cache->Stats().entries == 2; }, 5000));

  // B knows the document through A's entry, and names A's key.
  auto keys = b->cache->InvalidateDoc("handbook-v1");
  ASSERT_TRUE(keys);
  EXPECT_EQ(*keys, std::vector<std::string>{"k-vacation"});
  ASSERT_TRUE(WaitFor([&] { return a->cache->Stats().entries == 1; }, 5000))
      << "A kept the invalidated entry";
  EXPECT_EQ(a->HitKey("how many vacation days do I get"), "");
  EXPECT_EQ(a->HitKey("where is the cafeteria"), "k-cafeteria");
  // A's listener heard of the key so the gateway can drop it from memory;
  // B's own invalidation is not reported to B's listener.
  EXPECT_EQ(a->Removed(), std::vector<std::string>{"k-vacation"});
  EXPECT_TRUE(b->Removed().empty());

  // Erase travels too.
  ASSERT_TRUE(b->cache->Erase("k-cafeteria").ok());
  EXPECT_TRUE(WaitFor([&] { return a->cache->Stats().entries == 0; }, 5000));
}

TEST_F(SemanticReplicationTest, RestartedReplicaCatchesUpFromItsSavedPosition) {
  const std::string dir = Dir("a");
  auto b = Open();
  ASSERT_TRUE(b);
  {
    auto a = Open(dir);
    ASSERT_TRUE(a);
    ASSERT_TRUE(b->Put("first question here", "k1").ok());
    ASSERT_TRUE(WaitFor([&] { return a->cache->Stats().entries == 1; }, 5000));
    ASSERT_TRUE(a->cache->Checkpoint().ok());
  }
  EXPECT_TRUE(fs::exists(fs::path(dir) / "stream.pos"));
  // While A is down, B changes things.
  ASSERT_TRUE(b->Put("second question here", "k2").ok());
  ASSERT_TRUE(b->Put("third question here", "k3", {"doc-3"}).ok());
  ASSERT_TRUE(b->cache->InvalidateDoc("doc-3"));
  ASSERT_TRUE(WaitFor([&] { return b->cache->Stats().replication_appended == 4; }, 5000));

  auto a = Open(dir);
  ASSERT_TRUE(a);
  // The constructor waited for the catch-up: k1 from A's own entries, k2
  // from the stream, k3 inserted and invalidated; only what came after the
  // saved position was applied.
  EXPECT_EQ(a->cache->Stats().entries, 2u);
  EXPECT_EQ(a->HitKey("first question here"), "k1");
  EXPECT_EQ(a->HitKey("second question here"), "k2");
  EXPECT_EQ(a->HitKey("third question here"), "");
  EXPECT_EQ(a->cache->Stats().replication_applied, 3u);
  EXPECT_EQ(a->cache->Stats().replication_gaps, 0u);
}

TEST_F(SemanticReplicationTest, TrimmedPastTheSavedPositionIsAGapThatKeepsLocalEntries) {
  const std::string dir = Dir("a");
  auto b = Open();
  ASSERT_TRUE(b);
  {
    auto a = Open(dir);
    ASSERT_TRUE(a);
    ASSERT_TRUE(a->Put("local question here", "k-local").ok());
    ASSERT_TRUE(b->Put("seen question here", "k-seen").ok());
    ASSERT_TRUE(WaitFor([&] { return a->cache->Stats().entries == 2; }, 5000));
    ASSERT_TRUE(a->cache->Checkpoint().ok());
  }
  ASSERT_TRUE(b->Put("lost question here", "k-lost").ok());
  ASSERT_TRUE(WaitFor([&] { return b->cache->Stats().replication_appended == 2; }, 5000));
  // Everything so far is trimmed away (as a small MAXLEN would), then one
  // more change arrives.
  auto trimmed = redis_->Call({"XTRIM", kStream, "MAXLEN", "0"});
  ASSERT_TRUE(trimmed && trimmed->type == REDIS_REPLY_INTEGER) << store_test::ReplyText(trimmed);
  ASSERT_GE(trimmed->integer, 3);
  ASSERT_TRUE(b->Put("after the gap here", "k-after").ok());
  ASSERT_TRUE(WaitFor([&] { return b->cache->Stats().replication_appended == 3; }, 5000));

  auto a = Open(dir);
  ASSERT_TRUE(a);
  EXPECT_TRUE(WaitFor([&] { return a->HitKey("after the gap here") == "k-after"; }, 5000));
  const auto s = a->cache->Stats();
  EXPECT_EQ(s.replication_gaps, 1u);
  EXPECT_EQ(a->HitKey("local question here"), "k-local");
  EXPECT_EQ(a->HitKey("seen question here"), "k-seen");
  EXPECT_EQ(a->HitKey("lost question here"), "") << "a trimmed change cannot be applied";
}

TEST_F(SemanticReplicationTest, VanishedStreamIsAGapAndSharingGoesOn) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(b->Put("before the flush here", "k-before").ok());
  ASSERT_TRUE(WaitFor([&] { return a->cache->Stats().entries == 1; }, 5000));
  auto flushed = redis_->Call({"FLUSHALL"});
  ASSERT_TRUE(flushed && flushed->type == REDIS_REPLY_STATUS);
  ASSERT_TRUE(b->Put("after the flush here", "k-after").ok());
  EXPECT_TRUE(WaitFor([&] { return a->HitKey("after the flush here") == "k-after"; }, 5000));
  EXPECT_EQ(a->HitKey("before the flush here"), "k-before") << "local entries are kept";
  EXPECT_GE(a->cache->Stats().replication_gaps, 1u);
}

TEST_F(SemanticReplicationTest, ForeignRecordsAreSkippedAndCounted) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  for (const auto& fields : std::vector<std::vector<std::string>>{
           {"o", "someone", "k", "insert", "e", "not an entry", "m", "fake", "u", "0"},
           {"o", "someone", "k", "drop-everything"},
           {"garbage", "1"}}) {
    std::vector<std::string> argv = {"XADD", kStream, "*"};
    argv.insert(argv.end(), fields.begin(), fields.end());
    auto r = redis_->Call(argv);
    ASSERT_TRUE(r && r->type == REDIS_REPLY_STRING) << store_test::ReplyText(r);
  }
  ASSERT_TRUE(b->Put("a real question here", "k-real").ok());
  EXPECT_TRUE(WaitFor([&] { return a->HitKey("a real question here") == "k-real"; }, 5000));
  EXPECT_EQ(a->cache->Stats().replication_errors, 3u);
  EXPECT_EQ(a->cache->Stats().entries, 1u);
}

TEST_F(SemanticReplicationTest, AnotherEmbedderReembedsInsteadOfMixingVectors) {
  auto a = Open(), b = Open("", 1000, "fake-other");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Put("how do I reset my password", "k1").ok());
  ASSERT_TRUE(WaitFor([&] { return b->cache->Stats().indexed == 1; }, 5000));
  EXPECT_EQ(b->embedder->calls(), 1) << "B must embed A's question with its own model";
  EXPECT_EQ(b->HitKey("how do I reset my password"), "k1");
}

TEST_F(SemanticReplicationTest, DeadRedisLeavesEachCacheLocalUntilItReturns) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  redis_->Kill();
  // Calls never wait for the log: the local cache serves at once.
  ASSERT_TRUE(a->Put("asked while redis was down", "k-down").ok());
  EXPECT_EQ(a->HitKey("asked while redis was down"), "k-down");
  // The log reports itself down as soon as a call fails, a moment before the
  // failing loop counts its error: wait for both.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto s = a->cache->Stats();
        return s.replication_degraded && s.replication_errors > 0;
      },
      5000));
  EXPECT_GT(a->cache->Stats().replication_errors, 0u);

  // Back (empty, on the same port): the queued change is appended and B,
  // which lost its place with the old stream, reads it.
  ASSERT_TRUE(redis_->Restart());
  EXPECT_TRUE(WaitFor([&] { return b->HitKey("asked while redis was down") == "k-down"; }, 10000))
      << "the change made while Redis was down never reached B";
  EXPECT_TRUE(WaitFor([&] { return !a->cache->Stats().replication_degraded; }, 5000));
  EXPECT_EQ(a->cache->Stats().replication_dropped, 0u);
}

// What /healthz shows: the stream's name and which of reading and
// appending fails, for as long as it does, and nothing once it recovers.
TEST_F(SemanticReplicationTest, DegradedStatsNameTheStreamAndTheFailureUntilItRecovers) {
  auto a = Open();
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->cache->Stats().replication_degraded);
  EXPECT_EQ(a->cache->Stats().replication_detail, "");
  redis_->Kill();
  ASSERT_TRUE(a->Put("asked while redis was down", "k-down").ok());
  std::string detail;
  EXPECT_TRUE(WaitFor(
      [&] {
        const auto s = a->cache->Stats();
        detail = s.replication_detail;
        return s.replication_degraded && detail.find("cannot read") != std::string::npos &&
               detail.find("cannot append") != std::string::npos;
      },
      5000))
      << detail;
  EXPECT_EQ(detail.rfind(std::string(kStream) + ":", 0), 0u) << detail;
  EXPECT_NE(detail.find("1 changes waiting"), std::string::npos) << detail;

  ASSERT_TRUE(redis_->Restart());
  EXPECT_TRUE(WaitFor(
      [&] {
        const auto s = a->cache->Stats();
        return !s.replication_degraded && s.replication_detail.empty();
      },
      10000))
      << a->cache->Stats().replication_detail;
}

TEST_F(SemanticReplicationTest, UnreachableRedisAtStartDoesNotHoldUpTheCache) {
  redis_->Kill();
  auto a = Open();
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->Put("local only question", "k").ok());
  EXPECT_EQ(a->HitKey("local only question"), "k");
}

}  // namespace
}  // namespace llmcache::semantic
