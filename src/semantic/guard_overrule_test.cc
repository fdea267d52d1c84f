// Which guard refusals the grey-band LLM check may overrule
// (SemanticCacheOptions::overrule_content_words): the pure routing rule, the
// real guard's `overrulable` flag per refusal reason, and the cache's routing.
#include "semantic/guard_overrule.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "llmcache/lexical_guard.h"
#include "llmcache/semantic_cache.h"
#include "semantic/semantic_cache_test_util.h"

namespace llmcache::semantic {
namespace {

GuardVerdict Refusal(std::string reason, bool overrulable) {
  GuardVerdict v;
  v.reason = std::move(reason);
  v.overrulable = overrulable;
  return v;
}

TEST(OverruleByVerifierTest, OnlyOverrulableContentWordsAtOrAboveThreshold) {
  const OverruleInput on{true, true, 0.70, 0.60};
  EXPECT_TRUE(OverruleByVerifier(Refusal("content_word", true), on));
  EXPECT_TRUE(OverruleByVerifier(Refusal("content_word", true), {true, true, 0.60, 0.60}));
  // Below the accept threshold (the grey band): the guard's word stands.
  EXPECT_FALSE(OverruleByVerifier(Refusal("content_word", true), {true, true, 0.59, 0.60}));
  // Option off, or no verifier for the namespace.
  EXPECT_FALSE(OverruleByVerifier(Refusal("content_word", true), {false, true, 0.70, 0.60}));
  EXPECT_FALSE(OverruleByVerifier(Refusal("content_word", true), {true, false, 0.70, 0.60}));
  // A content-word refusal the guard did not mark (question words differ).
  EXPECT_FALSE(OverruleByVerifier(Refusal("content_word", false), on));
  // Every other reason is final, even if a guard marked it.
  for (const char* reason :
       {"number", "entity", "negation", "order", "language", "unsupported", ""}) {
    EXPECT_FALSE(OverruleByVerifier(Refusal(reason, true), on)) << reason;
    EXPECT_FALSE(OverruleByVerifier(Refusal(reason, false), on)) << reason;
  }
  GuardVerdict pass;
  pass.pass = true;
  pass.overrulable = true;
  EXPECT_FALSE(OverruleByVerifier(pass, on)) << "nothing to overrule";
}

// The real guard marks only refusals that rest on content words alone.
class GuardOverrulableTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto guard = NewLexicalGuard(LexicalGuardOptions{});
    ASSERT_TRUE(guard.has_value()) << guard.error().ToString();
    guard_ = std::move(*guard).release();
  }
  static void TearDownTestSuite() {
    delete guard_;
    guard_ = nullptr;
  }
  // Both directions must agree.
  static void Expect(std::string_view q, std::string_view c, std::string_view reason,
                     bool overrulable) {
    for (auto [x, y] : {std::pair{q, c}, std::pair{c, q}}) {
      GuardVerdict v = guard_->Check(x, y);
      EXPECT_FALSE(v.pass) << x << " | " << y;
      EXPECT_EQ(v.reason, reason) << x << " | " << y << ": " << v.detail;
      EXPECT_EQ(v.overrulable, overrulable) << x << " | " << y << ": " << v.detail;
    }
  }
  static LexicalGuard* guard_;
};
LexicalGuard* GuardOverrulableTest::guard_ = nullptr;

TEST_F(GuardOverrulableTest, ContentWordsAloneAreOverrulable) {
  Expect("How do I apply for paid leave?", "How do I apply for sick leave?", "content_word", true);
  Expect("how do I freeze my card", "how do I lock my card", "content_word", true);
  Expect("What's the weather like today?", "Do I need an umbrella today?", "content_word", true);
}

