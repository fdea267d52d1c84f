#include "engine/quant.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace llmcache::engine {
namespace {

constexpr std::array<TypeTraits, 7> kTraits = {{
    {GgmlType::kF32, "f32", 1, 4},
    {GgmlType::kF16, "f16", 1, 2},
    {GgmlType::kQ4_0, "q4_0", kQK4_0, sizeof(BlockQ4_0)},
    {GgmlType::kQ8_0, "q8_0", kQK8_0, sizeof(BlockQ8_0)},
    {GgmlType::kQ4_K, "q4_K", kQK_K, sizeof(BlockQ4_K)},
    {GgmlType::kQ6_K, "q6_K", kQK_K, sizeof(BlockQ6_K)},
    {GgmlType::kBF16, "bf16", 1, 2},
}};

int NearestInt(float v) { return static_cast<int>(std::lrintf(v)); }

// Unpacks the j-th 6-bit scale and min of a Q4_K block: the first four live
// in the low 6 bits of bytes 0..7, the last four are split between the
// nibbles of bytes 8..11 and the top 2 bits of bytes 0..7.
void ScaleMinK4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

template <class Block>
const Block* Blocks(std::span<const uint8_t> src) {
  return reinterpret_cast<const Block*>(src.data());
}
template <class Block>
Block* Blocks(std::span<uint8_t> dst) {
  return reinterpret_cast<Block*>(dst.data());
}

// The float expressions below keep ggml's operand order so results match it
// bit for bit (the build does not contract a*b+c into FMA in ISO C++ mode).
void DequantQ8_0(const BlockQ8_0* x, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    for (int j = 0; j < kQK8_0; ++j) y[i * kQK8_0 + j] = x[i].qs[j] * d;
  }
}

void DequantQ4_0(const BlockQ4_0* x, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int x0 = (x[i].qs[j] & 0x0F) - 8;
      const int x1 = (x[i].qs[j] >> 4) - 8;
      y[i * kQK4_0 + j] = x0 * d;
      y[i * kQK4_0 + j + kQK4_0 / 2] = x1 * d;
    }
  }
}

