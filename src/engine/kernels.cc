#include "engine/kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace llmcache::engine {

bool KernelIsaSupported(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kGeneric:
      return true;
    case KernelIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
  }
  return false;
}

KernelIsa BestKernelIsa() {
  return KernelIsaSupported(KernelIsa::kAvx2) ? KernelIsa::kAvx2 : KernelIsa::kGeneric;
}

std::string_view KernelIsaName(KernelIsa isa) {
  return isa == KernelIsa::kAvx2 ? "avx2" : "generic";
}

ActFormat ActivationFormat(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::kF32:
      return ActFormat::kF32;
    case GgmlType::kF16:
      return ActFormat::kF16;
    case GgmlType::kBF16:
      return ActFormat::kBF16;
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
      return ActFormat::kQ8_0;
    case GgmlType::kQ4_K:
    case GgmlType::kQ6_K:
      return ActFormat::kQ8_K;
  }
  return ActFormat::kF32;
}

size_t ActivationBytes(GgmlType weight_type, size_t n) {
  switch (ActivationFormat(weight_type)) {
    case ActFormat::kF32:
      return n * sizeof(float);
    case ActFormat::kF16:
    case ActFormat::kBF16:
      return n * sizeof(uint16_t);
    case ActFormat::kQ8_0:
      return n / kQK8_0 * sizeof(BlockQ8_0);
    case ActFormat::kQ8_K:
      return n / kQK_K * sizeof(BlockQ8_K);
  }
  return 0;
}

namespace {

// ggml's nearest_int: round half to even through the float mantissa.
int NearestInt(float v) {
  float f = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &f, sizeof(i));
  return (i & 0x007fffff) - 0x00400000;
}

// The x86 (AVX) scheme of ggml's quantize_row_q8_0: the inverse scale is
// 127/amax (not 1/d) and rounding is to nearest even.
void ToQ8_0(std::span<const float> x, BlockQ8_0* out) {
  for (size_t b = 0; b < x.size() / kQK8_0; ++b) {
    const float* v = x.data() + b * kQK8_0;
    float amax = 0;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    out[b].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK8_0; ++j) out[b].qs[j] = static_cast<int8_t>(std::nearbyint(v[j] * id));
  }
}

// ggml's quantize_row_q8_K_ref (the x86 build uses it as is).
void ToQ8_K(std::span<const float> x, BlockQ8_K* out) {
  for (size_t b = 0; b < x.size() / kQK_K; ++b) {
    const float* v = x.data() + b * kQK_K;
    BlockQ8_K& y = out[b];
    float max = 0;
    float amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(v[j]);
      if (ax > amax) {
        amax = ax;
        max = v[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y, 0, sizeof(y));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j)
      y.qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * v[j])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y.qs[j * 16 + i];
      y.bsums[j] = static_cast<int16_t>(sum);
    }
    y.d = 1 / iscale;
  }
}

void ScaleMinK4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// ---- Reference kernels ------------------------------------------------------

float DotF32Ref(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const float*>(row);
  const auto* y = reinterpret_cast<const float*>(act);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

template <float (*kToF32)(uint16_t)>
float DotHalfRef(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const uint16_t*>(row);
  const auto* y = reinterpret_cast<const uint16_t*>(act);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(kToF32(x[i]) * kToF32(y[i]));
  return static_cast<float>(sum);
}

float DotQ8_0Ref(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const BlockQ8_0*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_0*>(act);
  float sum = 0;
  for (size_t b = 0; b < n / kQK8_0; ++b) {
    int sumi = 0;
    for (int j = 0; j < kQK8_0; ++j) sumi += x[b].qs[j] * y[b].qs[j];
    sum += static_cast<float>(sumi) * (Fp16ToFp32(x[b].d) * Fp16ToFp32(y[b].d));
  }
  return sum;
}

float DotQ4_0Ref(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const BlockQ4_0*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_0*>(act);
  float sum = 0;
  for (size_t b = 0; b < n / kQK4_0; ++b) {
    int sumi = 0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      sumi += ((x[b].qs[j] & 0xF) - 8) * y[b].qs[j];
      sumi += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + kQK4_0 / 2];
    }
    sum += static_cast<float>(sumi) * (Fp16ToFp32(x[b].d) * Fp16ToFp32(y[b].d));
  }
  return sum;
}

