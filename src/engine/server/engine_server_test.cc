// `llmcache engine serve` over loopback HTTP: answers match greedy decoding
// on a Session, streams match whole answers, and bad input, stop strings,
// limits and disconnects behave as OpenAI clients expect.
#include "engine/server/engine_server.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cctype>
#include <condition_variable>
#include <future>
#include <set>
#include <thread>

#include "common/hash.h"
#include "engine/chat_template.h"
#include "engine/server/open_backend.h"
#include "engine/server/server_test_util.h"
#include "engine/server/text_stream.h"

namespace llmcache::engine {
namespace {

namespace json = boost::json;
using servertest::Call;
using servertest::SseData;

using servertest::Obj;
using servertest::Reassemble;
using servertest::Streamed;

class EngineServerTest : public servertest::TinyModelTest {
 protected:
  void SetUp() override {
    TinyModelTest::SetUp();
    if (Unready()) return;
    vocab_ = std::make_unique<Vocab>(servertest::VocabOf(*model_));
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void Start(std::unique_ptr<EngineBackend> backend = nullptr,
             std::shared_ptr<const Model> model = nullptr, uint32_t n_ctx = 128) {
    if (!model) model = model_;
    if (!backend) {
      auto b = OpenEngineBackend(*model, {.n_ctx = n_ctx, .threads = 2});
      ASSERT_TRUE(b.has_value());
      backend = std::move(*b);
    }
    EngineApiOptions ao;
    ao.model_name = "tiny";
    ao.clock = std::make_shared<ManualClock>();
    ao.disconnect_poll = std::chrono::milliseconds(20);
    auto api = EngineApi::Create(model, std::move(backend), ao);
    ASSERT_TRUE(api.has_value()) << api.error().ToString();
    api_ = *api;
    http::ServerOptions so;
    so.port = 0;
    so.threads = 2;
    server_ = std::make_unique<EngineServer>(*api, so);
    ASSERT_TRUE(server_->Start().ok());
  }

  http::BufferedResponse Post(std::string_view path, const json::object& body,
                              HeaderList headers = {}) {
    return Call(server_->port(), "POST", std::string(path), json::serialize(body),
                std::move(headers));
  }

  std::vector<int32_t> ChatPrompt(const std::string& user) {
    return servertest::ChatPromptTokens(*vocab_, user);
  }
  std::string ExpectedText(const std::vector<int32_t>& generated) {
    return servertest::AnswerText(*vocab_, generated);
  }

  std::unique_ptr<Vocab> vocab_;
  std::shared_ptr<EngineApi> api_;
  std::unique_ptr<EngineServer> server_;
};

json::object ChatBody(const std::string& user, int max_tokens, bool stream = false) {
  json::object b{{"model", "whatever-name"},
                 {"messages", json::array{json::object{{"role", "user"}, {"content", user}}}},
                 {"max_tokens", max_tokens},
                 {"temperature", 0}};
  if (stream) {
    b["stream"] = true;
    b["stream_options"] = {{"include_usage", true}};
  }
  return b;
}

TEST_F(EngineServerTest, ChatAnswerIsGreedyDecodingWithUsage) {
  Start();
  const auto prompt = ChatPrompt("Tell me a story");
  const auto expected = servertest::ReferenceGreedy(*model_, *vocab_, prompt, 10);

  auto r = Post("/v1/chat/completions", ChatBody("Tell me a story", 10));
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
  auto o = Obj(r.body);
  EXPECT_EQ(o["object"].as_string(), "chat.completion");
  EXPECT_EQ(o["model"].as_string(), "whatever-name");  // echoed
  EXPECT_TRUE(o["id"].as_string().starts_with("chatcmpl-"));
  auto& choice = o["choices"].as_array().at(0).as_object();
  EXPECT_EQ(choice["message"].at("role").as_string(), "assistant");
  EXPECT_EQ(choice["message"].at("content").as_string(), ExpectedText(expected));
  EXPECT_EQ(choice["finish_reason"].as_string(),
            vocab_->IsEog(expected.back()) ? "stop" : "length");
  auto& usage = o["usage"].as_object();
  EXPECT_EQ(usage["prompt_tokens"].to_number<uint64_t>(), prompt.size());
  EXPECT_EQ(usage["completion_tokens"].to_number<uint64_t>(), expected.size());
  EXPECT_EQ(usage["total_tokens"].to_number<uint64_t>(), prompt.size() + expected.size());
  EXPECT_EQ(usage["prompt_tokens_details"].at("cached_tokens").to_number<uint64_t>(), 0u);
}

TEST_F(EngineServerTest, RepeatedPromptReportsCachedTokensAndTheSameAnswer) {
  Start();
  const std::string question =
      "Summarize the following support ticket in one sentence: the customer cannot log in "
      "after the password reset and the reset link in the email has already expired twice.";
  const auto prompt = ChatPrompt(question);
  ASSERT_GE(prompt.size(), 32u);  // at least two full 16-token blocks
  auto first = Obj(Post("/v1/chat/completions", ChatBody(question, 8)).body);
  auto second = Obj(Post("/v1/chat/completions", ChatBody(question, 8)).body);
  auto cached = [](json::object& o) {
    return o["usage"].at("prompt_tokens_details").at("cached_tokens").to_number<uint64_t>();
  };
  EXPECT_EQ(cached(first), 0u);
  // Every full block of the prompt, never the whole prompt: the last token is
  // always computed so that its logits exist.
  EXPECT_GE(cached(second), 16u);
  EXPECT_LT(cached(second), prompt.size());
  EXPECT_EQ(second["choices"].as_array().at(0).at("message"),
            first["choices"].as_array().at(0).at("message"));
}

TEST_F(EngineServerTest, ChatStreamCarriesTheSameAnswer) {
  Start();
  auto whole = Obj(Post("/v1/chat/completions", ChatBody("Why is the sky blue?", 12)).body);
  auto r = Post("/v1/chat/completions", ChatBody("Why is the sky blue?", 12, true));
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.Header("content-type"), "text/event-stream");
  Streamed s = Reassemble(r.body, true);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.role, "assistant");
  EXPECT_GE(s.chunks, 3u);  // role, content..., finish, usage
  auto& choice = whole["choices"].as_array().at(0).as_object();
  EXPECT_EQ(s.text, choice["message"].at("content").as_string());
  EXPECT_EQ(s.finish, choice["finish_reason"].as_string());
  // The same counts, except that the second request found the first one's
  // prompt blocks in the prefix cache.
  auto& u = whole["usage"].as_object();
  EXPECT_EQ(s.usage.at("prompt_tokens"), u.at("prompt_tokens"));
  EXPECT_EQ(s.usage.at("completion_tokens"), u.at("completion_tokens"));
}

TEST_F(EngineServerTest, CompletionsAcceptTextAndTokenIds) {
  Start();
  const std::vector<int32_t> prompt = vocab_->Tokenize("The capital of France", true, true);
  const auto expected = servertest::ReferenceGreedy(*model_, *vocab_, prompt, 9);
  json::object by_text{{"prompt", "The capital of France"}, {"max_tokens", 9}, {"temperature", 0}};
  json::object by_ids{{"prompt", json::value_from(prompt)}, {"max_tokens", 9}, {"temperature", 0}};
  for (const auto& body : {by_text, by_ids}) {
    auto r = Post("/v1/completions", body);
    ASSERT_EQ(r.status, 200u) << r.body;
    auto o = Obj(r.body);
    EXPECT_EQ(o["object"].as_string(), "text_completion");
    EXPECT_EQ(o["model"].as_string(), "tiny");  // no model in the request
    EXPECT_EQ(o["choices"].at(0).at("text").as_string(), ExpectedText(expected));
    EXPECT_EQ(o["usage"].at("prompt_tokens").to_number<uint64_t>(), prompt.size());

    json::object streamed = body;
    streamed["stream"] = true;
    auto rs = Post("/completions", streamed);  // the /v1 prefix is optional
    ASSERT_EQ(rs.status, 200u);
    Streamed s = Reassemble(rs.body, false);
    EXPECT_TRUE(s.done);
    EXPECT_EQ(s.text, ExpectedText(expected));
    EXPECT_TRUE(s.usage.empty());  // not asked for
  }
}

TEST_F(EngineServerTest, StopStringsEndTheAnswerWithoutTheStopText) {
  Start();
  const auto expected =
      servertest::ReferenceGreedy(*model_, *vocab_, vocab_->Tokenize("Numbers:", true, true), 24);
  const std::string full = ExpectedText(expected);
  ASSERT_GE(full.size(), 8u) << "the test model answers too little text";
  // A stop string from the middle of the answer (two ASCII letters, so that
  // it cannot cut a character in two).
  std::string stop;
  for (size_t i = full.size() / 2; i + 1 < full.size() && stop.empty(); ++i) {
    if (std::isalnum(static_cast<unsigned char>(full[i])) &&
        std::isalnum(static_cast<unsigned char>(full[i + 1]))) {
      stop = full.substr(i, 2);
    }
  }
  ASSERT_FALSE(stop.empty()) << full;
  const std::string before = full.substr(0, full.find(stop));
  json::object body{{"prompt", "Numbers:"},
                    {"max_tokens", 24},
                    {"temperature", 0},
                    {"stop", json::array{"never-seen-stop", stop}}};
  auto r = Obj(Post("/v1/completions", body).body);
  EXPECT_EQ(r["choices"].at(0).at("text").as_string(), before);
  EXPECT_EQ(r["choices"].at(0).at("finish_reason").as_string(), "stop");
  EXPECT_LT(r["usage"].at("completion_tokens").to_number<uint64_t>(), 24u);
  body["stream"] = true;
  Streamed s = Reassemble(Post("/v1/completions", body).body, false);
  EXPECT_EQ(s.text, before);
  EXPECT_EQ(s.finish, "stop");
  // Both ended normally: a stop string is not a client that went away.
  const auto m = servertest::Scrape(server_->port());
  EXPECT_EQ(m.at("llmcache_engine_requests_total{result=\"stop\"}"), 2);
  EXPECT_EQ(m.at("llmcache_engine_requests_total{result=\"cancelled\"}"), 0);
}

TEST_F(EngineServerTest, MaxTokensEndsWithLengthAndIsClampedToTheContext) {
  Start(nullptr, nullptr, /*n_ctx=*/40);
  auto r =
      Obj(Post("/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 3}, {"temperature", 0}}).body);
  const auto expected =
      servertest::ReferenceGreedy(*model_, *vocab_, vocab_->Tokenize("Hi", true, true), 3);
  if (!vocab_->IsEog(expected.back())) {
    EXPECT_EQ(r["choices"].at(0).at("finish_reason").as_string(), "length");
    EXPECT_EQ(r["usage"].at("completion_tokens").to_number<uint64_t>(), 3u);
  }
  // Far more than fits: the answer fills the context.
  auto big = Obj(
      Post("/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 5000}, {"temperature", 0}}).body);
  const auto prompt_tokens = big["usage"].at("prompt_tokens").to_number<uint64_t>();
  const auto completion = big["usage"].at("completion_tokens").to_number<uint64_t>();
  if (big["choices"].at(0).at("finish_reason").as_string() == "length") {
    EXPECT_EQ(prompt_tokens + completion, 40u);
  }
  EXPECT_LE(prompt_tokens + completion, 40u);
}

TEST_F(EngineServerTest, BadInputGetsOpenAiErrors) {
  Start(nullptr, nullptr, /*n_ctx=*/32);
  auto expect_error = [&](const http::BufferedResponse& r, unsigned status, std::string_view param,
                          std::string_view code = {}) {
    EXPECT_EQ(r.status, status) << r.body;
    auto o = Obj(r.body);
    ASSERT_TRUE(o.contains("error")) << r.body;
    auto& e = o["error"].as_object();
    EXPECT_FALSE(e["message"].as_string().empty());
    if (!param.empty()) EXPECT_EQ(e["param"].as_string(), param) << r.body;
    if (!code.empty()) EXPECT_EQ(e["code"].as_string(), code) << r.body;
  };
  const uint16_t port = server_->port();
  expect_error(Call(port, "POST", "/v1/chat/completions", "{not json"), 400, "");
  expect_error(Call(port, "POST", "/v1/chat/completions", "[1,2]"), 400, "");
  expect_error(Post("/v1/chat/completions", {{"model", "m"}}), 400, "messages");
  expect_error(Post("/v1/chat/completions", {{"messages", json::array{}}}), 400, "messages");
  expect_error(Post("/v1/chat/completions",
                    {{"messages", json::array{json::object{{"content", "no role"}}}}}),
               400, "messages[0].role");
  expect_error(Post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 0}}), 400, "max_tokens");
  expect_error(Post("/v1/completions", {{"prompt", "x"}, {"temperature", 3}}), 400, "temperature");
  expect_error(Post("/v1/completions", {{"prompt", "x"}, {"n", 2}}), 400, "n");
  expect_error(Post("/v1/completions", {{"prompt", json::array{1, -5}}}), 400, "prompt");
  expect_error(Post("/v1/completions", {{"prompt", json::array{"a", "b"}}}), 400, "prompt");
  expect_error(Post("/v1/completions", {{"prompt", json::array{}}}), 400, "prompt");
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += " word";
  expect_error(Post("/v1/completions", {{"prompt", long_prompt}}), 400, "prompt",
               "context_length_exceeded");
  expect_error(
      Post("/v1/chat/completions",
           {{"messages", json::array{json::object{{"role", "user"}, {"content", long_prompt}}}}}),
      400, "messages", "context_length_exceeded");
  expect_error(Call(port, "POST", "/v1/embeddings", "{}"), 404, "");
  expect_error(Call(port, "GET", "/v1/chat/completions"), 405, "");
  // Still serving.
  EXPECT_EQ(Post("/v1/completions", {{"prompt", "ok"}, {"max_tokens", 1}}).status, 200u);
}

TEST_F(EngineServerTest, ModelsAndHealth) {
  Start();
  auto models = Obj(Call(server_->port(), "GET", "/v1/models").body);
  EXPECT_EQ(models["object"].as_string(), "list");
  EXPECT_EQ(models["data"].at(0).at("id").as_string(), "tiny");
  EXPECT_EQ(Call(server_->port(), "GET", "/v1/models/tiny").status, 200u);
  EXPECT_EQ(Call(server_->port(), "GET", "/v1/models/other").status, 404u);
  auto health = Call(server_->port(), "GET", "/healthz");
  EXPECT_EQ(health.status, 200u);
  EXPECT_EQ(Obj(health.body)["status"].as_string(), "ok");
}

TEST_F(EngineServerTest, UnknownChatTemplateIsAClearErrorAndCompletionsStillServe) {
  auto odd = servertest::TinyModel("{% for m in messages %}{{ m.weird_field }}{% endfor %}");
  ASSERT_TRUE(odd);
  Start(nullptr, odd);
  auto r = Post("/v1/chat/completions", ChatBody("hi", 2));
  EXPECT_EQ(r.status, 500u);
  EXPECT_NE(r.body.find("chat template"), std::string::npos) << r.body;
  EXPECT_EQ(Post("/v1/completions", {{"prompt", "hi"}, {"max_tokens", 2}}).status, 200u);

  // A template named on the command line must exist.
  auto b = OpenEngineBackend(*odd, {.n_ctx = 32});
  ASSERT_TRUE(b.has_value());
  EngineApiOptions ao;
  ao.chat_template = "no-such-template";
  auto api = EngineApi::Create(odd, std::move(*b), ao);
  ASSERT_FALSE(api.has_value());
  EXPECT_NE(api.error().message().find("no-such-template"), std::string::npos)
      << api.error().ToString();
}

// Emits one token every millisecond until cancelled, max_tokens or its
// destruction (then the request fails as shutting down), and reports how
// each request ended.
class EndlessBackend final : public EngineBackend {
 public:
  explicit EndlessBackend(int32_t token) : token_(token) {}
  ~EndlessBackend() override {
    stopping_ = true;
    for (auto& t : threads_) t.join();
  }
  void Submit(CompletionRequest request, CompletionCallbacks cb) override {
    std::lock_guard lock(mu_);
    ++started_;
    salts_.push_back(request.cache_salt);
    cv_.notify_all();
    threads_.emplace_back([this, request = std::move(request), cb = std::move(cb)] {
      CompletionUsage u;
      u.prompt_tokens = static_cast<uint32_t>(request.prompt.size());
      u.finish = FinishReason::kLength;
      while (u.completion_tokens < request.max_tokens && !stopping_) {
        ++u.completion_tokens;
        if (!cb.on_token(token_)) {
          u.finish = FinishReason::kCancelled;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (stopping_) {
        cb.on_done(Err(Status::Unavailable("shutting down")));
      } else {
        cb.on_done(u);
      }
      std::lock_guard lock(mu_);
      finished_.push_back(u);
      cv_.notify_all();
    });
  }
  uint32_t n_ctx() const override { return 1 << 20; }
  EngineStats stats() const override { return {}; }

  void WaitStarted(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return started_ >= n; });
  }
  std::vector<std::string> salts() {
    std::lock_guard lock(mu_);
    return salts_;
  }
  CompletionUsage WaitFinished(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return finished_.size() >= n; });
    return finished_[n - 1];
  }

