// Incremental detokenization: pieces concatenate to the whole text, never
// split a UTF-8 sequence, and stop strings end the text.
#include "engine/server/text_stream.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "engine/gguf.h"
#include "engine/server/server_test_util.h"

namespace llmcache::engine {
namespace {

class TextStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(servertest::SpmVocabPath())) return;
    auto file = GgufFile::Open(servertest::SpmVocabPath().string());
    ASSERT_TRUE(file.has_value());
    auto v = Vocab::FromGguf(*file);
    ASSERT_TRUE(v.has_value());
    vocab_ = new Vocab(std::move(*v));
  }
  static void TearDownTestSuite() {
    delete vocab_;
    vocab_ = nullptr;
  }
  void SetUp() override { LLMCACHE_REQUIRE_PATH(servertest::SpmVocabPath()); }

  // Every piece, then Finish() as the last element.
  static std::vector<std::string> Pieces(TextStream& ts, const std::vector<int32_t>& tokens) {
    std::vector<std::string> out;
    for (int32_t t : tokens) out.push_back(ts.Push(t));
    out.push_back(ts.Finish());
    return out;
  }
  static std::string Join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& p : v) s += p;
    return s;
  }
  int32_t Byte(int b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    return vocab_->Find(name);
  }

  static Vocab* vocab_;
};
Vocab* TextStreamTest::vocab_ = nullptr;

TEST(Utf8Test, SanitizeKeepsValidTextAndReplacesInvalidSequences) {
  EXPECT_EQ(SanitizeUtf8("plain ascii"), "plain ascii");
  EXPECT_EQ(SanitizeUtf8("h\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x98\x80"),
            "h\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x98\x80");
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(SanitizeUtf8("a\xE6\x97"), "a\xEF\xBF\xBD");                // cut short
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\xEF\xBF\xBD");                  // overlong
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD");  // surrogate: one replacement
  EXPECT_EQ(SanitizeUtf8("\x80x"), "\xEF\xBF\xBDx");                    // lone continuation
}

TEST(Utf8Test, CompletePrefixStopsBeforeAnUnfinishedSequence) {
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE6"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE6\x97"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE6\x97\xA5"), 5u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE6x"), 4u);  // already invalid: nothing to wait for
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
}

TEST_F(TextStreamTest, PiecesJoinToTheDetokenizedText) {
  const auto tokens = vocab_->Tokenize("Hello world, this is a test. Of many words!", false, false);
  TextStream ts(*vocab_, {});
  const auto pieces = Pieces(ts, tokens);
  EXPECT_EQ(Join(pieces), vocab_->Detokenize(tokens, false));
  EXPECT_FALSE(ts.stopped());
  // Text flows before the end, not all at Finish().
  EXPECT_LT(pieces.back().size(), Join(pieces).size() / 2);
}

TEST_F(TextStreamTest, EndOfGenerationTokensAddNoText) {
  auto tokens = vocab_->Tokenize("Hello world", false, false);
  TextStream ts(*vocab_, {});
  tokens.push_back(vocab_->eos());
  EXPECT_EQ(Join(Pieces(ts, tokens)), "Hello world");
}

TEST_F(TextStreamTest, StopStringEndsTheTextAcrossTokens) {
  const auto tokens = vocab_->Tokenize("one two three four five", false, false);
  TextStream ts(*vocab_, {"", "thr", "nothing"});
  std::string text;
  size_t used = 0;
  for (int32_t t : tokens) {
    ++used;
    text += ts.Push(t);
    if (ts.stopped()) break;
  }
  text += ts.Finish();
  EXPECT_TRUE(ts.stopped());
  EXPECT_EQ(text, "one two ");
  EXPECT_LT(used, tokens.size());
  EXPECT_EQ(ts.Push(tokens.back()), "");  // ignored after the stop
}

TEST_F(TextStreamTest, PartialStopStringIsHeldBackThenReleased) {
  const auto tokens = vocab_->Tokenize("alpha beta gamma", false, false);
  TextStream ts(*vocab_, {"gamma ray"});
  const auto pieces = Pieces(ts, tokens);
  EXPECT_FALSE(ts.stopped());
  // "gamma" might have begun the stop string, so it comes out only at the end.
  EXPECT_NE(pieces.back().find("gamma"), std::string::npos);
  EXPECT_EQ(Join(pieces), "alpha beta gamma");
}

TEST_F(TextStreamTest, ByteTokensNeverSplitACharacter) {
  // "x日y" with 日 as three byte tokens (E6 97 A5).
  const std::vector<int32_t> tokens = {vocab_->Tokenize("x", false, false).back(), Byte(0xE6),
                                       Byte(0x97), Byte(0xA5), vocab_->Find("y")};
  for (int32_t t : tokens) ASSERT_GE(t, 0);
  TextStream ts(*vocab_, {});
  const auto pieces = Pieces(ts, tokens);
  for (const auto& p : pieces) EXPECT_EQ(SanitizeUtf8(p), p) << "piece splits a character";
  EXPECT_EQ(pieces[1], "");
  EXPECT_EQ(pieces[2], "");
  EXPECT_EQ(Join(pieces), "x\xE6\x97\xA5y");
}

TEST_F(TextStreamTest, InvalidBytesBecomeReplacementCharacters) {
  TextStream ts(*vocab_, {});
  const auto pieces = Pieces(ts, {Byte(0xE6), Byte(0x41)});  // lead byte, then 'A'
  EXPECT_EQ(Join(pieces),
            "\xEF\xBF\xBD"
            "A");
}

}  // namespace
}  // namespace llmcache::engine
