#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace llmcache::engine {

namespace {

Status Invalid(const std::string& what) { return Status::InvalidArgument("model: " + what); }

Result<uint32_t> U32Or(const GgufFile& f, const std::string& key,
                       std::optional<uint32_t> fallback) {
  auto v = f.GetU32(key);
  if (v.has_value()) return *v;
  if (fallback.has_value() && v.error().code() == StatusCode::kNotFound) return *fallback;
  return Err(Invalid(key + ": " + v.error().ToString()));
}

Result<float> F32Or(const GgufFile& f, const std::string& key, float fallback) {
  auto v = f.GetF32(key);
  if (v.has_value()) return *v;
  if (v.error().code() == StatusCode::kNotFound) return fallback;
  return Err(Invalid(key + ": " + v.error().ToString()));
}

Result<WeightMatrix> Matrix(const GgufFile& f, const std::string& name, uint64_t cols,
                            uint64_t rows) {
  const GgufTensorInfo* t = f.FindTensor(name);
  if (t == nullptr) return Err(Invalid("missing tensor " + name));
  if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows) {
    return Err(Invalid(name + " has shape [" + std::to_string(t->ne[0]) + ", " +
                       std::to_string(t->ne[1]) + "], expected [" + std::to_string(cols) + ", " +
                       std::to_string(rows) + "]"));
  }
  auto row_bytes = RowBytes(t->type, cols);
  if (!row_bytes.has_value()) return Err(Invalid(name + ": " + row_bytes.error().ToString()));
  if (t->data.size() < *row_bytes * rows) return Err(Invalid(name + " is truncated"));
  return WeightMatrix{t->type, t->data.data(), rows, cols, *row_bytes};
}

Result<std::span<const float>> Vector(const GgufFile& f, const std::string& name, uint64_t n,
                                      bool optional = false) {
  const GgufTensorInfo* t = f.FindTensor(name);
  if (t == nullptr) {
    if (optional) return std::span<const float>();
    return Err(Invalid("missing tensor " + name));
  }
  if (t->type != GgmlType::kF32 || t->n_elements != n) {
    return Err(Invalid(name + " must be " + std::to_string(n) + " F32 values"));
  }
  if (reinterpret_cast<uintptr_t>(t->data.data()) % alignof(float) != 0) {
    return Err(Invalid(name + " is not 4-byte aligned (general.alignment)"));
  }
  return std::span<const float>(reinterpret_cast<const float*>(t->data.data()), n);
}

#define LLMCACHE_ASSIGN(lhs, expr)          \
  do {                                      \
    auto _r = (expr);                       \
    if (!_r.has_value()) return _r.error(); \
    lhs = std::move(*_r);                   \
  } while (0)

void RmsNorm(std::span<const float> x, std::span<const float> weight, float eps, float* out) {
  // ggml: the sum of squares in double, the mean and the scale in float.
  double sum = 0;
  for (float v : x) sum += static_cast<double>(v * v);
  const float mean = static_cast<float>(sum / static_cast<double>(x.size()));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (size_t i = 0; i < x.size(); ++i) out[i] = (x[i] * scale) * weight[i];
}

}  // namespace

Result<std::unique_ptr<Model>> Model::Open(const std::string& path) {
  auto file = GgufFile::Open(path);
  if (!file.has_value()) return Err(file.error());
  return FromGguf(std::move(*file));
}

Result<std::unique_ptr<Model>> Model::FromGguf(GgufFile file) {
  std::unique_ptr<Model> m(new Model(std::move(file)));
  if (Status s = m->Load(); !s.ok()) return Err(s);
  return m;
}

