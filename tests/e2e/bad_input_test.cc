// Invalid requests: a 4xx with an OpenAI-style JSON error, nothing reaches
// the upstream, nothing is stored, and the gateway keeps serving.
#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2eBadInput : public E2eTest {};

std::string Quoted(std::string_view s) { return boost::json::serialize(boost::json::value(s)); }

TEST_F(E2eBadInput, InvalidRequestsAreRefusedAndNothingIsStored) {
  auto o = Options();
  o.server.max_body_bytes = 8192;
  auto gw = StartGateway(o);
  ASSERT_TRUE(gw);
  std::string p = Quoted(UniquePrompt("bad"));
  std::string msgs = R"([{"role":"user","content":)" + p + "}]";
  std::string deep = std::string(100, '[') + std::string(100, ']');

  struct Case {
    const char* what;
    std::string method, target, body;
    Headers headers;
    int status;
    const char* param = nullptr;  // expected error.param, when it matters
  };
  const Case cases[] = {
      {"invalid JSON", "POST", "/v1/chat/completions", "{\"model\":\"llama3\",", {}, 400},
      {"not an object", "POST", "/v1/chat/completions", "[1,2,3]", {}, 400},
      {"empty body", "POST", "/v1/chat/completions", "", {}, 400},
      {"model is a number", "POST", "/v1/chat/completions",
       R"({"model":42,"messages":)" + msgs + "}", {}, 400, "model"},
      {"model missing", "POST", "/v1/chat/completions", R"({"messages":)" + msgs + "}", {}, 400,
       "model"},
      {"messages not an array", "POST", "/v1/chat/completions",
       R"({"model":"llama3","messages":)" + p + "}", {}, 400, "messages"},
      {"messages missing", "POST", "/v1/chat/completions", R"({"model":"llama3"})", {}, 400,
       "messages"},
      {"temperature a string", "POST", "/v1/chat/completions",
       R"({"model":"llama3","temperature":"hot","messages":)" + msgs + "}", {}, 400},
      {"stream a string", "POST", "/v1/chat/completions",
       R"({"model":"llama3","stream":"yes","messages":)" + msgs + "}", {}, 400},
      {"over-deep JSON", "POST", "/v1/chat/completions",
       R"({"model":"llama3","messages":)" + msgs + R"(,"x":)" + deep + "}", {}, 400},
      {"invalid UTF-8", "POST", "/v1/chat/completions",
       R"({"model":"llama3","messages":[{"role":"user","content":"bad \xff\xfe bytes"}]})", {}, 400},
      {"duplicate key", "POST", "/v1/chat/completions",
       R"({"model":"llama3","model":"gpt-4o-mini","messages":)" + msgs + "}", {}, 400},
      {"number overflow", "POST", "/v1/chat/completions",
       R"({"model":"llama3","temperature":1e999,"messages":)" + msgs + "}", {}, 400},
      {"bad x-llmcache-ttl", "POST", "/v1/chat/completions",
       R"({"model":"llama3","messages":)" + msgs + "}", {{"x-llmcache-ttl", "soon"}}, 400,
       "x-llmcache-ttl"},
      {"completions without prompt", "POST", "/v1/completions", R"({"model":"llama3"})", {}, 400},
      {"streamed embeddings", "POST", "/v1/embeddings",
       R"({"model":"llama3","input":"x","stream":true})", {}, 400, "stream"},
      {"body over the limit", "POST", "/v1/chat/completions",
       R"({"model":"llama3","messages":[{"role":"user","content":")" + std::string(10000, 'x') +
           "\"}]}",
       {}, 413},
      {"unknown route", "GET", "/nope", "", {}, 404},
      {"unknown POST route", "POST", "/v2/chat/completions", "{}", {}, 404},
      {"GET on chat completions", "GET", "/v1/chat/completions", "", {}, 405},
      {"GET on embeddings", "GET", "/v1/embeddings", "", {}, 405},
      {"PUT on completions", "PUT", "/v1/completions", "{}", {}, 405},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto r = HttpCall(gw->port(), c.method, c.target, c.body, c.headers);
    EXPECT_EQ(r.status, c.status) << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r));
    if (c.param) {
      auto v = r.Json();
      EXPECT_EQ(v.at("error").at("param"), boost::json::value(c.param)) << r.body;
    }
    EXPECT_NE(r.Cache(), "hit");
  }
  EXPECT_EQ(upstream().ModelCalls(), 0) << "an invalid request reached the upstream";
  EXPECT_EQ(gw->Entries("memory"), 0);
  EXPECT_EQ(gw->Entries("rocksdb"), 0);
  auto metrics = gw->Metrics();
  EXPECT_FALSE(MetricValue(metrics, "llmcache_requests_total").has_value())
      << "refused requests counted as cache requests";
  EXPECT_GE(MetricValue(metrics, "llmcache_bad_requests_total").value_or(0), 15);

  // Still serving.
  std::string good = R"({"model":"llama3","messages":)" + msgs + "}";
  auto ok1 = gw->Chat(good);
  EXPECT_EQ(ok1.status, 200) << ok1.Describe();
  EXPECT_EQ(ok1.Cache(), "miss");
  EXPECT_EQ(gw->Chat(good).Cache(), "hit");
  EXPECT_EQ(gw->Get("/healthz").status, 200);
}

// The same body over and over on one gateway, with bad requests between
// good ones on fresh connections: a refused request never poisons what
// follows.
TEST_F(E2eBadInput, BadRequestsInterleavedWithGoodOnes) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  for (int i = 0; i < 5; ++i) {
    std::string body = ChatBody(UniquePrompt("interleaved " + std::to_string(i)));
    EXPECT_EQ(gw->Chat("{\"model\":").status, 400);
    EXPECT_EQ(gw->Chat(body).Cache(), "miss");
    EXPECT_EQ(gw->Chat(R"({"model":"llama3","messages":[]})").status, 400);
    EXPECT_EQ(gw->Chat(body).Cache(), "hit");
  }
  EXPECT_EQ(upstream().Calls(), 5);
  EXPECT_EQ(gw->Entries(), 5);
}

}  // namespace
}  // namespace llmcache::e2e