 private:
  int32_t token_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t started_ = 0;
  std::vector<std::string> salts_;
  std::vector<CompletionUsage> finished_;
};

TEST_F(EngineServerTest, ClientDisconnectCancelsTheGeneration) {
  const int32_t word = vocab_->Tokenize("hello", false, false).at(0);
  auto owned = std::make_unique<EndlessBackend>(word);
  EndlessBackend* backend = owned.get();
  Start(std::move(owned));

  {
    http::net::io_context ctx;
    http::tcp::socket s(ctx);
    s.connect({http::net::ip::make_address("127.0.0.1"), server_->port()});
    const std::string body = R"({"prompt":"x","max_tokens":1000000,"stream":true})";
    const std::string req =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    http::net::write(s, http::net::buffer(req));
    std::string got;
    char buf[4096];
    while (got.find("data: ") == std::string::npos) {
      boost::system::error_code ec;
      size_t n = s.read_some(http::net::buffer(buf), ec);
      ASSERT_FALSE(ec) << ec.message();
      got.append(buf, n);
    }
    EXPECT_NE(got.find(vocab_->Detokenize(std::vector<int32_t>(1, word), false)),
              std::string::npos);
  }  // the client goes away mid-stream

  const CompletionUsage u = backend->WaitFinished(1);
  EXPECT_EQ(u.finish, FinishReason::kCancelled);
  EXPECT_LT(u.completion_tokens, 1000000u);
  // The server keeps serving.
  auto r = Post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 3}});
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(Obj(r.body)["choices"].at(0).at("text").as_string(),
            vocab_->Detokenize(std::vector<int32_t>(3, word), false));
}

