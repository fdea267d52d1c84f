#include "semantic/thesaurus.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace llmcache::semantic {
namespace {

constexpr std::string_view kSmall =
    "UTF-8\n"
    "refund|2\n"
    "(noun)|repayment|payment (generic term)\n"
    "(verb)|return|repay|give back|pay (generic term)\n"
    "cheap|2\n"
    "(adj)|inexpensive|bargain-priced (similar term)|expensive (antonym)\n"
    "(adj)|chinchy|stingy (similar term)\n"
    "leave|3\n"
    "(noun)|leave of absence|time off (generic term)\n"
    "(verb)|go forth|go away|arrive (antonym)\n"
    "(verb)|bequeath|will\n";

TEST(ThesaurusTest, PlainSingleWordTermsOnly) {
  auto t = Thesaurus::Parse(kSmall);
  ASSERT_TRUE(t) << t.error().ToString();
  EXPECT_EQ((*t)->headword_count(), 3u);
  EXPECT_TRUE((*t)->Synonyms("refund", "repayment"));
  EXPECT_TRUE((*t)->Synonyms("repay", "refund")) << "either direction";
  EXPECT_TRUE((*t)->Synonyms("cheap", "inexpensive"));
  EXPECT_FALSE((*t)->Synonyms("refund", "payment")) << "generic terms are broader, not equal";
  EXPECT_FALSE((*t)->Synonyms("cheap", "expensive")) << "antonyms";
  EXPECT_FALSE((*t)->Synonyms("cheap", "bargain-priced")) << "similar terms are off by default";
  EXPECT_FALSE((*t)->Synonyms("refund", "give_back")) << "multi-word terms are off by default";
  EXPECT_FALSE((*t)->Synonyms("refund", "refund"));
  EXPECT_FALSE((*t)->Synonyms("refund", "unknown"));
  // Two terms of one sense are not synonyms through their headword (that
  // would be two hops).
  EXPECT_FALSE((*t)->Synonyms("repayment", "return"));
}

TEST(ThesaurusTest, OptionsWidenOrNarrow) {
  ThesaurusOptions o;
  o.similar_terms = true;
  o.multi_word_terms = true;
  auto wide = Thesaurus::Parse(kSmall, o);
  ASSERT_TRUE(wide);
  EXPECT_TRUE((*wide)->Synonyms("cheap", "bargain-priced"));
  EXPECT_TRUE((*wide)->Synonyms("refund", "give_back"));
  EXPECT_FALSE((*wide)->Synonyms("refund", "pay"));
  EXPECT_FALSE((*wide)->Synonyms("cheap", "expensive"));
  o = {};
  o.max_senses = 2;
  auto narrow = Thesaurus::Parse(kSmall, o);
  ASSERT_TRUE(narrow);
  EXPECT_FALSE((*narrow)->Synonyms("leave", "bequeath")) << "third sense";
  EXPECT_TRUE((*narrow)->Synonyms("cheap", "chinchy"));
}

TEST(ThesaurusTest, MalformedInputIsCorruption) {
  for (std::string_view bad : {
           std::string_view(""), std::string_view("ISO8859-1\nword|1\n(noun)|x\n"),
           std::string_view("UTF-8\n"),
           std::string_view("UTF-8\nword|2\n(noun)|x\n"),           // truncated
           std::string_view("UTF-8\nword|x\n(noun)|y\n"),           // bad count
           std::string_view("UTF-8\nword|0\n"),                     // no senses
           std::string_view("UTF-8\nword|1\nnoun|x\n"),             // no (pos)
           std::string_view("UTF-8\n(noun)|x\n"),                   // sense without headword
           std::string_view("UTF-8\nword|99999999999999999999\n"),  // overflow
       }) {
    auto t = Thesaurus::Parse(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_TRUE(t.error().IsCorruption()) << bad << ": " << t.error().ToString();
  }
  ThesaurusOptions o;
  o.max_line_bytes = 16;
  auto t = Thesaurus::Parse("UTF-8\nword|1\n(noun)|a-very-long-synonym-indeed\n", o);
  ASSERT_FALSE(t);
  EXPECT_TRUE(t.error().IsCorruption());
  o = {};
  o.max_entry_senses = 2;
  EXPECT_FALSE(Thesaurus::Parse("UTF-8\nword|3\n(noun)|a\n(noun)|b\n(noun)|c\n", o));
}

TEST(ThesaurusTest, LoadChecksTheFile) {
  EXPECT_TRUE(Thesaurus::Load("/nonexistent/th_en_US_v2.dat").error().IsNotFound());
  std::filesystem::path path = std::filesystem::path(::testing::TempDir()) / "thesaurus_test.dat";
  std::ofstream(path, std::ios::binary) << kSmall;
  auto t = Thesaurus::Load(path.string());
  ASSERT_TRUE(t) << t.error().ToString();
  EXPECT_TRUE((*t)->Synonyms("leave", "bequeath"));
  ThesaurusOptions o;
  o.max_file_bytes = 10;
  auto big = Thesaurus::Load(path.string(), o);
  ASSERT_FALSE(big);
  EXPECT_TRUE(big.error().IsCorruption());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace llmcache::semantic