void DequantQ4_K(const BlockQ4_K* x, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const uint8_t* q = x[i].qs;
    const float d = Fp16ToFp32(x[i].d);
    const float min = Fp16ToFp32(x[i].dmin);
    int is = 0;
    uint8_t sc, m;
    for (int j = 0; j < kQK_K; j += 64) {
      ScaleMinK4(is + 0, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      ScaleMinK4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

void DequantQ6_K(const BlockQ6_K* x, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int n = 0; n < kQK_K; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int8_t q1 = static_cast<int8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int8_t q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int8_t q3 = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int8_t q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

// Same rule as ggml's reference: the scale maps the largest magnitude to 127.
void QuantQ8_0(const float* x, BlockQ8_0* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, x += kQK8_0) {
    float amax = 0;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

// Same rule as ggml's reference: the value of largest magnitude maps to -8,
// so the asymmetric 4-bit range [-8, 7] is used fully on that side.
void QuantQ4_0(const float* x, BlockQ4_0* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, x += kQK4_0) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int xi0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int xi1 =
          std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQK4_0 / 2] * id + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
  }
}

// Q4_K: eight 32-element groups, each x = d*sc*q - dmin*m with 6-bit sc, m.
// We take each group's min/max range (no iterative search like ggml's).
void QuantQ4_K(const float* x, BlockQ4_K* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, x += kQK_K) {
    float scales[8], mins[8];
    float max_scale = 0, max_min = 0;
    for (int g = 0; g < 8; ++g) {
      float lo = 0, hi = x[g * 32];
      for (int l = 0; l < 32; ++l) {
        lo = std::min(lo, x[g * 32 + l]);
        hi = std::max(hi, x[g * 32 + l]);
      }
      scales[g] = (hi - lo) / 15;
      mins[g] = -lo;
      max_scale = std::max(max_scale, scales[g]);
      max_min = std::max(max_min, mins[g]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(y[i].scales, 0, sizeof(y[i].scales));
    for (int g = 0; g < 8; ++g) {
      const uint8_t ls = static_cast<uint8_t>(std::min(63, NearestInt(inv_scale * scales[g])));
      const uint8_t lm = static_cast<uint8_t>(std::min(63, NearestInt(inv_min * mins[g])));
      if (g < 4) {
        y[i].scales[g] |= ls;
        y[i].scales[g + 4] |= lm;
      } else {
        y[i].scales[g + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        y[i].scales[g - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
        y[i].scales[g] |= static_cast<uint8_t>((lm >> 4) << 6);
      }
    }
    y[i].d = Fp32ToFp16(max_scale / 63.f);
    y[i].dmin = Fp32ToFp16(max_min / 63.f);
    // Quantise against the scales as the reader will see them (fp16, 6 bit).
    const float d = Fp16ToFp32(y[i].d), dmin = Fp16ToFp32(y[i].dmin);
    uint8_t L[kQK_K] = {};
    for (int g = 0; g < 8; ++g) {
      uint8_t sc, m;
      ScaleMinK4(g, y[i].scales, &sc, &m);
      const float dd = d * sc;
      const float dm = dmin * m;
      if (dd == 0) continue;
      for (int l = 0; l < 32; ++l) {
        L[g * 32 + l] =
            static_cast<uint8_t>(std::clamp(NearestInt((x[g * 32 + l] + dm) / dd), 0, 15));
      }
    }
    uint8_t* q = y[i].qs;
    for (int j = 0; j < kQK_K; j += 64) {
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
      q += 32;
    }
  }
}

// Q6_K: sixteen 16-element groups, x = d*sc*(q-32) with int8 sc and 6-bit q.
void QuantQ6_K(const float* x, BlockQ6_K* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, x += kQK_K) {
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int g = 0; g < 16; ++g) {
      float amax = 0, max = 0;
      for (int l = 0; l < 16; ++l) {
        const float v = x[g * 16 + l];
        if (std::fabs(v) > amax) {
          amax = std::fabs(v);
          max = v;
        }
      }
      scales[g] = max / -32;
      if (std::fabs(scales[g]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[g]);
        max_scale = scales[g];
      }
    }
    if (max_abs_scale == 0) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      std::memset(y[i].ql, 0x00, sizeof(y[i].ql));
      // q = 32 encodes zero: low nibble 0, high bits 2 -> 0b10 in every pair.
      std::memset(y[i].qh, 0xAA, sizeof(y[i].qh));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = Fp32ToFp16(1 / iscale);
    for (int g = 0; g < 16; ++g) {
      y[i].scales[g] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scales[g])));
    }
    const float d = Fp16ToFp32(y[i].d);
    uint8_t L[kQK_K];
    for (int g = 0; g < 16; ++g) {
      const float dd = d * y[i].scales[g];
      for (int l = 0; l < 16; ++l) {
        const int q = dd == 0 ? 0 : std::clamp(NearestInt(x[g * 16 + l] / dd), -32, 31);
        L[g * 16 + l] = static_cast<uint8_t>(q + 32);
      }
    }
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < kQK_K; j += 128) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t* Lj = L + j;
        ql[l] = static_cast<uint8_t>((Lj[l] & 0xF) | ((Lj[l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((Lj[l + 32] & 0xF) | ((Lj[l + 96] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((Lj[l] >> 4) | ((Lj[l + 32] >> 4) << 2) |
                                     ((Lj[l + 64] >> 4) << 4) | ((Lj[l + 96] >> 4) << 6));
      }
      ql += 64;
      qh += 32;
    }
  }
}

Status CheckSizes(GgmlType type, size_t n, size_t bytes_available, const char* what) {
  auto need = RowBytes(type, n);
  if (!need) return need.error();
  if (bytes_available < *need) {
    return Status::InvalidArgument(std::string(what) + " buffer too small: " +
                                   std::to_string(bytes_available) + " < " + std::to_string(*need));
  }
  return Status::OK();
}

}  // namespace

std::optional<TypeTraits> GetTypeTraits(uint32_t type_id) {
  for (const auto& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == type_id) return t;
  }
  return std::nullopt;
}

std::optional<GgmlType> ParseTypeName(std::string_view name) {
  for (const auto& t : kTraits) {
    if (t.name == name) return t.type;
  }
  if (name == "q4_k") return GgmlType::kQ4_K;
  if (name == "q6_k") return GgmlType::kQ6_K;
  return std::nullopt;
}

Result<uint64_t> RowBytes(GgmlType type, uint64_t n) {
  auto traits = GetTypeTraits(static_cast<uint32_t>(type));
  if (!traits) return Err(Status::InvalidArgument("unsupported tensor type"));
  if (n % traits->block_elems != 0) {
    return Err(Status::InvalidArgument(std::to_string(n) + " elements is not a multiple of the " +
                                       std::string(traits->name) + " block size " +
                                       std::to_string(traits->block_elems)));
  }
  const uint64_t blocks = n / traits->block_elems;
  if (blocks > std::numeric_limits<uint64_t>::max() / traits->block_bytes) {
    return Err(Status::InvalidArgument("tensor byte size overflows"));
  }
  return blocks * traits->block_bytes;
}

float Fp16ToFp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000 | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: normalise the mantissa.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3FF) << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t Fp32ToFp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7FFFFFFF;
  if (abs > 0x7F800000) return static_cast<uint16_t>(sign | 0x7E00);   // NaN
  if (abs >= 0x477FF000) return static_cast<uint16_t>(sign | 0x7C00);  // overflow -> inf
  if (abs < 0x38800000) {
    // Result is subnormal (or zero): shift the implicit-1 mantissa into place
    // and round to nearest even.
    if (abs < 0x33000000) return sign;
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7FFFFF) | 0x800000;
    const uint32_t shift = 126 - e;  // 14 + (113 - e - 1)
    uint32_t half = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t r = abs - 0x38000000;  // rebias exponent 127 -> 15
  r += 0xFFF + ((r >> 13) & 1);   // round to nearest even on bit 13
  return static_cast<uint16_t>(sign | (r >> 13));
}

