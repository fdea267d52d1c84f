#include "semantic/japanese_text.h"

#include <gtest/gtest.h>

namespace llmcache::semantic {
namespace {

using Kind = JaMorpheme::Kind;

class JapaneseTextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto ja = JapaneseText::Load("", LLMCACHE_SUDACHI_SYNONYMS);
    ASSERT_TRUE(ja.has_value()) << ja.error().ToString();
    ja_ = std::move(*ja).release();
  }
  static void TearDownTestSuite() {
    delete ja_;
    ja_ = nullptr;
  }
  // "base:kind" of every morpheme of a kind other than kOther.
  static std::vector<std::string> Kinds(std::string_view text) {
    std::vector<std::string> out;
    for (const JaMorpheme& m : ja_->Analyze(text)) {
      if (m.kind == Kind::kOther) continue;
      static constexpr const char* kNames[] = {"content",  "number",   "entity",
                                               "negation", "particle", "other"};
      out.push_back(m.base + ":" + kNames[static_cast<int>(m.kind)]);
    }
    return out;
  }
  static JapaneseText* ja_;
};
JapaneseText* JapaneseTextTest::ja_ = nullptr;

TEST_F(JapaneseTextTest, ContentMorphemesDropScaffolding) {
  EXPECT_EQ(
      Kinds("有給休暇の申請方法を教えてください"),
      (std::vector<std::string>{"有給:content", "休暇:content", "申請:content", "を:particle"}));
}

TEST_F(JapaneseTextTest, NumbersAreMergedAndConverted) {
  EXPECT_EQ(Kinds("十五人"), (std::vector<std::string>{"15:number", "人:content"}));
  EXPECT_EQ(Kinds("２０２４年"), (std::vector<std::string>{"2024:number", "年:content"}));
  EXPECT_EQ(Kinds("3万円"), (std::vector<std::string>{"30000:number", "円:content"}));
}

TEST_F(JapaneseTextTest, EntitiesNegationAndParticles) {
  EXPECT_EQ(Kinds("東京から大阪まで"), (std::vector<std::string>{"東京:entity", "から:particle",
                                                                 "大阪:entity", "まで:particle"}));
  auto neg = Kinds("駐車できない");
  EXPECT_NE(std::find(neg.begin(), neg.end(), "ない:negation"), neg.end());
  auto latin = Kinds("iPhoneの設定");
  EXPECT_EQ(latin.front(), "iphone:entity");
}

TEST_F(JapaneseTextTest, SudachiSynonymGroups) {
  EXPECT_GT(ja_->headword_count(), 50000u);
  EXPECT_TRUE(ja_->Synonyms("有給休暇", "有給"));
  EXPECT_TRUE(ja_->Synonyms("方法", "やり方"));
  EXPECT_TRUE(ja_->Synonyms("vacation", "休暇"));
  EXPECT_FALSE(ja_->Synonyms("有給", "病気"));
  EXPECT_FALSE(ja_->Synonyms("存在しない語", "有給"));
}

TEST_F(JapaneseTextTest, QuestionWordsAreMarked) {
  std::vector<std::string> questions;
  for (const JaMorpheme& m : ja_->Analyze("どこでいつ誰がなぜ申請しますか")) {
    if (m.question) questions.push_back(m.base);
  }
  EXPECT_EQ(questions, (std::vector<std::string>{"どこ", "いつ", "誰", "なぜ"}));
}

TEST_F(JapaneseTextTest, EmptyAndOddInputs) {
  EXPECT_TRUE(Kinds("").empty());
  EXPECT_TRUE(Kinds("。。。").empty());
  EXPECT_NO_FATAL_FAILURE(ja_->Analyze(std::string(2000, 'a')));
}

TEST(JapaneseTextLoadTest, MissingSynonymsFileIsNotFound) {
  auto ja = JapaneseText::Load("", std::string(LLMCACHE_GUARD_TESTDATA) + "/no-such.json");
  ASSERT_FALSE(ja.has_value());
  EXPECT_TRUE(ja.error().IsNotFound());
}

}  // namespace
}  // namespace llmcache::semantic