Status Model::Load() {
  const GgufFile& f = file_;
  ModelConfig& c = config_;
  auto arch = f.GetString("general.architecture");
  if (!arch.has_value()) return Invalid("general.architecture: " + arch.error().ToString());
  c.arch = std::string(*arch);
  if (c.arch != "llama" && c.arch != "qwen2") {
    return Invalid("unsupported architecture '" + c.arch + "' (supported: llama, qwen2)");
  }
  const std::string a = c.arch + ".";
  LLMCACHE_ASSIGN(c.n_layer, U32Or(f, a + "block_count", std::nullopt));
  LLMCACHE_ASSIGN(c.n_embd, U32Or(f, a + "embedding_length", std::nullopt));
  LLMCACHE_ASSIGN(c.n_ff, U32Or(f, a + "feed_forward_length", std::nullopt));
  LLMCACHE_ASSIGN(c.n_head, U32Or(f, a + "attention.head_count", std::nullopt));
  LLMCACHE_ASSIGN(c.n_head_kv, U32Or(f, a + "attention.head_count_kv", c.n_head));
  LLMCACHE_ASSIGN(c.n_ctx_train, U32Or(f, a + "context_length", 2048));
  LLMCACHE_ASSIGN(c.rope_freq_base, F32Or(f, a + "rope.freq_base", 10000.0f));
  LLMCACHE_ASSIGN(c.rms_eps, F32Or(f, a + "attention.layer_norm_rms_epsilon", 1e-5f));
  if (c.n_layer == 0 || c.n_embd == 0 || c.n_ff == 0 || c.n_head == 0 || c.n_head_kv == 0 ||
      c.n_layer > 4096 || c.n_head > 4096) {
    return Invalid("hyperparameters out of range");
  }
  if (c.n_embd % c.n_head != 0 || c.n_head % c.n_head_kv != 0) {
    return Invalid("n_embd must divide by n_head and n_head by n_head_kv");
  }
  c.head_dim = c.n_embd / c.n_head;
  LLMCACHE_ASSIGN(c.n_rot, U32Or(f, a + "rope.dimension_count", c.head_dim));
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0) return Invalid("bad rope.dimension_count");
  // llama.cpp's llama_model_rope_type: llama is LLAMA_ROPE_TYPE_NORM, qwen2 NEOX.
  c.rope_neox = c.arch == "qwen2";
  c.has_qkv_bias = c.arch == "qwen2";

  const GgufTensorInfo* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr) return Invalid("missing tensor token_embd.weight");
  if (embd->ne[1] == 0 || embd->ne[1] > (1u << 24)) return Invalid("bad vocabulary size");
  c.n_vocab = static_cast<uint32_t>(embd->ne[1]);
  LLMCACHE_ASSIGN(token_embd_, Matrix(f, "token_embd.weight", c.n_embd, c.n_vocab));
  if (f.FindTensor("output.weight") != nullptr) {
    LLMCACHE_ASSIGN(output_, Matrix(f, "output.weight", c.n_embd, c.n_vocab));
  } else {
    output_ = token_embd_;  // tied embeddings
  }
  LLMCACHE_ASSIGN(output_norm_, Vector(f, "output_norm.weight", c.n_embd));
  const uint32_t kv = c.n_embd_kv();
  layers_.resize(c.n_layer);
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& l = layers_[i];
    LLMCACHE_ASSIGN(l.attn_norm, Vector(f, p + "attn_norm.weight", c.n_embd));
    LLMCACHE_ASSIGN(l.wq, Matrix(f, p + "attn_q.weight", c.n_embd, c.n_embd));
    LLMCACHE_ASSIGN(l.wk, Matrix(f, p + "attn_k.weight", c.n_embd, kv));
    LLMCACHE_ASSIGN(l.wv, Matrix(f, p + "attn_v.weight", c.n_embd, kv));
    LLMCACHE_ASSIGN(l.wo, Matrix(f, p + "attn_output.weight", c.n_embd, c.n_embd));
    LLMCACHE_ASSIGN(l.bq, Vector(f, p + "attn_q.bias", c.n_embd, !c.has_qkv_bias));
    LLMCACHE_ASSIGN(l.bk, Vector(f, p + "attn_k.bias", kv, !c.has_qkv_bias));
    LLMCACHE_ASSIGN(l.bv, Vector(f, p + "attn_v.bias", kv, !c.has_qkv_bias));
    LLMCACHE_ASSIGN(l.ffn_norm, Vector(f, p + "ffn_norm.weight", c.n_embd));
    LLMCACHE_ASSIGN(l.ffn_gate, Matrix(f, p + "ffn_gate.weight", c.n_embd, c.n_ff));
    LLMCACHE_ASSIGN(l.ffn_up, Matrix(f, p + "ffn_up.weight", c.n_embd, c.n_ff));
    LLMCACHE_ASSIGN(l.ffn_down, Matrix(f, p + "ffn_down.weight", c.n_ff, c.n_embd));
  }
  return Status::OK();
}

