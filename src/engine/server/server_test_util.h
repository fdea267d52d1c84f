// Test helpers of the engine servers: tiny random-weight models written once
// per test binary, the reference greedy generation (a Session driven
// directly), and loopback HTTP calls.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/chat_template.h"
#include "engine/model.h"
#include "engine/sampling.h"
#include "engine/server/text_stream.h"
#include "engine/test_model.h"
#include "engine/test_util.h"
#include "engine/vocab.h"
#include "http/client.h"
#include "http/sse.h"

namespace llmcache::engine::servertest {

inline std::filesystem::path SpmVocabPath() {
  return enginetest::VocabDir() / "ggml-vocab-llama-spm.gguf";
}

// A one-layer llama with the 32k SentencePiece vocabulary: small enough to
// write and run in milliseconds, varied enough that greedy tokens differ.
// `chat_template` replaces the vocabulary's template. Files are removed
// when the test binary exits.
inline std::shared_ptr<const Model> TinyModel(const std::string& chat_template = "chatml") {
  struct Cache {
    std::mutex mu;
    std::map<std::string, std::pair<std::string, std::shared_ptr<const Model>>> models;
    ~Cache() {
      for (auto& [t, m] : models) std::filesystem::remove(m.first);
    }
  };
  static Cache cache;
  std::lock_guard lock(cache.mu);
  auto it = cache.models.find(chat_template);
  if (it != cache.models.end()) return it->second.second;
  TestModelOptions o;
  o.arch = "llama";
  o.vocab_path = SpmVocabPath().string();
  o.type = TestModelType::kQ8_0;
  o.n_layer = 1;
  o.n_embd = 64;
  o.n_head = 4;
  o.n_head_kv = 2;
  o.n_ff = 128;
  o.weight_scale = 0.1f;
  o.seed = 7;
  o.chat_template = chat_template;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("llmcache-engine-server-" + std::to_string(::getpid()) + "-" +
                             std::to_string(cache.models.size()) + ".gguf"))
                               .string();
  Status s = WriteTestModel(o, path);
  EXPECT_TRUE(s.ok()) << s.ToString();
  auto m = Model::Open(path);
  EXPECT_TRUE(m.has_value()) << m.error().ToString();
  std::shared_ptr<const Model> model = m ? std::shared_ptr<const Model>(std::move(*m)) : nullptr;
  cache.models[chat_template] = {path, model};
  return model;
}

inline Vocab VocabOf(const Model& model) { return *Vocab::FromGguf(model.gguf()); }

// The fixture of the server tests: the tiny model above, or the test is
// skipped when the reference vocabulary is not installed. A derived SetUp
// calls this one first and returns when Unready().
class TinyModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LLMCACHE_REQUIRE_PATH(SpmVocabPath());
    model_ = TinyModel();
    ASSERT_TRUE(model_);
  }
  bool Unready() const { return IsSkipped() || HasFatalFailure(); }

  std::shared_ptr<const Model> model_;
};

// What the backends must reproduce: greedy decoding on one Session, ending
// after an end-of-generation token (included) or n tokens.
inline std::vector<int32_t> ReferenceGreedy(const Model& model, const Vocab& vocab,
                                            const std::vector<int32_t>& prompt, uint32_t n) {
  ThreadPool pool(1);
  Session s(model, &pool, {.n_ctx = static_cast<uint32_t>(prompt.size()) + n});
  std::vector<int32_t> out;
  auto logits = s.Eval(prompt);
  while (logits.has_value() && out.size() < n) {
    const int32_t t = ArgMax(*logits);
    out.push_back(t);
    if (vocab.IsEog(t)) break;
    logits = s.Eval(std::span<const int32_t>(&t, 1));
  }
  return out;
}

// The prompt the API makes of one user message (the test models use ChatML).
inline std::vector<int32_t> ChatPromptTokens(const Vocab& vocab, const std::string& user) {
  const ChatMessage m{"user", user};
  return vocab.Tokenize(RenderChat(ChatTemplate::kChatML, {&m, 1}, true), true, true);
}