float DotQ4_KRef(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const BlockQ4_K*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  float sum = 0;
  for (size_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; ++j) ScaleMinK4(j, x[b].scales, &sc[j], &m[j]);
    int summs = 0;
    for (int j = 0; j < kQK_K / 16; ++j) summs += y[b].bsums[j] * m[j / 2];
    int sumi = 0;
    for (int c = 0; c < 4; ++c) {
      const uint8_t* q = x[b].qs + 32 * c;
      const int8_t* yq = y[b].qs + 64 * c;
      int lo = 0, hi = 0;
      for (int l = 0; l < 32; ++l) {
        lo += (q[l] & 0xF) * yq[l];
        hi += (q[l] >> 4) * yq[l + 32];
      }
      sumi += sc[2 * c] * lo + sc[2 * c + 1] * hi;
    }
    const float d = Fp16ToFp32(x[b].d) * y[b].d;
    const float dmin = Fp16ToFp32(x[b].dmin) * y[b].d;
    sum += d * static_cast<float>(sumi) - dmin * static_cast<float>(summs);
  }
  return sum;
}

float DotQ6_KRef(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const BlockQ6_K*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  float sum = 0;
  for (size_t b = 0; b < n / kQK_K; ++b) {
    int sumi = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = x[b].ql + 64 * half;
      const uint8_t* qh = x[b].qh + 32 * half;
      const int8_t* sc = x[b].scales + 8 * half;
      const int8_t* yq = y[b].qs + 128 * half;
      int part[8] = {};  // one sum per 16-element scale group
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        part[is + 0] += q1 * yq[l];
        part[is + 2] += q2 * yq[l + 32];
        part[is + 4] += q3 * yq[l + 64];
        part[is + 6] += q4 * yq[l + 96];
      }
      for (int g = 0; g < 8; ++g) sumi += sc[g] * part[g];
    }
    sum += Fp16ToFp32(x[b].d) * y[b].d * static_cast<float>(sumi);
  }
  return sum;
}

void F16ScaleRef(uint16_t* y, float s, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = Fp32ToFp16(Fp16ToFp32(y[i]) * s);
}

void F16MadRef(uint16_t* y, const uint16_t* x, float v, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = Fp32ToFp16(std::fma(Fp16ToFp32(x[i]), v, Fp16ToFp32(y[i])));
}

// ---- AVX2 / FMA / F16C kernels ---------------------------------------------

#define LLMCACHE_AVX2 __attribute__((target("avx2,fma,f16c")))

LLMCACHE_AVX2 inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Sum of 8-bit products, as 8 int32 lanes: x signed, y signed.
LLMCACHE_AVX2 inline __m256i DotI8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

LLMCACHE_AVX2 float DotF32Avx2(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const float*>(row);
  const auto* y = reinterpret_cast<const float*>(act);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] =
          _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
  }
  float sum = HSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

LLMCACHE_AVX2 inline __m256 LoadF16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
LLMCACHE_AVX2 inline __m256 LoadBf16(const uint16_t* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

template <bool kBf16>
LLMCACHE_AVX2 inline __m256 LoadHalf(const uint16_t* p) {
  return kBf16 ? LoadBf16(p) : LoadF16(p);
}

template <bool kBf16>
LLMCACHE_AVX2 float DotHalfAvx2(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const uint16_t*>(row);
  const auto* y = reinterpret_cast<const uint16_t*>(act);
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(LoadHalf<kBf16>(x + i), LoadHalf<kBf16>(y + i), acc0);
    acc1 = _mm256_fmadd_ps(LoadHalf<kBf16>(x + i + 8), LoadHalf<kBf16>(y + i + 8), acc1);
  }
  float sum = HSum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) {
    sum += kBf16 ? Bf16ToFp32(x[i]) * Bf16ToFp32(y[i]) : Fp16ToFp32(x[i]) * Fp16ToFp32(y[i]);
  }
  return sum;
}

// kRows weight rows against one activation. Each row's arithmetic is the
// one-row kernel's, in the same order (so results are bit-identical); the
// rows share the activation's loads and scale, and their independent FMA
// chains keep the core busy where one row's chain would stall on latency.
template <int kRows>
LLMCACHE_AVX2 inline void DotQ8_0Rows(const uint8_t* const* rows, const uint8_t* act, size_t n,
                                      float* out) {
  const auto* y = reinterpret_cast<const BlockQ8_0*>(act);
  const BlockQ8_0* x[kRows];
  __m256 acc[kRows];
  for (int r = 0; r < kRows; ++r) {
    x[r] = reinterpret_cast<const BlockQ8_0*>(rows[r]);
    acc[r] = _mm256_setzero_ps();
  }
  for (size_t b = 0; b < n / kQK8_0; ++b) {
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const float dy = _cvtsh_ss(y[b].d);
    for (int r = 0; r < kRows; ++r) {
      const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r][b].qs));
      const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[r][b].d) * dy);
      acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(DotI8(qx, qy)), acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) out[r] = HSum(acc[r]);
}