float Bf16ToFp32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t Fp32ToBf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7FFF + ((u >> 16) & 1))) >> 16);
}

Status DequantizeRow(GgmlType type, std::span<const uint8_t> src, std::span<float> dst) {
  const size_t n = dst.size();
  if (Status s = CheckSizes(type, n, src.size(), "source"); !s.ok()) return s;
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst.data(), src.data(), n * sizeof(float));
      return Status::OK();
    case GgmlType::kF16:
    case GgmlType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src.data() + 2 * i, 2);
        dst[i] = type == GgmlType::kF16 ? Fp16ToFp32(h) : Bf16ToFp32(h);
      }
      return Status::OK();
    case GgmlType::kQ8_0:
      DequantQ8_0(Blocks<BlockQ8_0>(src), dst.data(), n / kQK8_0);
      return Status::OK();
    case GgmlType::kQ4_0:
      DequantQ4_0(Blocks<BlockQ4_0>(src), dst.data(), n / kQK4_0);
      return Status::OK();
    case GgmlType::kQ4_K:
      DequantQ4_K(Blocks<BlockQ4_K>(src), dst.data(), n / kQK_K);
      return Status::OK();
    case GgmlType::kQ6_K:
      DequantQ6_K(Blocks<BlockQ6_K>(src), dst.data(), n / kQK_K);
      return Status::OK();
  }
  return Status::InvalidArgument("unsupported tensor type");
}

Status QuantizeRow(GgmlType type, std::span<const float> src, std::span<uint8_t> dst) {
  const size_t n = src.size();
  if (Status s = CheckSizes(type, n, dst.size(), "destination"); !s.ok()) return s;
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst.data(), src.data(), n * sizeof(float));
      return Status::OK();
    case GgmlType::kF16:
    case GgmlType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = type == GgmlType::kF16 ? Fp32ToFp16(src[i]) : Fp32ToBf16(src[i]);
        std::memcpy(dst.data() + 2 * i, &h, 2);
      }
      return Status::OK();
    case GgmlType::kQ8_0:
      QuantQ8_0(src.data(), Blocks<BlockQ8_0>(dst), n / kQK8_0);
      return Status::OK();
    case GgmlType::kQ4_0:
      QuantQ4_0(src.data(), Blocks<BlockQ4_0>(dst), n / kQK4_0);
      return Status::OK();
    case GgmlType::kQ4_K:
      QuantQ4_K(src.data(), Blocks<BlockQ4_K>(dst), n / kQK_K);
      return Status::OK();
    case GgmlType::kQ6_K:
      QuantQ6_K(src.data(), Blocks<BlockQ6_K>(dst), n / kQK_K);
      return Status::OK();
  }
  return Status::InvalidArgument("unsupported tensor type");
}

}  // namespace llmcache::engine
