// Carries a backend's callbacks (run on a backend thread) to a coroutine on
// an event loop, without blocking either side: the backend appends under a
// mutex and posts one wake-up to the coroutine's executor; the coroutine
// takes everything queued in one go.
//
// Lifetimes: the callbacks may outlive the pipe (the backend finishes a
// cancelled request later). Once the pipe is destroyed they post nothing
// and on_token returns false, so the backend never touches an event loop
// that may be gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/backend.h"
#include "http/asio.h"

namespace llmcache::engine {

class TokenPipe {
 public:
  // REQUIRES: created, used and destroyed on the thread running `executor`.
  explicit TokenPipe(http::net::any_io_executor executor);
  ~TokenPipe();
  TokenPipe(const TokenPipe&) = delete;
  TokenPipe& operator=(const TokenPipe&) = delete;

  // The callbacks for one CompletionRequest (call once).
  CompletionCallbacks Callbacks();

  struct Batch {
    std::vector<int32_t> tokens;
    std::optional<Result<CompletionUsage>> done;  // set once, with the last batch
  };
  // Waits until tokens or the end arrived, and takes them; after max_wait
  // returns an empty batch (so the caller can look at its client).
  http::awaitable<Batch> Next(
      std::chrono::steady_clock::duration max_wait = std::chrono::steady_clock::duration::max());

  // From now on on_token returns false and cancelled true: the backend
  // stops the request.
  void Cancel();
  // Cancel() because the text reached a stop string: the backend ends the
  // request as kStop.
  void CancelAtStopString();

 private:
  struct State;
  std::shared_ptr<State> state_;
  http::net::steady_timer timer_;
};

}  // namespace llmcache::engine
