#include "engine/test_model.h"

#include <cmath>
#include <vector>

#include "engine/gguf.h"
#include "engine/gguf_writer.h"

namespace llmcache::engine {
namespace {

// Fast seeded generator (splitmix64): models of hundreds of millions of
// weights must be quick to write, and no quality beyond "random" is needed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float Uniform() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f) * 2 - 1; }

 private:
  uint64_t s_;
};

GgmlType WeightType(TestModelType t) {
  switch (t) {
    case TestModelType::kF32:
      return GgmlType::kF32;
    case TestModelType::kF16:
      return GgmlType::kF16;
    case TestModelType::kBF16:
      return GgmlType::kBF16;
    case TestModelType::kQ8_0:
      return GgmlType::kQ8_0;
    case TestModelType::kQ4_0:
      return GgmlType::kQ4_0;
    case TestModelType::kQ4_K:
    case TestModelType::kQ4_K_M:
      return GgmlType::kQ4_K;
    case TestModelType::kQ6_K:
      return GgmlType::kQ6_K;
  }
  return GgmlType::kF32;
}

// llama_ftype values, recorded as general.file_type.
uint32_t FileType(TestModelType t) {
  switch (t) {
    case TestModelType::kF32:
      return 0;
    case TestModelType::kF16:
      return 1;
    case TestModelType::kBF16:
      return 32;
    case TestModelType::kQ8_0:
      return 7;
    case TestModelType::kQ4_0:
      return 2;
    case TestModelType::kQ4_K:
      return 14;
    case TestModelType::kQ6_K:
      return 18;
    case TestModelType::kQ4_K_M:
      return 15;
  }
  return 0;
}

// The layers llama.cpp's Q4_K_M quantises attn_v / ffn_down with Q6_K.
bool UseMoreBits(uint32_t layer, uint32_t n_layer) {
  const int i = static_cast<int>(layer), n = static_cast<int>(n_layer);
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

class ModelBuilder {
 public:
  ModelBuilder(const TestModelOptions& o, GgufWriter& w) : o_(o), w_(w), rng_(o.seed) {}

  // A matrix of `rows` rows of `cols` weights (ggml shape {cols, rows}).
  Status Matrix(const std::string& name, uint64_t cols, uint64_t rows, GgmlType type) {
    std::vector<float> v(cols * rows);
    const float a = o_.weight_scale * std::sqrt(3.0f);
    for (auto& x : v) x = a * rng_.Uniform();
    return Add(name, type, {cols, rows}, v);
  }
  // Norm weights near 1 and biases near 0, always F32.
  Status Vector(const std::string& name, uint64_t n, float center, float spread) {
    std::vector<float> v(n);
    for (auto& x : v) x = center + spread * rng_.Uniform();
    return Add(name, GgmlType::kF32, {n}, v);
  }

 private:
  Status Add(const std::string& name, GgmlType type, std::vector<uint64_t> ne,
             const std::vector<float>& v) {
    auto bytes = RowBytes(type, ne[0]);
    if (!bytes) {
      return Status::InvalidArgument("tensor " + name + ": " + bytes.error().message() +
                                     " (choose dimensions that are multiples of it)");
    }
    std::vector<uint8_t> data(*bytes * (v.size() / ne[0]));
    if (Status s = QuantizeRow(type, v, data); !s.ok()) return s;
    return w_.AddTensor(name, type, ne, std::move(data));
  }

  const TestModelOptions& o_;
  GgufWriter& w_;
  Rng rng_;
};

#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    if (Status _s = (expr); !_s.ok()) return _s; \
  } while (0)

}  // namespace

std::optional<TestModelType> ParseTestModelType(std::string_view name) {
  if (name == "q4_k_m" || name == "q4_K_M") return TestModelType::kQ4_K_M;
  auto t = ParseTypeName(name);
  if (!t) return std::nullopt;
  switch (*t) {
    case GgmlType::kF32:
      return TestModelType::kF32;
    case GgmlType::kF16:
      return TestModelType::kF16;
    case GgmlType::kBF16:
      return TestModelType::kBF16;
    case GgmlType::kQ8_0:
      return TestModelType::kQ8_0;
    case GgmlType::kQ4_0:
      return TestModelType::kQ4_0;
    case GgmlType::kQ4_K:
      return TestModelType::kQ4_K;
    case GgmlType::kQ6_K:
      return TestModelType::kQ6_K;
  }
  return std::nullopt;
}

