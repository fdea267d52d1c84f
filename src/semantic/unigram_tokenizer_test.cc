#include "semantic/unigram_tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "semantic/test_util.h"

namespace llmcache::semantic {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A tiny vocabulary with the real file's quirks: a null score, a piece listed
// twice. The expected ids are what the reference tokenizer of
// @energetic-ai/embeddings returns for this vocabulary.
constexpr std::string_view kTinyVocab = R"([
  ["\ufffd", 0], ["<s>", 0], ["</s>", 0], ["e1", 0], ["e2", 0], ["e3", 0],
  ["\u2581", -2], ["\u2581a", -1], ["b", -1.5], ["ab", -2.5], ["\u2581ab", -3],
  [":", null], ["c", -1], ["c", -5]
])";

UnigramTokenizer Tiny() {
  auto t = UnigramTokenizer::FromJson(kTinyVocab, "tiny");
  EXPECT_TRUE(t.has_value()) << t.error().ToString();
  return std::move(*t);
}

TEST(UnigramTokenizerTest, ViterbiPicksTheBestSegmentation) {
  // "▁ab" as one piece scores -3; "▁a" + "b" scores -2.5 and wins.
  EXPECT_THAT(Tiny().Encode("ab").ids, ElementsAre(7, 8));
}

TEST(UnigramTokenizerTest, NullScoresCountAsZeroAndDuplicatesKeepTheLast) {
  // ":" has a null score; "c" is listed as 12 and 13, the reference keeps 13.
  const TokenizedText t = Tiny().Encode("a:c x");
  EXPECT_THAT(t.ids, ElementsAre(7, 11, 13, 6, 0));
  EXPECT_EQ(t.symbols, 6u);
  EXPECT_EQ(t.content_symbols, 4u);
  EXPECT_EQ(t.unknown_symbols, 1u);
  EXPECT_DOUBLE_EQ(t.UnknownFraction(), 0.25);
  EXPECT_THAT(Tiny().Encode("c").ids, ElementsAre(6, 13));
}

TEST(UnigramTokenizerTest, MergesRunsOfUnknownSymbols) {
  const TokenizedText t = Tiny().Encode("xyz");
  EXPECT_THAT(t.ids, ElementsAre(6, 0));
  EXPECT_EQ(t.unknown_symbols, 3u);
  EXPECT_DOUBLE_EQ(t.UnknownFraction(), 1.0);
  EXPECT_THAT(Tiny().Encode("x  y").ids, ElementsAre(6, 0, 6, 6, 0));
}

TEST(UnigramTokenizerTest, EmptyTextHasNoTokens) {
  const TokenizedText t = Tiny().Encode("");
  EXPECT_THAT(t.ids, IsEmpty());
  EXPECT_EQ(t.UnknownFraction(), 0.0);
}

TEST(UnigramTokenizerTest, NormalizesNfkcAndMarksSpaces) {
  EXPECT_THAT(Tiny().Encode("\uff41\uff42").ids, ElementsAre(7, 8));  // fullwidth "ab"
  // The ideographic space is a space after NFKC; a tab stays a symbol.
  EXPECT_EQ(SentencePieceSymbols("\uff21\uff22\u3000c\td"), U"\u2581AB\u2581c\td");
  // Decomposed é composes.
  EXPECT_EQ(SentencePieceSymbols("e\u0301"), U"\u2581\u00e9");
  EXPECT_EQ(SentencePieceSymbols(""), U"");
  EXPECT_EQ(SentencePieceSymbols(" "), U"\u2581\u2581");
}

TEST(UnigramTokenizerTest, ReadsInvalidUtf8AsReplacementCharacters) {
  EXPECT_EQ(SentencePieceSymbols("a\xff"
                                 "b"),
            U"\u2581a\ufffdb");
  // A truncated sequence is one U+FFFD, as JavaScript's TextDecoder reads it.
  EXPECT_EQ(SentencePieceSymbols("\xe2\x82"), U"\u2581\ufffd");
  EXPECT_EQ(SentencePieceSymbols("\xc3\xa9\xa9"), U"\u2581\u00e9\ufffd");
  // The replacement character is the reserved piece 0, never matched by the
  // trie, so it is unknown.
  EXPECT_THAT(Tiny().Encode("\xff").ids, ElementsAre(6, 0));
}

TEST(UnigramTokenizerTest, RejectsMalformedVocabularies) {
  for (std::string_view bad : {"", "{}", "[1, 2]", "[[\"a\"]]", "[[\"a\", \"x\"]]", "[[1, 2]]",
                               "[[\"a\", 1]]", "[[\"a\", -1.0]"}) {
    auto t = UnigramTokenizer::FromJson(bad, "bad");
    ASSERT_FALSE(t.has_value()) << bad;
    EXPECT_EQ(t.error().code(), StatusCode::kCorruption) << bad;
  }
  auto missing = UnigramTokenizer::Load("/nonexistent/vocab.json");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), StatusCode::kNotFound);
}

// The real vocabulary gives the reference's ids for every golden sentence.
TEST(UnigramTokenizerTest, MatchesTheReferenceIdsOnEveryGoldenSentence) {
  ASSERT_TRUE(testing::ModelInstalled()) << testing::MissingModelMessage();
  auto tokenizer = UnigramTokenizer::Load(std::string(testing::ModelDir()) + "/dist/vocab.json");
  ASSERT_TRUE(tokenizer.has_value()) << tokenizer.error().ToString();
  EXPECT_EQ(tokenizer->vocab_size(), 8000u);
  const auto golden = testing::LoadGolden();
  ASSERT_GE(golden.size(), 60u);
  for (const auto& g : golden) {
    EXPECT_EQ(tokenizer->Encode(g.text).ids, g.ids) << "text: \"" << g.text << "\"";
  }
}

TEST(UnigramTokenizerTest, ReportsTheUnknownShare) {
  ASSERT_TRUE(testing::ModelInstalled()) << testing::MissingModelMessage();
  auto tokenizer = UnigramTokenizer::Load(std::string(testing::ModelDir()) + "/dist/vocab.json");
  ASSERT_TRUE(tokenizer.has_value()) << tokenizer.error().ToString();
  EXPECT_EQ(tokenizer->Encode("How do I apply for paid leave?").UnknownFraction(), 0.0);
  EXPECT_GT(tokenizer->Encode("有給休暇の申請方法は？").UnknownFraction(), 0.8);
  EXPECT_GT(tokenizer->Encode("病假怎么申请？").UnknownFraction(), 0.8);
  const double emoji = tokenizer->Encode("I love pizza 🍕").UnknownFraction();
  EXPECT_GT(emoji, 0.0);
  EXPECT_LT(emoji, 0.2);
}

}  // namespace
}  // namespace llmcache::semantic
