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

// The attention state of any number of sequences, in blocks of
// `block_tokens` positions. Per layer, K and V live in separate F16 arrays
// (block-major, then position, then n_embd_kv values), so K and V can later
// sit in different memory tiers. A sequence addresses its positions through
// a block table: position p is slot p % block_tokens of block
// table[p / block_tokens]. The pool only stores; who owns which block is the
// caller's business (Session: all of them; KvBlockManager: refcounts).
class KvBlockPool {
 public:
  // REQUIRES: n_blocks >= 1, block_tokens >= 1.
  KvBlockPool(const ModelConfig& config, uint32_t n_blocks, uint32_t block_tokens);
  uint32_t n_blocks() const { return n_blocks_; }
  uint32_t block_tokens() const { return block_tokens_; }
  uint16_t* k(uint32_t block, uint32_t layer, uint32_t slot) { return Row(k_, block, layer, slot); }
  uint16_t* v(uint32_t block, uint32_t layer, uint32_t slot) { return Row(v_, block, layer, slot); }
  // Bytes of one block: K and V of every layer.
  size_t block_bytes() const { return 2 * layer_values() * n_layer_ * sizeof(uint16_t); }
  static size_t BlockBytes(const ModelConfig& config, uint32_t block_tokens) {
    return 2 * static_cast<size_t>(block_tokens) * config.n_embd_kv() * config.n_layer *
           sizeof(uint16_t);
  }
  // A block as bytes (K of layers 0..n-1, then V of layers 0..n-1) and back,
  // for the disk tier. REQUIRES: the span is block_bytes() long.
  void CopyOut(uint32_t block, std::span<uint8_t> out) const;
  void CopyIn(uint32_t block, std::span<const uint8_t> in);

 private:
  size_t layer_values() const { return static_cast<size_t>(block_tokens_) * row_; }
  size_t Offset(uint32_t block, uint32_t layer, uint32_t slot) const {
    return ((static_cast<size_t>(layer) * n_blocks_ + block) * block_tokens_ + slot) * row_;
  }
  uint16_t* Row(std::unique_ptr<uint16_t[]>& t, uint32_t block, uint32_t layer, uint32_t slot) {
    return t.get() + Offset(block, layer, slot);
  }
  uint32_t n_layer_;
  uint32_t n_blocks_;
  uint32_t block_tokens_;
  size_t row_;
  // Default-initialised: pages are touched only when a block is first
  // written, so a large budget costs address space, not memory.
  std::unique_ptr<uint16_t[]> k_, v_;
};

// One token of one sequence in a forward pass.
struct ForwardRow {
  int32_t token = 0;
  uint32_t pos = 0;
  KvBlockPool* kv = nullptr;
  // The sequence's block table; REQUIRES: covers positions 0..pos.
  std::span<const uint32_t> blocks;
  float* logits = nullptr;  // n_vocab values are written here when not null
};

// The forward pass over a batch of rows. Each weight matrix is read once per
// pass for all rows (a matrix times several vectors), and every row gets
// exactly the arithmetic it would get alone, so batching never changes a
// result. Rows of one sequence must come in position order: all rows' K and V
// of a layer are written before any row attends, so a row sees the earlier
// rows of its own sequence. Not thread-safe; REQUIRES: model and pool outlive it.
class ForwardPass {
 public:
  ForwardPass(const Model& model, ThreadPool* pool, KernelIsa isa);
  // REQUIRES: valid token ids (the caller checks them).
  void Run(std::span<const ForwardRow> rows);

 private:
  // out[r] = w . x[r] for each row r, x converted to w's vec-dot format first.
  void MatVec(const WeightMatrix& w, const float* x, size_t x_stride, size_t n_rows, float* out,
              size_t out_stride);
  void Attention(std::span<const ForwardRow> rows, uint32_t layer);
  void Resize(size_t n_rows);

  const Model& model_;
  ThreadPool* pool_;
  KernelIsa isa_;
  size_t n_rows_ = 0;
  std::vector<float> x_, h_, q_, k_, v_, attn_, ff_gate_, ff_up_, cos_sin_, norm_, logits_tmp_;
  std::vector<std::vector<uint8_t>> act_;
  std::vector<const uint8_t*> act_ptrs_;  // act_[r].data(), for the batched kernels
};

struct SessionOptions {
  uint32_t n_ctx = 2048;  // KV capacity in tokens (clamped to >= 1)
  KernelIsa isa = BestKernelIsa();
};

// One sequence being decoded, with a KV pool of its own. Not thread-safe; the
// pool parallelises inside each step. REQUIRES: model and pool outlive the
// session.
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
  const Model& model_;
  uint32_t n_ctx_;
  KvBlockPool kv_;
  std::vector<uint32_t> blocks_;  // every block of kv_, in order
  ForwardPass forward_;
  uint32_t n_past_ = 0;
  std::vector<float> logits_;
  std::vector<ForwardRow> rows_;
};

// Checks token ids against the vocabulary (what Eval rejects).
Status CheckTokens(const ModelConfig& config, std::span<const int32_t> tokens);

}  // namespace llmcache::engine
