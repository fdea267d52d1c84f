#include "semantic/llm_verifier.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "semantic/fake_http_test_util.h"
#include "semantic/semantic_cache_test_util.h"

namespace llmcache::semantic {
namespace {

namespace json = boost::json;
using testing::FakeAnswer;
using testing::FakeEmbedder;
using testing::FakeHttpServer;
using testing::SeenRequest;

FakeAnswer ChatAnswer(std::string_view content) {
  json::object message{{"role", "assistant"}, {"content", content}};
  json::object choice{{"index", 0}, {"message", message}, {"finish_reason", "stop"}};
  return {200, json::serialize(json::object{{"object", "chat.completion"},
                                            {"choices", json::array{choice}}})};
}

// The two questions of a verification request, as the user message quotes
// them.
std::pair<std::string, std::string> AskedPair(const SeenRequest& r) {
  json::value body = json::parse(r.body);
  std::string user(body.at("messages").as_array().back().at("content").as_string());
  auto quoted = [&](std::string_view label) {
    size_t at = user.find(label);
    size_t end = user.find('\n', at);
    return std::string(
        json::parse(user.substr(at + label.size(), end - at - label.size())).as_string());
  };
  return {quoted("Question 1: "), quoted("Question 2: ")};
}

std::unique_ptr<PairVerifier> Make(const std::string& url, LlmVerifierOptions o = {}) {
  o.url = url;
  if (o.model.empty()) o.model = "judge";
  auto v = NewLlmVerifier(o);
  EXPECT_TRUE(v) << v.error().ToString();
  return v ? std::move(*v) : nullptr;
}

TEST(LlmVerifier, AsksAShortDeterministicQuestion) {
  LlmVerifierOptions o;
  o.model = "qwen";
  o.max_tokens = 3;
  json::value body =
      json::parse(LlmVerifierRequestBody(o, "How do I\nreset my password?", "Reset \"pw\"?"));
  EXPECT_EQ(body.at("model").as_string(), "qwen");
  EXPECT_EQ(body.at("temperature").to_number<double>(), 0);
  EXPECT_EQ(body.at("max_tokens").as_int64(), 3);
  EXPECT_FALSE(body.at("stream").as_bool());
  const json::array& msgs = body.at("messages").as_array();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].at("role").as_string(), "system");
  // One question per line, JSON-quoted: a question cannot add a line.
  EXPECT_EQ(msgs[1].at("content").as_string(),
            "Question 1: \"How do I reset my password?\"\n"
            "Question 2: \"Reset \\\"pw\\\"?\"\nSame answer (yes or no)?");
}

TEST(LlmVerifier, OnlyAPlainYesIsAYes) {
  for (const char* yes : {"yes", "Yes", " YES.\n", "\"yes\"", "**Yes**", "Yes,"}) {
    auto r = ParseLlmVerifierAnswer(ChatAnswer(yes).body);
    ASSERT_TRUE(r) << yes;
    EXPECT_TRUE(*r) << yes;
  }
  for (const char* no : {"no", "No.", "Yes and no", "maybe", "", "yes!? no", "The answer is yes"}) {
    auto r = ParseLlmVerifierAnswer(ChatAnswer(no).body);
    ASSERT_TRUE(r) << no;
    EXPECT_FALSE(*r) << no;
  }
  // A refusal or tool call (content null) is not a yes either.
  auto null_content = ParseLlmVerifierAnswer(
      R"({"choices":[{"message":{"role":"assistant","content":null,"refusal":"no"}}]})");
  ASSERT_TRUE(null_content);
  EXPECT_FALSE(*null_content);
  // Not a chat completion at all: an error, which the cache does not remember.
  EXPECT_FALSE(ParseLlmVerifierAnswer("this is <not> JSON"));
  EXPECT_FALSE(ParseLlmVerifierAnswer(R"({"choices":[]})"));
  EXPECT_FALSE(ParseLlmVerifierAnswer(R"({"error":{"message":"model not found"}})"));
}

