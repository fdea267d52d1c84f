// Weights and the forward pass of decoder-only transformers in GGUF files:
// the `llama` and `qwen2` architectures (RMSNorm, RoPE, grouped-query
// attention, SwiGLU; qwen2 adds Q/K/V biases and NeoX-style RoPE).
//
// The arithmetic follows llama.cpp's CPU backend where the rounding shows in
// the result: activations are converted to each weight type's vec-dot format
// (kernels.h), K and V are cached as F16 and attention runs the way ggml's
// flash-attention kernel does (F16 query, online softmax, F16 accumulator).
// That is what makes greedy generation reproduce llama.cpp's tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/kernels.h"
#include "engine/thread_pool.h"
#include "llmcache/status.h"

namespace llmcache::engine {

struct ModelConfig {
  std::string arch;  // "llama" or "qwen2"
  uint32_t n_layer = 0;
  uint32_t n_embd = 0;
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t head_dim = 0;  // n_embd / n_head
  uint32_t n_ff = 0;
  uint32_t n_vocab = 0;
  uint32_t n_ctx_train = 0;
  uint32_t n_rot = 0;  // rotated dimensions of each head
  float rope_freq_base = 10000.0f;
  bool rope_neox = false;  // pairs (i, i + n_rot/2) instead of (2i, 2i+1)
  float rms_eps = 1e-5f;
  bool has_qkv_bias = false;

  uint32_t n_embd_kv() const { return n_head_kv * head_dim; }
};

struct LayerWeights {
  std::span<const float> attn_norm;
  WeightMatrix wq, wk, wv, wo;
  std::span<const float> bq, bk, bv;  // empty without biases
  std::span<const float> ffn_norm;
  WeightMatrix ffn_gate, ffn_up, ffn_down;
};

// Immutable after loading; shared by any number of Sessions (thread-safe).
class Model {
 public:
  static Result<std::unique_ptr<Model>> Open(const std::string& path);
  static Result<std::unique_ptr<Model>> FromGguf(GgufFile file);

  const ModelConfig& config() const { return config_; }
  const GgufFile& gguf() const { return file_; }
  const WeightMatrix& token_embd() const { return token_embd_; }
  const WeightMatrix& output() const { return output_; }  // token_embd when tied
  std::span<const float> output_norm() const { return output_norm_; }
  const LayerWeights& layer(uint32_t i) const { return layers_[i]; }

 private:
  explicit Model(GgufFile file) : file_(std::move(file)) {}
  Status Load();

  GgufFile file_;
  ModelConfig config_;
  WeightMatrix token_embd_, output_;
  std::span<const float> output_norm_;
  std::vector<LayerWeights> layers_;
};

// The attention state of one sequence: per layer, K and V in separate F16
// arrays of n_ctx rows of n_embd_kv values (so K and V can live in different
// memory tiers later).
class KvCache {
 public:
  KvCache(const ModelConfig& config, uint32_t n_ctx);
  uint32_t n_ctx() const { return n_ctx_; }
  uint16_t* k(uint32_t layer, uint32_t pos) { return Row(k_, layer, pos); }
  uint16_t* v(uint32_t layer, uint32_t pos) { return Row(v_, layer, pos); }

 private:
  uint16_t* Row(std::vector<uint16_t>& t, uint32_t layer, uint32_t pos) {
    return t.data() + (static_cast<size_t>(layer) * n_ctx_ + pos) * row_;
  }
  uint32_t n_ctx_;
  size_t row_;
  std::vector<uint16_t> k_, v_;
};

struct SessionOptions {
  uint32_t n_ctx = 2048;  // KV capacity in tokens (clamped to >= 1)
  KernelIsa isa = BestKernelIsa();
};

// One sequence being decoded. Not thread-safe; the pool parallelises inside
// each step. REQUIRES: model and pool outlive the session.
class Session {
 public:
  Session(const Model& model, ThreadPool* pool, SessionOptions options = {});

  // Appends `tokens` and returns the logits after the last one (n_vocab
  // values, valid until the next call). Errors: empty input, token out of
  // range, context full.
  Result<std::span<const float>> Eval(std::span<const int32_t> tokens);
  uint32_t n_past() const { return n_past_; }
  void Reset() { n_past_ = 0; }

 private:
  void Forward(int32_t token, bool want_logits);
  // out = w . x, converting x to w's vec-dot format first.
  void MatVec(const WeightMatrix& w, std::span<const float> x, float* out);
  void Attention(uint32_t layer, uint32_t pos);

  const Model& model_;
  ThreadPool* pool_;
  SessionOptions options_;
  KvCache kv_;
  uint32_t n_past_ = 0;
  std::vector<float> x_, h_, q_, k_, v_, attn_, ff_gate_, ff_up_, logits_;
  std::vector<uint8_t> act_;
};

}  // namespace llmcache::engine
