#include "semantic/openai_embedder.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "semantic/embed_command.h"
#include "semantic/fake_http_test_util.h"

namespace llmcache::semantic {
namespace {

namespace json = boost::json;
using testing::FakeAnswer;
using testing::FakeHttpServer;
using testing::SeenRequest;

// An unnormalized 3-d vector that depends on the text, so tests can tell
// which input an answer belongs to.
std::vector<double> RawVector(const std::string& text, size_t dim = 3) {
  std::vector<double> v(dim, 1.0);
  v[0] = static_cast<double>(text.size()) + 1;
  return v;
}

std::vector<float> Normalized(std::vector<double> v) {
  double n = 0;
  for (double x : v) n += x * x;
  std::vector<float> out;
  for (double x : v) out.push_back(static_cast<float>(x / std::sqrt(n)));
  return out;
}

// Answers like an OpenAI embeddings endpoint, items in reverse order (their
// "index" says where they belong).
FakeAnswer EmbeddingsAnswer(const SeenRequest& r, size_t dim = 3) {
  json::value req = json::parse(r.body);
  json::array data;
  const json::array& input = req.at("input").as_array();
  for (size_t i = input.size(); i-- > 0;) {
    json::array emb;
    for (double x : RawVector(std::string(input[i].as_string()), dim)) emb.emplace_back(x);
    data.push_back(json::object{{"object", "embedding"}, {"index", i}, {"embedding", emb}});
  }
  return {200, json::serialize(json::object{{"object", "list"}, {"data", data}})};
}

std::unique_ptr<Embedder> Make(const std::string& url, OpenAiEmbedderOptions o = {}) {
  o.url = url;
  if (o.model.empty()) o.model = "nomic-embed-text";
  auto e = NewOpenAiEmbedder(o);
  EXPECT_TRUE(e.has_value()) << e.error().ToString();
  return e ? std::move(*e) : nullptr;
}

TEST(OpenAiEmbedderTest, PostsModelAndInputsAndNormalizesByIndex) {
  FakeHttpServer server([](const SeenRequest& r) { return EmbeddingsAnswer(r); });
  OpenAiEmbedderOptions o;
  o.api_key = "sk-test";
  auto e = Make(server.base_url(), o);
  EXPECT_EQ(e->id(), "openai:nomic-embed-text");
  EXPECT_EQ(e->dimension(), 0u) << "unknown before the first answer";

  const std::vector<std::string> texts = {"a", "bbbb", "有給休暇"};
  auto v = e->Embed(texts);
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  ASSERT_EQ(v->size(), 3u);
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ((*v)[i], Normalized(RawVector(texts[i]))) << texts[i];
  }
  EXPECT_EQ(e->dimension(), 3u);

  const auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/v1/embeddings");
  EXPECT_EQ(seen[0].authorization, "Bearer sk-test");
  json::value body = json::parse(seen[0].body);
  EXPECT_EQ(body.at("model").as_string(), "nomic-embed-text");
  ASSERT_EQ(body.at("input").as_array().size(), 3u);
  EXPECT_EQ(body.at("input").as_array()[2].as_string(), "有給休暇");
}

TEST(OpenAiEmbedderTest, CachesExactTextsAndBatches) {
  FakeHttpServer server([](const SeenRequest& r) { return EmbeddingsAnswer(r); });
  OpenAiEmbedderOptions o;
  o.batch_size = 2;
  o.cache_max_entries = 3;
  auto e = Make(server.base_url(), o);
  auto* impl = static_cast<OpenAiEmbedder*>(e.get());

  // Five positions, three distinct texts: two requests (batch of 2 + 1).
  const std::vector<std::string> first = {"x", "yy", "x", "zzz", "yy"};
  auto v1 = e->Embed(first);
  ASSERT_TRUE(v1.has_value()) << v1.error().ToString();
  EXPECT_EQ(server.count(), 2u);
  EXPECT_EQ((*v1)[0], (*v1)[2]);
  EXPECT_EQ((*v1)[3], Normalized(RawVector("zzz")));
  EXPECT_TRUE(server.seen()[0].authorization.empty());

  // All cached: no request.
  auto v2 = e->Embed(std::vector<std::string>{"zzz", "x"});
  ASSERT_TRUE(v2.has_value());
  EXPECT_EQ(server.count(), 2u);
  EXPECT_EQ(impl->cache_hits(), 2u);
  EXPECT_EQ((*v2)[0], (*v1)[3]);

  // A fourth text evicts the least recently used ("yy"), which then costs a
  // request again.
  ASSERT_TRUE(e->Embed(std::vector<std::string>{"wwww"}).has_value());
  EXPECT_EQ(server.count(), 3u);
  ASSERT_TRUE(e->Embed(std::vector<std::string>{"yy"}).has_value());
  EXPECT_EQ(server.count(), 4u);
  EXPECT_EQ(impl->requests_sent(), 4u);
}

TEST(OpenAiEmbedderTest, ErrorsAreStatuses) {
  std::atomic<int> mode{0};
  FakeHttpServer server([&](const SeenRequest& r) -> FakeAnswer {
    switch (mode.load()) {
      case 0:
        return {404, R"({"error":{"message":"model \"nope\" not found"}})"};
      case 1:
        return {503, "overloaded"};
      case 2:
        return {200, "this is <not> JSON"};
      case 3:
        return {200, R"({"data":[{"index":0,"embedding":[0,0,0]}]})"};
      case 4:
        return {200, R"({"data":[]})"};
      case 5:
        return EmbeddingsAnswer(r, 3);
      case 6:
        return EmbeddingsAnswer(r, 5);  // the model behind the URL changed
      default: {
        FakeAnswer a = EmbeddingsAnswer(r);
        a.delay = std::chrono::milliseconds(800);
        return a;
      }
    }
  });
  OpenAiEmbedderOptions o;
  o.timeout = std::chrono::milliseconds(200);
  o.cache_max_entries = 0;
  auto e = Make(server.base_url(), o);
  const std::vector<std::string> one = {"q"};

  auto r = e->Embed(one);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("not found"), std::string::npos) << r.error().ToString();
  mode = 1;
  EXPECT_EQ(e->Embed(one).error().code(), StatusCode::kUnavailable);
  mode = 2;
  EXPECT_EQ(e->Embed(one).error().code(), StatusCode::kCorruption);
  mode = 3;
  EXPECT_EQ(e->Embed(one).error().code(), StatusCode::kCorruption);
  mode = 4;
  EXPECT_EQ(e->Embed(one).error().code(), StatusCode::kCorruption);
  mode = 5;
  ASSERT_TRUE(e->Embed(one).has_value());
  mode = 6;
  r = e->Embed(one);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("dimension 5, expected 3"), std::string::npos)
      << r.error().ToString();
  mode = 7;
  r = e->Embed(one);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kTimeout) << r.error().ToString();
}