TEST(LlmVerifier, RefusesBadOptions) {
  EXPECT_FALSE(NewLlmVerifier({}));
  LlmVerifierOptions o;
  o.url = "http://127.0.0.1:1/v1";
  EXPECT_FALSE(NewLlmVerifier(o));  // no model
  o.model = "m";
  o.timeout = std::chrono::milliseconds(0);
  EXPECT_FALSE(NewLlmVerifier(o));
  o.timeout = std::chrono::milliseconds(100);
  o.url = "ftp://host";
  EXPECT_FALSE(NewLlmVerifier(o));
}

TEST(LlmVerifier, AnswersFromTheEndpoint) {
  // Yes when both questions mention "password"; garbage for "garbage".
  FakeHttpServer server([](const SeenRequest& r) {
    auto [a, b] = AskedPair(r);
    if (a.find("garbage") != std::string::npos) return ChatAnswer("I would say they are alike");
    const bool yes =
        a.find("password") != std::string::npos && b.find("password") != std::string::npos;
    return ChatAnswer(yes ? "Yes" : "No");
  });
  LlmVerifierOptions o;
  o.api_key = "sk-verify";
  auto v = Make(server.base_url(), o);
  ASSERT_TRUE(v);
  auto yes = v->SameAnswer("reset my password", "how to reset a password");
  ASSERT_TRUE(yes) << yes.error().ToString();
  EXPECT_TRUE(*yes);
  auto no = v->SameAnswer("reset my password", "reset my username");
  ASSERT_TRUE(no) << no.error().ToString();
  EXPECT_FALSE(*no);
  auto garbage = v->SameAnswer("garbage question", "reset my password");
  ASSERT_TRUE(garbage) << garbage.error().ToString();
  EXPECT_FALSE(*garbage) << "an unclear answer is a no";

  ASSERT_EQ(server.count(), 3u);
  const SeenRequest seen = server.seen().front();
  EXPECT_EQ(seen.target, "/v1/chat/completions");
  EXPECT_EQ(seen.authorization, "Bearer sk-verify");
  EXPECT_EQ(AskedPair(seen), std::make_pair(std::string("reset my password"),
                                            std::string("how to reset a password")));
  LlmVerifierOptions other;
  other.model = "other";
  EXPECT_NE(v->AnswererFor("any"), Make(server.base_url(), other)->AnswererFor("any"))
      << "another model's answers are remembered apart";
}

TEST(LlmVerifier, FailuresAreErrorsNotAnswers) {
  FakeHttpServer server([](const SeenRequest& r) {
    auto [a, b] = AskedPair(r);
    if (a == "500") return FakeAnswer(500, R"({"error":{"message":"overloaded"}})");
    if (a == "401") return FakeAnswer(401, R"({"error":{"message":"bad key"}})");
    if (a == "garbage") return FakeAnswer(200, "this is <not> JSON {{{");
    FakeAnswer slow = ChatAnswer("yes");
    slow.delay = std::chrono::milliseconds(1500);
    return slow;
  });
  LlmVerifierOptions o;
  o.timeout = std::chrono::milliseconds(300);
  auto v = Make(server.base_url(), o);
  ASSERT_TRUE(v);
  auto e500 = v->SameAnswer("500", "q");
  ASSERT_FALSE(e500);
  EXPECT_EQ(e500.error().code(), StatusCode::kUnavailable) << e500.error().ToString();
  EXPECT_FALSE(v->SameAnswer("401", "q"));
  auto garbage = v->SameAnswer("garbage", "q");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code(), StatusCode::kCorruption);
  auto slow = v->SameAnswer("slow", "q");
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().code(), StatusCode::kTimeout) << slow.error().ToString();

  // Nobody listening: an error too.
  auto nobody = Make("http://127.0.0.1:1/v1", o);
  ASSERT_TRUE(nobody);
  EXPECT_FALSE(nobody->SameAnswer("a", "b"));
}

class Scripted final : public PairVerifier {
 public:
  explicit Scripted(std::string name) : name_(std::move(name)) {}
  Result<bool> SameAnswer(std::string_view, std::string_view) override {
    ++calls;
    return true;
  }
  std::string AnswererFor(std::string_view) const override { return name_; }
  int calls = 0;

