#include "engine/server/serial_engine.h"

#include <algorithm>

namespace llmcache::engine {

SerialEngine::SerialEngine(const Model& model, std::unordered_set<int32_t> eog,
                           SerialEngineOptions options)
    : model_(model),
      eog_(std::move(eog)),
      n_ctx_(std::max<uint32_t>(1, options.n_ctx)),
      pool_(std::max(1, options.threads)),
      session_(model, &pool_, {.n_ctx = n_ctx_}),
      worker_([this] { WorkerLoop(); }) {}

SerialEngine::~SerialEngine() {
  std::deque<Job> orphans;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    orphans.swap(queue_);
  }
  cv_.notify_all();
  worker_.join();
  for (auto& [request, callbacks] : orphans) {
    callbacks.on_done(Err(Status::Unavailable("engine shutting down")));
  }
}

void SerialEngine::Submit(CompletionRequest request, CompletionCallbacks callbacks) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.emplace_back(std::move(request), std::move(callbacks));
      cv_.notify_one();
      return;
    }
  }
  callbacks.on_done(Err(Status::Unavailable("engine shutting down")));
}

EngineStats SerialEngine::stats() const {
  std::lock_guard lock(mu_);
  EngineStats s = stats_;
  s.waiting = static_cast<uint32_t>(queue_.size());
  return s;
}

void SerialEngine::WorkerLoop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;  // the destructor fails what is queued
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    auto& [request, callbacks] = job;
    {
      std::lock_guard lock(mu_);
      stats_.running = 1;
    }
    auto result = Run(request, callbacks);
    {
      std::lock_guard lock(mu_);
      stats_.running = 0;
      if (result.has_value()) {
        stats_.prompt_tokens += result->prompt_tokens;
        stats_.generated_tokens += result->completion_tokens;
        ++stats_.finished[static_cast<size_t>(result->finish)];
      } else {
        ++stats_.failed;
      }
    }
    callbacks.on_done(std::move(result));
  }
}

Result<CompletionUsage> SerialEngine::Run(const CompletionRequest& request,
                                          CompletionCallbacks& callbacks) {
  CompletionUsage usage;
  usage.prompt_tokens = static_cast<uint32_t>(request.prompt.size());
  if (request.prompt.empty()) return Err(Status::InvalidArgument("empty prompt"));
  if (request.prompt.size() >= n_ctx_) {
    return Err(Status::ResourceExhausted("prompt of " + std::to_string(request.prompt.size()) +
                                         " tokens does not fit the context of " +
                                         std::to_string(n_ctx_) + " tokens"));
  }
  // Every generated token but the last is evaluated, so the prompt and the
  // answer share the context.
  const uint32_t room = n_ctx_ - static_cast<uint32_t>(request.prompt.size());
  const uint32_t max_tokens = std::min(request.max_tokens, room);
  usage.finish = FinishReason::kLength;
  if (max_tokens == 0) return usage;

  session_.Reset();
  Sampler sampler(request.sampling);
  auto logits = session_.Eval(request.prompt);
  for (;;) {
    if (!logits.has_value()) return Err(logits.error());
    const int32_t token = sampler.Sample(*logits);
    ++usage.completion_tokens;
    if (!callbacks.on_token(token)) {
      usage.finish = CancelledFinish(callbacks);
      break;
    }
    if (eog_.contains(token) || std::find(request.stop_tokens.begin(), request.stop_tokens.end(),
                                          token) != request.stop_tokens.end()) {
      usage.finish = FinishReason::kStop;
      break;
    }
    if (usage.completion_tokens >= max_tokens) break;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return Err(Status::Unavailable("engine shutting down"));
    }
    logits = session_.Eval(std::span<const int32_t>(&token, 1));
  }
  return usage;
}

}  // namespace llmcache::engine
