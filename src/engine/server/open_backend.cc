#include "engine/server/open_backend.h"

#include <algorithm>
#include <unordered_set>

#include "engine/scheduler.h"
#include "engine/server/serial_engine.h"
#include "engine/vocab.h"

namespace llmcache::engine {

Result<std::unique_ptr<EngineBackend>> OpenEngineBackend(const Model& model,
                                                         EngineBackendOptions options) {
  auto vocab = Vocab::FromGguf(model.gguf());
  if (!vocab) return Err(vocab.error());
  std::unordered_set<int32_t> eog;
  for (size_t id = 0; id < vocab->size(); ++id) {
    if (vocab->IsEog(static_cast<TokenId>(id))) eog.insert(static_cast<int32_t>(id));
  }
  if (options.serial) {
    return std::unique_ptr<EngineBackend>(std::make_unique<SerialEngine>(
        model, std::move(eog),
        SerialEngineOptions{.n_ctx = options.n_ctx, .threads = options.threads}));
  }
  // Finds the end-of-generation tokens itself; refuses a RAM budget that
  // cannot hold one whole sequence.
  BatchedEngineOptions b;
  b.n_ctx = options.n_ctx;
  b.max_sequences = std::max<uint32_t>(1, options.max_sequences);
  b.threads = options.threads;
  b.ram_budget_bytes = options.kv_ram_bytes;
  b.disk_dir = options.kv_disk_dir;
  b.disk_budget_bytes = options.kv_disk_bytes;
  auto engine = BatchedEngine::Create(model, std::move(b));
  if (!engine) return Err(engine.error());
  return std::unique_ptr<EngineBackend>(std::move(*engine));
}

}  // namespace llmcache::engine