 private:
  std::string name_;
};

TEST(NamespaceVerifier, RoutesByConfiguredNamespace) {
  auto fallback = std::make_shared<Scripted>("fallback");
  auto faq = std::make_shared<Scripted>("faq-model");
  auto v = NewNamespaceVerifier(fallback, {{"faq", faq}, {"legal", nullptr}});
  EXPECT_EQ(v->AnswererFor("faq"), "faq-model");
  // The gateway's tenant suffix does not hide the namespace.
  EXPECT_EQ(v->AnswererFor("faq@0123456789abcdef0123456789abcdef"), "faq-model");
  EXPECT_EQ(v->AnswererFor("faq@not-a-tenant"), "fallback");
  EXPECT_EQ(v->AnswererFor("legal"), "") << "a namespace turned off is not verified";
  EXPECT_EQ(v->AnswererFor("other"), "fallback");
  EXPECT_TRUE(v->SameAnswerIn("faq", "a", "b"));
  EXPECT_FALSE(v->SameAnswerIn("legal", "a", "b"));
  EXPECT_TRUE(v->SameAnswerIn("other", "a", "b"));
  EXPECT_EQ(faq->calls, 1);
  EXPECT_EQ(fallback->calls, 1);

  auto only_faq = NewNamespaceVerifier(nullptr, {{"faq", faq}});
  EXPECT_EQ(only_faq->AnswererFor("other"), "");
  EXPECT_EQ(only_faq->AnswererFor("faq"), "faq-model");
}

TEST(OracleVerifier, AnswersFromLabelsWithASeededErrorRate) {
  OracleVerifierOptions o;
  for (int i = 0; i < 400; ++i) o.label_of["q" + std::to_string(i)] = "intent" + std::to_string(i / 4);
  auto perfect = NewOracleVerifier(o);
  EXPECT_TRUE(*perfect->SameAnswer("q0", "q3"));
  EXPECT_FALSE(*perfect->SameAnswer("q0", "q4"));
  EXPECT_FALSE(perfect->SameAnswer("q0", "unlabelled"));

  o.accuracy = 0.0;
  auto liar = NewOracleVerifier(o);
  EXPECT_FALSE(*liar->SameAnswer("q0", "q3"));
  EXPECT_TRUE(*liar->SameAnswer("q0", "q4"));

  o.accuracy = 0.9;
  auto noisy = NewOracleVerifier(o);
  int wrong = 0;
  for (int i = 0; i + 1 < 400; ++i) {
    const std::string a = "q" + std::to_string(i), b = "q" + std::to_string(i + 1);
    const bool answer = *noisy->SameAnswer(a, b);
    EXPECT_EQ(answer, *noisy->SameAnswer(b, a)) << "the same pair, the same answer";
    wrong += answer != *perfect->SameAnswer(a, b);
  }
  EXPECT_GT(wrong, 10);  // ~40 of 399
  EXPECT_LT(wrong, 80);
}

// The verifier inside the cache: a grey-band candidate hits only after a
// "yes", each pair is asked once per answerer, failures are not remembered.
class VerifiedCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    embedder_ = std::make_shared<FakeEmbedder>();
    options_.embedder = embedder_;
    options_.thresholds = {true, 0.90, 0.90};
    options_.grey_band = 0.30;
    testing::UseFlatTestIndex(&options_);
    embedder_->Set("how do I reset my password", embedder_->AtCosine(1.0));
    embedder_->Set("steps to reset a password", embedder_->AtCosine(0.75, 1));
    embedder_->Set("how do I reset my username", embedder_->AtCosine(0.80, 2));
    embedder_->Set("slow question about passwords", embedder_->AtCosine(0.70, 3));
  }
  SemanticQuery Q(std::string_view text, std::string_view ns = "t") {
    SemanticQuery q;
    q.ns = std::string(ns);
    q.eligible = true;
    q.text = std::string(text);
    q.context_key = "ctx-" + std::string(ns);  // as Prepare does: the namespace joins it
    q.words = 6;
    return q;
  }

  std::shared_ptr<FakeEmbedder> embedder_;
  SemanticCacheOptions options_;
};

