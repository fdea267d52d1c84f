// The grey-band LLM check through the real binary: `llmcache serve` with the
// semantic cache, a threshold no paraphrase reaches and a wide grey band, so
// every candidate is asked about. The fake upstream answers the check: "yes"
// when both questions carry the same #marker word, else "no".
#include <boost/json.hpp>

#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

constexpr const char* kJudge = "judge";

class E2eSemanticVerify : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    GatewayProcessOptions o;
    o.upstream_url = upstream().url();
    o.data_dir = dir_.path();
    o.threads = 1;
    // The model comes from the flag, the rest from the file; the "strict"
    // namespace is not verified.
    o.config_yaml =
        "semantic: true\n"
        "semantic_threshold: 1.0\n"
        "semantic_verify:\n"
        "  grey_band: 0.6\n"
        "  timeout: 2s\n"
        "namespaces:\n"
        "  strict:\n"
        "    semantic_verify: false\n";
    o.extra_args = {"--semantic-verify-model", kJudge};
    gw_ = std::make_unique<GatewayProcess>(std::move(o));
    ASSERT_TRUE(gw_->Start()) << gw_->Log();
  }

  HttpResponse Ask(std::string_view system, std::string_view question, const Headers& h = {}) {
    return Post(gw_->port(), "/v1/chat/completions", SystemChatBody(system, question), h);
  }
  std::string Metrics() { return Get(gw_->port(), "/metrics").body; }
  // Answers join the semantic cache off the request path.
  bool IndexHolds(double n) {
    return WaitFor(
        [&] {
          auto v = MetricValue(Metrics(), "llmcache_semantic_index_size", {});
          return v && *v >= n;
        },
        10s);
  }
  int64_t Calls(std::string_view model) {
    auto s = upstream().Stats();
    const auto* by_model = s.at("calls_by_model").as_object().if_contains(model);
    return by_model ? by_model->to_number<int64_t>() : 0;
  }

  TempDir dir_;
  std::unique_ptr<GatewayProcess> gw_;
};

TEST_F(E2eSemanticVerify, GreyBandCandidateHitsOnlyAfterAYesAndEachPairIsAskedOnce) {
  const std::string yes_ctx = "You are the IT help desk.";
  const std::string no_ctx = "You are the HR help desk.";
  const std::string strict_ctx = "You are the legal help desk.";
  auto first = Ask(yes_ctx, "How do I reset my password #account?");
  ASSERT_EQ(first.status, 200) << first.Describe();
  ASSERT_EQ(first.Cache(), "miss");
  ASSERT_EQ(Ask(no_ctx, "How do I reset my password?").Cache(), "miss");
  ASSERT_EQ(
      Ask(strict_ctx, "How do I reset my password?", {{"x-llmcache-namespace", "strict"}}).Cache(),
      "miss");
  ASSERT_TRUE(IndexHolds(3)) << gw_->Log();
  const int64_t answers = Calls("llama3");
  ASSERT_EQ(Calls(kJudge), 0);

  // Same marker word: the judge says yes, and the cached answer is served.
  auto para = Ask(yes_ctx, "How can I reset my password #account?");
  ASSERT_EQ(para.status, 200) << para.Describe();
  EXPECT_EQ(para.Cache(), "semantic-hit") << gw_->Log();
  EXPECT_EQ(ContentOf(para), ContentOf(first));
  EXPECT_EQ(Calls(kJudge), 1);

  // No marker: the judge says no, and the question goes upstream.
  EXPECT_EQ(Ask(no_ctx, "How can I reset my password?").Cache(), "miss");
  EXPECT_EQ(Calls(kJudge), 2);

  // Asked again: the pair's "yes" is remembered, so the judge is not asked
  // again.
  EXPECT_EQ(Ask(yes_ctx, "How can I reset my password #account?").Cache(), "semantic-hit");
  EXPECT_EQ(Ask(no_ctx, "How can I reset my password?").Cache(), "hit")
      << "the miss above stored its own answer";
  EXPECT_EQ(Calls(kJudge), 2);

  // A namespace with semantic_verify: false keeps the plain threshold.
  EXPECT_EQ(
      Ask(strict_ctx, "How can I reset my password #account?", {{"x-llmcache-namespace", "strict"}})
          .Cache(),
      "miss");
  EXPECT_EQ(Calls(kJudge), 2);
  // Only the two misses went upstream for an answer.
  EXPECT_EQ(Calls("llama3"), answers + 2);

  const std::string m = Metrics();
  EXPECT_EQ(MetricValue(m, "llmcache_semantic_verify_calls_total", {{"outcome", "yes"}}), 1);
  EXPECT_EQ(MetricValue(m, "llmcache_semantic_verify_calls_total", {{"outcome", "no"}}), 1);
  EXPECT_EQ(MetricValue(m, "llmcache_semantic_verify_calls_total", {{"outcome", "error"}}), 0);
  EXPECT_GE(MetricValue(m, "llmcache_semantic_verify_memo_hits_total", {}).value_or(0), 1);
  EXPECT_EQ(MetricValue(m, "llmcache_semantic_verified_hits_total", {}), 2);
  EXPECT_GE(
      MetricValue(m, "llmcache_semantic_refusals_total", {{"reason", "verifier"}}).value_or(0), 1);
}

TEST_F(E2eSemanticVerify, AFailingJudgeIsAMissNeverAnError) {
  const std::string ctx = "You are the IT help desk.";
  ASSERT_EQ(Ask(ctx, "How do I reset my password #account?").Cache(), "miss");
  ASSERT_TRUE(IndexHolds(1)) << gw_->Log();
  ASSERT_TRUE(upstream().Config(R"({"fault":"500","fault_count":1})"));
  // The check fails (HTTP 500), the candidate is refused, and the question
  // goes upstream as a miss, which now succeeds.
  auto r = Ask(ctx, "How can I reset my password #account?");
  EXPECT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Cache(), "miss");
  EXPECT_EQ(Calls(kJudge), 1);
  EXPECT_EQ(MetricValue(Metrics(), "llmcache_semantic_verify_calls_total", {{"outcome", "error"}}),
            1);
}

}  // namespace
}  // namespace llmcache::e2e
