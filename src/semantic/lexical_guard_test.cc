#include "semantic/lexical_guard.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "llmcache/lexical_guard.h"

namespace llmcache {
namespace {

struct Case {
  const char* query;
  const char* candidate;
  const char* want;  // "pass" or the refusal reason
};

class LexicalGuardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    LexicalGuardOptions options;  // the build's default resource paths
    auto guard = NewLexicalGuard(options);
    ASSERT_TRUE(guard.has_value()) << guard.error().ToString();
    guard_ = std::move(*guard).release();
  }
  static void TearDownTestSuite() {
    delete guard_;
    guard_ = nullptr;
  }
  static std::string Verdict(std::string_view q, std::string_view c) {
    GuardVerdict v = guard_->Check(q, c);
    if (v.pass) {
      EXPECT_TRUE(v.reason.empty());
      return "pass";
    }
    return v.reason;
  }
  // Every case is checked both ways: the guard must be symmetric.
  static void ExpectAll(std::initializer_list<Case> cases) {
    for (const Case& c : cases) {
      EXPECT_EQ(Verdict(c.query, c.candidate), c.want)
          << c.query << " | " << c.candidate << " : " << guard_->Check(c.query, c.candidate).detail;
      EXPECT_EQ(Verdict(c.candidate, c.query), c.want)
          << c.candidate << " | " << c.query << " : " << guard_->Check(c.candidate, c.query).detail;
    }
  }
  static LexicalGuard* guard_;
};
LexicalGuard* LexicalGuardTest::guard_ = nullptr;

TEST_F(LexicalGuardTest, ParaphrasesPass) {
  ExpectAll({
      {"How do I apply for paid leave?", "how do I request paid leave", "pass"},
      {"How do I apply for paid leave?", "paid leave application steps", "pass"},
      {"How do I apply for paid leave?", "What is the way to get paid leave, please?", "pass"},
      {"How do I reset my password?", "What is the best way to reset my password?", "pass"},
      {"How can I cancel my subscription?", "steps to cancel subscriptions", "pass"},
      {"What is the capital of Japan?", "what's the capital of japan", "pass"},
      {"How do I buy a car?", "how to purchase an automobile", "pass"},
      {"How do I take a vacation?", "How can I take a holiday?", "pass"},
      {"Convert USD to EUR", "How do I convert USD to EUR?", "pass"},
      {"Python vs Java", "Java vs Python", "pass"},
      {"Is it possible to travel with three children?", "can I travel with 3 kids", "pass"},
      {"Hotels in Tokyo", "hotels in tokyo", "pass"},
      {"Can I park here?", "Can I park here?", "pass"},
  });
}

TEST_F(LexicalGuardTest, SiblingQuestionsAreRefused) {
  ExpectAll({
      {"How do I apply for paid leave?", "How do I apply for sick leave?", "content_word"},
      // WordNet 3.0 does not relate "leave" (time off work) and "vacation"
      // (leisure time), so this paraphrase is refused: a miss, not a wrong hit.
      {"How do I apply for paid leave?", "how to take paid vacation", "content_word"},
      {"How do I reset my password?", "How do I reset my gmail password?", "content_word"},
      {"Where is the meeting?", "When is the meeting?", "content_word"},
      {"How do I turn on the heater?", "How do I turn off the heater?", "content_word"},
  });
}

TEST_F(LexicalGuardTest, OrderedPairsMustAgree) {
  ExpectAll({
      {"Convert USD to EUR", "Convert EUR to USD", "order"},
      {"USD/JPY rate", "JPY/USD rate", "order"},
      {"Train from Tokyo to Osaka", "Train from Osaka to Tokyo", "order"},
      {"Train from Tokyo to Osaka", "train to Osaka from Tokyo", "pass"},
      {"Is Python faster than Java?", "Is Java faster than Python?", "order"},
      {"Should I eat before surgery?", "Should I eat after surgery?", "order"},
      {"Should I eat before surgery?", "Should I eat prior to surgery?", "content_word"},
      // Swapped things of one kind, without a connector to say who is who.
      {"how many euros do I get for one dollar", "how many dollars do I get for one euro", "order"},
      {"If it's 3pm in California, what time is it in New York?",
       "If it's 3pm in New York, what time is it in California?", "order"},
      // Swapped words of different kinds are a rewording.
      {"How do I set up the VPN on Windows?", "windows vpn set up", "pass"},
  });
}

TEST_F(LexicalGuardTest, EntitiesMustAgree) {
  ExpectAll({
      {"Best hotels in Tokyo", "Best hotels in Osaka", "entity"},
      {"best hotels in tokyo", "best hotels in osaka", "entity"},
      {"How do I deploy to AWS?", "How do I deploy to GCP?", "entity"},
      {"How do I install Python?", "how do I install python", "pass"},
      {"How do I install Python?", "How do I install Ruby?", "entity"},
  });
}

