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

KvBlockPool::KvBlockPool(const ModelConfig& config, uint32_t n_blocks, uint32_t block_tokens)
    : n_layer_(config.n_layer),
      n_blocks_(std::max(1u, n_blocks)),
      block_tokens_(std::max(1u, block_tokens)),
      row_(config.n_embd_kv()),
      k_(new uint16_t[static_cast<size_t>(n_layer_) * n_blocks_ * block_tokens_ * row_]),
      v_(new uint16_t[static_cast<size_t>(n_layer_) * n_blocks_ * block_tokens_ * row_]) {}

void KvBlockPool::CopyOut(uint32_t block, std::span<uint8_t> out) const {
  const size_t layer_bytes = layer_values() * sizeof(uint16_t);
  uint8_t* dst = out.data();
  for (const uint16_t* t : {k_.get(), v_.get()}) {
    for (uint32_t l = 0; l < n_layer_; ++l, dst += layer_bytes) {
      std::memcpy(dst, t + Offset(block, l, 0), layer_bytes);
    }
  }
}

void KvBlockPool::CopyIn(uint32_t block, std::span<const uint8_t> in) {
  const size_t layer_bytes = layer_values() * sizeof(uint16_t);
  const uint8_t* src = in.data();
  for (uint16_t* t : {k_.get(), v_.get()}) {
    for (uint32_t l = 0; l < n_layer_; ++l, src += layer_bytes) {
      std::memcpy(t + Offset(block, l, 0), src, layer_bytes);
    }
  }
}

Status CheckTokens(const ModelConfig& config, std::span<const int32_t> tokens) {
  for (int32_t t : tokens) {
    if (t < 0 || static_cast<uint32_t>(t) >= config.n_vocab) {
      return Status::InvalidArgument("token id " + std::to_string(t) + " out of range");
    }
  }
  return Status::OK();
}

namespace {
// Session::Eval feeds prompts through the pass this many tokens at a time:
// enough to reuse each weight row across tokens, little scratch memory.
constexpr size_t kSessionChunk = 16;
constexpr uint32_t kSessionBlockTokens = 16;
}  // namespace

Session::Session(const Model& model, ThreadPool* pool, SessionOptions options)
    : model_(model),
      n_ctx_(std::max(1u, options.n_ctx)),
      kv_(model.config(), (n_ctx_ + kSessionBlockTokens - 1) / kSessionBlockTokens,
          kSessionBlockTokens),
      forward_(model, pool, options.isa) {
  blocks_.resize(kv_.n_blocks());
  for (uint32_t i = 0; i < kv_.n_blocks(); ++i) blocks_[i] = i;
  logits_.resize(model.config().n_vocab);
}

Result<std::span<const float>> Session::Eval(std::span<const int32_t> tokens) {
  if (tokens.empty()) return Err(Status::InvalidArgument("no tokens to evaluate"));
  if (n_past_ + tokens.size() > n_ctx_) {
    return Err(Status::ResourceExhausted("context full: " + std::to_string(n_past_) + " + " +
                                         std::to_string(tokens.size()) + " > " +
                                         std::to_string(n_ctx_)));
  }
  if (Status s = CheckTokens(model_.config(), tokens); !s.ok()) return Err(s);
  for (size_t i = 0; i < tokens.size(); i += kSessionChunk) {
    const size_t n = std::min(kSessionChunk, tokens.size() - i);
    rows_.clear();
    for (size_t j = 0; j < n; ++j) {
      const bool last = i + j + 1 == tokens.size();
      rows_.push_back({tokens[i + j], n_past_++, &kv_, blocks_, last ? logits_.data() : nullptr});
    }
    forward_.Run(rows_);
  }
  return std::span<const float>(logits_);
}

