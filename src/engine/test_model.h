// Random-weight GGUF models for tests and benchmarks. No model weights can be
// downloaded here, so the project writes its own: the shapes, tensor names and
// metadata keys are those llama.cpp expects for the `llama` and `qwen2`
// architectures, the tokenizer metadata is copied from a real vocab-only GGUF,
// and the weights come from a seeded generator (same options -> same bytes).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/quant.h"
#include "llmcache/status.h"

namespace llmcache::engine {

enum class RopeType { kNorm, kNeox };

// Weight type of the 2-D tensors. 1-D tensors (norms, biases) stay F32, as in
// llama.cpp's own conversions. kQ4_K_M mixes Q4_K with Q6_K for `output`,
// and for attn_v / ffn_down in the layers llama.cpp's Q4_K_M gives more bits.
enum class TestModelType { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ6_K, kQ4_K_M };
std::optional<TestModelType> ParseTestModelType(std::string_view name);  // "q4_k_m", ...

struct TestModelOptions {
  std::string arch = "llama";  // "llama" or "qwen2" (adds q/k/v biases)
  std::string vocab_path;      // vocab-only GGUF whose tokenizer.* keys are copied
  uint32_t n_layer = 2;
  uint32_t n_embd = 256;  // must be a multiple of the block size of `type`
  uint32_t n_head = 4;
  uint32_t n_head_kv = 2;  // < n_head: grouped-query attention
  uint32_t n_ff = 512;
  uint32_t n_ctx = 2048;
  float rope_freq_base = 10000.0f;
  // llama.cpp derives the RoPE type from the architecture (llama: normal,
  // qwen2: NeoX); unset means that default and a mismatch is an error.
  std::optional<RopeType> rope_type;
  float rms_eps = 1e-5f;
  TestModelType type = TestModelType::kF32;
  uint64_t seed = 1;
  float weight_scale = 0.02f;  // weights are uniform in [-s*sqrt3, s*sqrt3] (std s)
  // Replaces the vocab file's tokenizer.chat_template when set.
  std::optional<std::string> chat_template;
};

Status WriteTestModel(const TestModelOptions& options, const std::string& out_path);

}  // namespace llmcache::engine
