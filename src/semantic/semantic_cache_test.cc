#include "semantic/semantic_cache.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "semantic/semantic_cache_test_util.h"

namespace llmcache::semantic {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::FakeEmbedder;
using testing::FlatTestIndex;
using testing::ScriptedGuard;
using testing::ScriptedVerifier;

json::value Chat(std::string_view user, std::string_view system = "be brief") {
  json::object o;
  o["model"] = "m";
  json::array msgs;
  msgs.push_back(json::object{{"role", "system"}, {"content", system}});
  msgs.push_back(json::object{{"role", "user"}, {"content", user}});
  o["messages"] = std::move(msgs);
  return o;
}

class SemanticCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    embedder_ = std::make_shared<FakeEmbedder>();
    clock_ = std::make_shared<ManualClock>();
    options_.embedder = embedder_;
    options_.clock = clock_;
    options_.thresholds = {true, 0.85, 0.90};
    options_.short_query_words = 2;
    testing::UseFlatTestIndex(&options_);
    // Named questions sit at known cosines to "cached question one".
    embedder_->Set("cached question one", embedder_->AtCosine(1.0));
    embedder_->Set("close paraphrase here", embedder_->AtCosine(0.95, 1));
    embedder_->Set("grey band paraphrase", embedder_->AtCosine(0.80, 2));
    embedder_->Set("far away question", embedder_->AtCosine(0.30, 3));
    embedder_->Set("short one", embedder_->AtCosine(0.88, 4));
    dir_ = fs::path(::testing::TempDir()) /
           ("semcache-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<SemanticCache> Open() {
    auto c = OpenSemanticCache(options_);
    EXPECT_TRUE(c) << c.error().ToString();
    return c ? std::move(*c) : nullptr;
  }
  SemanticQuery Q(SemanticCache& c, std::string_view user, std::string_view ns = "t",
                  std::string_view system = "be brief", std::string_view rev = "") {
    return c.Prepare(Chat(user, system), SemanticKey{ns, "m", rev, Route::kChat});
  }
  void Put(SemanticCache& c, std::string_view user, std::string_view key,
           std::vector<std::string> docs = {}, std::string_view ns = "t") {
    SemanticQuery q = Q(c, user, ns);
    ASSERT_TRUE(c.Insert(&q, key, docs).ok());
  }
  SemanticLookup Get(SemanticCache& c, std::string_view user, std::string_view ns = "t") {
    SemanticQuery q = Q(c, user, ns);
    return c.Lookup(&q);
  }

  std::shared_ptr<FakeEmbedder> embedder_;
  std::shared_ptr<ManualClock> clock_;
  SemanticCacheOptions options_;
  fs::path dir_;
};

TEST_F(SemanticCacheTest, ParaphraseInSameContextHits) {
  auto c = Open();
  Put(*c, "cached question one", "key1");
  SemanticLookup r = Get(*c, "close paraphrase here");
  ASSERT_TRUE(r.hit) << r.reason;
  EXPECT_EQ(r.hit->exact_key, "key1");
  EXPECT_NEAR(r.hit->similarity, 0.95, 1e-4);
  EXPECT_FALSE(r.hit->verified);
  SemanticCacheStats s = c->Stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.indexed, 1u);
  EXPECT_EQ(s.hit_similarity_buckets[8] + s.hit_similarity_buckets[9], 1u);  // 0.95
}

TEST_F(SemanticCacheTest, OtherContextNeverHits) {
  auto c = Open();
  Put(*c, "cached question one", "key1");
  SemanticQuery other_system = Q(*c, "close paraphrase here", "t", "be verbose");
  EXPECT_EQ(c->Lookup(&other_system).reason, "no_candidate");
  EXPECT_EQ(Get(*c, "close paraphrase here", "other-ns").reason, "no_candidate");
  SemanticQuery other_rev = Q(*c, "close paraphrase here", "t", "be brief", "rev2");
  EXPECT_FALSE(c->Lookup(&other_rev).hit);
  // Earlier turns are context too.
  json::value v = Chat("close paraphrase here");
  v.as_object()["messages"].as_array().emplace(
      v.as_object()["messages"].as_array().begin() + 1,
      json::object{{"role", "user"}, {"content", "earlier"}});
  SemanticQuery multi = c->Prepare(v, SemanticKey{"t", "m", "", Route::kChat});
  EXPECT_FALSE(c->Lookup(&multi).hit);
}