namespace {

// ggml's rope: theta_i = pos * base^(-2i/n_rot), advanced by repeated
// multiplication (that rounding is part of the reference result).
void Rope(float* x, uint32_t n_heads, uint32_t head_dim, const float* cos_sin, uint32_t n_rot,
          bool neox) {
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

ForwardPass::ForwardPass(const Model& model, ThreadPool* pool, KernelIsa isa)
    : model_(model), pool_(pool), isa_(isa) {}

void ForwardPass::Resize(size_t n_rows) {
  if (n_rows <= n_rows_) return;
  const ModelConfig& c = model_.config();
  n_rows_ = n_rows;
  x_.resize(n_rows * c.n_embd);
  h_.resize(n_rows * c.n_embd);
  q_.resize(n_rows * c.n_embd);
  k_.resize(n_rows * c.n_embd_kv());
  v_.resize(n_rows * c.n_embd_kv());
  attn_.resize(n_rows * c.n_embd);
  ff_gate_.resize(n_rows * c.n_ff);
  ff_up_.resize(n_rows * c.n_ff);
  cos_sin_.resize(n_rows * c.n_rot);
  norm_.resize(n_rows * c.n_embd);
  act_.resize(n_rows);
}

void ForwardPass::MatVec(const WeightMatrix& w, const float* x, size_t x_stride, size_t n_rows,
                         float* out, size_t out_stride) {
  for (size_t r = 0; r < n_rows; ++r) {
    act_[r].resize(ActivationBytes(w.type, w.cols));
    ConvertActivation(w.type, {x + r * x_stride, w.cols}, act_[r]);
  }
  act_ptrs_.resize(n_rows);
  for (size_t r = 0; r < n_rows; ++r) act_ptrs_[r] = act_[r].data();
  const MatMulFn matmul = GetMatMul(w.type, isa_);
  pool_->ParallelFor(w.rows, 16, [&](size_t b, size_t e) {
    matmul(w, act_ptrs_.data(), n_rows, b, e, out, out_stride);
  });
}

void ForwardPass::Attention(std::span<const ForwardRow> rows, uint32_t layer) {
  const ModelConfig& c = model_.config();
  const uint32_t group = c.n_head / c.n_head_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const VecDotFn dot = GetVecDot(GgmlType::kF16, isa_);
  const F16VecOps f16 = GetF16VecOps(isa_);
  const bool ggml_order = isa_ == KernelIsa::kAvx2 && KernelIsaSupported(KernelIsa::kAvx2);
  const int lanes = GgmlF16Lanes();
  pool_->ParallelFor(rows.size() * c.n_head, 1, [&](size_t ib, size_t ie) {
    std::vector<uint16_t> q16(c.head_dim), acc(c.head_dim);
    for (size_t i = ib; i < ie; ++i) {
      const size_t r = i / c.n_head;
      const size_t h = i % c.n_head;
      const ForwardRow& row = rows[r];
      KvBlockPool& kv = *row.kv;
      const uint32_t bt = kv.block_tokens();
      const float* q = q_.data() + r * c.n_embd;
      float* out = attn_.data() + r * c.n_embd;
      const size_t kv_off = (h / group) * c.head_dim;
      for (uint32_t d = 0; d < c.head_dim; ++d) q16[d] = Fp32ToFp16(q[h * c.head_dim + d]);
      std::fill(acc.begin(), acc.end(), 0);
      // ggml's flash attention on one query row: online softmax with the
      // V accumulator kept in F16.
      float m = -INFINITY;
      float sum = 0;
      for (uint32_t t = 0; t <= row.pos; ++t) {
        const uint32_t block = row.blocks[t / bt];
        const uint32_t slot = t % bt;
        const uint16_t* k = kv.k(block, layer, slot) + kv_off;
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
        f16.mad(acc.data(), kv.v(block, layer, slot) + kv_off, vs, c.head_dim);
        sum = sum * ms + vs;
      }
      const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
      for (uint32_t d = 0; d < c.head_dim; ++d) out[h * c.head_dim + d] = Fp16ToFp32(acc[d]) * inv;
    }
  });
}

void ForwardPass::Run(std::span<const ForwardRow> rows) {
  if (rows.empty()) return;
  const ModelConfig& c = model_.config();
  const size_t n = rows.size();
  Resize(n);
  const size_t E = c.n_embd;
  const size_t KV = c.n_embd_kv();
  const size_t F = c.n_ff;
  const WeightMatrix& embd = model_.token_embd();
  const float theta_scale = std::pow(c.rope_freq_base, -2.0f / static_cast<float>(c.n_rot));
  for (size_t r = 0; r < n; ++r) {
    (void)DequantizeRow(
        embd.type,
        {embd.data + static_cast<size_t>(rows[r].token) * embd.row_bytes, embd.row_bytes},
        {x_.data() + r * E, E});
    float* cs = cos_sin_.data() + r * c.n_rot;
    float theta = static_cast<float>(rows[r].pos);
    for (uint32_t i = 0; i < c.n_rot / 2; ++i) {
      cs[2 * i] = std::cos(theta);
      cs[2 * i + 1] = std::sin(theta);
      theta *= theta_scale;
    }
  }
  auto add_bias = [](float* v, std::span<const float> b) {
    for (size_t i = 0; i < b.size(); ++i) v[i] += b[i];
  };
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = model_.layer(l);
    for (size_t r = 0; r < n; ++r) {
      RmsNorm({x_.data() + r * E, E}, w.attn_norm, c.rms_eps, h_.data() + r * E);
    }
    MatVec(w.wq, h_.data(), E, n, q_.data(), E);
    MatVec(w.wk, h_.data(), E, n, k_.data(), KV);
    MatVec(w.wv, h_.data(), E, n, v_.data(), KV);
    for (size_t r = 0; r < n; ++r) {
      float* q = q_.data() + r * E;
      float* k = k_.data() + r * KV;
      float* v = v_.data() + r * KV;
      add_bias(q, w.bq);
      add_bias(k, w.bk);
      add_bias(v, w.bv);
      const float* cs = cos_sin_.data() + r * c.n_rot;
      Rope(q, c.n_head, c.head_dim, cs, c.n_rot, c.rope_neox);
      Rope(k, c.n_head_kv, c.head_dim, cs, c.n_rot, c.rope_neox);
      const ForwardRow& row = rows[r];
      const uint32_t bt = row.kv->block_tokens();
      const uint32_t block = row.blocks[row.pos / bt];
      uint16_t* kc = row.kv->k(block, l, row.pos % bt);
      uint16_t* vc = row.kv->v(block, l, row.pos % bt);
      for (size_t i = 0; i < KV; ++i) {
        kc[i] = Fp32ToFp16(k[i]);
        vc[i] = Fp32ToFp16(v[i]);
      }
    }
    Attention(rows, l);
    MatVec(w.wo, attn_.data(), E, n, h_.data(), E);
    for (size_t i = 0; i < n * E; ++i) x_[i] += h_[i];

    for (size_t r = 0; r < n; ++r) {
      RmsNorm({x_.data() + r * E, E}, w.ffn_norm, c.rms_eps, h_.data() + r * E);
    }
    MatVec(w.ffn_gate, h_.data(), E, n, ff_gate_.data(), F);
    MatVec(w.ffn_up, h_.data(), E, n, ff_up_.data(), F);
    for (size_t i = 0; i < n * F; ++i) {
      const float g = ff_gate_[i];
      ff_gate_[i] = g / (1.0f + std::exp(-g)) * ff_up_[i];
    }
    MatVec(w.ffn_down, ff_gate_.data(), F, n, h_.data(), E);
    for (size_t i = 0; i < n * E; ++i) x_[i] += h_[i];
  }
  // Only the rows that want logits meet the (large) output matrix.
  size_t n_out = 0;
  for (size_t r = 0; r < n; ++r) {
    if (rows[r].logits == nullptr) continue;
    RmsNorm({x_.data() + r * E, E}, model_.output_norm(), c.rms_eps, norm_.data() + n_out * E);
    ++n_out;
  }
  if (n_out == 0) return;
  const WeightMatrix& out = model_.output();
  logits_tmp_.resize(n_out * out.rows);
  MatVec(out, norm_.data(), E, n_out, logits_tmp_.data(), out.rows);
  size_t j = 0;
  for (size_t r = 0; r < n; ++r) {
    if (rows[r].logits == nullptr) continue;
    std::memcpy(rows[r].logits, logits_tmp_.data() + j * out.rows, out.rows * sizeof(float));
    ++j;
  }
}

}  // namespace llmcache::engine
