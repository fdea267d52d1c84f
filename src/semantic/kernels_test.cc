#include "semantic/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace llmcache::semantic {
namespace {

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (IsaSupported(isa)) out.push_back(isa);
  }
  return out;
}

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(KernelsTest, GemmMatchesAPlainProductForEveryShapeAndIsa) {
  std::mt19937 rng(7);
  for (Isa isa : SupportedIsas()) {
    for (int k : {1, 7, 64, 256}) {
      for (int n : {1, 15, 16, 17, 32, 33, 100}) {
        const std::vector<float> w = Random(static_cast<size_t>(k) * n, rng);
        const std::vector<float> bias = Random(static_cast<size_t>(n), rng);
        const PackedMatrix packed = PackedMatrix::Pack(w.data(), k, n, isa);
        for (int m : {1, 2, 5, 6, 7, 12, 13, 20, 33}) {
          for (Activation act : {Activation::kNone, Activation::kRelu}) {
            const int lda = k + 3;  // a leading dimension wider than k
            const std::vector<float> a = Random(static_cast<size_t>(m) * lda, rng);
            std::vector<float> c(static_cast<size_t>(m) * (n + 1), 42.0f);
            Gemm(a.data(), m, lda, packed, bias.data(), act, c.data(), n + 1);
            for (int i = 0; i < m; ++i) {
              for (int j = 0; j < n; ++j) {
                double want = bias[j];
                for (int p = 0; p < k; ++p) {
                  want += static_cast<double>(a[static_cast<size_t>(i) * lda + p]) *
                          w[static_cast<size_t>(p) * n + j];
                }
                if (act == Activation::kRelu) want = std::max(want, 0.0);
                ASSERT_NEAR(c[static_cast<size_t>(i) * (n + 1) + j], want, 1e-4 * (1 + k))
                    << IsaName(isa) << " m=" << m << " k=" << k << " n=" << n;
              }
              // The column past n is not written.
              ASSERT_EQ(c[static_cast<size_t>(i) * (n + 1) + n], 42.0f);
            }
          }
        }
      }
    }
  }
}

// Each row's result does not depend on the other rows of the call: what makes
// batched embeddings bit-identical to single ones.
TEST(KernelsTest, GemmRowsAreIndependentOfTheBatch) {
  std::mt19937 rng(11);
  const int k = 300, n = 70, m = 23;
  const std::vector<float> w = Random(static_cast<size_t>(k) * n, rng);
  const std::vector<float> bias = Random(n, rng);
  const std::vector<float> a = Random(static_cast<size_t>(m) * k, rng);
  for (Isa isa : SupportedIsas()) {
    const PackedMatrix packed = PackedMatrix::Pack(w.data(), k, n, isa);
    std::vector<float> all(static_cast<size_t>(m) * n);
    Gemm(a.data(), m, k, packed, bias.data(), Activation::kNone, all.data(), n);
    for (int i = 0; i < m; ++i) {
      std::vector<float> one(n);
      Gemm(a.data() + static_cast<size_t>(i) * k, 1, k, packed, bias.data(), Activation::kNone,
           one.data(), n);
      for (int j = 0; j < n; ++j) {
        ASSERT_EQ(one[j], all[static_cast<size_t>(i) * n + j]) << IsaName(isa) << " row " << i;
      }
    }
  }
}

TEST(KernelsTest, DotAndAxpy) {
  std::mt19937 rng(3);
  for (Isa isa : SupportedIsas()) {
    for (int n : {0, 1, 7, 8, 16, 63, 64, 128, 130}) {
      const std::vector<float> x = Random(n, rng), y0 = Random(n, rng);
      double want = 0;
      for (int i = 0; i < n; ++i) want += static_cast<double>(x[i]) * y0[i];
      EXPECT_NEAR(Dot(isa, x.data(), y0.data(), n), want, 1e-5 * (1 + n)) << IsaName(isa);
      std::vector<float> y = y0;
      Axpy(isa, 0.5f, x.data(), y.data(), n);
      for (int i = 0; i < n; ++i) EXPECT_NEAR(y[i], y0[i] + 0.5 * x[i], 1e-6);
    }
  }
}

}  // namespace
}  // namespace llmcache::semantic
