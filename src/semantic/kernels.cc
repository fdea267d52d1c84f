#include "semantic/kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace llmcache::semantic {

bool IsaSupported(Isa isa) {
  switch (isa) {
    case Isa::kGeneric:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
  }
  return false;
}

Isa BestIsa() {
  if (IsaSupported(Isa::kAvx512)) return Isa::kAvx512;
  if (IsaSupported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kGeneric;
}

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kGeneric:
      return "generic";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

void AlignedFloats::Free::operator()(float* p) const { std::free(p); }

AlignedFloats::AlignedFloats(size_t n) : size_(n) {
  // aligned_alloc needs a size that is a multiple of the alignment.
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes == 0 ? 64 : bytes);
  data_.reset(static_cast<float*>(p));
}

namespace {

constexpr int NrFor(Isa isa) { return isa == Isa::kAvx512 ? 32 : 16; }
// Rows per micro-kernel call: as many accumulators as the register file holds
// (AVX2: 6x2 of 16 ymm, AVX-512: 12x2 of 32 zmm).
constexpr int MaxMrFor(Isa isa) { return isa == Isa::kAvx512 ? 12 : isa == Isa::kAvx2 ? 6 : 4; }

// The micro-kernels compute an mr x nr block of c from mr rows of a and one
// packed panel. `cols` <= nr is how many columns of the block are real.
template <int MR>
void MicroGeneric(const float* a, int lda, const float* bp, int k, const float* bias,
                  Activation act, float* c, int ldc, int cols) {
  constexpr int kNr = 16;
  float acc[MR][kNr] = {};
  for (int p = 0; p < k; ++p) {
    const float* b = bp + static_cast<size_t>(p) * kNr;
    for (int r = 0; r < MR; ++r) {
      const float av = a[static_cast<size_t>(r) * lda + p];
      for (int j = 0; j < kNr; ++j) acc[r][j] += av * b[j];
    }
  }
  for (int r = 0; r < MR; ++r) {
    float* out = c + static_cast<size_t>(r) * ldc;
    for (int j = 0; j < cols; ++j) {
      float v = acc[r][j] + bias[j];
      if (act == Activation::kRelu) v = std::max(v, 0.0f);
      out[j] = v;
    }
  }
}

// Per-function target attributes (GCC and Clang) keep the rest of the
// library generic x86-64.
#define LLMCACHE_AVX2 __attribute__((target("avx2,fma")))
#define LLMCACHE_AVX512 __attribute__((target("avx512f,avx2,fma")))

template <int MR>
LLMCACHE_AVX2 void MicroAvx2(const float* a, int lda, const float* bp, int k, const float* bias,
                             Activation act, float* c, int ldc, int cols) {
  __m256 acc0[MR];
  __m256 acc1[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    acc0[r] = _mm256_setzero_ps();
    acc1[r] = _mm256_setzero_ps();
  }
  for (int p = 0; p < k; ++p) {
    const __m256 b0 = _mm256_load_ps(bp + 16 * static_cast<size_t>(p));
    const __m256 b1 = _mm256_load_ps(bp + 16 * static_cast<size_t>(p) + 8);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + static_cast<size_t>(r) * lda + p);
      acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
    }
  }
  alignas(32) float bias_block[16] = {};
  std::memcpy(bias_block, bias, sizeof(float) * cols);
  const __m256 bias0 = _mm256_load_ps(bias_block);
  const __m256 bias1 = _mm256_load_ps(bias_block + 8);
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    __m256 v0 = _mm256_add_ps(acc0[r], bias0);
    __m256 v1 = _mm256_add_ps(acc1[r], bias1);
    if (act == Activation::kRelu) {
      v0 = _mm256_max_ps(v0, zero);
      v1 = _mm256_max_ps(v1, zero);
    }
    float* out = c + static_cast<size_t>(r) * ldc;
    if (cols == 16) {
      _mm256_storeu_ps(out, v0);
      _mm256_storeu_ps(out + 8, v1);
    } else {
      alignas(32) float tmp[16];
      _mm256_store_ps(tmp, v0);
      _mm256_store_ps(tmp + 8, v1);
      std::memcpy(out, tmp, sizeof(float) * cols);
    }
  }
}

LLMCACHE_AVX2 float DotAvx2(const float* x, const float* y, int n) {
  __m256 s0 = _mm256_setzero_ps();
  __m256 s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
  }
  __m256 s = _mm256_add_ps(s0, s1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  float total = _mm_cvtss_f32(h);
  for (; i < n; ++i) total += x[i] * y[i];
  return total;
}

LLMCACHE_AVX2 void AxpyAvx2(float alpha, const float* x, float* y, int n) {
  const __m256 av = _mm256_set1_ps(alpha);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += alpha * x[i];
}