// Runs a real backend, but holds the first request's first token until the
// request is cancelled (its client went away), so that a test can close the
// connection mid-generation without racing the answer.
class HoldFirstToken final : public EngineBackend {
 public:
  explicit HoldFirstToken(std::unique_ptr<EngineBackend> inner) : inner_(std::move(inner)) {}
  void Submit(CompletionRequest request, CompletionCallbacks cb) override {
    CompletionCallbacks held = cb;
    held.on_token = [this, cb, first = submitted_++ == 0](int32_t token) mutable {
      if (first) {
        first = false;
        {
          std::lock_guard lock(mu_);
          ++held_;
        }
        cv_.notify_all();
        // Bounded, so that a failing test still ends.
        for (int i = 0; i < 3000 && !cb.cancelled(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      return cb.on_token(token);
    };
    inner_->Submit(std::move(request), std::move(held));
  }
  uint32_t n_ctx() const override { return inner_->n_ctx(); }
  EngineStats stats() const override { return inner_->stats(); }

  void WaitHeld(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return held_ >= n; });
  }

 private:
  std::unique_ptr<EngineBackend> inner_;
  std::atomic<int> submitted_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  size_t held_ = 0;
};

TEST_F(EngineServerTest, ClientLeavingAWholeAnswerCancelsItAndFreesItsBlocks) {
  auto inner = OpenEngineBackend(*model_, {.n_ctx = 128, .threads = 2});
  ASSERT_TRUE(inner.has_value());
  auto owned = std::make_unique<HoldFirstToken>(std::move(*inner));
  HoldFirstToken* backend = owned.get();
  Start(std::move(owned));
  const size_t kCancelled = static_cast<size_t>(FinishReason::kCancelled);
  {
    http::net::io_context ctx;
    http::tcp::socket s(ctx);
    s.connect({http::net::ip::make_address("127.0.0.1"), server_->port()});
    std::vector<int32_t> prompt(40);
    for (int i = 0; i < 40; ++i) prompt[i] = 1000 + i;
    const std::string body = json::serialize(
        json::object{{"prompt", json::value_from(prompt)}, {"max_tokens", 80}, {"stream", false}});
    const std::string req =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    http::net::write(s, http::net::buffer(req));
    backend->WaitHeld(1);
    const EngineStats running = api_->stats();
    EXPECT_EQ(running.running, 1u);
    ASSERT_TRUE(running.prefix_cache.has_value());
    EXPECT_GE(running.prefix_cache->used_blocks, 3u);  // the prompt's and the answer's KV
  }  // the client goes away before any byte of its answer

  // The server notices at its next poll; the held token is then refused.
  EngineStats after;
  for (int i = 0; i < 3000; ++i) {
    after = api_->stats();
    if (after.finished[kCancelled] > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(after.finished[kCancelled], 1u);
  EXPECT_EQ(after.running, 0u);
  EXPECT_EQ(after.generated_tokens, 1u);  // the held one; nothing after it
  ASSERT_TRUE(after.prefix_cache.has_value());
  EXPECT_EQ(after.prefix_cache->used_blocks, 0u);  // every reference returned
  const auto m = servertest::Scrape(server_->port());
  EXPECT_EQ(m.at("llmcache_engine_requests_total{result=\"cancelled\"}"), 1);
  EXPECT_EQ(m.at("llmcache_engine_kv_ram_blocks{state=\"used\"}"), 0);

  // The server keeps serving.
  auto r = Post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}, {"temperature", 0}});
  EXPECT_EQ(r.status, 200u) << r.body;
}