Status WriteTestModel(const TestModelOptions& o, const std::string& out_path) {
  const bool qwen2 = o.arch == "qwen2";
  if (o.arch != "llama" && !qwen2) {
    return Status::InvalidArgument("test model: unsupported arch '" + o.arch + "' (llama, qwen2)");
  }
  const RopeType arch_rope = qwen2 ? RopeType::kNeox : RopeType::kNorm;
  if (o.rope_type && *o.rope_type != arch_rope) {
    return Status::InvalidArgument("test model: arch " + o.arch + " implies " +
                                   (qwen2 ? "neox" : "normal") +
                                   " RoPE (llama.cpp derives it from the architecture)");
  }
  if (o.n_layer == 0 || o.n_head == 0 || o.n_head_kv == 0 || o.n_embd % o.n_head != 0 ||
      o.n_head % o.n_head_kv != 0 || o.n_ff == 0 || o.n_ctx == 0) {
    return Status::InvalidArgument(
        "test model: need n_embd % n_head == 0, n_head % n_head_kv == 0 and non-zero sizes");
  }
  if ((o.n_embd / o.n_head) % 2 != 0) {
    return Status::InvalidArgument("test model: head dimension must be even for RoPE");
  }

  auto vocab = GgufFile::Open(o.vocab_path);
  if (!vocab) return vocab.error();
  auto tokens = vocab->GetStringArray("tokenizer.ggml.tokens");
  if (!tokens) return tokens.error();
  const uint64_t n_vocab = (*tokens)->size();

  GgufWriter w;
  const std::string a = o.arch + ".";
  w.SetString("general.architecture", o.arch);
  w.SetString("general.name", "llmcache random " + o.arch);
  w.SetU32(a + "context_length", o.n_ctx);
  w.SetU32(a + "embedding_length", o.n_embd);
  w.SetU32(a + "block_count", o.n_layer);
  w.SetU32(a + "feed_forward_length", o.n_ff);
  w.SetU32(a + "attention.head_count", o.n_head);
  w.SetU32(a + "attention.head_count_kv", o.n_head_kv);
  w.SetU32(a + "rope.dimension_count", o.n_embd / o.n_head);
  w.SetF32(a + "rope.freq_base", o.rope_freq_base);
  w.SetF32(a + "attention.layer_norm_rms_epsilon", o.rms_eps);
  w.SetU32(a + "vocab_size", static_cast<uint32_t>(n_vocab));
  w.SetU32("general.file_type", FileType(o.type));
  for (const auto& kv : vocab->metadata()) {
    if (kv.key.starts_with("tokenizer.")) w.SetValue(kv.key, kv.value);
  }
  if (o.chat_template) w.SetString("tokenizer.chat_template", *o.chat_template);

  const GgmlType wt = WeightType(o.type);
  const bool mix = o.type == TestModelType::kQ4_K_M;
  const uint64_t head_dim = o.n_embd / o.n_head;
  const uint64_t n_embd_kv = head_dim * o.n_head_kv;
  ModelBuilder b(o, w);
  RETURN_IF_ERROR(b.Matrix("token_embd.weight", o.n_embd, n_vocab, wt));
  for (uint32_t l = 0; l < o.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const GgmlType more = mix && UseMoreBits(l, o.n_layer) ? GgmlType::kQ6_K : wt;
    RETURN_IF_ERROR(b.Vector(p + "attn_norm.weight", o.n_embd, 1.0f, 0.1f));
    RETURN_IF_ERROR(b.Matrix(p + "attn_q.weight", o.n_embd, o.n_embd, wt));
    RETURN_IF_ERROR(b.Matrix(p + "attn_k.weight", o.n_embd, n_embd_kv, wt));
    RETURN_IF_ERROR(b.Matrix(p + "attn_v.weight", o.n_embd, n_embd_kv, more));
    if (qwen2) {
      RETURN_IF_ERROR(b.Vector(p + "attn_q.bias", o.n_embd, 0.0f, 0.02f));
      RETURN_IF_ERROR(b.Vector(p + "attn_k.bias", n_embd_kv, 0.0f, 0.02f));
      RETURN_IF_ERROR(b.Vector(p + "attn_v.bias", n_embd_kv, 0.0f, 0.02f));
    }
    RETURN_IF_ERROR(b.Matrix(p + "attn_output.weight", o.n_embd, o.n_embd, wt));
    RETURN_IF_ERROR(b.Vector(p + "ffn_norm.weight", o.n_embd, 1.0f, 0.1f));
    RETURN_IF_ERROR(b.Matrix(p + "ffn_gate.weight", o.n_embd, o.n_ff, wt));
    RETURN_IF_ERROR(b.Matrix(p + "ffn_up.weight", o.n_embd, o.n_ff, wt));
    RETURN_IF_ERROR(b.Matrix(p + "ffn_down.weight", o.n_ff, o.n_embd, more));
  }
  RETURN_IF_ERROR(b.Vector("output_norm.weight", o.n_embd, 1.0f, 0.1f));
  RETURN_IF_ERROR(b.Matrix("output.weight", o.n_embd, n_vocab, mix ? GgmlType::kQ6_K : wt));
  return w.WriteFile(out_path);
}

}  // namespace llmcache::engine
