// Tensor element types of GGUF files and their block layouts, with plain
// reference quantisation (F32 -> type) and dequantisation (type -> F32).
//
// The byte layouts are those of ggml (the numbers are part of the GGUF file
// format); the code is ours. Dequantisation reproduces ggml's results bit for
// bit (same float operations in the same order, checked by quant_test against
// the prebuilt libggml-base). Quantisation is a simple reference: it produces
// valid blocks with bounded error but is not the same search ggml runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "llmcache/status.h"

namespace llmcache::engine {

// Values are ggml's enum ggml_type, stored as uint32 in GGUF tensor infos.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ6_K = 14,
  kBF16 = 30,
};

struct TypeTraits {
  GgmlType type;
  std::string_view name;  // as ggml spells it: "f32", "q4_K", ...
  uint32_t block_elems;   // elements per block (1 for plain floats)
  uint32_t block_bytes;   // bytes per block
};

// Traits of a supported type; nullopt for any other ggml type id (including
// valid ggml types this engine does not compute with).
std::optional<TypeTraits> GetTypeTraits(uint32_t type_id);
std::optional<GgmlType> ParseTypeName(std::string_view name);  // "f16", "q8_0", ...

// Bytes of a row of `n` elements; error when n is not a whole number of blocks
// or the size overflows.
Result<uint64_t> RowBytes(GgmlType type, uint64_t n);

constexpr int kQK8_0 = 32;
constexpr int kQK4_0 = 32;
constexpr int kQK_K = 256;
constexpr int kKScaleSize = 12;

#pragma pack(push, 1)
struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[kQK8_0];
};
struct BlockQ4_0 {
  uint16_t d;              // fp16 scale
  uint8_t qs[kQK4_0 / 2];  // low nibble: element j, high nibble: element j+16
};
struct BlockQ4_K {
  uint16_t d;                   // fp16 super-block scale of the 6-bit scales
  uint16_t dmin;                // fp16 super-block scale of the 6-bit mins
  uint8_t scales[kKScaleSize];  // 8 scales + 8 mins, 6 bits each, packed
  uint8_t qs[kQK_K / 2];        // 4-bit quants
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];      // low 4 bits
  uint8_t qh[kQK_K / 4];      // high 2 bits
  int8_t scales[kQK_K / 16];  // 8-bit scales of 16-element groups
  uint16_t d;                 // fp16 super-block scale
};
#pragma pack(pop)
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ6_K) == 210);

// IEEE half and bfloat16 conversions (round to nearest even, NaN kept NaN).
float Fp16ToFp32(uint16_t h);
uint16_t Fp32ToFp16(float f);
float Bf16ToFp32(uint16_t h);
uint16_t Fp32ToBf16(float f);

// Dequantises `n` elements (a whole number of blocks) from `src` into `dst`.
// REQUIRES: src.size() >= RowBytes(type, n), dst.size() >= n.
Status DequantizeRow(GgmlType type, std::span<const uint8_t> src, std::span<float> dst);

// Quantises `src` (a whole number of blocks) into `dst`.
// REQUIRES: dst.size() >= RowBytes(type, src.size()).
Status QuantizeRow(GgmlType type, std::span<const float> src, std::span<uint8_t> dst);

}  // namespace llmcache::engine
