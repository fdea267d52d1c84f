// BatchedEngine: the EngineBackend that runs many requests on one model with
// continuous batching over a paged, prefix-cached KV pool.
//
// One worker thread loops over steps. Between steps it admits queued requests
// (FIFO, up to max_sequences, when the pool can hold their whole length) and
// retires finished ones; each step is one ForwardPass in which every decoding
// sequence contributes one token and prefilling sequences contribute chunks of
// their prompts, so the weights stream from memory once per step for all of
// them. A request's prompt first looks up its full blocks in the prefix cache
// (RAM, then disk) and computes only what is missing; its blocks, including
// those filled while decoding, are published for later requests, so the next
// turn of a conversation starts from this one's KV.
//
// Batching and caching never change a result: a request's tokens and logits
// are bit-identical to a Session running it alone.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "engine/disk_tier.h"
#include "engine/kernels.h"
#include "engine/model.h"
#include "engine/prefix_cache.h"
#include "engine/thread_pool.h"

namespace llmcache::engine {

struct BatchedEngineOptions {
  uint32_t n_ctx = 4096;       // tokens per sequence, prompt + generated
  uint32_t max_sequences = 8;  // decoded together in one step
  uint32_t block_tokens = 16;  // KV block size (part of every block hash)
  // The RAM pool of KV blocks; must hold at least one n_ctx sequence. Pages
  // are touched only when blocks are first used.
  uint64_t ram_budget_bytes = uint64_t{512} << 20;
  std::string disk_dir;  // empty: no disk tier
  uint64_t disk_budget_bytes = uint64_t{4} << 30;
  int threads = 1;  // compute threads of the forward pass (counting the worker)
  // Prompt tokens per step over all prefilling sequences (each gets at least
  // one): bounds how long decoding sequences wait behind a long prompt.
  uint32_t prefill_chunk_tokens = 128;
  bool ignore_eos = false;  // do not stop at the model's end-of-generation tokens
  KernelIsa isa = BestKernelIsa();
};

class BatchedEngine final : public EngineBackend {
 public:
  // REQUIRES: model outlives the engine.
  static Result<std::unique_ptr<BatchedEngine>> Create(const Model& model,
                                                       BatchedEngineOptions options);
  // Fails queued and running requests (Unavailable), then writes the cached
  // blocks to the disk tier so a restart finds them.
  ~BatchedEngine() override;

  void Submit(CompletionRequest request, CompletionCallbacks callbacks) override;
  // As Submit; on_logits sees the logits each token is sampled from (before
  // on_token, on the worker thread). For tests and debugging.
  using LogitsObserver = std::function<void(std::span<const float>)>;
  void Submit(CompletionRequest request, CompletionCallbacks callbacks, LogitsObserver on_logits);
  uint32_t n_ctx() const override { return options_.n_ctx; }

  // Requests, tokens, prefix-cache counters and pool occupancy; thread-safe.
  EngineStats stats() const override;
  // The prefix-cache part of stats().
  PrefixCacheStats prefix_stats() const { return blocks_->stats(); }

 private:
  struct Sequence;
  BatchedEngine(const Model& model, BatchedEngineOptions options);
  void Loop();
  // Moves admissible pending requests into running_; fails invalid ones.
  void Admit();
  bool TryAdmit(Sequence& seq);
  // Finishes the sequences whose client went away (CompletionCallbacks::cancelled).
  void DropCancelled();
  void Step();
  void Finish(Sequence& seq, Result<CompletionUsage> result);

  const Model& model_;
  BatchedEngineOptions options_;
  BlockHash identity_;
  std::vector<int32_t> eog_;
  std::unique_ptr<DiskTier> disk_;
  std::unique_ptr<KvBlockPool> pool_;
  std::unique_ptr<KvBlockManager> blocks_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> queue_;  // guarded by mu_
  bool stop_ = false;                            // guarded by mu_

  // Worker-thread state.
  std::deque<std::unique_ptr<Sequence>> pending_;
  std::vector<std::unique_ptr<Sequence>> running_;
  uint32_t reserved_ = 0;  // blocks promised to running sequences, not yet allocated
  std::vector<ForwardRow> rows_;

  // For stats(): written by the worker (queued_ also by Submit), updated
  // before a request's on_done runs.
  std::atomic<uint64_t> prompt_tokens_{0}, generated_tokens_{0}, failed_{0};
  std::atomic<uint64_t> finished_[3] = {0, 0, 0};
  std::atomic<uint32_t> queued_{0}, running_count_{0};

  std::thread worker_;
};

}  // namespace llmcache::engine
