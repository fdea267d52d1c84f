#include "engine/scheduler.h"

#include <algorithm>

#include "engine/sampling.h"
#include "engine/vocab.h"

namespace llmcache::engine {

struct BatchedEngine::Sequence {
  Sequence(CompletionRequest r, CompletionCallbacks c, LogitsObserver o)
      : request(std::move(r)),
        callbacks(std::move(c)),
        on_logits(std::move(o)),
        sampler(request.sampling) {}

  CompletionRequest request;
  CompletionCallbacks callbacks;
  LogitsObserver on_logits;
  Sampler sampler;
  std::vector<int32_t> tokens;  // prompt, then generated; KV exists for [0, n_computed)
  uint32_t n_prompt = 0;
  uint32_t n_computed = 0;
  uint32_t max_new = 0;  // tokens to generate at most (max_tokens, capped by n_ctx)
  std::vector<uint32_t> blocks;
  uint32_t n_hashed = 0;  // leading blocks published (or found) with their hash
  BlockHash parent;       // hash of block n_hashed - 1
  BlockHash keys;         // extra keys: model identity and cache salt
  uint32_t reserved = 0;  // blocks still to allocate, promised at admission
  uint32_t step_rows = 0;
  std::vector<float> logits;
  CompletionUsage usage;
  bool admitted = false;   // counted in running_count_, else in queued_
  bool uncounted = false;  // finished and taken out of those counts
};

Result<std::unique_ptr<BatchedEngine>> BatchedEngine::Create(const Model& model,
                                                             BatchedEngineOptions options) {
  options.block_tokens = std::max(1u, options.block_tokens);
  options.n_ctx = std::max(1u, options.n_ctx);
  options.max_sequences = std::max(1u, options.max_sequences);
  options.threads = std::max(1, options.threads);
  const size_t block_bytes = KvBlockPool::BlockBytes(model.config(), options.block_tokens);
  const uint64_t n_blocks = options.ram_budget_bytes / block_bytes;
  const uint64_t per_sequence = (options.n_ctx + options.block_tokens - 1) / options.block_tokens;
  if (n_blocks < per_sequence) {
    return Err(Status::InvalidArgument(
        "engine: ram_budget_bytes holds " + std::to_string(n_blocks) + " KV blocks of " +
        std::to_string(block_bytes) + " bytes; one n_ctx sequence needs " +
        std::to_string(per_sequence)));
  }
  if (n_blocks > UINT32_MAX) return Err(Status::InvalidArgument("engine: ram budget too large"));
  std::unique_ptr<BatchedEngine> e(new BatchedEngine(model, options));
  if (!options.disk_dir.empty()) {
    auto disk = DiskTier::Open({options.disk_dir, options.disk_budget_bytes});
    if (!disk.has_value()) return Err(disk.error());
    e->disk_ = std::move(*disk);
  }
  e->pool_ = std::make_unique<KvBlockPool>(model.config(), static_cast<uint32_t>(n_blocks),
                                           options.block_tokens);
  e->blocks_ = std::make_unique<KvBlockManager>(e->pool_.get(), e->disk_.get());
  e->identity_ = KvIdentity(model, options.block_tokens);
  if (!options.ignore_eos) {
    if (auto vocab = Vocab::FromGguf(model.gguf()); vocab.has_value()) {
      for (size_t id = 0; id < vocab->size(); ++id) {
        if (vocab->IsEog(static_cast<int32_t>(id))) e->eog_.push_back(static_cast<int32_t>(id));
      }
    }
  }
  e->worker_ = std::thread([p = e.get()] { p->Loop(); });
  return e;
}

BatchedEngine::BatchedEngine(const Model& model, BatchedEngineOptions options)
    : model_(model), options_(std::move(options)) {}

BatchedEngine::~BatchedEngine() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void BatchedEngine::Submit(CompletionRequest request, CompletionCallbacks callbacks) {
  Submit(std::move(request), std::move(callbacks), nullptr);
}

void BatchedEngine::Submit(CompletionRequest request, CompletionCallbacks callbacks,
                           LogitsObserver on_logits) {
  auto seq =
      std::make_unique<Sequence>(std::move(request), std::move(callbacks), std::move(on_logits));
  {
    std::lock_guard lock(mu_);
    if (!stop_) {
      queue_.push_back(std::move(seq));
      seq = nullptr;
      ++queued_;
    }
  }
  if (seq != nullptr) {
    if (seq->callbacks.on_done) {
      seq->callbacks.on_done(Err(Status::Unavailable("engine: shutting down")));
    }
    return;
  }
  cv_.notify_one();
}

void BatchedEngine::Loop() {
  ThreadPool threads(options_.threads);
  ForwardPass forward(model_, &threads, options_.isa);
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !running_.empty(); });
      if (stop_) break;
      while (!queue_.empty()) {
        pending_.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    DropCancelled();
    Admit();
    if (running_.empty()) continue;
    Step();
    forward.Run(rows_);
    // After the pass: publish full blocks, sample, report, retire.
    const uint32_t bt = options_.block_tokens;
    for (auto& sp : running_) {
      Sequence& s = *sp;
      if (!s.callbacks.on_done) continue;  // failed in Step
      s.n_computed += s.step_rows;
      while ((s.n_hashed + 1) * bt <= s.n_computed) {
        const std::span<const int32_t> block_tokens(s.tokens.data() + s.n_hashed * bt, bt);
        s.parent = ChainBlockHash(s.parent, block_tokens, s.keys);
        blocks_->Publish(s.blocks[s.n_hashed], s.parent);
        ++s.n_hashed;
      }
      if (s.n_computed != s.tokens.size()) continue;  // still prefilling
      if (s.on_logits) s.on_logits(s.logits);
      const int32_t token = s.sampler.Sample(s.logits);
      s.tokens.push_back(token);
      ++s.usage.completion_tokens;
      ++generated_tokens_;
      const bool stop = std::find(s.request.stop_tokens.begin(), s.request.stop_tokens.end(),
                                  token) != s.request.stop_tokens.end() ||
                        std::find(eog_.begin(), eog_.end(), token) != eog_.end();
      const bool keep = !s.callbacks.on_token || s.callbacks.on_token(token);
      if (stop) {
        s.usage.finish = FinishReason::kStop;
        Finish(s, s.usage);
      } else if (!keep) {
        s.usage.finish = CancelledFinish(s.callbacks);
        Finish(s, s.usage);
      } else if (s.usage.completion_tokens >= s.max_new) {
        s.usage.finish = FinishReason::kLength;
        Finish(s, s.usage);
      }
    }
    std::erase_if(running_, [](const auto& s) { return !s->callbacks.on_done; });
  }
  // Shutdown.
  std::deque<std::unique_ptr<Sequence>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
  }
  const Status down = Status::Unavailable("engine: shutting down");
  for (auto& s : running_) Finish(*s, Err(down));
  running_.clear();
  for (auto* list : {&pending_, &left}) {
    for (auto& s : *list) Finish(*s, Err(down));
    list->clear();
  }
  blocks_->SpillAll();
}

