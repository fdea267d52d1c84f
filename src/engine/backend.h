// The seam between the engine's compute (sequences, paged KV, prefix cache,
// batching) and what serves it (`llmcache engine serve`, the gateway's
// in-process upstream). Requests are token ids in, token ids out: templates,
// tokenization and the OpenAI wire format live above this interface.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/prefix_cache.h"
#include "engine/sampling.h"
#include "llmcache/status.h"

namespace llmcache::engine {

struct CompletionRequest {
  std::vector<int32_t> prompt;  // REQUIRES: not empty
  uint32_t max_tokens = 256;
  SamplingOptions sampling;
  // Generation stops after any of these (the model's EOS/EOT are added by
  // the backend); the stop token itself is reported but not counted as text.
  std::vector<int32_t> stop_tokens;
  // Per-tenant salt mixed into prefix-block hashes: requests with different
  // salts never share cached KV (no probing another tenant's prefixes).
  std::string cache_salt;
};

enum class FinishReason { kStop, kLength, kCancelled };

struct CompletionUsage {
  uint32_t prompt_tokens = 0;
  uint32_t cached_tokens = 0;  // prompt tokens whose KV came from the prefix cache
  uint32_t completion_tokens = 0;
  FinishReason finish = FinishReason::kStop;
};

// Callbacks run on a backend thread, in order, never concurrently for one
// request. on_token returns false to cancel the request (client went away).
struct CompletionCallbacks {
  std::function<bool(int32_t token)> on_token;
  // Called exactly once, last: the usage, or why the request failed (bad
  // token ids, prompt longer than the context, backend shutting down).
  std::function<void(Result<CompletionUsage>)> on_done;
  // Optional; polled between steps: true drops the request at once, even
  // while it is queued or prefilling (no token to refuse yet), as cancelled.
  std::function<bool()> cancelled;
  // Optional; asked when the request was cancelled: true when the caller
  // cancelled because the text reached one of its stop strings. That is a
  // normal end (kStop), not a client that left (kCancelled).
  std::function<bool()> stop_string;
};

// How a cancelled request ends: kStop when a stop string ended it.
inline FinishReason CancelledFinish(const CompletionCallbacks& cb) {
  return cb.stop_string && cb.stop_string() ? FinishReason::kStop : FinishReason::kCancelled;
}

// What a backend reports for metrics: counters since it started, and its
// state now.
struct EngineStats {
  uint64_t prompt_tokens = 0;     // of the requests that started computing
  uint64_t generated_tokens = 0;  // sampled, end-of-generation tokens included
  // Requests that ended, by how: kStop, kLength, kCancelled; then failures.
  uint64_t finished[3] = {0, 0, 0};
  uint64_t failed = 0;
  uint32_t running = 0;  // computing (prefill or decode)
  uint32_t waiting = 0;  // queued, not started
  // Backends without a prefix cache leave it empty.
  std::optional<PrefixCacheStats> prefix_cache;
  bool disk_tier = false;  // prefix_cache->disk is meaningful
};

class EngineBackend {
 public:
  virtual ~EngineBackend() = default;
  // Queues the request and returns at once; thread-safe.
  virtual void Submit(CompletionRequest request, CompletionCallbacks callbacks) = 0;
  // Context length per sequence, in tokens.
  virtual uint32_t n_ctx() const = 0;
  // Thread-safe.
  virtual EngineStats stats() const = 0;
};

}  // namespace llmcache::engine