LLMCACHE_AVX2 float DotQ8_0Avx2(const uint8_t* row, const uint8_t* act, size_t n) {
  float out;
  DotQ8_0Rows<1>(&row, act, n, &out);
  return out;
}

LLMCACHE_AVX2 void DotQ8_0x4Avx2(const uint8_t* const* rows, const uint8_t* act, size_t n,
                                 float* out) {
  DotQ8_0Rows<4>(rows, act, n, out);
}

LLMCACHE_AVX2 float DotQ4_0Avx2(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const BlockQ4_0*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_0*>(act);
  const __m256i low4 = _mm256_set1_epi8(0xF);
  const __m256i eight = _mm256_set1_epi8(8);
  __m256 acc = _mm256_setzero_ps();
  for (size_t b = 0; b < n / kQK4_0; ++b) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs));
    // Low nibbles are elements 0..15, high nibbles 16..31.
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
    const __m256i qx = _mm256_sub_epi8(_mm256_and_si256(both, low4), eight);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const __m256 d = _mm256_set1_ps(Fp16ToFp32(x[b].d) * Fp16ToFp32(y[b].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(DotI8(qx, qy)), acc);
  }
  return HSum(acc);
}

LLMCACHE_AVX2 float DotQ4_KAvx2(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const BlockQ4_K*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  const __m256i low4 = _mm256_set1_epi8(0xF);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (size_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; ++j) ScaleMinK4(j, x[b].scales, &sc[j], &m[j]);
    int summs = 0;
    for (int j = 0; j < kQK_K / 16; ++j) summs += y[b].bsums[j] * m[j / 2];
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * c));
      const __m256i lo = _mm256_and_si256(q, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      const auto* yq = reinterpret_cast<const __m256i*>(y[b].qs + 64 * c);
      const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(yq));
      const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(yq + 1));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * c])));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * c + 1])));
    }
    const float d = Fp16ToFp32(x[b].d) * y[b].d;
    mins += Fp16ToFp32(x[b].dmin) * y[b].d * static_cast<float>(summs);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return HSum(acc) - mins;
}

// Bits 4-5 of the 6-bit quants, taken from qh at `shift`.
LLMCACHE_AVX2 inline __m256i Q6High(__m256i qh, int shift, __m256i three) {
  return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4);
}

LLMCACHE_AVX2 float DotQ6_KAvx2(const uint8_t* row, const uint8_t* act, size_t n) {
  const auto* x = reinterpret_cast<const BlockQ6_K*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  const __m256i low4 = _mm256_set1_epi8(0xF);
  const __m256i three = _mm256_set1_epi8(3);
  const __m256i bias = _mm256_set1_epi8(32);
  __m256 acc = _mm256_setzero_ps();
  for (size_t b = 0; b < n / kQK_K; ++b) {
    __m256i sumi = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = x[b].ql + 64 * half;
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qh + 32 * half));
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4), Q6High(qh, 0, three)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4), Q6High(qh, 2, three)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), Q6High(qh, 4, three)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), Q6High(qh, 6, three)),
      };
      const int8_t* sc = x[b].scales + 8 * half;
      for (int k = 0; k < 4; ++k) {
        const __m256i yk =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs + 128 * half + 32 * k));
        // (q - 32) . y as q . y - 32 . y: maddubs needs an unsigned left side.
        const __m256i p =
            _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], yk), _mm256_maddubs_epi16(bias, yk));
        const __m256i scales =
            _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scales));
      }
    }
    const float d = Fp16ToFp32(x[b].d) * y[b].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return HSum(acc);
}

LLMCACHE_AVX2 void F16ScaleAvx2(uint16_t* y, float s, size_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    auto* p = reinterpret_cast<__m128i*>(y + i);
    const __m256 r = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(p)), vs);
    _mm_storeu_si128(p, _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
  }
  F16ScaleRef(y + i, s, n - i);
}

LLMCACHE_AVX2 void F16MadAvx2(uint16_t* y, const uint16_t* x, float v, size_t n) {
  const __m256 vv = _mm256_set1_ps(v);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    auto* p = reinterpret_cast<__m128i*>(y + i);
    const __m256 r = _mm256_fmadd_ps(LoadF16(x + i), vv, _mm256_cvtph_ps(_mm_loadu_si128(p)));
    _mm_storeu_si128(p, _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
  }
  F16MadRef(y + i, x + i, v, n - i);
}

