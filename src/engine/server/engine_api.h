// The OpenAI wire format in front of an EngineBackend, independent of how
// requests arrive: the HTTP server (engine_server.h) and the gateway's
// in-process upstream (engine_upstream.h) both call EngineApi::Handle.
//
// Routes (a leading /v1 is optional, a query string ignored):
//   POST /chat/completions  messages rendered with the model's chat template
//   POST /completions       prompt: a string, token ids, or a one-element array of either
//   GET  /models, /models/{id}
//   GET  /healthz
// Request fields: model (echoed; any name is accepted), max_tokens /
// max_completion_tokens, temperature (default 1), top_p, top_k (extension),
// seed, stop (a string or up to 4), stream, stream_options.include_usage.
// `n` > 1, logprobs, echo and tools are refused with 400 rather than ignored.
// max_tokens is clamped to the context left after the prompt (the answer
// then ends with finish_reason "length"); a prompt that fills the context
// is 400 context_length_exceeded.
//
// Prefix-cache salt: the x-llmcache-cache-salt header when present, else a
// SHA-256 of the Authorization header, else none. Requests with different
// salts never share cached prefixes (no timing probes across tenants);
// requests with neither header share one pool.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "engine/backend.h"
#include "engine/chat_template.h"
#include "engine/model.h"
#include "engine/vocab.h"
#include "http/asio.h"
#include "llmcache/clock.h"
#include "llmcache/status.h"

namespace llmcache::engine {

struct EngineApiOptions {
  std::string model_name = "model";  // id in /models and `model` when a request has none
  // A template name ("chatml", "llama3", ...) or Jinja text replacing the
  // model's tokenizer.chat_template. Empty: the model's own.
  std::string chat_template;
  std::shared_ptr<Clock> clock;  // `created` fields; null: the system clock
  // Mixed into the seed of requests that give none. (Response ids are
  // random, so that they never repeat across processes.)
  uint64_t seed = 0;
  // OpenAI's default for /completions; chat defaults to the context left.
  uint32_t completions_default_max_tokens = 16;
  // How often a request that is waiting for tokens (queued, prefilling, or
  // a whole answer being generated) asks ApiResponder::connected(); a client
  // that went away cancels the generation. Smaller notices sooner, at one
  // non-blocking socket peek per interval and request.
  std::chrono::milliseconds disconnect_poll{100};
};

struct ApiRequest {
  std::string_view method;  // "GET", "POST"
  std::string_view target;  // path and query
  std::string_view body;
  std::string_view authorization;  // header values; empty when absent
  std::string_view cache_salt;     // x-llmcache-cache-salt
};

// Where an answer goes. Every method returns false once the receiver is
// gone; the API then cancels the generation.
class ApiResponder {
 public:
  virtual ~ApiResponder() = default;
  // A whole application/json answer.
  virtual http::awaitable<bool> Send(unsigned status, std::string body) = 0;
  // A 200 text/event-stream answer, then its bytes (whole SSE events).
  virtual http::awaitable<bool> BeginEvents() = 0;
  virtual http::awaitable<bool> WriteEvents(std::string_view sse) = 0;
  virtual http::awaitable<bool> EndEvents() = 0;
  // The stream cannot be finished (the engine failed mid-answer): the
  // receiver must see a broken stream, not a complete one.
  virtual void AbortEvents() = 0;
  // False once the receiver is known to be gone although nothing failed to
  // write yet (the client closed its connection while its answer is being
  // generated). The default assumes it is there.
  virtual bool connected() { return true; }
};

struct ApiError;  // an OpenAI error answer (engine_api.cc)

class EngineApi {
 public:
  // The model stays alive as long as the API; the backend runs it.
  // Errors: a model without a readable tokenizer, or an unknown
  // options.chat_template (the model's own unknown template is reported on
  // each chat request instead, so that /completions still serves).
  static Result<std::shared_ptr<EngineApi>> Create(std::shared_ptr<const Model> model,
                                                   std::unique_ptr<EngineBackend> backend,
                                                   EngineApiOptions options);
  ~EngineApi();

  // Answers one request. Runs on the caller's event loop; thread-safe (any
  // number of event loops may call it at once).
  http::awaitable<void> Handle(const ApiRequest& request, ApiResponder& out);

  // Fails new requests with 503, ends the running ones (their answers fail)
  // and releases the backend. Call before the event loops that run Handle
  // are destroyed. Idempotent.
  void Shutdown();

  // The backend's counters (for metrics); after Shutdown, the last ones.
  EngineStats stats();

  const std::string& model_name() const { return options_.model_name; }
  const Vocab& vocab() const { return vocab_; }
  uint32_t n_ctx() const { return n_ctx_; }

  struct Prepared;

 private:
  EngineApi(std::shared_ptr<const Model> model, std::unique_ptr<EngineBackend> backend, Vocab vocab,
            EngineApiOptions options);
  http::awaitable<void> Complete(Prepared p, ApiResponder& out);
  http::awaitable<void> Models(std::string_view path, ApiResponder& out);
  // The body of a /models answer; empty with `error` set when there is none.
  std::string ModelsJson(std::string_view path, ApiError& error) const;
  bool Submit(CompletionRequest request, CompletionCallbacks callbacks);
  bool running();
  std::string NewId(std::string_view prefix);

  std::shared_ptr<const Model> model_;
  Vocab vocab_;
  EngineApiOptions options_;
  Result<ChatTemplate> template_;
  uint32_t n_ctx_;
  int64_t created_s_;
  std::atomic<uint64_t> counter_{0};
  std::shared_mutex backend_mu_;
  std::unique_ptr<EngineBackend> backend_;  // null after Shutdown
  EngineStats last_stats_;                  // guarded by backend_mu_; set by Shutdown
};

}  // namespace llmcache::engine
