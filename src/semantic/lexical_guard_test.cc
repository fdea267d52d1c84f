#include "semantic/lexical_guard.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
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
  // (A deciding verb: one inserted generic word, like "sick", passes now.)
  EXPECT_EQ(Verdict(long_text, long_text + " cancel"), "content_word");
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

// --- The looser English rules: inserted words, light verbs, word alignment --

// Word vectors for the alignment tests: words in one group share a vector,
// every other word gets its own (orthogonal) one. Counts its calls; fails
// while `fail` is set.
class FakeWordEmbedder final : public Embedder {
 public:
  explicit FakeWordEmbedder(std::vector<std::vector<std::string>> groups)
      : groups_(std::move(groups)) {}
  size_t dimension() const override { return kDim; }
  std::string_view id() const override { return "fake-words"; }
  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) override {
    ++calls;
    if (fail) return Err(Status::Unavailable("down"));
    std::vector<std::vector<float>> out;
    for (const std::string& t : texts) {
      std::vector<float> v(kDim, 0.0f);
      v[SlotOf(t) % kDim] = 1.0f;
      out.push_back(std::move(v));
    }
    return out;
  }
  std::atomic<int> calls{0};
  std::atomic<bool> fail{false};

 private:
  static constexpr size_t kDim = 256;
  size_t SlotOf(const std::string& word) {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (const std::string& w : groups_[g]) {
        if (w == word) return g;
      }
    }
    auto [it, fresh] = others_.emplace(word, groups_.size() + others_.size());
    return it->second;
  }
  std::vector<std::vector<std::string>> groups_;
  std::mutex mu_;
  std::map<std::string, size_t> others_;
};

// Three guards, loaded once (loading WordNet is the slow part): strict (no
// insertion, no word embedder), loose (one inserted word, the default),
// aligned (a fake word embedder, no insertion).
class LexicalGuardLooseRules : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    LexicalGuardOptions o;
    o.max_inserted_words = 0;
    strict_ = Load(o).release();
    o.max_inserted_words = 1;
    o.loose_threshold_raise = 0.05;
    loose_ = Load(o).release();
    words_ = new std::shared_ptr<FakeWordEmbedder>(std::make_shared<FakeWordEmbedder>(
        std::vector<std::vector<std::string>>{{"freeze", "lock"},
                                              {"safe", "unsafe"},
                                              {"tokyo", "osaka"},
                                              {"kubectlzz", "kubectlyy"},
                                              {"kangaroo", "wombat"}}));
    o = {};
    o.max_inserted_words = 0;
    o.word_embedder = *words_;
    o.min_word_similarity = 0.9;
    o.loose_threshold_raise = 0.02;
    aligned_ = Load(o).release();
  }
  static void TearDownTestSuite() {
    for (LexicalGuard** g : {&strict_, &loose_, &aligned_}) {
      delete *g;
      *g = nullptr;
    }
    delete words_;
    words_ = nullptr;
  }
  static std::unique_ptr<LexicalGuard> Load(const LexicalGuardOptions& options) {
    auto guard = NewLexicalGuard(options);
    EXPECT_TRUE(guard.has_value()) << guard.error().ToString();
    return guard ? std::move(*guard) : nullptr;
  }
  void SetUp() override { ASSERT_TRUE(strict_ && loose_ && aligned_); }

  // The verdict both ways round; the guard must be symmetric.
  static std::string VerdictOf(const LexicalGuard* g, std::string_view q, std::string_view c) {
    GuardVerdict a = g->Check(q, c), b = g->Check(c, q);
    std::string va = a.pass ? "pass" : a.reason, vb = b.pass ? "pass" : b.reason;
    EXPECT_EQ(va, vb) << q << " | " << c << " : " << a.detail << " / " << b.detail;
    return va;
  }

  static LexicalGuard* strict_;
  static LexicalGuard* loose_;
  static LexicalGuard* aligned_;
  static std::shared_ptr<FakeWordEmbedder>* words_;
};
LexicalGuard* LexicalGuardLooseRules::strict_ = nullptr;
LexicalGuard* LexicalGuardLooseRules::loose_ = nullptr;
LexicalGuard* LexicalGuardLooseRules::aligned_ = nullptr;
std::shared_ptr<FakeWordEmbedder>* LexicalGuardLooseRules::words_ = nullptr;

TEST_F(LexicalGuardLooseRules, LightVerbsAndVerbsOfAskingAreScaffolding) {
  EXPECT_EQ(VerdictOf(strict_, "How do I get a refund?", "refund please"), "pass");
  EXPECT_EQ(VerdictOf(strict_, "How long does it take from Tokyo to Osaka?",
                      "How long from Tokyo to Osaka?"),
            "pass");
  EXPECT_EQ(VerdictOf(strict_, "How do I apply for paid leave?", "paid leave"), "pass");
  // A verb that decides the answer is neither.
  EXPECT_EQ(VerdictOf(strict_, "How do I make a reservation?", "How do I cancel a reservation?"),
            "content_word");
  EXPECT_EQ(VerdictOf(loose_, "How do I make a reservation?", "How do I cancel a reservation?"),
            "content_word");
}