TEST_F(SemanticCacheTest, ThresholdsAndShortQueries) {
  auto c = Open();
  Put(*c, "cached question one", "key1");
  EXPECT_EQ(Get(*c, "grey band paraphrase").reason, "below_threshold");
  EXPECT_EQ(Get(*c, "far away question").reason, "below_threshold");
  // 0.88 passes 0.85 but "short one" (2 words) needs 0.90.
  EXPECT_EQ(Get(*c, "short one").reason, "below_threshold");
  options_.namespace_thresholds["loose"] = {true, 0.75, 0.85};
  auto loose = Open();
  Put(*loose, "cached question one", "key1", {}, "loose");
  EXPECT_TRUE(Get(*loose, "short one", "loose").hit);
  EXPECT_TRUE(Get(*loose, "grey band paraphrase", "loose").hit);
  EXPECT_EQ(c->Stats().refusals.at("below_threshold"), 3u);
}

// Per-tenant namespaces ("name@" + 32 hex digits of the credential) keep
// their entries apart but take the settings of the configured name.
TEST_F(SemanticCacheTest, TenantNamespacesUseTheirConfiguredSettings) {
  const std::string tenant = "strict@" + std::string(32, 'a');
  const std::string other_tenant = "strict@" + std::string(32, 'b');
  options_.namespace_thresholds["strict"] = {false, 0.85, 0.90};  // semantic off
  options_.namespace_thresholds["loose"] = {true, 0.75, 0.85};
  auto c = Open();
  Put(*c, "cached question one", "key1", {}, tenant);
  EXPECT_FALSE(Get(*c, "close paraphrase here", tenant).hit);
  const std::string loose = "loose@" + std::string(32, 'c');
  Put(*c, "cached question one", "key2", {}, loose);
  EXPECT_TRUE(Get(*c, "short one", loose).hit);  // 0.88 passes loose's 0.85
  EXPECT_FALSE(Get(*c, "short one", "loose@" + std::string(32, 'd')).hit);  // another tenant
  EXPECT_EQ(ConfiguredNamespace(tenant), "strict");
  EXPECT_EQ(ConfiguredNamespace(other_tenant), "strict");
  EXPECT_EQ(ConfiguredNamespace("strict@short"), "strict@short");
  EXPECT_EQ(ConfiguredNamespace("plain"), "plain");
}

TEST_F(SemanticCacheTest, GuardRefusalIsHonoured) {
  auto guard = std::make_shared<ScriptedGuard>();
  guard->refuse = [](std::string_view q, std::string_view c) -> std::string {
    return q == "close paraphrase here" ? "entity" : "";
  };
  options_.guard = guard;
  auto c = Open();
  Put(*c, "cached question one", "key1");
  SemanticLookup r = Get(*c, "close paraphrase here");
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.reason, "guard_entity");
  ASSERT_EQ(r.refused.size(), 1u);
  EXPECT_EQ(c->Stats().refusals.at("guard_entity"), 1u);
  SemanticLookupOverrides no_guard;
  no_guard.use_guard = false;
  SemanticQuery q = Q(*c, "close paraphrase here");
  EXPECT_TRUE(c->Lookup(&q, no_guard).hit);
}

// A loose guard pass (an inserted word, an embedding-matched word) must clear
// the threshold plus the guard's raise.
TEST_F(SemanticCacheTest, LooseGuardPassNeedsMoreSimilarity) {
  auto guard = std::make_shared<ScriptedGuard>();
  guard->threshold_raise = 0.05;  // 0.95 >= 0.85 + 0.05
  options_.guard = guard;
  auto c = Open();
  Put(*c, "cached question one", "key1");
  EXPECT_TRUE(Get(*c, "close paraphrase here").hit);
  guard->threshold_raise = 0.12;  // 0.95 < 0.85 + 0.12
  SemanticLookup r = Get(*c, "close paraphrase here");
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.reason, "guard_loose");
}

TEST_F(SemanticCacheTest, GuardTriesTheNextCandidate) {
  auto guard = std::make_shared<ScriptedGuard>();
  guard->refuse = [](std::string_view, std::string_view c) -> std::string {
    return c == "cached question one" ? "number" : "";
  };
  options_.guard = guard;
  embedder_->Set("second cached", embedder_->AtCosine(0.99, 1));
  auto c = Open();
  Put(*c, "cached question one", "key1");
  Put(*c, "second cached", "key2");
  SemanticLookup r = Get(*c, "close paraphrase here");
  ASSERT_TRUE(r.hit);
  EXPECT_EQ(r.hit->exact_key, "key2");
}