KvCache::KvCache(const ModelConfig& config, uint32_t n_ctx)
    : n_ctx_(std::max(1u, n_ctx)),
      row_(config.n_embd_kv()),
      k_(static_cast<size_t>(config.n_layer) * n_ctx_ * row_),
      v_(k_.size()) {}

Session::Session(const Model& model, ThreadPool* pool, SessionOptions options)
    : model_(model), pool_(pool), options_(options), kv_(model.config(), options.n_ctx) {
  const ModelConfig& c = model.config();
  x_.resize(c.n_embd);
  h_.resize(c.n_embd);
  q_.resize(c.n_embd);
  k_.resize(c.n_embd_kv());
  v_.resize(c.n_embd_kv());
  attn_.resize(c.n_embd);
  ff_gate_.resize(c.n_ff);
  ff_up_.resize(c.n_ff);
  logits_.resize(c.n_vocab);
}

Result<std::span<const float>> Session::Eval(std::span<const int32_t> tokens) {
  const ModelConfig& c = model_.config();
  if (tokens.empty()) return Err(Status::InvalidArgument("no tokens to evaluate"));
  if (n_past_ + tokens.size() > kv_.n_ctx()) {
    return Err(Status::ResourceExhausted("context full: " + std::to_string(n_past_) + " + " +
                                         std::to_string(tokens.size()) + " > " +
                                         std::to_string(kv_.n_ctx())));
  }
  for (int32_t t : tokens) {
    if (t < 0 || static_cast<uint32_t>(t) >= c.n_vocab) {
      return Err(Status::InvalidArgument("token id " + std::to_string(t) + " out of range"));
    }
  }
  for (size_t i = 0; i < tokens.size(); ++i) Forward(tokens[i], i + 1 == tokens.size());
  return std::span<const float>(logits_);
}

void Session::MatVec(const WeightMatrix& w, std::span<const float> x, float* out) {
  act_.resize(ActivationBytes(w.type, x.size()));
  ConvertActivation(w.type, x, act_);
  const VecDotFn dot = GetVecDot(w.type, options_.isa);
  const uint8_t* act = act_.data();
  pool_->ParallelFor(w.rows, 16, [&](size_t b, size_t e) { MatVecRows(w, act, dot, b, e, out); });
}