TEST(OpenAiEmbedderTest, UnreachableEndpointIsUnavailable) {
  std::string url;
  {
    FakeHttpServer server([](const SeenRequest& r) { return EmbeddingsAnswer(r); });
    url = server.base_url();
  }  // stopped: nothing listens on that port now
  OpenAiEmbedderOptions o;
  o.timeout = std::chrono::milliseconds(500);
  auto e = Make(url, o);
  auto r = e->Embed(std::vector<std::string>{"q"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kUnavailable) << r.error().ToString();
}

TEST(OpenAiEmbedderTest, OptionsAreChecked) {
  OpenAiEmbedderOptions o;
  o.model = "m";
  EXPECT_FALSE(NewOpenAiEmbedder(o).has_value()) << "no url";
  o.url = "ftp://x/";
  EXPECT_FALSE(NewOpenAiEmbedder(o).has_value());
  o.url = "http://127.0.0.1:1/v1";
  o.model.clear();
  EXPECT_FALSE(NewOpenAiEmbedder(o).has_value()) << "no model";
  o.model = "m";
  o.dimension = 768;
  auto e = NewOpenAiEmbedder(o);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ((*e)->dimension(), 768u);
  EXPECT_EQ((*e)->Embed({}).value().size(), 0u) << "nothing to embed, no request";
}

TEST(EmbedCommandOpenAiTest, EmbedsThroughTheEndpoint) {
  FakeHttpServer server([](const SeenRequest& r) { return EmbeddingsAnswer(r); });
  ::setenv("LLMCACHE_TEST_EMBEDDER_KEY", "sk-env", 1);
  EmbedCommandOptions o;
  o.embedder = "openai";
  o.url = server.base_url();
  o.model = "bge-m3";
  o.api_key_env = "LLMCACHE_TEST_EMBEDDER_KEY";
  o.batch_lines = 2;
  std::istringstream in("one\ntwo\nthree\n");
  std::ostringstream out, err;
  ASSERT_EQ(RunEmbedCommand(o, in, out, err), 0) << err.str();
  std::string want;
  for (const char* t : {"one", "two", "three"}) {
    AppendEmbeddingJson(Normalized(RawVector(t)), want);
    want += '\n';
  }
  EXPECT_EQ(out.str(), want);
  const auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u) << "two batches of lines";
  EXPECT_EQ(seen[0].authorization, "Bearer sk-env");
  EXPECT_EQ(json::parse(seen[1].body).at("model").as_string(), "bge-m3");
}

TEST(EmbedCommandOpenAiTest, BadChoicesExitWithTwoAndFailuresWithOne) {
  std::ostringstream out, err;
  EmbedCommandOptions o;
  o.embedder = "openai";
  o.model = "m";
  std::istringstream in("x\n");
  EXPECT_EQ(RunEmbedCommand(o, in, out, err), 2);
  EXPECT_NE(err.str().find("--embedder-url"), std::string::npos) << err.str();

  ::unsetenv("LLMCACHE_TEST_MISSING_KEY");
  o.url = "http://127.0.0.1:1/v1";
  o.api_key_env = "LLMCACHE_TEST_MISSING_KEY";
  err.str("");
  EXPECT_EQ(RunEmbedCommand(o, in, out, err), 2);
  EXPECT_NE(err.str().find("LLMCACHE_TEST_MISSING_KEY"), std::string::npos) << err.str();

  FakeHttpServer server([](const SeenRequest&) { return FakeAnswer{500, "{}"}; });
  o.url = server.base_url();
  o.api_key_env.clear();
  err.str("");
  EXPECT_EQ(RunEmbedCommand(o, in, out, err), 1);
  EXPECT_NE(err.str().find("HTTP 500"), std::string::npos) << err.str();
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace llmcache::semantic