TEST_F(SemanticCacheTest, UnrepresentableQueriesAreExactOnly) {
  embedder_->Set("有給休暇の申請方法", embedder_->AtCosine(0.99, 5));
  auto c = Open();
  Put(*c, "cached question one", "key1");
  SemanticLookup r = Get(*c, "有給休暇の申請方法");
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.reason, "unrepresentable");
  // Nor do such questions join the index; their documents are tracked.
  Put(*c, "有給休暇の申請方法", "ja-key", {"d"});
  EXPECT_EQ(c->Stats().entries, 2u);
  EXPECT_EQ(c->Stats().indexed, 1u);
  EXPECT_EQ(*c->InvalidateDoc("d"), std::vector<std::string>{"ja-key"});

  // With a verifier and the option on, a "yes" may admit them.
  auto verifier = std::make_shared<ScriptedVerifier>();
  verifier->answer = [](std::string_view, std::string_view) { return Result<bool>(true); };
  options_.verifier = verifier;
  options_.verify_unrepresentable = true;
  auto v = Open();
  Put(*v, "cached question one", "key1");
  r = Get(*v, "有給休暇の申請方法");
  ASSERT_TRUE(r.hit) << r.reason;
  EXPECT_TRUE(r.hit->verified);
  EXPECT_EQ(verifier->calls, 1);
}

TEST_F(SemanticCacheTest, GreyBandAsksTheVerifierOncePerPair) {
  auto verifier = std::make_shared<ScriptedVerifier>();
  verifier->answer = [](std::string_view q, std::string_view) {
    return Result<bool>(q == "grey band paraphrase");
  };
  options_.verifier = verifier;
  options_.grey_band = 0.10;
  embedder_->Set("another grey one", embedder_->AtCosine(0.80, 6));
  embedder_->Set("broken verifier", embedder_->AtCosine(0.80, 7));
  auto c = Open();
  Put(*c, "cached question one", "key1");
  SemanticLookup r = Get(*c, "grey band paraphrase");
  ASSERT_TRUE(r.hit) << r.reason;
  EXPECT_TRUE(r.hit->verified);
  EXPECT_TRUE(Get(*c, "grey band paraphrase").hit);
  EXPECT_EQ(verifier->calls, 1);  // the second answer came from the memo
  EXPECT_EQ(Get(*c, "another grey one").reason, "verifier");
  EXPECT_EQ(Get(*c, "far away question").reason, "below_threshold");  // below the band
  EXPECT_EQ(verifier->calls, 2);
  verifier->answer = [](std::string_view, std::string_view) {
    return Result<bool>(Err(Status::Timeout("slow")));
  };
  EXPECT_EQ(Get(*c, "broken verifier").reason, "verifier_error");
  SemanticCacheStats s = c->Stats();
  EXPECT_EQ(s.verified_hits, 2u);
  EXPECT_EQ(s.verifier_cache_hits, 1u);
}

TEST_F(SemanticCacheTest, VerifierOutcomesTeachTheEntryItsThreshold) {
  auto verifier = std::make_shared<ScriptedVerifier>();
  verifier->answer = [](std::string_view, std::string_view) { return Result<bool>(true); };
  options_.verifier = verifier;
  options_.grey_band = 0.10;
  options_.target_error_rate = 0.03;  // lowering needs 4 agreeing outcomes
  auto c = Open();
  Put(*c, "cached question one", "key1");
  for (int i = 0; i < 4; ++i) {
    std::string text = "learned paraphrase " + std::to_string(i);
    embedder_->Set(text, embedder_->AtCosine(0.82, 8 + i));
    SemanticLookup r = Get(*c, text);
    ASSERT_TRUE(r.hit);
    EXPECT_TRUE(r.hit->verified);
  }
  EXPECT_EQ(verifier->calls, 4);
  embedder_->Set("fifth paraphrase", embedder_->AtCosine(0.83, 12));
  SemanticLookup r = Get(*c, "fifth paraphrase");
  ASSERT_TRUE(r.hit);
  EXPECT_FALSE(r.hit->verified);  // accepted on the learned threshold
  EXPECT_EQ(verifier->calls, 4);

  // Exploration verifies even accepted candidates; a "no" refuses.
  verifier->answer = [](std::string_view q, std::string_view) {
    return Result<bool>(q != "a no at 0.90");
  };
  options_.explore_rate = 1.0;
  auto e = Open();
  Put(*e, "cached question one", "key1");
  embedder_->Set("a no at 0.90", embedder_->AtCosine(0.90, 13));
  EXPECT_EQ(Get(*e, "a no at 0.90").reason, "verifier");
}

