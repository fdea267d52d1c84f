// Compute kernels of the engine: row dot products and matrix-vector products
// of a weight matrix in any supported GGUF type against one activation vector.
//
// The activation is first converted to the "vec-dot format" of the weight
// type, as ggml's CPU backend does (F16 weights meet F16 activations, Q4_0 and
// Q8_0 meet Q8_0, the K-quants meet Q8_K). Converting the same way is what
// lets greedy decoding reproduce llama.cpp's tokens exactly: the rounding of
// the activation is part of the result, not an implementation detail.
//
// Every type has a plain reference kernel and, when the CPU has AVX2/FMA/F16C,
// a vectorised one chosen at run time; kernels_test holds them to each other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "engine/quant.h"

namespace llmcache::engine {

enum class ActFormat { kF32, kF16, kBF16, kQ8_0, kQ8_K };

#pragma pack(push, 1)
// ggml's block_q8_K: activations of the K-quant dot products.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sums of each 16 quants (used for the mins)
};
#pragma pack(pop)
static_assert(sizeof(BlockQ8_K) == 292);

enum class KernelIsa { kGeneric, kAvx2 };
bool KernelIsaSupported(KernelIsa isa);
KernelIsa BestKernelIsa();
std::string_view KernelIsaName(KernelIsa isa);

ActFormat ActivationFormat(GgmlType weight_type);
// Bytes of an activation of `n` elements in the format of `weight_type`.
// REQUIRES: n is a whole number of the weight type's blocks.
size_t ActivationBytes(GgmlType weight_type, size_t n);
// Converts x into the vec-dot format of `weight_type`.
// REQUIRES: out.size() >= ActivationBytes(weight_type, x.size()).
void ConvertActivation(GgmlType weight_type, std::span<const float> x, std::span<uint8_t> out);

// Dot product of one weight row (n elements of the weight type) with an
// activation in that type's vec-dot format.
using VecDotFn = float (*)(const uint8_t* row, const uint8_t* act, size_t n);
VecDotFn GetVecDot(GgmlType weight_type, KernelIsa isa);

// K.Q of attention (both F16) summed in exactly the order of ggml's SIMD
// ggml_vec_dot_f16 for `lanes` 16 (ggml's AVX-512 build) or 8 (its AVX2
// build): the result feeds F16 roundings, where one ulp shows in the output.
// REQUIRES: AVX2 support (use GetVecDot(kF16, ...) otherwise).
float AttnDotF16(const uint16_t* k, const uint16_t* q, size_t n, int lanes);
// The lanes of the ggml build llama.cpp would load on this CPU.
int GgmlF16Lanes();

// F16 vector updates of the attention accumulator, as ggml's flash attention
// does them: each element goes to F32, is scaled (y *= s) or fused-multiply-
// added (y += x * v, one rounding), and is rounded back to F16.
struct F16VecOps {
  void (*scale)(uint16_t* y, float s, size_t n);
  void (*mad)(uint16_t* y, const uint16_t* x, float v, size_t n);
};
F16VecOps GetF16VecOps(KernelIsa isa);

// A row-major weight matrix: `rows` rows of `cols` elements, each row
// `row_bytes` long. Views into the model file's mapping.
struct WeightMatrix {
  GgmlType type = GgmlType::kF32;
  const uint8_t* data = nullptr;
  size_t rows = 0;
  size_t cols = 0;
  size_t row_bytes = 0;
};

// out[r] = row r . act for r in [row_begin, row_end).
void MatVecRows(const WeightMatrix& w, const uint8_t* act, VecDotFn dot, size_t row_begin,
                size_t row_end, float* out);

// Weight rows [row_begin, row_end) times `n_acts` activations, each in the
// weight type's vec-dot format: out[a * out_stride + r] = row r . acts[a].
// Every result is bit-identical to GetVecDot(w.type, isa)(row, acts[a], ...):
// a token's logits must not depend on how many tokens were evaluated with it
// (prefill, decode, a prefix-cache hit in the middle). A blocked kernel reads
// each weight block once for several activations; types without one loop
// over the vec-dot, a cache-sized tile of rows at a time.
using MatMulFn = void (*)(const WeightMatrix& w, const uint8_t* const* acts, size_t n_acts,
                          size_t row_begin, size_t row_end, float* out, size_t out_stride);
MatMulFn GetMatMul(GgmlType weight_type, KernelIsa isa);

}  // namespace llmcache::engine