TEST_F(VerifiedCacheTest, GreyBandCandidateHitsOnlyAfterAYes) {
  FakeHttpServer server([](const SeenRequest& r) {
    auto [a, b] = AskedPair(r);
    if (a.find("slow") != std::string::npos) {
      FakeAnswer slow = ChatAnswer("yes");
      slow.delay = std::chrono::milliseconds(1500);
      return slow;
    }
    const bool yes =
        a.find("password") != std::string::npos && b.find("password") != std::string::npos;
    return ChatAnswer(yes ? "yes" : "no");
  });
  LlmVerifierOptions vo;
  vo.timeout = std::chrono::milliseconds(300);
  options_.verifier = std::shared_ptr<PairVerifier>(Make(server.base_url(), vo));
  ASSERT_TRUE(options_.verifier);
  auto cache = OpenSemanticCache(options_);
  ASSERT_TRUE(cache) << cache.error().ToString();
  SemanticCache& c = **cache;
  SemanticQuery seed = Q("how do I reset my password");
  ASSERT_TRUE(c.Insert(&seed, "key-password", {}).ok());

  SemanticQuery para = Q("steps to reset a password");
  SemanticLookup hit = c.Lookup(&para);
  ASSERT_TRUE(hit.hit) << hit.reason;
  EXPECT_TRUE(hit.hit->verified);
  EXPECT_EQ(hit.hit->exact_key, "key-password");

  SemanticQuery sibling = Q("how do I reset my username");
  EXPECT_EQ(c.Lookup(&sibling).reason, "verifier");
  EXPECT_EQ(server.count(), 2u);

  // Asked again, with other case and spacing: answered from the memo.
  SemanticQuery again = Q("Steps to  reset a Password");
  embedder_->Set("Steps to  reset a Password", embedder_->AtCosine(0.75, 1));
  EXPECT_TRUE(c.Lookup(&again).hit);
  SemanticQuery sibling_again = Q("how do I reset my username");
  EXPECT_EQ(c.Lookup(&sibling_again).reason, "verifier");
  EXPECT_EQ(server.count(), 2u);

  // A timeout refuses the candidate and is not remembered: the next lookup
  // asks again.
  SemanticQuery slow = Q("slow question about passwords");
  EXPECT_EQ(c.Lookup(&slow).reason, "verifier_error");
  SemanticQuery slow_again = Q("slow question about passwords");
  EXPECT_EQ(c.Lookup(&slow_again).reason, "verifier_error");
  EXPECT_EQ(server.count(), 4u);

  SemanticCacheStats s = c.Stats();
  EXPECT_EQ(s.verifier_calls, 4u);
  EXPECT_EQ(s.verifier_yes, 1u);
  EXPECT_EQ(s.verifier_no, 1u);
  EXPECT_EQ(s.verifier_errors, 2u);
  EXPECT_EQ(s.verifier_cache_hits, 2u);
  EXPECT_EQ(s.verified_hits, 2u);
  EXPECT_GT(s.verifier_seconds, 0);
}

TEST_F(VerifiedCacheTest, NamespacesWithoutAVerifierKeepTheThreshold) {
  auto judge = std::make_shared<Scripted>("judge");
  options_.verifier = NewNamespaceVerifier(judge, {{"strict", nullptr}});
  auto cache = OpenSemanticCache(options_);
  ASSERT_TRUE(cache) << cache.error().ToString();
  SemanticCache& c = **cache;
  for (std::string_view ns : {"t", "strict"}) {
    SemanticQuery seed = Q("how do I reset my password", ns);
    ASSERT_TRUE(c.Insert(&seed, std::string("key-") + std::string(ns), {}).ok());
  }
  SemanticQuery verified = Q("steps to reset a password", "t");
  EXPECT_TRUE(c.Lookup(&verified).hit);
  SemanticQuery strict = Q("steps to reset a password", "strict");
  EXPECT_EQ(c.Lookup(&strict).reason, "below_threshold");
  EXPECT_EQ(judge->calls, 1);
}

}  // namespace
}  // namespace llmcache::semantic