// Four accumulators of `lanes` floats (an AVX-512 register is two AVX2 ones
// here), each element an FMA chain; then ggml's reduction tree.
LLMCACHE_AVX2 float AttnDotF16Avx2(const uint16_t* x, const uint16_t* y, size_t n, int lanes) {
  const size_t step = 4 * static_cast<size_t>(lanes);
  const int regs = lanes / 8;  // AVX2 registers per ggml vector
  __m256 acc[4][2] = {};
  const size_t np = n / step * step;
  for (size_t i = 0; i < np; i += step) {
    for (int j = 0; j < 4; ++j) {
      for (int r = 0; r < regs; ++r) {
        const size_t o = i + static_cast<size_t>(j * lanes + r * 8);
        acc[j][r] = _mm256_fmadd_ps(LoadF16(x + o), LoadF16(y + o), acc[j][r]);
      }
    }
  }
  for (int r = 0; r < regs; ++r) {
    acc[0][r] = _mm256_add_ps(acc[0][r], acc[2][r]);
    acc[1][r] = _mm256_add_ps(acc[1][r], acc[3][r]);
    acc[0][r] = _mm256_add_ps(acc[0][r], acc[1][r]);
  }
  float res;
  if (lanes == 16) {  // GCC's _mm512_reduce_add_ps
    const __m256 a = _mm256_add_ps(acc[0][1], acc[0][0]);
    const __m128 b = _mm_add_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    const __m128 c = _mm_add_ps(b, _mm_shuffle_ps(b, b, _MM_SHUFFLE(1, 0, 3, 2)));
    res = _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, _MM_SHUFFLE(2, 3, 0, 1))));
  } else {  // GGML_F32x8_REDUCE
    const __m128 t0 =
        _mm_add_ps(_mm256_castps256_ps128(acc[0][0]), _mm256_extractf128_ps(acc[0][0], 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    res = _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
  }
  double sum = res;
  for (size_t i = np; i < n; ++i) sum += static_cast<double>(Fp16ToFp32(x[i]) * Fp16ToFp32(y[i]));
  return static_cast<float>(sum);
}

#undef LLMCACHE_AVX2

}  // namespace

void ConvertActivation(GgmlType weight_type, std::span<const float> x, std::span<uint8_t> out) {
  switch (ActivationFormat(weight_type)) {
    case ActFormat::kF32:
      std::memcpy(out.data(), x.data(), x.size() * sizeof(float));
      return;
    case ActFormat::kF16: {
      auto* o = reinterpret_cast<uint16_t*>(out.data());
      for (size_t i = 0; i < x.size(); ++i) o[i] = Fp32ToFp16(x[i]);
      return;
    }
    case ActFormat::kBF16: {
      auto* o = reinterpret_cast<uint16_t*>(out.data());
      for (size_t i = 0; i < x.size(); ++i) o[i] = Fp32ToBf16(x[i]);
      return;
    }
    case ActFormat::kQ8_0:
      ToQ8_0(x, reinterpret_cast<BlockQ8_0*>(out.data()));
      return;
    case ActFormat::kQ8_K:
      ToQ8_K(x, reinterpret_cast<BlockQ8_K*>(out.data()));
      return;
  }
}

VecDotFn GetVecDot(GgmlType weight_type, KernelIsa isa) {
  const bool avx2 = isa == KernelIsa::kAvx2 && KernelIsaSupported(KernelIsa::kAvx2);
  switch (weight_type) {
    case GgmlType::kF32:
      return avx2 ? DotF32Avx2 : DotF32Ref;
    case GgmlType::kF16:
      return avx2 ? DotHalfAvx2<false> : DotHalfRef<Fp16ToFp32>;
    case GgmlType::kBF16:
      return avx2 ? DotHalfAvx2<true> : DotHalfRef<Bf16ToFp32>;
    case GgmlType::kQ8_0:
      return avx2 ? DotQ8_0Avx2 : DotQ8_0Ref;
    case GgmlType::kQ4_0:
      return avx2 ? DotQ4_0Avx2 : DotQ4_0Ref;
    case GgmlType::kQ4_K:
      return avx2 ? DotQ4_KAvx2 : DotQ4_KRef;
    case GgmlType::kQ6_K:
      return avx2 ? DotQ6_KAvx2 : DotQ6_KRef;
  }
  return DotF32Ref;
}

