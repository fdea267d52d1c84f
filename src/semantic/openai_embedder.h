// The `openai` embedder (see NewOpenAiEmbedder in llmcache/embedder.h).
//
// Embed is synchronous, but the HTTP client is a coroutine client bound to
// one event loop; each Embed call that has texts to fetch runs its own
// io_context on the calling thread, so concurrent callers never share a
// loop or a connection and need no lock around the network part. Only the
// exact cache is shared (one mutex, held for lookups and inserts, never
// across a request).
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "llmcache/embedder.h"

namespace llmcache::semantic {

// An exact, bounded LRU map from text to vector. Keys are a 64-bit hash of
// the text; the text itself is stored and compared, so a hash collision is a
// miss, never a wrong vector. Thread-safe.
class EmbeddingLru {
 public:
  explicit EmbeddingLru(size_t max_entries) : max_entries_(max_entries) {}
  std::optional<std::vector<float>> Get(const std::string& text);
  void Put(const std::string& text, const std::vector<float>& vector);
  size_t size() const;

 private:
  struct Entry {
    uint64_t hash;
    std::string text;
    std::vector<float> vector;
  };
  const size_t max_entries_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<uint64_t, std::list<Entry>::iterator> index_;
};

class OpenAiEmbedder final : public Embedder {
 public:
  // REQUIRES: options validated by NewOpenAiEmbedder.
  struct Transport;  // parsed base URL and TLS context
  OpenAiEmbedder(OpenAiEmbedderOptions options, std::unique_ptr<Transport> transport);
  ~OpenAiEmbedder() override;

  // 0 until the first successful answer unless options.dimension was set.
  size_t dimension() const override { return dimension_.load(std::memory_order_acquire); }
  std::string_view id() const override { return id_; }
  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) override;

  // For tests and metrics.
  uint64_t requests_sent() const { return requests_.load(std::memory_order_relaxed); }
  uint64_t cache_hits() const { return cache_hits_.load(std::memory_order_relaxed); }

 private:
  // One HTTP request for `texts` (at most batch_size); vectors in order.
  Result<std::vector<std::vector<float>>> FetchBatch(std::span<const std::string* const> texts);
  Result<std::vector<std::vector<float>>> ParseAnswer(std::string_view body, size_t expected);

  const OpenAiEmbedderOptions options_;
  const std::string id_;
  const std::unique_ptr<Transport> transport_;
  std::atomic<size_t> dimension_;
  EmbeddingLru cache_;
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> cache_hits_{0};
};

}  // namespace llmcache::semantic