TEST_F(SemanticCacheTest, EmbedderFailureIsAMissAndStillTracksDocuments) {
  auto c = Open();
  Put(*c, "cached question one", "key1");
  embedder_->Fail(true);
  EXPECT_EQ(Get(*c, "close paraphrase here").reason, "embedder_error");
  Put(*c, "close paraphrase here", "key2", {"doc"});
  auto keys = c->InvalidateDoc("doc");
  ASSERT_TRUE(keys);
  EXPECT_EQ(*keys, std::vector<std::string>{"key2"});
}

TEST_F(SemanticCacheTest, InvalidationReturnsEveryKeyBuiltOnTheDocument) {
  auto c = Open();
  Put(*c, "cached question one", "a", {"d1"});
  Put(*c, "second question", "b", {"d1", "d2"});
  Put(*c, "third question", "c", {"d2"});
  // Not semantically matchable (an image part), but built on d1.
  json::value img = json::parse(
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})");
  SemanticQuery iq = c->Prepare(img, SemanticKey{"t", "m", "", Route::kChat});
  ASSERT_FALSE(iq.eligible);
  std::vector<std::string> d1 = {"d1"};
  ASSERT_TRUE(c->Insert(&iq, "img", d1).ok());
  SemanticQuery completion = c->Prepare(json::parse(R"({"model":"m","prompt":"x"})"),
                                        SemanticKey{"t", "m", "", Route::kCompletions});
  ASSERT_TRUE(c->Insert(&completion, "cmpl", d1).ok());

  auto keys = c->InvalidateDoc("d1");
  ASSERT_TRUE(keys);
  std::sort(keys->begin(), keys->end());
  EXPECT_EQ(*keys, (std::vector<std::string>{"a", "b", "cmpl", "img"}));
  EXPECT_FALSE(Get(*c, "close paraphrase here").hit);
  EXPECT_EQ(*c->InvalidateDoc("d2"), std::vector<std::string>{"c"});
  EXPECT_TRUE(c->InvalidateDoc("d1")->empty());
  EXPECT_EQ(c->Stats().entries, 0u);
  EXPECT_EQ(c->Stats().invalidations, 5u);
}

TEST_F(SemanticCacheTest, EraseAndReplaceByExactKey) {
  auto c = Open();
  Put(*c, "cached question one", "key1", {"d1"});
  Put(*c, "far away question", "key1", {"d2"});  // same exact key: replaces
  EXPECT_EQ(c->Stats().entries, 1u);
  EXPECT_TRUE(c->InvalidateDoc("d1")->empty());
  ASSERT_TRUE(c->Erase("key1").ok());
  EXPECT_EQ(c->Stats().entries, 0u);
  EXPECT_EQ(c->Stats().indexed, 0u);
  EXPECT_TRUE(c->Erase("missing").ok());
}

TEST_F(SemanticCacheTest, TtlPresetsExpireEntries) {
  auto c = Open();
  EXPECT_EQ(c->TtlFor("faq"), 7LL * 24 * 3600 * 1000);
  EXPECT_EQ(c->TtlFor("news"), 2LL * 3600 * 1000);
  EXPECT_EQ(c->TtlFor("anything"), 24LL * 3600 * 1000);
  Put(*c, "cached question one", "news1", {"d"}, "news");
  Put(*c, "cached question one", "faq1", {}, "faq");
  clock_->Advance(2LL * 3600 * 1000 - 1);
  EXPECT_TRUE(Get(*c, "close paraphrase here", "news").hit);
  clock_->Advance(1);
  EXPECT_FALSE(Get(*c, "close paraphrase here", "news").hit);
  EXPECT_TRUE(Get(*c, "close paraphrase here", "faq").hit);
  auto m = c->Maintain();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->expired, 1u);
  EXPECT_EQ(m->erase_exact_keys, std::vector<std::string>{"news1"});  // doc-bound
  EXPECT_EQ(c->Stats().entries, 1u);
}

TEST_F(SemanticCacheTest, LeastRecentlyHitIsEvicted) {
  options_.max_entries = 2;
  embedder_->Set("b question", embedder_->AtCosine(0.0, 1));
  embedder_->Set("b paraphrase", embedder_->AtCosine(0.0, 1));
  auto c = Open();
  Put(*c, "cached question one", "a");
  clock_->Advance(10);
  Put(*c, "b question", "b", {"doc"});
  clock_->Advance(10);
  ASSERT_TRUE(Get(*c, "close paraphrase here").hit);  // a is now the most recent
  clock_->Advance(10);
  Put(*c, "third question", "c");
  EXPECT_EQ(c->Stats().entries, 2u);
  EXPECT_EQ(c->Stats().evictions, 1u);
  EXPECT_FALSE(Get(*c, "b paraphrase").hit);
  EXPECT_TRUE(Get(*c, "close paraphrase here").hit);
  auto m = c->Maintain();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->erase_exact_keys, std::vector<std::string>{"b"});
}