TEST_F(GuardOverrulableTest, NumbersNamesNegationOrderAndQuestionWordsAreFinal) {
  Expect("convert 5 dollars to euros", "convert 10 dollars to euros", "number", false);
  Expect("flights from Tokyo", "flights from Osaka", "entity", false);
  Expect("can I bring my dog", "can't I bring my dog", "negation", false);
  Expect("convert USD to EUR", "convert EUR to USD", "order", false);
  Expect("where can I renew my passport", "when can I renew my passport", "content_word", false);
  Expect("is this pool safe for kids", "is this pool unsafe for kids", "negation", false);
  // A question word and an antonym: the antonym decides, so no overrule.
  Expect("where is the cheap parking", "when is the expensive parking", "negation", false);
}

TEST_F(GuardOverrulableTest, JapaneseCountersAreFinal) {
  Expect("有給休暇の申請方法", "病気休暇の申請方法", "content_word", true);
  // Same number, another currency: the counter belongs to the number.
  for (auto [x, y] : {std::pair{"100円を両替したい", "100ドルを両替したい"},
                      std::pair{"100ドルを両替したい", "100円を両替したい"}}) {
    GuardVerdict v = guard_->Check(x, y);
    EXPECT_FALSE(v.pass) << x;
    EXPECT_FALSE(v.overrulable) << x << " | " << y << ": " << v.reason << " " << v.detail;
  }
}

// LexicalGuardOptions::thesaurus_path: an extra synonym source where WordNet
// relates nothing; never for names, units or antonyms.
TEST(GuardThesaurusTest, RelatesWordsWordNetDoesNot) {
  std::filesystem::path path =
      std::filesystem::path(::testing::TempDir()) / "guard_thesaurus_test.dat";
  std::ofstream(path, std::ios::binary) << "UTF-8\n"
                                           "freeze|1\n(verb)|lock|block\n"
                                           "second|1\n(noun)|minute\n"
                                           "tokyo|1\n(noun)|osaka\n";
  LexicalGuardOptions o;
  auto plain = NewLexicalGuard(o);
  o.thesaurus_path = path.string();
  auto with = NewLexicalGuard(o);
  ASSERT_TRUE(plain && with);
  auto verdict = [](const LexicalGuard& g, std::string_view q, std::string_view c) {
    GuardVerdict v = g.Check(q, c);
    return v.pass ? std::string("pass") : v.reason;
  };
  EXPECT_EQ(verdict(**plain, "how do I freeze my card", "how do I lock my card"), "content_word");
  EXPECT_EQ(verdict(**with, "how do I freeze my card", "how do I lock my card"), "pass");
  EXPECT_EQ(verdict(**with, "how do I lock my card", "how do I freeze my card"), "pass");
  EXPECT_EQ(verdict(**with, "wait 5 seconds", "wait 5 minutes"), "number") << "units stay strict";
  EXPECT_EQ(verdict(**with, "flights from Tokyo", "flights from Osaka"), "entity");
  o.thesaurus_path = (std::filesystem::path(::testing::TempDir()) / "missing.dat").string();
  EXPECT_FALSE(NewLexicalGuard(o)) << "a configured thesaurus must load";
  std::filesystem::remove(path);
}

// The cache's routing, with a scripted guard and verifier.
class ScriptedVerdictGuard final : public LexicalGuard {
 public:
  GuardVerdict verdict;
  GuardVerdict Check(std::string_view, std::string_view) const override { return verdict; }
};

class OverruleCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    embedder_ = std::make_shared<testing::FakeEmbedder>();
    guard_ = std::make_shared<ScriptedVerdictGuard>();
    verifier_ = std::make_shared<testing::ScriptedVerifier>();
    verifier_->answer = [this](std::string_view, std::string_view) { return Result<bool>(same_); };
    options_.embedder = embedder_;
    options_.guard = guard_;
    options_.verifier = verifier_;
    options_.clock = std::make_shared<ManualClock>();
    options_.thresholds = {true, 0.85, 0.85};
    options_.grey_band = 0.10;
    options_.overrule_content_words = true;
    testing::UseFlatTestIndex(&options_);
    embedder_->Set("cached question", embedder_->AtCosine(1.0));
    embedder_->Set("above threshold", embedder_->AtCosine(0.90, 1));
    embedder_->Set("in the grey band", embedder_->AtCosine(0.80, 2));
  }
  SemanticLookup Run(std::string_view put, std::string_view get) {
    auto c = OpenSemanticCache(options_);
    EXPECT_TRUE(c) << c.error().ToString();
    if (!c) return {};
    cache_ = std::move(*c);
    SemanticQuery q = Prepare(put);
    EXPECT_TRUE(cache_->Insert(&q, "key1", {}).ok());
    return Lookup(get);
  }
  SemanticQuery Prepare(std::string_view user) {
    boost::json::object o;
    o["model"] = "m";
    o["messages"] = boost::json::array{boost::json::object{{"role", "user"}, {"content", user}}};
    return cache_->Prepare(o, SemanticKey{"t", "m", "", Route::kChat});
  }
  SemanticLookup Lookup(std::string_view user) {
    SemanticQuery q = Prepare(user);
    return cache_->Lookup(&q);
  }

  std::shared_ptr<testing::FakeEmbedder> embedder_;
  std::shared_ptr<ScriptedVerdictGuard> guard_;
  std::shared_ptr<testing::ScriptedVerifier> verifier_;
  SemanticCacheOptions options_;
  std::unique_ptr<SemanticCache> cache_;
  bool same_ = true;
};

TEST_F(OverruleCacheTest, VerifierYesAdmitsAContentWordRefusal) {
  guard_->verdict = Refusal("content_word", true);
  SemanticLookup r = Run("cached question", "above threshold");
  ASSERT_TRUE(r.hit) << r.reason;
  EXPECT_TRUE(r.hit->verified);
  EXPECT_EQ(r.hit->exact_key, "key1");
  EXPECT_EQ(verifier_->calls, 1);
  EXPECT_EQ(cache_->Stats().verified_hits, 1u);
}

TEST_F(OverruleCacheTest, VerifierNoRefuses) {
  guard_->verdict = Refusal("content_word", true);
  same_ = false;
  SemanticLookup r = Run("cached question", "above threshold");
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.reason, "verifier");
  EXPECT_EQ(verifier_->calls, 1);
}

TEST_F(OverruleCacheTest, FinalRefusalsNeverReachTheVerifier) {
  for (const char* reason : {"number", "entity", "negation", "order"}) {
    guard_->verdict = Refusal(reason, true);
    SemanticLookup r = Run("cached question", "above threshold");
    EXPECT_FALSE(r.hit) << reason;
    EXPECT_EQ(r.reason, std::string("guard_") + reason);
  }
  guard_->verdict = Refusal("content_word", false);
  EXPECT_EQ(Run("cached question", "above threshold").reason, "guard_content_word");
  EXPECT_EQ(verifier_->calls, 0);
}

TEST_F(OverruleCacheTest, GreyBandAndOptionOffKeepTheRefusal) {
  guard_->verdict = Refusal("content_word", true);
  EXPECT_EQ(Run("cached question", "in the grey band").reason, "guard_content_word");
  options_.overrule_content_words = false;
  EXPECT_EQ(Run("cached question", "above threshold").reason, "guard_content_word");
  EXPECT_EQ(verifier_->calls, 0);
  options_.overrule_content_words = true;
  options_.verifier = nullptr;
  EXPECT_EQ(Run("cached question", "above threshold").reason, "guard_content_word");
}

TEST_F(OverruleCacheTest, OverruledAnswersDoNotMoveTheEntryThreshold) {
  // A "no" learned at 0.90 would lift the entry's threshold above 0.90, so a
  // later candidate there that passes the guard would need the verifier.
  guard_->verdict = Refusal("content_word", true);
  same_ = false;
  EXPECT_EQ(Run("cached question", "above threshold").reason, "verifier");
  guard_->verdict = GuardVerdict{true, "", "", 0, false};
  embedder_->Set("another paraphrase", embedder_->AtCosine(0.90, 3));
  SemanticLookup r = Lookup("another paraphrase");
  ASSERT_TRUE(r.hit) << r.reason;
  EXPECT_FALSE(r.hit->verified);
  EXPECT_EQ(verifier_->calls, 1);
}

}  // namespace
}  // namespace llmcache::semantic
