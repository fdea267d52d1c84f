// The model revision that joins every cache key, so that a model upgraded
// under the same name never serves the old model's answers. A revision set
// in the configuration wins; otherwise it is detected from the upstream
// where it exposes one (Ollama's /api/tags digests), polled periodically.
#pragma once

#include <map>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "http/asio.h"
#include "llmcache/upstream.h"

namespace llmcache::gateway {

class ModelRevisions {
 public:
  explicit ModelRevisions(std::map<std::string, std::string> configured)
      : configured_(std::move(configured)) {}

  // The revision for `model`: configured, else detected, else "".
  std::string Get(std::string_view model) const;

  // Replaces the detected revisions with those parsed from an Ollama
  // /api/tags body. Returns false (and keeps the old ones) if it does not
  // parse.
  bool UpdateFromOllamaTags(std::string_view body);

  // Fetches `path` (e.g. "/api/tags") from `upstream` and applies it.
  // OK when revisions were updated. `path` is taken by value: the coroutine
  // runs after the caller's temporaries are gone.
  http::awaitable<Status> Refresh(Upstream& upstream, std::string path);

  std::map<std::string, std::string> Snapshot() const;

 private:
  std::map<std::string, std::string> configured_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::string> detected_;
};

}  // namespace llmcache::gateway