template <int MR>
LLMCACHE_AVX512 void MicroAvx512(const float* a, int lda, const float* bp, int k, const float* bias,
                                 Activation act, float* c, int ldc, int cols) {
  __m512 acc0[MR];
  __m512 acc1[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    acc0[r] = _mm512_setzero_ps();
    acc1[r] = _mm512_setzero_ps();
  }
  for (int p = 0; p < k; ++p) {
    const __m512 b0 = _mm512_load_ps(bp + 32 * static_cast<size_t>(p));
    const __m512 b1 = _mm512_load_ps(bp + 32 * static_cast<size_t>(p) + 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[static_cast<size_t>(r) * lda + p]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
  }
  alignas(64) float bias_block[32] = {};
  std::memcpy(bias_block, bias, sizeof(float) * cols);
  const __m512 bias0 = _mm512_load_ps(bias_block);
  const __m512 bias1 = _mm512_load_ps(bias_block + 16);
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    __m512 v0 = _mm512_add_ps(acc0[r], bias0);
    __m512 v1 = _mm512_add_ps(acc1[r], bias1);
    if (act == Activation::kRelu) {
      v0 = _mm512_maskz_max_ps(0xFFFF, v0, zero);  // (max_ps trips a GCC 12 warning)
      v1 = _mm512_maskz_max_ps(0xFFFF, v1, zero);
    }
    float* out = c + static_cast<size_t>(r) * ldc;
    if (cols == 32) {
      _mm512_storeu_ps(out, v0);
      _mm512_storeu_ps(out + 16, v1);
    } else {
      alignas(64) float tmp[32];
      _mm512_store_ps(tmp, v0);
      _mm512_store_ps(tmp + 16, v1);
      std::memcpy(out, tmp, sizeof(float) * cols);
    }
  }
}

using MicroFn = void (*)(const float*, int, const float*, int, const float*, Activation, float*,
                         int, int);

template <int MR>
struct GenericFam {
  static constexpr MicroFn fn = &MicroGeneric<MR>;
};
template <int MR>
struct Avx2Fam {
  static constexpr MicroFn fn = &MicroAvx2<MR>;
};
template <int MR>
struct Avx512Fam {
  static constexpr MicroFn fn = &MicroAvx512<MR>;
};

// kMicro[isa][mr - 1]
constexpr MicroFn kGenericMicro[] = {GenericFam<1>::fn, GenericFam<2>::fn, GenericFam<3>::fn,
                                     GenericFam<4>::fn};
constexpr MicroFn kAvx2Micro[] = {Avx2Fam<1>::fn, Avx2Fam<2>::fn, Avx2Fam<3>::fn,
                                  Avx2Fam<4>::fn, Avx2Fam<5>::fn, Avx2Fam<6>::fn};
constexpr MicroFn kAvx512Micro[] = {Avx512Fam<1>::fn,  Avx512Fam<2>::fn,  Avx512Fam<3>::fn,
                                    Avx512Fam<4>::fn,  Avx512Fam<5>::fn,  Avx512Fam<6>::fn,
                                    Avx512Fam<7>::fn,  Avx512Fam<8>::fn,  Avx512Fam<9>::fn,
                                    Avx512Fam<10>::fn, Avx512Fam<11>::fn, Avx512Fam<12>::fn};

MicroFn MicroFor(Isa isa, int mr) {
  switch (isa) {
    case Isa::kGeneric:
      return kGenericMicro[mr - 1];
    case Isa::kAvx2:
      return kAvx2Micro[mr - 1];
    case Isa::kAvx512:
      return kAvx512Micro[mr - 1];
  }
  return nullptr;
}

}  // namespace

PackedMatrix PackedMatrix::Pack(const float* w, int k, int n, Isa isa) {
  PackedMatrix m;
  m.k_ = k;
  m.n_ = n;
  m.isa_ = isa;
  m.nr_ = NrFor(isa);
  const int panels = (n + m.nr_ - 1) / m.nr_;
  m.data_ = AlignedFloats(static_cast<size_t>(panels) * k * m.nr_);
  for (int p = 0; p < panels; ++p) {
    float* dst = m.data_.data() + static_cast<size_t>(p) * k * m.nr_;
    const int col0 = p * m.nr_;
    const int cols = std::min(m.nr_, n - col0);
    for (int row = 0; row < k; ++row) {
      std::memcpy(dst + static_cast<size_t>(row) * m.nr_, w + static_cast<size_t>(row) * n + col0,
                  sizeof(float) * cols);
    }
  }
  return m;
}

void Gemm(const float* a, int m, int lda, const PackedMatrix& b, const float* bias, Activation act,
          float* c, int ldc) {
  if (m <= 0) return;
  const Isa isa = b.isa();
  const int nr = b.nr();
  const int max_mr = MaxMrFor(isa);
  // Split the rows into blocks of near-equal size: 20 rows run as 10+10 (or
  // 5+5+5+5) rather than 12+8, so no block wastes most of its registers.
  const int blocks = (m + max_mr - 1) / max_mr;
  const int base = m / blocks;
  const int extra = m % blocks;
  const int panels = (b.n() + nr - 1) / nr;
  // Panel-outer order: one panel (k x nr floats) stays in L1/L2 while every
  // row block uses it, so each weight is read from memory once per call.
  for (int p = 0; p < panels; ++p) {
    const int col0 = p * nr;
    const int cols = std::min(nr, b.n() - col0);
    const float* panel = b.panel(p);
    int row = 0;
    for (int blk = 0; blk < blocks; ++blk) {
      const int mr = base + (blk < extra ? 1 : 0);
      MicroFor(isa, mr)(a + static_cast<size_t>(row) * lda, lda, panel, b.k(), bias + col0, act,
                        c + static_cast<size_t>(row) * ldc + col0, ldc, cols);
      row += mr;
    }
  }
}

float Dot(Isa isa, const float* x, const float* y, int n) {
  if (isa != Isa::kGeneric) return DotAvx2(x, y, n);
  float total = 0;
  for (int i = 0; i < n; ++i) total += x[i] * y[i];
  return total;
}

void Axpy(Isa isa, float alpha, const float* x, float* y, int n) {
  if (isa != Isa::kGeneric) return AxpyAvx2(alpha, x, y, n);
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace llmcache::semantic