TEST_F(EngineServerTest, ResponseIdsAreRandomAndNeverRepeat) {
  std::set<std::string> ids;
  std::set<std::string> halves;
  auto collect = [&](std::string_view path, std::string_view prefix, const json::object& body) {
    auto o = Obj(Post(path, body).body);
    const std::string id(o["id"].as_string());
    ASSERT_TRUE(id.starts_with(prefix)) << id;
    const std::string hex = id.substr(prefix.size());
    ASSERT_EQ(hex.size(), 32u) << id;  // 128 bits
    for (char c : hex) ASSERT_TRUE(std::isxdigit(static_cast<unsigned char>(c))) << id;
    EXPECT_TRUE(ids.insert(id).second) << "repeated " << id;
    EXPECT_TRUE(halves.insert(hex.substr(0, 16)).second) << "repeated first half " << id;
    EXPECT_TRUE(halves.insert(hex.substr(16)).second) << "repeated second half " << id;
  };
  for (int round = 0; round < 2; ++round) {
    Start();  // the second round is a restart with the same options
    for (int i = 0; i < 4; ++i) {
      collect("/v1/completions", "cmpl-", {{"prompt", "x"}, {"max_tokens", 1}});
      collect("/v1/chat/completions", "chatcmpl-", ChatBody("hi", 1));
    }
  }
  EXPECT_EQ(ids.size(), 16u);
}

