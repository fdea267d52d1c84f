// The one place that chooses and builds the EngineBackend the servers run,
// so that a better backend (batched, prefix-caching) replaces the serial one
// here and nowhere else.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/model.h"
#include "llmcache/status.h"

namespace llmcache::engine {

struct EngineBackendOptions {
  uint32_t n_ctx = 4096;  // context per sequence, in tokens
  int threads = 1;        // compute threads
  uint32_t max_sequences = 8;                     // decoded together (continuous batching)
  uint64_t kv_ram_bytes = uint64_t{512} << 20;    // RAM pool of KV blocks (prefix cache)
  std::string kv_disk_dir = {};                   // empty: no disk tier
  uint64_t kv_disk_bytes = uint64_t{4} << 30;     // disk tier bound
  bool serial = false;  // the one-request-at-a-time backend, without a prefix cache
};

// REQUIRES: model outlives the backend. Errors: a model whose tokenizer
// cannot be read (its end-of-generation tokens are needed).
Result<std::unique_ptr<EngineBackend>> OpenEngineBackend(const Model& model,
                                                         EngineBackendOptions options);

}  // namespace llmcache::engine