namespace {

// ggml's rope: theta_i = pos * base^(-2i/n_rot), advanced by repeated
// multiplication (that rounding is part of the reference result).
void Rope(float* x, uint32_t n_heads, uint32_t head_dim, const std::vector<float>& cos_sin,
          uint32_t n_rot, bool neox) {
  for (uint32_t h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
    for (uint32_t i = 0; i < n_rot / 2; ++i) {
      const float c = cos_sin[2 * i];
      const float s = cos_sin[2 * i + 1];
      const uint32_t a = neox ? i : 2 * i;
      const uint32_t b = neox ? i + n_rot / 2 : 2 * i + 1;
      const float x0 = v[a];
      const float x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

}  // namespace

void Session::Attention(uint32_t layer, uint32_t pos) {
  const ModelConfig& c = model_.config();
  const uint32_t group = c.n_head / c.n_head_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const VecDotFn dot = GetVecDot(GgmlType::kF16, options_.isa);
  const F16VecOps f16 = GetF16VecOps(options_.isa);
  const bool ggml_order = options_.isa == KernelIsa::kAvx2 && KernelIsaSupported(KernelIsa::kAvx2);
  const int lanes = GgmlF16Lanes();
  pool_->ParallelFor(c.n_head, 1, [&](size_t hb, size_t he) {
    std::vector<uint16_t> q16(c.head_dim), acc(c.head_dim);
    for (size_t h = hb; h < he; ++h) {
      const size_t kv_off = (h / group) * c.head_dim;
      for (uint32_t d = 0; d < c.head_dim; ++d) q16[d] = Fp32ToFp16(q_[h * c.head_dim + d]);
      std::fill(acc.begin(), acc.end(), 0);
      // ggml's flash attention on one query row: online softmax with the
      // V accumulator kept in F16.
      float m = -INFINITY;
      float sum = 0;
      for (uint32_t t = 0; t <= pos; ++t) {
        const uint16_t* k = kv_.k(layer, t) + kv_off;
        const float s =
            (ggml_order ? AttnDotF16(k, q16.data(), c.head_dim, lanes)
                        : dot(reinterpret_cast<const uint8_t*>(k),
                              reinterpret_cast<const uint8_t*>(q16.data()), c.head_dim)) *
            scale;
        const float m_old = m;
        float ms = 1.0f;
        float vs = 1.0f;
        if (s > m) {
          m = s;
          ms = std::exp(m_old - m);
          f16.scale(acc.data(), ms, c.head_dim);
        } else {
          vs = std::exp(s - m);
        }
        f16.mad(acc.data(), kv_.v(layer, t) + kv_off, vs, c.head_dim);
        sum = sum * ms + vs;
      }
      const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
      for (uint32_t d = 0; d < c.head_dim; ++d)
        attn_[h * c.head_dim + d] = Fp16ToFp32(acc[d]) * inv;
    }
  });
}

void Session::Forward(int32_t token, bool want_logits) {
  const ModelConfig& c = model_.config();
  const uint32_t pos = n_past_;
  const WeightMatrix& embd = model_.token_embd();
  (void)DequantizeRow(
      embd.type, {embd.data + static_cast<size_t>(token) * embd.row_bytes, embd.row_bytes}, x_);
  std::vector<float> cos_sin(c.n_rot);
  const float theta_scale = std::pow(c.rope_freq_base, -2.0f / static_cast<float>(c.n_rot));
  float theta = static_cast<float>(pos);
  for (uint32_t i = 0; i < c.n_rot / 2; ++i) {
    cos_sin[2 * i] = std::cos(theta);
    cos_sin[2 * i + 1] = std::sin(theta);
    theta *= theta_scale;
  }
  auto add_bias = [](std::vector<float>& v, std::span<const float> b) {
    for (size_t i = 0; i < b.size(); ++i) v[i] += b[i];
  };
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = model_.layer(l);
    RmsNorm(x_, w.attn_norm, c.rms_eps, h_.data());
    MatVec(w.wq, h_, q_.data());
    MatVec(w.wk, h_, k_.data());
    MatVec(w.wv, h_, v_.data());
    add_bias(q_, w.bq);
    add_bias(k_, w.bk);
    add_bias(v_, w.bv);
    Rope(q_.data(), c.n_head, c.head_dim, cos_sin, c.n_rot, c.rope_neox);
    Rope(k_.data(), c.n_head_kv, c.head_dim, cos_sin, c.n_rot, c.rope_neox);
    uint16_t* kc = kv_.k(l, pos);
    uint16_t* vc = kv_.v(l, pos);
    for (uint32_t i = 0; i < c.n_embd_kv(); ++i) {
      kc[i] = Fp32ToFp16(k_[i]);
      vc[i] = Fp32ToFp16(v_[i]);
    }
    Attention(l, pos);
    MatVec(w.wo, attn_, h_.data());
    for (uint32_t i = 0; i < c.n_embd; ++i) x_[i] += h_[i];

    RmsNorm(x_, w.ffn_norm, c.rms_eps, h_.data());
    MatVec(w.ffn_gate, h_, ff_gate_.data());
    MatVec(w.ffn_up, h_, ff_up_.data());
    for (uint32_t i = 0; i < c.n_ff; ++i) {
      const float g = ff_gate_[i];
      ff_gate_[i] = g / (1.0f + std::exp(-g)) * ff_up_[i];
    }
    MatVec(w.ffn_down, ff_gate_, h_.data());
    for (uint32_t i = 0; i < c.n_embd; ++i) x_[i] += h_[i];
  }
  ++n_past_;
  if (!want_logits) return;
  RmsNorm(x_, model_.output_norm(), c.rms_eps, h_.data());
  MatVec(model_.output(), h_, logits_.data());
}

}  // namespace llmcache::engine
