#include "semantic/wordnet.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace llmcache::semantic {
namespace {

class WordNetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto wn = WordNet::Load(LLMCACHE_WORDNET_DIR);
    ASSERT_TRUE(wn.has_value()) << wn.error().ToString();
    wn_ = std::move(*wn).release();
  }
  static void TearDownTestSuite() {
    delete wn_;
    wn_ = nullptr;
  }
  static std::vector<std::string> Lemmas(std::string_view word, WnPos pos) {
    std::vector<std::string> out;
    wn_->Lemmas(word, pos, &out);
    return out;
  }
  static bool Has(const std::vector<std::string>& v, std::string_view s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }
  static WordNet* wn_;
};
WordNet* WordNetTest::wn_ = nullptr;

TEST_F(WordNetTest, LoadsTheWholeDatabase) {
  // WordNet 3.0: 147,306 lemmas (some in several parts of speech), 117,659 synsets.
  EXPECT_GT(wn_->lemma_count(), 140000u);
  EXPECT_EQ(wn_->synset_count(), 117659u);
  EXPECT_FALSE(wn_->Senses("leave", WnPos::kNoun).empty());
  EXPECT_EQ(wn_->Senses("leave", WnPos::kVerb).size(), 14u);
  EXPECT_TRUE(wn_->Senses("qzxv", WnPos::kNoun).empty());
}

TEST_F(WordNetTest, MorphyUsesExceptionsAndDetachmentRules) {
  EXPECT_TRUE(Has(Lemmas("went", WnPos::kVerb), "go"));         // verb.exc
  EXPECT_TRUE(Has(Lemmas("children", WnPos::kNoun), "child"));  // noun.exc
  EXPECT_TRUE(Has(Lemmas("better", WnPos::kAdj), "good"));      // adj.exc
  EXPECT_TRUE(Has(Lemmas("leaves", WnPos::kNoun), "leaf"));
  EXPECT_TRUE(Has(Lemmas("leaves", WnPos::kNoun), "leave"));
  EXPECT_TRUE(Has(Lemmas("applying", WnPos::kVerb), "apply"));
  EXPECT_TRUE(Has(Lemmas("applied", WnPos::kVerb), "apply"));
  EXPECT_TRUE(Has(Lemmas("boxes", WnPos::kNoun), "box"));
  EXPECT_TRUE(Has(Lemmas("bigger", WnPos::kAdj), "big"));
  EXPECT_TRUE(Lemmas("qzxvs", WnPos::kNoun).empty());
}

TEST_F(WordNetTest, Relations) {
  EXPECT_EQ(wn_->Relate("vacation", "holiday"), WnRelation::kSynonym);
  EXPECT_EQ(wn_->Relate("car", "automobile"), WnRelation::kSynonym);
  EXPECT_EQ(wn_->Relate("buy", "purchase"), WnRelation::kSynonym);
  EXPECT_EQ(wn_->Relate("apply", "application"), WnRelation::kRelated);  // derivation
  EXPECT_EQ(wn_->Relate("safe", "unsafe"), WnRelation::kAntonym);
  EXPECT_EQ(wn_->Relate("possible", "impossible"), WnRelation::kAntonym);
  EXPECT_EQ(wn_->Relate("paid", "sick"), WnRelation::kNone);
  // The data decides: "leave" (time off, hypernym "time off") and "vacation"
  // (hypernym "leisure") share no synset and are not one safe hop apart.
  EXPECT_EQ(wn_->Relate("leave", "vacation"), WnRelation::kNone);
  // Noun hypernyms are not a safe hop: an apple is a fruit, not the reverse.
  EXPECT_EQ(wn_->Relate("apple", "edible_fruit"), WnRelation::kNone);
  EXPECT_EQ(wn_->Relate("tokyo", "osaka"), WnRelation::kNone);
}

TEST_F(WordNetTest, InstancesAreNamedEntities) {
  EXPECT_TRUE(wn_->IsInstance("tokyo"));
  EXPECT_TRUE(wn_->IsInstance("osaka"));
  EXPECT_FALSE(wn_->IsInstance("city"));
  EXPECT_FALSE(wn_->IsInstance("leave"));
  EXPECT_FALSE(wn_->IsInstance("qzxv"));
}

TEST(WordNetLoadTest, MissingDirectoryIsNotFound) {
  auto wn = WordNet::Load(std::filesystem::path(LLMCACHE_GUARD_TESTDATA) / "no-such-wordnet");
  ASSERT_FALSE(wn.has_value());
  EXPECT_TRUE(wn.error().IsNotFound());
}

}  // namespace
}  // namespace llmcache::semantic
