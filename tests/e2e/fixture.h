// The gtest fixture shared by the end-to-end tests: one fake upstream per
// test suite (CTest runs every test in its own process anyway), reset before
// each test, and helpers to start gateways in front of it.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "e2e/harness.h"

namespace llmcache::e2e {

class E2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!upstream_) upstream_ = new FakeUpstream();
  }
  static void TearDownTestSuite() {
    delete upstream_;
    upstream_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(upstream_ && upstream_->ok()) << "the fake upstream did not start";
    upstream_->Reset();
  }


 public:
  static FakeUpstream& upstream() { return *upstream_; }
  // Model revision detection is off here: its /api/tags polls would show
  // up in the fake upstream's in_flight and last_* stats at random moments.
  // RevisionsTest turns it on.
  static gateway::GatewayOptions Options() {
    auto o = DefaultGatewayOptions(upstream_->url());
    o.detect_model_revisions = false;
    return o;
  }

  // Starts a gateway; the test fails (fatally, via the null result checked
  // by callers with ASSERT_TRUE) when it cannot start.
  static std::unique_ptr<TestGateway> StartGateway(gateway::GatewayOptions options,
                                                   StoreKind kind = StoreKind::kTiered,
                                                   std::shared_ptr<ManualClock> clock = nullptr) {
    auto gw = std::make_unique<TestGateway>(std::move(options), kind, std::move(clock));
    if (!gw->Start()) return nullptr;
    return gw;
  }
  static std::unique_ptr<TestGateway> StartGateway() { return StartGateway(Options()); }

  static inline FakeUpstream* upstream_ = nullptr;
};

// The assistant content of a response, or "" with a test failure when the
// response is not a well-formed answer.
inline std::string ContentOf(const HttpResponse& r) {
  Answer a = ParseAnswer(r);
  EXPECT_TRUE(a.ok) << a.problem;
  return a.content;
}

// An OpenAI-style error body: {"error":{"message":"...","type":"...",...}}.
inline ::testing::AssertionResult IsOpenAiError(const HttpResponse& r) {
  auto v = r.Json();
  if (!v.is_object()) return ::testing::AssertionFailure() << "not JSON: " << r.Describe();
  const auto* e = v.as_object().if_contains("error");
  if (!e || !e->is_object()) return ::testing::AssertionFailure() << "no error object: " << r.Describe();
  const auto* m = e->as_object().if_contains("message");
  const auto* t = e->as_object().if_contains("type");
  if (!m || !m->is_string() || m->as_string().empty() || !t || !t->is_string())
    return ::testing::AssertionFailure() << "error without message/type: " << r.Describe();
  if (!r.Header("content-type").starts_with("application/json"))
    return ::testing::AssertionFailure() << "content-type is not JSON: " << r.Describe();
  return ::testing::AssertionSuccess();
}

inline std::string ErrorCode(const HttpResponse& r) {
  auto v = r.Json();
  if (!v.is_object()) return {};
  const auto* e = v.as_object().if_contains("error");
  if (!e || !e->is_object()) return {};
  const auto* c = e->as_object().if_contains("code");
  return c && c->is_string() ? std::string(c->as_string()) : std::string();
}

}  // namespace llmcache::e2e
