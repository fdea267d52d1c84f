#include "semantic/eval.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "semantic/calibrate.h"
#include "semantic/semantic_cache_test_util.h"
#include "semantic/use_lite.h"

namespace llmcache::semantic {
namespace {

using testing::FakeEmbedder;

std::vector<EvalItem> TinySet() {
  return {
      {"paid leave apply", "paid", "leave", "en"},
      {"paid leave apply how", "paid", "leave", "en"},
      {"paid leave apply now", "paid", "leave", "en"},
      {"sick leave apply", "sick", "leave", "en"},
      {"sick leave apply how", "sick", "leave", "en"},
      {"reset my password", "pw", "pw", "en"},
      {"reset my password please", "pw", "pw", "en"},
      {"有給休暇の申請", "paid", "leave", "ja"},
  };
}

TEST(Eval, CountsTrueAndFalseHitsPerLanguage) {
  auto embedder = std::make_shared<FakeEmbedder>(64);
  EvalOptions o;
  o.cache.embedder = embedder;
  testing::UseFlatTestIndex(&o.cache);
  o.thresholds = {0.5, 0.99};
  o.holdout_fraction = 0.5;
  auto report = RunEval(TinySet(), o);
  ASSERT_TRUE(report) << report.error().ToString();
  EXPECT_EQ(report->intents, 3u);
  // "leave" has two intents: exactly one held out; "pw" alone is never held
  // out at 0.5 or may be, but never both leave intents.
  EXPECT_GE(report->held_out_intents, 1u);
  EXPECT_LE(report->held_out_intents, 2u);
  ASSERT_FALSE(report->rows.empty());
  EXPECT_EQ(report->rows.front().lang, "all");
  size_t rows_all = 0;
  for (const EvalRow& r : report->rows) {
    EXPECT_LE(r.true_hits, r.paraphrase_queries);
    EXPECT_LE(r.true_hits + r.false_hits, r.queries);
    if (r.lang == "ja") {
      EXPECT_EQ(r.true_hits + r.false_hits, 0u);  // unrepresentable
    }
    if (r.lang == "all") ++rows_all;
    if (r.lang == "all" && r.threshold == 0.5) {
      // Bag of words at 0.5: paraphrases share most words, so some hit; the
      // held-out sibling shares "leave apply" and hits falsely.
      EXPECT_GT(r.true_hits, 0u);
      EXPECT_GT(r.false_hits, 0u);
    }
  }
  EXPECT_EQ(rows_all, 2u);  // one mode (no guard) x two thresholds
  std::string md = EvalMarkdown(*report);
  EXPECT_NE(md.find("| all | cosine | 0.500 |"), std::string::npos) << md;
}

TEST(Eval, LoadsTheSetAndNamesBadLines) {
  auto path = std::filesystem::path(::testing::TempDir()) / "eval_set.jsonl";
  {
    std::ofstream f(path);
    f << R"({"text":"a","intent":"i","family":"f","lang":"en"})"
      << "\n\n{bad}\n";
  }
  auto r = LoadEvalSet(path.string());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find(":3:"), std::string::npos);
  EXPECT_FALSE(LoadEvalSet("/nonexistent/set.jsonl"));
}

TEST(Calibrate, PicksTheLowestThresholdWithinTheTarget) {
  auto embedder = std::make_shared<FakeEmbedder>(8);
  std::vector<LabelledPair> pairs;
  auto add = [&](double cos, bool same, const std::string& a_text) {
    std::string a = a_text + std::to_string(pairs.size());
    std::string b = "b" + std::to_string(pairs.size());
    embedder->Set(a, embedder->AtCosine(1.0));
    embedder->Set(b, embedder->AtCosine(cos, 1));
    pairs.push_back({a, b, same, "en", ""});
  };
  for (int i = 0; i < 10; ++i) add(0.95, true, "one two three four five six ");
  for (int i = 0; i < 10; ++i) add(0.70, true, "one two three four five six ");
  for (int i = 0; i < 10; ++i) add(0.80, false, "one two three four five six ");
  add(0.92, false, "short ");  // a short negative: only the short θ moves above it
  CalibrateOptions o;
  o.embedder = embedder;
  o.max_false_hit = 0.0;
  auto c = Calibrate(pairs, o);
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_TRUE(c->feasible);
  EXPECT_NEAR(c->threshold, 0.93, 1e-9);  // above both negatives
  EXPECT_NEAR(c->short_threshold, 0.93, 1e-9);
  o.max_false_hit = 0.10;  // 1 of 11 negatives may pass
  c = Calibrate(pairs, o);
  EXPECT_NEAR(c->threshold, 0.81, 1e-9);
  EXPECT_NEAR(c->short_threshold, 0.93, 1e-9);  // the short set has one negative
  EXPECT_NE(CalibrationMarkdown(*c, o).find("--semantic-threshold 0.81"), std::string::npos);
}

TEST(Eval, SplitsByFamilyIntoTwoFixedHalves) {
  std::vector<EvalItem> items;
  for (int f = 0; f < 40; ++f) {
    for (int i = 0; i < 3; ++i) {
      items.push_back({"q" + std::to_string(f) + "." + std::to_string(i),
                       "intent" + std::to_string(f), "family" + std::to_string(f), "en"});
    }
  }
  auto tune = SplitEvalSet(items, "tune");
  auto test = SplitEvalSet(items, "test");
  ASSERT_TRUE(tune && test);
  EXPECT_EQ(tune->size() + test->size(), items.size());
  // Both halves are used, and a family never straddles them.
  EXPECT_GT(tune->size(), items.size() / 4);
  EXPECT_GT(test->size(), items.size() / 4);
  for (const EvalItem& it : *tune) {
    EXPECT_TRUE(InTuningHalf(it.family));
    for (const EvalItem& other : *test) EXPECT_NE(it.family, other.family);
  }
  // Fixed: the same family lands in the same half on every run.
  EXPECT_EQ(InTuningHalf("leave.apply"), InTuningHalf(std::string("leave.") + "apply"));
  EXPECT_EQ(SplitEvalSet(items, "")->size(), items.size());
  EXPECT_FALSE(SplitEvalSet(items, "train"));
}

TEST(Eval, WordEmbedderOnlyForUseLite) {
  auto fake = std::make_shared<FakeEmbedder>(8);
  EXPECT_EQ(WordEmbedderFor(fake), nullptr);
  EXPECT_EQ(WordEmbedderFor(nullptr), nullptr);
  auto use_lite = std::make_shared<FakeEmbedder>(8, "use-lite");
  EXPECT_EQ(WordEmbedderFor(use_lite), use_lite);
}

// The dev set with the real embedder and guard: the default settings keep
// false hits within the 1 % limit.
TEST(Eval, DefaultSettingsKeepFalseHitsWithinOnePercentOnTheDevSet) {
  if (!std::filesystem::exists(LLMCACHE_DEVSET)) GTEST_SKIP() << "no dev set";
  std::string why;
  auto guard = DefaultLexicalGuard(&why);
  if (!guard) GTEST_SKIP() << why;
  auto embedder = NewUseLiteEmbedder({LLMCACHE_MODEL_DIR, 1});
  ASSERT_TRUE(embedder) << embedder.error().ToString();
  auto items = LoadEvalSet(LLMCACHE_DEVSET);
  ASSERT_TRUE(items) << items.error().ToString();
  EvalOptions o;
  o.cache.embedder = std::shared_ptr<Embedder>(std::move(*embedder));
  o.cache.guard = guard;
  testing::UseFlatTestIndex(&o.cache);
  o.thresholds = {o.cache.thresholds.threshold};
  auto report = RunEval(*items, o);
  ASSERT_TRUE(report) << report.error().ToString();
  for (const EvalRow& r : report->rows) {
    if (r.mode != "guard") continue;
    EXPECT_LE(r.false_hit_rate(), 0.01) << r.lang << " " << r.false_hits << "/" << r.queries;
    if (r.lang == "ja") {
      EXPECT_EQ(r.false_hits, 0u);
    }
  }
}

}  // namespace
}  // namespace llmcache::semantic