float AttnDotF16(const uint16_t* k, const uint16_t* q, size_t n, int lanes) {
  return AttnDotF16Avx2(k, q, n, lanes);
}

int GgmlF16Lanes() { return __builtin_cpu_supports("avx512f") ? 16 : 8; }

F16VecOps GetF16VecOps(KernelIsa isa) {
  if (isa == KernelIsa::kAvx2 && KernelIsaSupported(KernelIsa::kAvx2)) {
    return {F16ScaleAvx2, F16MadAvx2};
  }
  return {F16ScaleRef, F16MadRef};
}

void MatVecRows(const WeightMatrix& w, const uint8_t* act, VecDotFn dot, size_t row_begin,
                size_t row_end, float* out) {
  for (size_t r = row_begin; r < row_end; ++r) out[r] = dot(w.data + r * w.row_bytes, act, w.cols);
}

namespace {

template <VecDotFn kDot>
void MatMulByVecDot(const WeightMatrix& w, const uint8_t* const* acts, size_t n_acts,
                    size_t row_begin, size_t row_end, float* out, size_t out_stride) {
  // Rows in tiles small enough to stay in cache while every activation
  // passes over them: the weights stream from memory once.
  constexpr size_t kTile = 16;
  for (size_t t = row_begin; t < row_end; t += kTile) {
    const size_t te = std::min(row_end, t + kTile);
    for (size_t a = 0; a < n_acts; ++a) MatVecRows(w, acts[a], kDot, t, te, out + a * out_stride);
  }
}

// Four rows at a time through a multi-row kernel (bit-identical to kDot per
// row), the rest of a tile row by row.
using RowsDotFn = void (*)(const uint8_t* const* rows, const uint8_t* act, size_t n, float* out);
template <RowsDotFn kDot4, VecDotFn kDot>
void MatMulByRows4(const WeightMatrix& w, const uint8_t* const* acts, size_t n_acts,
                   size_t row_begin, size_t row_end, float* out, size_t out_stride) {
  constexpr size_t kTile = 16;
  for (size_t t = row_begin; t < row_end; t += kTile) {
    const size_t te = std::min(row_end, t + kTile);
    for (size_t a = 0; a < n_acts; ++a) {
      float* o = out + a * out_stride;
      size_t r = t;
      for (; r + 4 <= te; r += 4) {
        const uint8_t* rows[4] = {w.data + r * w.row_bytes, w.data + (r + 1) * w.row_bytes,
                                  w.data + (r + 2) * w.row_bytes, w.data + (r + 3) * w.row_bytes};
        kDot4(rows, acts[a], w.cols, o + r);
      }
      for (; r < te; ++r) o[r] = kDot(w.data + r * w.row_bytes, acts[a], w.cols);
    }
  }
}

}  // namespace

MatMulFn GetMatMul(GgmlType weight_type, KernelIsa isa) {
  const bool avx2 = isa == KernelIsa::kAvx2 && KernelIsaSupported(KernelIsa::kAvx2);
  switch (weight_type) {
    case GgmlType::kF32:
      return avx2 ? MatMulByVecDot<DotF32Avx2> : MatMulByVecDot<DotF32Ref>;
    case GgmlType::kF16:
      return avx2 ? MatMulByVecDot<DotHalfAvx2<false>> : MatMulByVecDot<DotHalfRef<Fp16ToFp32>>;
    case GgmlType::kBF16:
      return avx2 ? MatMulByVecDot<DotHalfAvx2<true>> : MatMulByVecDot<DotHalfRef<Bf16ToFp32>>;
    case GgmlType::kQ8_0:
      return avx2 ? MatMulByRows4<DotQ8_0x4Avx2, DotQ8_0Avx2> : MatMulByVecDot<DotQ8_0Ref>;
    case GgmlType::kQ4_0:
      return avx2 ? MatMulByVecDot<DotQ4_0Avx2> : MatMulByVecDot<DotQ4_0Ref>;
    case GgmlType::kQ4_K:
      return avx2 ? MatMulByVecDot<DotQ4_KAvx2> : MatMulByVecDot<DotQ4_KRef>;
    case GgmlType::kQ6_K:
      return avx2 ? MatMulByVecDot<DotQ6_KAvx2> : MatMulByVecDot<DotQ6_KRef>;
  }
  return MatMulByVecDot<DotF32Ref>;
}

}  // namespace llmcache::engine
