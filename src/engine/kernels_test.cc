// Every vectorised kernel against its plain reference, and the reference
// against float arithmetic on the dequantised values.
#include "engine/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace llmcache::engine {
namespace {

class KernelTest : public ::testing::TestWithParam<GgmlType> {};

std::vector<float> RandomFloats(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// `rows` rows of `cols` random weights in [-1, 1], quantized to `type`.
std::vector<uint8_t> RandomMatrix(GgmlType type, size_t rows, size_t cols, uint64_t seed) {
  const auto w = RandomFloats(cols * rows, seed, 1.0f);
  const size_t rb = *RowBytes(type, cols);
  std::vector<uint8_t> data(rb * rows);
  for (size_t r = 0; r < rows; ++r) {
    EXPECT_TRUE(QuantizeRow(type, std::span(w).subspan(r * cols, cols),
                            std::span(data).subspan(r * rb, rb))
                    .ok());
  }
  return data;
}

TEST_P(KernelTest, FastMatchesReferenceAndReferenceMatchesFloats) {
  const GgmlType type = GetParam();
  constexpr size_t kN = 1024;  // four K-quant super-blocks
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const auto w = RandomFloats(kN, seed, 1.0f);
    auto x = RandomFloats(kN, seed + 1000, 3.0f);
    if (seed == 2) std::fill(x.begin(), x.begin() + 256, 0.0f);  // all-zero blocks
    std::vector<uint8_t> row(*RowBytes(type, kN));
    ASSERT_TRUE(QuantizeRow(type, w, row).ok());
    std::vector<float> wf(kN);
    ASSERT_TRUE(DequantizeRow(type, row, wf).ok());
    std::vector<uint8_t> act(ActivationBytes(type, kN));
    ConvertActivation(type, x, act);

    const float ref = GetVecDot(type, KernelIsa::kGeneric)(row.data(), act.data(), kN);
    double exact = 0;
    double magnitude = 0;
    for (size_t i = 0; i < kN; ++i) {
      exact += static_cast<double>(wf[i]) * x[i];
      magnitude += std::fabs(static_cast<double>(wf[i]) * x[i]);
    }
    // The activation's own rounding: none for F32, 8 bits for Q8_*.
    const double act_tol = type == GgmlType::kF32 ? 1e-5 : (type == GgmlType::kF16 ? 2e-3 : 2e-2);
    EXPECT_NEAR(ref, exact, act_tol * magnitude) << "seed " << seed;

    if (!KernelIsaSupported(KernelIsa::kAvx2)) continue;
    const float fast = GetVecDot(type, KernelIsa::kAvx2)(row.data(), act.data(), kN);
    // Same integer sums; only the float summation order differs.
    EXPECT_NEAR(fast, ref, 1e-5 * magnitude + 1e-6) << "seed " << seed;
  }
}

TEST_P(KernelTest, MatVecRowsFillsOnlyItsRange) {
  const GgmlType type = GetParam();
  constexpr size_t kCols = 256, kRows = 8;
  const size_t rb = *RowBytes(type, kCols);
  const std::vector<uint8_t> data = RandomMatrix(type, kRows, kCols, 7);
  const auto x = RandomFloats(kCols, 8, 1.0f);
  std::vector<uint8_t> act(ActivationBytes(type, kCols));
  ConvertActivation(type, x, act);
  const WeightMatrix m{type, data.data(), kRows, kCols, rb};
  std::vector<float> out(kRows, -42.0f);
  const VecDotFn dot = GetVecDot(type, BestKernelIsa());
  MatVecRows(m, act.data(), dot, 2, 5, out.data());
  for (size_t r = 0; r < kRows; ++r) {
    if (r < 2 || r >= 5) {
      EXPECT_EQ(out[r], -42.0f);
    } else {
      EXPECT_EQ(out[r], dot(data.data() + r * rb, act.data(), kCols));
    }
  }
}

// The batched kernels against the vec-dot, bit for bit, for every ISA and
// for activation counts and row ranges that do not fill a kernel's tile.
TEST_P(KernelTest, MatMulIsBitIdenticalToVecDotAndFillsOnlyItsRange) {
  const GgmlType type = GetParam();
  constexpr size_t kCols = 512, kRows = 37, kActs = 19;
  const size_t rb = *RowBytes(type, kCols);
  const std::vector<uint8_t> data = RandomMatrix(type, kRows, kCols, 11);
  std::vector<std::vector<uint8_t>> acts(kActs);
  std::vector<const uint8_t*> act_ptrs(kActs);
  for (size_t a = 0; a < kActs; ++a) {
    auto x = RandomFloats(kCols, 100 + a, 2.0f);
    if (a == 3) std::fill(x.begin(), x.end(), 0.0f);
    acts[a].resize(ActivationBytes(type, kCols));
    ConvertActivation(type, x, acts[a]);
    act_ptrs[a] = acts[a].data();
  }
  const WeightMatrix m{type, data.data(), kRows, kCols, rb};
  for (KernelIsa isa : {KernelIsa::kGeneric, KernelIsa::kAvx2}) {
    if (!KernelIsaSupported(isa)) continue;
    const VecDotFn dot = GetVecDot(type, isa);
    const MatMulFn matmul = GetMatMul(type, isa);
    for (size_t n_acts : {size_t{1}, size_t{2}, size_t{5}, kActs}) {
      for (auto [rb0, re0] : {std::pair<size_t, size_t>{0, kRows}, {3, 4}, {1, 30}}) {
        constexpr size_t kStride = kRows + 3;
        std::vector<float> out(kActs * kStride, -42.0f);
        matmul(m, act_ptrs.data(), n_acts, rb0, re0, out.data(), kStride);
        for (size_t a = 0; a < kActs; ++a) {
          for (size_t r = 0; r < kStride; ++r) {
            const float got = out[a * kStride + r];
            if (a >= n_acts || r < rb0 || r >= re0) {
              ASSERT_EQ(got, -42.0f) << KernelIsaName(isa) << " act " << a << " row " << r;
            } else {
              ASSERT_EQ(got, dot(data.data() + r * rb, act_ptrs[a], kCols))
                  << KernelIsaName(isa) << " n_acts " << n_acts << " act " << a << " row " << r;
            }
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, KernelTest,
                         ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16,
                                           GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                                           GgmlType::kQ6_K),
                         [](const auto& info) {
                           return std::string(
                               GetTypeTraits(static_cast<uint32_t>(info.param))->name);
                         });

TEST(ActivationTest, Q8KMatchesGgmlScheme) {
  std::vector<float> x(kQK_K, 0.5f);
  x[3] = -2.0f;  // the largest magnitude is negative: scale is -127/max
  std::vector<uint8_t> act(ActivationBytes(GgmlType::kQ4_K, kQK_K));
  ConvertActivation(GgmlType::kQ4_K, x, act);
  const auto* b = reinterpret_cast<const BlockQ8_K*>(act.data());
  EXPECT_EQ(b->qs[3], -127);
  EXPECT_EQ(b->qs[0], 32);  // 0.5 * 63.5 = 31.75 -> 32
  EXPECT_FLOAT_EQ(b->d, 2.0f / 127.0f);
  EXPECT_EQ(b->bsums[0], 15 * 32 - 127);
}

}  // namespace
}  // namespace llmcache::engine