TEST_F(SemanticCacheTest, ReloadsTheSnapshotAfterACheckpoint) {
  options_.data_dir = dir_.string();
  {
    auto c = Open();
    Put(*c, "cached question one", "key1", {"d1"});
    Put(*c, "far away question", "key2");
    ASSERT_TRUE(Get(*c, "close paraphrase here").hit);
    ASSERT_TRUE(c->Checkpoint().ok());
  }
  int loads = FlatTestIndex::loads;
  auto c = Open();
  EXPECT_EQ(FlatTestIndex::loads, loads + 1);
  SemanticLookup r = Get(*c, "close paraphrase here");
  ASSERT_TRUE(r.hit);
  EXPECT_EQ(r.hit->exact_key, "key1");
  EXPECT_EQ(c->Stats().entries, 2u);
  EXPECT_EQ(*c->InvalidateDoc("d1"), std::vector<std::string>{"key1"});
  // Ids keep growing across restarts.
  Put(*c, "third question", "key3");
  EXPECT_EQ(c->Stats().entries, 2u);
}

TEST_F(SemanticCacheTest, RebuildsAfterAnUncleanShutdown) {
  options_.data_dir = dir_.string();
  {
    auto c = Open();
    Put(*c, "cached question one", "key1");
    ASSERT_TRUE(c->Checkpoint().ok());
    Put(*c, "far away question", "key2");  // after the snapshot: it is stale now
  }
  int loads = FlatTestIndex::loads;
  auto c = Open();
  EXPECT_EQ(FlatTestIndex::loads, loads);  // rebuilt from the entries
  EXPECT_EQ(c->Stats().indexed, 2u);
  EXPECT_TRUE(Get(*c, "close paraphrase here").hit);
}

TEST_F(SemanticCacheTest, CorruptSnapshotIsRebuilt) {
  options_.data_dir = dir_.string();
  {
    auto c = Open();
    Put(*c, "cached question one", "key1");
    ASSERT_TRUE(c->Checkpoint().ok());
  }
  {
    std::fstream f(dir_ / kIndexSnapshotName, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2);
    f.put('#');
  }
  auto c = Open();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Stats().indexed, 1u);
  SemanticLookup r = Get(*c, "close paraphrase here");
  ASSERT_TRUE(r.hit) << r.reason;
  EXPECT_EQ(r.hit->exact_key, "key1");
}

TEST_F(SemanticCacheTest, EmbedderChangeReembedsNeverMixes) {
  options_.data_dir = dir_.string();
  {
    auto c = Open();
    Put(*c, "cached question one", "key1");
    Put(*c, "paid leave request", "key2", {"d"});
    ASSERT_TRUE(c->Checkpoint().ok());
  }
  auto wide = std::make_shared<FakeEmbedder>(32, "fake-wide");
  options_.embedder = wide;
  int loads = FlatTestIndex::loads;
  auto c = Open();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(FlatTestIndex::loads, loads);  // the old snapshot is not used
  EXPECT_EQ(c->Stats().indexed, 2u);
  EXPECT_GE(wide->calls(), 1);
  // Bag of words under the new embedder: the same text is found again.
  SemanticLookup r = Get(*c, "paid leave request");
  ASSERT_TRUE(r.hit) << r.reason;
  EXPECT_EQ(r.hit->exact_key, "key2");
  EXPECT_NEAR(r.hit->similarity, 1.0, 1e-5);
}

TEST_F(SemanticCacheTest, ConcurrentUseIsSafe) {
  auto c = Open();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string text = "question " + std::to_string(i % 20) + " from " + std::to_string(t);
        SemanticQuery q = Q(*c, text);
        if (!c->Lookup(&q).hit) (void)c->Insert(&q, text, std::vector<std::string>{"d"});
        if (i % 50 == 0) (void)c->Maintain();
      }
    });
  }
  for (auto& th : threads) th.join();
  const uint64_t entries = c->Stats().entries;
  EXPECT_GT(entries, 0u);
  EXPECT_LE(entries, 80u);
  EXPECT_EQ(c->InvalidateDoc("d")->size(), entries);
}

}  // namespace
}  // namespace llmcache::semantic