void BatchedEngine::Finish(Sequence& seq, Result<CompletionUsage> result) {
  for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) {
    // Tail first: the LRU list then evicts a prefix's end before its start.
    blocks_->Release(*it);
  }
  seq.blocks.clear();
  reserved_ -= seq.reserved;
  seq.reserved = 0;
  if (!seq.uncounted) {  // before on_done: whoever it wakes sees the counts
    seq.uncounted = true;
    --(seq.admitted ? running_count_ : queued_);
  }
  if (!seq.callbacks.on_done) return;  // finished already
  if (result.has_value()) {
    ++finished_[static_cast<size_t>(result->finish)];
  } else {
    ++failed_;
  }
  auto on_done = std::move(seq.callbacks.on_done);
  seq.callbacks.on_done = nullptr;  // marks the sequence finished
  seq.callbacks.on_token = nullptr;
  seq.callbacks.cancelled = nullptr;
  on_done(std::move(result));
}

void BatchedEngine::DropCancelled() {
  auto drop = [this](Sequence& s) {
    if (!s.callbacks.on_done || !s.callbacks.cancelled || !s.callbacks.cancelled()) return false;
    s.usage.prompt_tokens = static_cast<uint32_t>(s.request.prompt.size());
    s.usage.finish = CancelledFinish(s.callbacks);
    Finish(s, s.usage);
    return true;
  };
  for (auto& s : running_) drop(*s);
  std::erase_if(running_, [](const auto& s) { return !s->callbacks.on_done; });
  std::erase_if(pending_, [&](const auto& s) { return drop(*s); });
}

EngineStats BatchedEngine::stats() const {
  EngineStats s;
  s.prompt_tokens = prompt_tokens_;
  s.generated_tokens = generated_tokens_;
  for (size_t i = 0; i < 3; ++i) s.finished[i] = finished_[i];
  s.failed = failed_;
  s.running = running_count_;
  s.waiting = queued_;
  s.prefix_cache = blocks_->stats();
  s.disk_tier = disk_ != nullptr;
  return s;
}

