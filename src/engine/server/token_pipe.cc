#include "engine/server/token_pipe.h"

#include <mutex>

namespace llmcache::engine {

namespace net = http::net;

struct TokenPipe::State {
  std::mutex mu;
  net::any_io_executor executor;
  std::vector<int32_t> tokens;
  std::optional<Result<CompletionUsage>> done;
  bool cancelled = false;
  bool stop_string = false;
  bool wake_pending = false;
  // Null once the pipe is gone; only the event-loop thread writes it.
  net::steady_timer* timer = nullptr;

  // REQUIRES: mu held.
  void Wake(const std::shared_ptr<State>& self) {
    if (wake_pending || timer == nullptr) return;
    wake_pending = true;
    net::post(executor, [self] {
      std::lock_guard lock(self->mu);
      self->wake_pending = false;
      if (self->timer != nullptr) self->timer->cancel();
    });
  }
};

TokenPipe::TokenPipe(net::any_io_executor executor)
    : state_(std::make_shared<State>()), timer_(executor) {
  state_->executor = std::move(executor);
  state_->timer = &timer_;
}

TokenPipe::~TokenPipe() {
  std::lock_guard lock(state_->mu);
  state_->timer = nullptr;
  state_->cancelled = true;
}

CompletionCallbacks TokenPipe::Callbacks() {
  CompletionCallbacks cb;
  cb.on_token = [s = state_](int32_t token) {
    std::lock_guard lock(s->mu);
    if (s->cancelled) return false;
    s->tokens.push_back(token);
    s->Wake(s);
    return true;
  };
  cb.on_done = [s = state_](Result<CompletionUsage> result) {
    std::lock_guard lock(s->mu);
    s->done = std::move(result);
    s->Wake(s);
  };
  cb.cancelled = [s = state_] {
    std::lock_guard lock(s->mu);
    return s->cancelled;
  };
  cb.stop_string = [s = state_] {
    std::lock_guard lock(s->mu);
    return s->stop_string;
  };
  return cb;
}

void TokenPipe::Cancel() {
  std::lock_guard lock(state_->mu);
  state_->cancelled = true;
}

void TokenPipe::CancelAtStopString() {
  std::lock_guard lock(state_->mu);
  state_->cancelled = true;
  state_->stop_string = true;
}

http::awaitable<TokenPipe::Batch> TokenPipe::Next(std::chrono::steady_clock::duration max_wait) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point now = Clock::now();
  const Clock::time_point deadline =
      max_wait >= Clock::time_point::max() - now ? Clock::time_point::max() : now + max_wait;
  for (;;) {
    {
      std::lock_guard lock(state_->mu);
      if (!state_->tokens.empty() || state_->done.has_value()) {
        Batch b;
        b.tokens.swap(state_->tokens);
        b.done = std::move(state_->done);
        state_->done.reset();
        co_return b;
      }
    }
    // A wake-up posted after the check above runs only once this wait is
    // armed: both happen on this thread, and nothing suspends in between.
    if (Clock::now() >= deadline) co_return Batch{};
    timer_.expires_at(deadline);
    co_await timer_.async_wait(http::use_nothrow);
  }
}

}  // namespace llmcache::engine