TEST_F(LexicalGuardLooseRules, OneTypoInAnUnknownWord) {
  EXPECT_EQ(VerdictOf(strict_, "How do I reset my password?", "reset my pasword"), "pass");
  EXPECT_EQ(VerdictOf(strict_, "How do I reset my password?", "reset my passwrod"), "pass");
  EXPECT_EQ(VerdictOf(strict_, "How do I reset my password?", "reset my passsword"), "pass");
  // Two edits, or two real words one edit apart, are different words.
  EXPECT_EQ(VerdictOf(strict_, "How do I reset my password?", "reset my pasward"), "content_word");
  EXPECT_EQ(VerdictOf(strict_, "Is the printer enable?", "Is the printer unable?"), "content_word");
  // Short words are too easy to confuse.
  EXPECT_EQ(VerdictOf(strict_, "How do I book a car?", "How do I book a cra?"), "content_word");
}

TEST_F(LexicalGuardLooseRules, OneGenericInsertedWordPasses) {
  GuardVerdict v =
      loose_->Check("How do I reset my password?", "How do I reset my account password?");
  EXPECT_TRUE(v.pass) << v.detail;
  EXPECT_DOUBLE_EQ(v.threshold_raise, 0.05);
  EXPECT_NE(v.detail.find("+account"), std::string::npos) << v.detail;
  // Without the rule it is refused.
  EXPECT_EQ(
      VerdictOf(strict_, "How do I reset my password?", "How do I reset my account password?"),
      "content_word");
  // A strict pass asks for no more similarity.
  v = loose_->Check("How do I apply for paid leave?", "how do I request paid leave");
  EXPECT_TRUE(v.pass);
  EXPECT_DOUBLE_EQ(v.threshold_raise, 0.0);

  // Replacements stay refused: "paid" and "sick" fill the same slot.
  EXPECT_EQ(VerdictOf(loose_, "How do I apply for paid leave?", "How do I apply for sick leave?"),
            "content_word");
  // An inserted action changes the question.
  EXPECT_EQ(VerdictOf(loose_, "temporarily block my card", "remove the temporary block on my card"),
            "content_word");
  // Words WordNet does not know, names and numbers are never generic.
  EXPECT_EQ(VerdictOf(loose_, "How do I reset my password?", "How do I reset my gmail password?"),
            "content_word");
  EXPECT_EQ(VerdictOf(loose_, "best hotels", "best hotels in Osaka"), "entity");
  EXPECT_EQ(VerdictOf(loose_, "How do I install Python?", "How do I install Python 3.12?"),
            "number");
  // Particles and adverbs are never generic: their counterpart may be a
  // stop word ("on", "in").
  EXPECT_EQ(VerdictOf(loose_, "How do I turn on the heater?", "How do I turn off the heater?"),
            "content_word");
  EXPECT_EQ(VerdictOf(loose_, "What time is check-in at the hotel?", "hotel check-out time"),
            "content_word");
  // Bounded: two inserted words are more than one.
  EXPECT_EQ(
      VerdictOf(loose_, "How do I reset my password?", "How do I reset my old account password?"),
      "content_word");
  // Negation and question words keep their own rules.
  EXPECT_EQ(VerdictOf(loose_, "Can I park here?", "Can't I park here?"), "negation");
  EXPECT_EQ(VerdictOf(loose_, "Where do I request paid leave?", "When do I request paid leave?"),
            "content_word");
  // Japanese is not affected.
  EXPECT_EQ(VerdictOf(loose_, "有給休暇の申請方法", "病気休暇の申請方法"), "content_word");
}

TEST_F(LexicalGuardLooseRules, WordAlignmentByEmbedding) {
  GuardVerdict v = aligned_->Check("How do I freeze my credit card?", "lock my credit card");
  EXPECT_TRUE(v.pass) << v.reason << " " << v.detail;
  EXPECT_DOUBLE_EQ(v.threshold_raise, 0.02);
  EXPECT_NE(v.detail.find("freeze~lock"), std::string::npos) << v.detail;
  EXPECT_EQ(VerdictOf(strict_, "How do I freeze my credit card?", "lock my credit card"),
            "content_word");
  // Words the embedder puts apart stay apart.
  EXPECT_EQ(
      VerdictOf(aligned_, "How do I freeze my credit card?", "How do I cancel my credit card?"),
      "content_word");
  // WordNet antonyms, names and unknown words are never aligned, whatever
  // the vectors say.
  EXPECT_EQ(VerdictOf(aligned_, "Is the water safe to drink?", "Is the water unsafe to drink?"),
            "negation");
  EXPECT_EQ(VerdictOf(aligned_, "Best hotels in Tokyo", "Best hotels in Osaka"), "entity");
  EXPECT_EQ(VerdictOf(aligned_, "How to install kubectlzz", "How to install kubectlyy"),
            "content_word");
  // Vectors are kept: the same words cost no second call.
  int calls = (*words_)->calls.load();
  EXPECT_TRUE(aligned_->Check("How do I freeze my credit card?", "lock my credit card").pass);
  EXPECT_EQ((*words_)->calls.load(), calls);
}

// An embedder that fails: no alignment, so a refusal, never a crash or a
// pass; and the failure is not remembered.
TEST_F(LexicalGuardLooseRules, FailingWordEmbedderRefuses) {
  (*words_)->fail = true;
  EXPECT_EQ(VerdictOf(aligned_, "Where can I see a kangaroo?", "Where can I see a wombat?"),
            "content_word");
  (*words_)->fail = false;
  EXPECT_EQ(VerdictOf(aligned_, "Where can I see a kangaroo?", "Where can I see a wombat?"),
            "pass");
}

}  // namespace
}  // namespace llmcache