void BatchedEngine::Admit() {
  while (!pending_.empty() && running_.size() < options_.max_sequences) {
    Sequence& s = *pending_.front();
    const std::vector<int32_t>& prompt = s.request.prompt;
    Status invalid;
    if (prompt.empty()) {
      invalid = Status::InvalidArgument("engine: empty prompt");
    } else if (prompt.size() > options_.n_ctx) {
      invalid = Status::InvalidArgument("engine: prompt of " + std::to_string(prompt.size()) +
                                        " tokens exceeds the context of " +
                                        std::to_string(options_.n_ctx));
    } else {
      invalid = CheckTokens(model_.config(), prompt);
    }
    if (!invalid.ok() || s.request.max_tokens == 0 || !s.callbacks.on_done) {
      s.usage.prompt_tokens = static_cast<uint32_t>(prompt.size());
      s.usage.finish = FinishReason::kLength;
      if (invalid.ok()) {
        Finish(s, s.usage);
      } else {
        Finish(s, Err(invalid));
      }
      pending_.pop_front();
      continue;
    }
    if (!TryAdmit(s)) break;  // FIFO: later requests wait too, so none starves
    s.admitted = true;
    --queued_;
    ++running_count_;
    running_.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
}

bool BatchedEngine::TryAdmit(Sequence& s) {
  const uint32_t bt = options_.block_tokens;
  s.n_prompt = static_cast<uint32_t>(s.request.prompt.size());
  // The last generated token is never fed back, so n_ctx positions allow
  // n_ctx - n_prompt + 1 new tokens.
  s.max_new = std::min(s.request.max_tokens, options_.n_ctx - s.n_prompt + 1);
  const uint32_t kv_tokens = s.n_prompt + s.max_new - 1;
  const uint32_t needed = (kv_tokens + bt - 1) / bt;
  // Conservative: as if no block came from the cache. Acquiring a cached
  // block never costs more than allocating one, so the promise holds.
  if (blocks_->available() < reserved_ + needed) return false;
  s.tokens = s.request.prompt;
  s.keys = RequestKeys(identity_, s.request.cache_salt);
  s.parent = BlockHash{};
  // Only blocks before the last prompt token: that token must be computed
  // to have logits to sample from.
  const uint32_t lookup = (s.n_prompt - 1) / bt;
  for (uint32_t i = 0; i < lookup; ++i) {
    const BlockHash h =
        ChainBlockHash(s.parent, std::span<const int32_t>(s.tokens.data() + i * bt, bt), s.keys);
    std::optional<uint32_t> b = blocks_->Acquire(h);
    if (!b.has_value()) break;
    s.blocks.push_back(*b);
    s.parent = h;
  }
  s.n_hashed = static_cast<uint32_t>(s.blocks.size());
  s.n_computed = s.n_hashed * bt;
  s.usage.prompt_tokens = s.n_prompt;
  s.usage.cached_tokens = s.n_computed;
  blocks_->CountQuery(s.n_prompt, s.n_computed);
  prompt_tokens_ += s.n_prompt;
  s.reserved = needed - s.n_hashed;
  reserved_ += s.reserved;
  s.logits.resize(model_.config().n_vocab);
  return true;
}

void BatchedEngine::Step() {
  const uint32_t bt = options_.block_tokens;
  uint32_t budget = options_.prefill_chunk_tokens;
  rows_.clear();
  for (auto& sp : running_) {
    Sequence& s = *sp;
    const uint32_t pending = static_cast<uint32_t>(s.tokens.size()) - s.n_computed;
    uint32_t take = 1;
    if (s.n_computed < s.n_prompt) {  // prefill, in chunks shared by all prompts
      take = std::min(pending, std::max(1u, budget));
      budget -= std::min(budget, take);
    }
    // Blocks first: rows keep a view of the block table.
    const uint32_t last = s.n_computed + take - 1;
    while (s.blocks.size() <= last / bt) {
      std::optional<uint32_t> b = s.reserved > 0 ? blocks_->Allocate() : std::nullopt;
      if (!b.has_value()) {  // cannot happen while the reservations hold
        take = 0;
        Finish(s, Err(Status::Internal("engine: KV block reservation broken")));
        break;
      }
      s.blocks.push_back(*b);
      --s.reserved;
      --reserved_;
    }
    s.step_rows = take;
  }
  for (auto& sp : running_) {
    Sequence& s = *sp;
    for (uint32_t i = 0; i < s.step_rows; ++i) {
      const uint32_t pos = s.n_computed + i;
      const bool last = pos + 1 == s.tokens.size();
      rows_.push_back(
          {s.tokens[pos], pos, pool_.get(), s.blocks, last ? s.logits.data() : nullptr});
    }
  }
}

}  // namespace llmcache::engine