TEST_F(LexicalGuardTest, QuestionWords) {
  ExpectAll({
      // A question word on one side only is scaffolding ("where do I
      // request" asks for the procedure too); two different ones are not.
      {"Where do I request paid leave?", "How do I request paid leave?", "pass"},
      {"Where do I request paid leave?", "When do I request paid leave?", "content_word"},
  });
}

TEST_F(LexicalGuardTest, NegationMustAgree) {
  ExpectAll({
      {"Can I park here?", "Can't I park here?", "negation"},
      {"Can I park here?", "I cannot park here?", "negation"},
      {"Travel with a passport", "Travel without a passport", "negation"},
      {"Is the water safe to drink?", "Is the water unsafe to drink?", "negation"},
      {"Why do cats purr?", "Why don't cats purr?", "negation"},
  });
}

TEST_F(LexicalGuardTest, NumbersMustAgree) {
  ExpectAll({
      {"What is 3 plus 4?", "What is 3 plus 5?", "number"},
      {"What is three plus four?", "What is 3 plus 4?", "pass"},
      {"twenty-one days of leave", "21 days of leave", "pass"},
      {"iPhone 15 battery life", "iPhone 14 battery life", "number"},
      {"Python 3.12 release notes", "Python 3.11 release notes", "number"},
      {"Python 3.10 release notes", "Python 3.1 release notes", "number"},
      {"version 3.5", "version 35", "number"},
      {"Version 3.5 ", "version  3.5?", "pass"},
      {"Is $5 enough?", "Is $50 enough?", "number"},
      {"Is $1,000 enough?", "Is $1000 enough?", "pass"},
      {"a 50% discount", "a 5% discount", "number"},
      {"events on 2024-01-05", "events on 2024-01-06", "number"},
      {"Is the shop open at 3pm?", "Is the shop open at 4pm?", "number"},
      {"my first car", "my second car", "number"},
      {"my 1st car", "my first car", "pass"},
      {"wait 5 seconds", "wait 5 minutes", "number"},
      {"How many calories in an egg?", "How many calories in 2 eggs?", "number"},
  });
}

TEST_F(LexicalGuardTest, JapanesePairs) {
  ExpectAll({
      {"有給休暇の申請方法", "有給の取り方", "pass"},
      {"有給休暇の申請方法を教えてください", "有給休暇を申請するには", "pass"},
      {"有給休暇の申請方法", "病気休暇の申請方法", "content_word"},
      {"東京から大阪までの行き方", "大阪から東京までの行き方", "order"},
      {"東京のホテル", "大阪のホテル", "entity"},
      {"3人で予約したい", "4人で予約したい", "number"},
      {"三人で予約したい", "3人で予約したい", "pass"},
      {"ここに駐車できますか", "ここに駐車できませんか", "negation"},
      {"この商品は返金の対象ですか", "この商品は返金の対象外ですか", "negation"},
      {"1ドルは何円ですか", "1円は何ドルですか", "order"},
      {"ドルを円に両替したい", "円をドルに両替したい", "order"},
      {"ドル円 レート", "円ドル レート", "order"},
      {"東京から大阪までの行き方", "大阪へ東京から行く方法", "pass"},
      {"有給休暇はどこで申請しますか", "有給休暇はいつ申請しますか", "content_word"},
      {"有給休暇はどこで申請しますか", "有給休暇の申請方法", "pass"},
  });
}

TEST_F(LexicalGuardTest, BadInputIsRefusedWithoutCrashing) {
  ExpectAll({
      {"有給休暇の申請方法", "How do I apply for paid leave?", "language"},
      {"", "How do I apply for paid leave?", "unsupported"},
      {"", "", "unsupported"},
      {" ?! ", "How do I apply?", "unsupported"},
      {"\xff\xfe bad", "How do I apply?", "unsupported"},
      {"How do I apply? \xc0\xaf", "How do I apply?", "unsupported"},  // overlong '/'
      {"Как подать заявление на отпуск?", "Как подать заявку на отпуск?", "unsupported"},
      {"How to install kubectlzz", "How to install", "content_word"},
  });
  std::string huge(1 << 20, 'a');
  EXPECT_EQ(Verdict(huge, huge), "unsupported");
  EXPECT_EQ(Verdict(huge, "a"), "unsupported");
  std::string nul("how\0do", 6);
  EXPECT_NO_FATAL_FAILURE(guard_->Check(nul, "how do"));
  // Just under the bound: long, but still judged.
  std::string long_text;
  while (long_text.size() < 2000) long_text += "paid leave ";
  EXPECT_EQ(Verdict(long_text, long_text + " please"), "pass");
  EXPECT_EQ(Verdict(long_text, long_text + " sick"), "content_word");
}

