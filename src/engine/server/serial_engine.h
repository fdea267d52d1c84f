// The simplest EngineBackend: one worker thread that runs one request at a
// time on one Session (reset between requests), with no prefix cache
// (cached_tokens is always 0). It is the reference the batched backend is
// compared against, and what the servers run until that one lands.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <utility>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/thread_pool.h"

namespace llmcache::engine {

struct SerialEngineOptions {
  uint32_t n_ctx = 4096;  // KV capacity of the one session, in tokens (>= 1)
  int threads = 1;        // compute threads of the forward pass
};

class SerialEngine final : public EngineBackend {
 public:
  // eog: the model's end-of-generation tokens, added to every request's
  // stop tokens. REQUIRES: model outlives the engine.
  SerialEngine(const Model& model, std::unordered_set<int32_t> eog, SerialEngineOptions options);
  // Cancels the running request, fails the queued ones with Unavailable
  // ("shutting down") and joins the worker; every on_done has run on return.
  ~SerialEngine() override;

  void Submit(CompletionRequest request, CompletionCallbacks callbacks) override;
  uint32_t n_ctx() const override { return n_ctx_; }
  // No prefix cache: requests and tokens only.
  EngineStats stats() const override;

 private:
  using Job = std::pair<CompletionRequest, CompletionCallbacks>;
  void WorkerLoop();
  Result<CompletionUsage> Run(const CompletionRequest& request, CompletionCallbacks& callbacks);

  const Model& model_;
  const std::unordered_set<int32_t> eog_;
  const uint32_t n_ctx_;
  ThreadPool pool_;
  Session session_;  // used by the worker thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  EngineStats stats_;   // guarded by mu_; waiting is queue_.size()
  std::thread worker_;  // last: starts once everything above exists
};

}  // namespace llmcache::engine
