// `llmcache serve --model`: the gateway with the engine in-process as its
// upstream. Misses are the engine's greedy answers, repeats are cache hits,
// and streams pass through the gateway's stream handling.
#include "engine/server/engine_upstream.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "engine/server/engine_metrics.h"
#include "engine/server/open_backend.h"
#include "engine/server/server_test_util.h"
#include "gateway/gateway.h"
#include "llmcache/store.h"

namespace llmcache::engine {
namespace {

namespace json = boost::json;
using servertest::Call;
using servertest::Obj;

class EngineUpstreamTest : public servertest::TinyModelTest {
 protected:
  void SetUp() override {
    TinyModelTest::SetUp();
    if (Unready()) return;
    vocab_ = std::make_unique<Vocab>(servertest::VocabOf(*model_));
    auto backend = OpenEngineBackend(*model_, {.n_ctx = 128, .threads = 2});
    ASSERT_TRUE(backend.has_value());
    EngineApiOptions ao;
    ao.model_name = "tiny";
    auto api = EngineApi::Create(model_, std::move(*backend), ao);
    ASSERT_TRUE(api.has_value()) << api.error().ToString();
    api_ = *api;

    gateway::GatewayOptions o;
    o.server.host = "127.0.0.1";
    o.server.port = 0;
    o.server.threads = 2;
    o.detect_model_revisions = false;
    o.register_metrics = [api = api_](metrics::Registry& r) { RegisterEngineMetrics(r, api); };
    MemoryStoreOptions mo;
    mo.max_bytes = 16u << 20;
    auto gw =
        gateway::Gateway::Create(o, NewMemoryStore(mo), nullptr, MakeEngineUpstreamFactory(api_));
    ASSERT_TRUE(gw.has_value()) << gw.error().ToString();
    gw_ = std::move(*gw);
    ASSERT_TRUE(gw_->Start().ok());
  }
  void TearDown() override {
    // The engine first, so that no generation reports to a stopped loop.
    if (api_) api_->Shutdown();
    if (gw_) gw_->Stop();
  }

  http::BufferedResponse Chat(const std::string& user, bool stream) {
    json::object b{{"model", "tiny"},
                   {"messages", json::array{json::object{{"role", "user"}, {"content", user}}}},
                   {"max_tokens", 6},
                   {"temperature", 0}};
    if (stream) b["stream"] = true;
    return Call(gw_->port(), "POST", "/v1/chat/completions", json::serialize(b));
  }
  std::string Expected(const std::string& user) {
    return servertest::AnswerText(
        *vocab_, servertest::ReferenceGreedy(*model_, *vocab_,
                                             servertest::ChatPromptTokens(*vocab_, user), 6));
  }

  std::unique_ptr<Vocab> vocab_;
  std::shared_ptr<EngineApi> api_;
  std::unique_ptr<gateway::Gateway> gw_;
};

TEST_F(EngineUpstreamTest, SecondIdenticalRequestIsACacheHit) {
  auto first = Chat("What is a cache?", false);
  ASSERT_EQ(first.status, 200u) << first.body;
  EXPECT_EQ(first.Header("x-llmcache"), "miss");
  auto o = Obj(first.body);
  EXPECT_EQ(o["choices"].at(0).at("message").at("content").as_string(),
            Expected("What is a cache?"));
  EXPECT_EQ(o["usage"].at("prompt_tokens_details").at("cached_tokens").to_number<int>(), 0);

  auto second = Chat("What is a cache?", false);
  ASSERT_EQ(second.status, 200u);
  EXPECT_EQ(second.Header("x-llmcache"), "hit");
  EXPECT_EQ(second.body, first.body);

  // The stored answer also serves the stream form of the request.
  auto streamed = Chat("What is a cache?", true);
  ASSERT_EQ(streamed.status, 200u);
  EXPECT_EQ(streamed.Header("x-llmcache"), "hit");
  auto s = servertest::Reassemble(streamed.body, true);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.text, Expected("What is a cache?"));
}

TEST_F(EngineUpstreamTest, GatewayMetricsIncludeTheEngines) {
  const auto prompt = servertest::ChatPromptTokens(*vocab_, "Count my tokens");
  ASSERT_EQ(Chat("Count my tokens", false).Header("x-llmcache"), "miss");
  ASSERT_EQ(Chat("Count my tokens", false).Header("x-llmcache"), "hit");
  auto m = servertest::Scrape(gw_->port());
  // The gateway's own series and the engine's, side by side; the hit never
  // reached the engine.
  EXPECT_EQ(m.at("llmcache_requests_total{route=\"chat\",model=\"tiny\",result=\"hit\"}"), 1);
  EXPECT_EQ(m.at("llmcache_engine_requests_total{result=\"stop\"}") +
                m.at("llmcache_engine_requests_total{result=\"length\"}"),
            1);
  EXPECT_EQ(m.at("llmcache_engine_prompt_tokens_total"), prompt.size());
  EXPECT_EQ(m.at("llmcache_engine_prefix_cache_queried_tokens_total"), prompt.size());
  EXPECT_EQ(m.at("llmcache_engine_prefix_cache_hit_tokens_total"), 0);
  EXPECT_EQ(m.at("llmcache_engine_requests_running"), 0);
}

TEST_F(EngineUpstreamTest, StreamedMissIsRelayedAndStored) {
  auto first = Chat("Stream this please", true);
  ASSERT_EQ(first.status, 200u) << first.body;
  EXPECT_EQ(first.Header("x-llmcache"), "miss");
  auto s = servertest::Reassemble(first.body, true);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.text, Expected("Stream this please"));
  EXPECT_TRUE(s.usage.empty());  // the gateway asked for usage; the client did not

  auto again = Chat("Stream this please", false);
  EXPECT_EQ(again.Header("x-llmcache"), "hit");
  EXPECT_EQ(Obj(again.body)["choices"].at(0).at("message").at("content").as_string(), s.text);
}

TEST_F(EngineUpstreamTest, EngineErrorsReachTheClientAndAreNotCached) {
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += " word";
  for (int i = 0; i < 2; ++i) {
    auto r = Chat(long_text, false);
    EXPECT_EQ(r.status, 400u) << r.body;
    EXPECT_NE(r.body.find("context_length_exceeded"), std::string::npos) << r.body;
    EXPECT_NE(r.Header("x-llmcache"), "hit");
  }
  auto models = Call(gw_->port(), "GET", "/v1/models");
  EXPECT_EQ(models.status, 200u) << models.body;
  EXPECT_NE(models.body.find("\"tiny\""), std::string::npos);
}

}  // namespace
}  // namespace llmcache::engine