TEST_F(LexicalGuardTest, RefusalsExplainThemselves) {
  GuardVerdict v =
      guard_->Check("How do I apply for paid leave?", "How do I apply for sick leave?");
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reason, "content_word");
  EXPECT_NE(v.detail.find("paid"), std::string::npos) << v.detail;
  v = guard_->Check("Best hotels in Tokyo", "Best hotels in Osaka");
  EXPECT_EQ(v.detail, "tokyo vs osaka");
}

TEST_F(LexicalGuardTest, ConcurrentChecksAgree) {
  const Case cases[] = {{"How do I apply for paid leave?", "how do I request paid leave", "pass"},
                        {"Convert USD to EUR", "Convert EUR to USD", "order"},
                        {"有給休暇の申請方法", "有給の取り方", "pass"},
                        {"東京のホテル", "大阪のホテル", "entity"}};
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        for (const Case& c : cases) {
          if (Verdict(c.query, c.candidate) != c.want) ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

// Not an assertion (speed belongs to benchmarks): prints the cost of a check
// so a regression is visible in the test log.
TEST_F(LexicalGuardTest, PrintsCheckCost) {
  const Case cases[] = {{"How do I apply for paid leave?", "how do I request paid leave", ""},
                        {"How do I apply for paid leave?", "How do I apply for sick leave?", ""},
                        {"有給休暇の申請方法", "有給の取り方", ""}};
  for (const Case& c : cases) {
    constexpr int kRounds = 2000;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) guard_->Check(c.query, c.candidate);
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                    .count() /
                kRounds;
    std::printf("[ guard    ] %.1f us per check: %s | %s\n", us, c.query, c.candidate);
  }
}

TEST(EnglishTokenizerTest, NumbersContractionsAndSymbols) {
  auto texts = [](std::string_view text) {
    std::vector<std::string> out;
    for (const semantic::EnToken& t : semantic::TokenizeEnglish(text)) {
      out.push_back(t.text + (t.entity ? "!" : "") + (t.negation ? "~" : ""));
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(texts("Can't I pay $1,000?"), (V{"can", "not~", "i", "pay", "dollar", "1000"}));
  EXPECT_EQ(texts("twenty-one days, 3pm, 50%"), (V{"21", "days", "3", "pm", "50", "percent"}));
  EXPECT_EQ(texts("my 2nd and second try"), (V{"my", "#2", "and", "#2", "try"}));
  EXPECT_EQ(texts("wait a second"), (V{"wait", "a", "second"}));
  EXPECT_EQ(texts("Python 3.10 on macOS in Tokyo"),
            (V{"python", "3.10", "on", "macos!", "in", "tokyo!"}));
  EXPECT_EQ(texts("C++ vs C#"), (V{"c++", "vs", "c#!"}));
  EXPECT_EQ(texts("reserve one"), (V{"reserve", "one"}));
  EXPECT_EQ(texts("one hundred and five"), (V{"105"}));
  EXPECT_EQ(texts("I won\u2019t go"), (V{"i", "will", "not~", "go"}));
  EXPECT_TRUE(texts("").empty());
  EXPECT_TRUE(texts("?!...").empty());
}

TEST(ScriptTest, DetectsLanguageAndBadBytes) {
  using semantic::DetectScript;
  using semantic::Script;
  EXPECT_EQ(DetectScript("How do I apply?"), Script::kLatin);
  EXPECT_EQ(DetectScript("Café au lait"), Script::kLatin);
  EXPECT_EQ(DetectScript("12345"), Script::kLatin);
  EXPECT_EQ(DetectScript("有給休暇の申請方法"), Script::kJapanese);
  EXPECT_EQ(DetectScript("iPhone 15の設定"), Script::kJapanese);
  EXPECT_EQ(DetectScript("Как дела"), Script::kOther);
  EXPECT_EQ(DetectScript("  ?!  "), Script::kEmpty);
  EXPECT_EQ(DetectScript(""), Script::kEmpty);
  EXPECT_EQ(DetectScript("\xff"), Script::kInvalid);
  EXPECT_EQ(DetectScript("\xe3\x81"), Script::kInvalid);          // truncated
  EXPECT_EQ(DetectScript("\xed\xa0\x80"), Script::kInvalid);      // surrogate
  EXPECT_EQ(DetectScript("\xf4\x90\x80\x80"), Script::kInvalid);  // past U+10FFFF
}

}  // namespace
}  // namespace llmcache