// The text an answer of `generated` tokens shows.
inline std::string AnswerText(const Vocab& vocab, const std::vector<int32_t>& generated) {
  std::vector<int32_t> text_tokens;
  for (int32_t t : generated) {
    if (!vocab.IsEog(t)) text_tokens.push_back(t);
  }
  return SanitizeUtf8(vocab.Detokenize(text_tokens, false));
}

// Runs one coroutine to completion on a private io_context.
template <class T>
T RunSync(std::function<http::awaitable<T>(http::net::any_io_executor)> f) {
  http::net::io_context ctx;
  auto fut = http::net::co_spawn(ctx, f(ctx.get_executor()), http::net::use_future);
  ctx.run();
  return fut.get();
}

inline Result<http::BufferedResponse> TryCall(uint16_t port, std::string method, std::string path,
                                              std::string body = {}, HeaderList headers = {}) {
  auto base = *http::ParseBaseUrl("http://127.0.0.1:" + std::to_string(port));
  return RunSync<Result<http::BufferedResponse>>(
      [&](http::net::any_io_executor ex) -> http::awaitable<Result<http::BufferedResponse>> {
        http::HttpClient c(ex, base, {}, nullptr);
        UpstreamRequest req;
        req.method = method;
        req.path = path;
        req.body = body;
        req.headers = headers;
        req.headers.emplace_back("content-type", "application/json");
        co_return co_await http::Fetch(c, req);
      });
}

inline http::BufferedResponse Call(uint16_t port, std::string method, std::string path,
                                   std::string body = {}, HeaderList headers = {}) {
  auto r = TryCall(port, std::move(method), std::move(path), std::move(body), std::move(headers));
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r ? *r : http::BufferedResponse{};
}

// The `data:` payloads of an SSE body, "[DONE]" included.
inline std::vector<std::string> SseData(std::string_view body) {
  http::SseParser parser;
  std::vector<http::SseEvent> events;
  EXPECT_TRUE(parser.Feed(body, events));
  EXPECT_FALSE(parser.HasPartialEvent());
  std::vector<std::string> out;
  for (auto& e : events) out.push_back(std::move(e.data));
  return out;
}

inline boost::json::object Obj(std::string_view text) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  return !ec && v.is_object() ? v.as_object() : boost::json::object{};
}

// The pieces of a streamed answer, reassembled.
struct Streamed {
  std::string text;
  std::string finish;
  std::string role;
  boost::json::object usage;
  size_t chunks = 0;
  bool done = false;
};

inline Streamed Reassemble(const std::string& body, bool chat) {
  Streamed s;
  for (const auto& d : SseData(body)) {
    EXPECT_FALSE(s.done) << "event after [DONE]";
    if (d == "[DONE]") {
      s.done = true;
      continue;
    }
    ++s.chunks;
    auto o = Obj(d);
    EXPECT_EQ(o["object"].as_string(), chat ? "chat.completion.chunk" : "text_completion");
    if (auto* u = o.if_contains("usage"); u && u->is_object()) s.usage = u->as_object();
    for (auto& c : o["choices"].as_array()) {
      auto& co = c.as_object();
      if (chat) {
        auto& delta = co["delta"].as_object();
        if (auto* r = delta.if_contains("role")) s.role = r->as_string();
        if (auto* t = delta.if_contains("content"); t && t->is_string()) s.text += t->as_string();
      } else {
        s.text += co["text"].as_string();
      }
      if (co["finish_reason"].is_string()) s.finish = co["finish_reason"].as_string();
    }
  }
  return s;
}

// The samples of a /metrics page: `name{labels}` (as printed) -> value.
inline std::map<std::string, double> Scrape(uint16_t port) {
  std::map<std::string, double> out;
  auto r = TryCall(port, "GET", "/metrics");
  EXPECT_TRUE(r.has_value() && r->status == 200u);
  if (!r) return out;
  size_t begin = 0;
  while (begin < r->body.size()) {
    size_t end = r->body.find('\n', begin);
    if (end == std::string::npos) end = r->body.size();
    const std::string line = r->body.substr(begin, end - begin);
    begin = end + 1;
    const size_t space = line.rfind(' ');
    if (line.empty() || line[0] == '#' || space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

}  // namespace llmcache::engine::servertest