TEST_F(EngineServerTest, CacheSaltComesFromTheHeaderOrTheCredential) {
  const int32_t word = vocab_->Tokenize("hello", false, false).at(0);
  auto owned = std::make_unique<EndlessBackend>(word);
  EndlessBackend* backend = owned.get();
  Start(std::move(owned));
  const json::object body{{"prompt", "x"}, {"max_tokens", 1}};
  EXPECT_EQ(Post("/v1/completions", body,
                 {{"x-llmcache-cache-salt", "tenant-a"}, {"Authorization", "Bearer k"}})
                .status,
            200u);
  EXPECT_EQ(Post("/v1/completions", body, {{"Authorization", "Bearer k"}}).status, 200u);
  EXPECT_EQ(Post("/v1/completions", body).status, 200u);
  EXPECT_EQ(backend->salts(), (std::vector<std::string>{"tenant-a", Sha256Hex("Bearer k"), ""}));
}

TEST_F(EngineServerTest, ShutdownEndsRunningStreamsAsBroken) {
  const int32_t word = vocab_->Tokenize("hello", false, false).at(0);
  auto owned = std::make_unique<EndlessBackend>(word);
  EndlessBackend* backend = owned.get();
  Start(std::move(owned));
  const uint16_t port = server_->port();
  auto pending = std::async(std::launch::async, [port] {
    return servertest::TryCall(port, "POST", "/v1/completions",
                               R"({"prompt":"x","max_tokens":1000000,"stream":true})");
  });
  backend->WaitStarted(1);
  server_->Stop();  // ends the generation (the backend is released)
  server_.reset();  // closes the connections
  auto r = pending.get();
  // Never a clean end: a cut stream, or 503 if the stream had not begun.
  if (r.has_value()) {
    EXPECT_EQ(r->status, 503u) << r->body;
  }
}

}  // namespace
}  // namespace llmcache::engine
