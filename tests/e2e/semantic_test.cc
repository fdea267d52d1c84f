// The semantic cache through the real binary (`llmcache serve --semantic on`,
// use-lite embedder, lexical guard): paraphrases hit within one context and
// never across contexts, siblings and unrepresentable text miss, and
// /admin/invalidate removes every answer built on a document.
#include <boost/json.hpp>

#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

constexpr const char* kAdminToken = "semantic-e2e-token";

class E2eSemantic : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    GatewayProcessOptions o;
    o.upstream_url = upstream().url();
    o.data_dir = dir_.path();
    o.threads = 1;
    o.extra_args = {"--semantic", "on", "--admin-token-env", "LLMCACHE_E2E_ADMIN"};
    o.env = {{"LLMCACHE_E2E_ADMIN", kAdminToken}};
    gw_ = std::make_unique<GatewayProcess>(std::move(o));
    ASSERT_TRUE(gw_->Start()) << gw_->Log();
  }

  HttpResponse Chat(const std::string& body, const Headers& h = {}) {
    return Post(gw_->port(), "/v1/chat/completions", body, h);
  }

  // Answers are recorded in the semantic cache off the request path; wait
  // until the index holds n questions.
  bool IndexHolds(double n) {
    return WaitFor(
        [&] {
          auto v =
              MetricValue(Get(gw_->port(), "/metrics").body, "llmcache_semantic_index_size", {});
          return v && *v >= n;
        },
        10s);
  }

  TempDir dir_;
  std::unique_ptr<GatewayProcess> gw_;
};

TEST_F(E2eSemantic, ParaphraseHitsWithinItsContextOnly) {
  const std::string hr = "You are the HR assistant of Example Corp.";
  auto first = Chat(SystemChatBody(hr, "How do I reset my password?"));
  ASSERT_EQ(first.status, 200) << first.Describe();
  ASSERT_EQ(first.Cache(), "miss");
  ASSERT_TRUE(IndexHolds(1)) << gw_->Log();
  int64_t calls = upstream().ModelCalls();

  auto para = Chat(SystemChatBody(hr, "How can I reset my password?"));
  ASSERT_EQ(para.status, 200) << para.Describe();
  EXPECT_EQ(para.Cache(), "semantic-hit");
  EXPECT_FALSE(para.Header("x-llmcache-similarity").empty());
  EXPECT_EQ(ContentOf(para), ContentOf(first)) << "a semantic hit serves the cached answer";
  EXPECT_EQ(upstream().ModelCalls(), calls);

  // Another system prompt is another context; a sibling question and another
  // namespace never share the answer.
  EXPECT_EQ(Chat(SystemChatBody("You are a travel agent.", "How can I reset my password?")).Cache(),
            "miss");
  EXPECT_EQ(Chat(SystemChatBody(hr, "How do I reset my username?")).Cache(), "miss");
  EXPECT_EQ(
      Chat(SystemChatBody(hr, "How can I reset my password?"), {{"x-llmcache-namespace", "other"}})
          .Cache(),
      "miss");

  auto metrics = Get(gw_->port(), "/metrics").body;
  EXPECT_GE(MetricValue(metrics, "llmcache_semantic_hits_total", {}).value_or(0), 1);
  EXPECT_GE(
      MetricValue(metrics, "llmcache_semantic_refusals_total", {{"reason", "guard_content_word"}})
          .value_or(0),
      1);
}

TEST_F(E2eSemantic, JapaneseWithTheEnglishEmbedderIsExactOnly) {
  const std::string sys = "社内ヘルプデスクです。";
  ASSERT_EQ(Chat(SystemChatBody(sys, "有給休暇の申請方法を教えてください")).Cache(), "miss");
  EXPECT_EQ(Chat(SystemChatBody(sys, "有給休暇はどうやって申請しますか")).Cache(), "miss");
  EXPECT_EQ(Chat(SystemChatBody(sys, "有給休暇の申請方法を教えてください")).Cache(), "hit");
}

TEST_F(E2eSemantic, InvalidatingADocumentRemovesEveryAnswerBuiltOnIt) {
  const std::string sys = "Answer from the handbook.";
  Headers docs = {{"x-llmcache-doc-hashes", "handbook-v1, faq-7"}};
  ASSERT_EQ(Chat(SystemChatBody(sys, "How many vacation days do I get?"), docs).Cache(), "miss");
  // The body extension names documents too.
  std::string ext = SystemChatBody(sys, "Who approves expense reports?");
  ext.insert(ext.size() - 1, R"(,"llmcache":{"doc_hashes":["handbook-v1"]})");
  ASSERT_EQ(Chat(ext).Cache(), "miss");
  ASSERT_EQ(Chat(SystemChatBody(sys, "Where is the cafeteria?")).Cache(), "miss");
  ASSERT_TRUE(IndexHolds(3)) << gw_->Log();

  Headers admin = {{"authorization", std::string("Bearer ") + kAdminToken}};
  auto r = Post(gw_->port(), "/admin/invalidate", R"({"doc_hash":"handbook-v1"})", admin);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json().at("invalidated").as_int64(), 2);

  EXPECT_EQ(Chat(SystemChatBody(sys, "How many vacation days do I get?"), docs).Cache(), "miss");
  EXPECT_EQ(Chat(ext).Cache(), "miss");
  EXPECT_EQ(Chat(SystemChatBody(sys, "Where is the cafeteria?")).Cache(), "hit");

  EXPECT_EQ(Post(gw_->port(), "/admin/invalidate", R"({"doc":"x"})", admin).status, 400);
  EXPECT_EQ(Post(gw_->port(), "/admin/invalidate", R"({"doc_hash":"x"})").status, 401);
}

TEST_F(E2eSemantic, MalformedDocumentHashesAreRefused) {
  auto r = Chat(SystemChatBody("s", "q?"), {{"x-llmcache-doc-hashes", "ok,bad hash!"}});
  EXPECT_EQ(r.status, 400) << r.Describe();
  EXPECT_EQ(r.Json().at("error").at("code").as_string(), "invalid_doc_hashes");
  std::string ext = SystemChatBody("s", "q?");
  ext.insert(ext.size() - 1, R"(,"llmcache":{"doc_hashes":"not-a-list"})");
  EXPECT_EQ(Chat(ext).status, 400);
}

}  // namespace
}  // namespace llmcache::e2e
