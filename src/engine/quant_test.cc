#include "engine/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/test_util.h"

namespace llmcache::engine {
namespace {

std::vector<float> RandomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<float> RoundTrip(GgmlType type, const std::vector<float>& x) {
  std::vector<uint8_t> q(*RowBytes(type, x.size()));
  EXPECT_TRUE(QuantizeRow(type, x, q).ok());
  std::vector<float> y(x.size());
  EXPECT_TRUE(DequantizeRow(type, q, y).ok());
  return y;
}

double RelativeRmse(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (x[i] - y[i]) * (x[i] - y[i]);
    ref += x[i] * x[i];
  }
  return std::sqrt(err / ref);
}

TEST(Fp16, EveryFiniteHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0) continue;  // NaN payloads
    ASSERT_EQ(Fp32ToFp16(Fp16ToFp32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(Fp32ToFp16(1.0f), 0x3C00);
  EXPECT_EQ(Fp32ToFp16(65504.0f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(65520.0f), 0x7C00);               // halfway to the next power: rounds to inf
  EXPECT_EQ(Fp32ToFp16(1.0f + 1.0f / 2048), 0x3C00);     // tie -> even
  EXPECT_EQ(Fp32ToFp16(1.0f + 3.0f / 2048), 0x3C02);     // tie -> even (up)
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even (zero)
  EXPECT_TRUE(std::isnan(Fp16ToFp32(Fp32ToFp16(NAN))));
  EXPECT_EQ(Fp32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(Bf16ToFp32(0x3F80), 1.0f);
}

TEST(Quant, RowBytesRejectsPartialBlocks) {
  EXPECT_EQ(*RowBytes(GgmlType::kQ8_0, 64), 68u);
  EXPECT_EQ(*RowBytes(GgmlType::kQ4_K, 512), 288u);
  EXPECT_EQ(*RowBytes(GgmlType::kF16, 3), 6u);
  EXPECT_FALSE(RowBytes(GgmlType::kQ6_K, 100).has_value());
  std::vector<float> x(100);
  std::vector<uint8_t> q(1000);
  EXPECT_FALSE(QuantizeRow(GgmlType::kQ4_0, x, q).ok());
  std::vector<float> y(256);
  EXPECT_FALSE(DequantizeRow(GgmlType::kQ6_K, std::span<const uint8_t>(q).first(100), y).ok());
}

struct Bound {
  GgmlType type;
  double max_relative_rmse;
};

class RoundTripTest : public ::testing::TestWithParam<Bound> {};

TEST_P(RoundTripTest, ErrorWithinBound) {
  const Bound b = GetParam();
  const auto x = RandomFloats(256 * 64, 42, 0.05f);
  const auto y = RoundTrip(b.type, x);
  const double rmse = RelativeRmse(x, y);
  EXPECT_LT(rmse, b.max_relative_rmse);
  // The bound must not be vacuous for lossy types: some error remains.
  if (b.type != GgmlType::kF32) {
    EXPECT_GT(rmse, 0.0);
  }
}

TEST_P(RoundTripTest, ZerosStayZero) {
  const std::vector<float> x(512, 0.0f);
  for (float v : RoundTrip(GetParam().type, x)) ASSERT_EQ(v, 0.0f);
}

// Bounds: 8-bit ~0.5%, 6-bit ~2%, 4-bit ~10% relative RMSE on Gaussian data.
INSTANTIATE_TEST_SUITE_P(
    Types, RoundTripTest,
    ::testing::Values(Bound{GgmlType::kF32, 1e-9}, Bound{GgmlType::kF16, 1e-3},
                      Bound{GgmlType::kBF16, 5e-3}, Bound{GgmlType::kQ8_0, 0.01},
                      Bound{GgmlType::kQ6_K, 0.04}, Bound{GgmlType::kQ4_0, 0.12},
                      Bound{GgmlType::kQ4_K, 0.12}),
    [](const auto& info) {
      return std::string(GetTypeTraits(static_cast<uint32_t>(info.param.type))->name);
    });

// Half a step, plus what rounding the scale to fp16 adds at the largest q.
TEST(Quant, Q8_0MaxErrorIsAboutHalfAStep) {
  const auto x = RandomFloats(32 * 16, 7);
  const auto y = RoundTrip(GgmlType::kQ8_0, x);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    for (int j = 0; j < 32; ++j) {
      EXPECT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), amax / 127 * 0.57f);
    }
  }
}

// --- Bit-exact comparison with llama.cpp's prebuilt ggml ---------------------

using DequantFn = void(const void*, float*, int64_t);
using QuantFn = void(const float*, void*, int64_t);

class GgmlReference : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto path = enginetest::LlamaLibDir() / "libggml-base.so";
    LLMCACHE_REQUIRE_PATH(path);
    lib_ = std::make_unique<enginetest::SharedLib>(path);
    ASSERT_TRUE(lib_->ok()) << lib_->error();
  }

  // Random quant bytes with every fp16 scale replaced by a finite value, so
  // all bit patterns of the quants themselves are exercised.
  std::vector<uint8_t> CraftBlocks(GgmlType type, size_t n, uint32_t seed,
                                   std::initializer_list<size_t> scale_offsets) {
    const auto traits = *GetTypeTraits(static_cast<uint32_t>(type));
    std::vector<uint8_t> bytes(*RowBytes(type, n));
    std::mt19937 rng(seed);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
    for (size_t off = 0; off < bytes.size(); off += traits.block_bytes) {
      for (size_t s : scale_offsets) {
        const uint16_t h = Fp32ToFp16(scale(rng));
        std::memcpy(&bytes[off + s], &h, 2);
      }
    }
    return bytes;
  }

  void ExpectSameDequant(GgmlType type, const char* symbol, std::initializer_list<size_t> scales) {
    auto* ref = lib_->Get<DequantFn>(symbol);
    ASSERT_NE(ref, nullptr) << symbol;
    const size_t n = 256 * 32;
    for (uint32_t seed = 1; seed <= 4; ++seed) {
      const auto bytes = CraftBlocks(type, n, seed, scales);
      std::vector<float> ours(n), theirs(n);
      ASSERT_TRUE(DequantizeRow(type, bytes, ours).ok());
      ref(bytes.data(), theirs.data(), static_cast<int64_t>(n));
      for (size_t i = 0; i < n; ++i) {
        uint32_t a, b;
        std::memcpy(&a, &ours[i], 4);
        std::memcpy(&b, &theirs[i], 4);
        ASSERT_EQ(a, b) << symbol << " element " << i << ": " << ours[i] << " vs " << theirs[i];
      }
    }
  }

  std::unique_ptr<enginetest::SharedLib> lib_;
};

TEST_F(GgmlReference, DequantQ8_0) {
  ExpectSameDequant(GgmlType::kQ8_0, "dequantize_row_q8_0", {0});
}
TEST_F(GgmlReference, DequantQ4_0) {
  ExpectSameDequant(GgmlType::kQ4_0, "dequantize_row_q4_0", {0});
}
TEST_F(GgmlReference, DequantQ4_K) {
  ExpectSameDequant(GgmlType::kQ4_K, "dequantize_row_q4_K", {0, 2});
}
TEST_F(GgmlReference, DequantQ6_K) {
  ExpectSameDequant(GgmlType::kQ6_K, "dequantize_row_q6_K", {offsetof(BlockQ6_K, d)});
}

TEST_F(GgmlReference, HalfAndBf16Conversions) {
  auto* fp16_row = lib_->Get<void(const uint16_t*, float*, int64_t)>("ggml_fp16_to_fp32_row");
  auto* to_fp16_row = lib_->Get<void(const float*, uint16_t*, int64_t)>("ggml_fp32_to_fp16_row");
  auto* to_bf16 = lib_->Get<void(const float*, uint16_t*, int64_t)>("ggml_fp32_to_bf16_row_ref");
  ASSERT_TRUE(fp16_row && to_fp16_row && to_bf16);
  std::vector<uint16_t> halves;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) != 0x7C00) halves.push_back(static_cast<uint16_t>(h));
  }
  std::vector<float> theirs(halves.size());
  fp16_row(halves.data(), theirs.data(), static_cast<int64_t>(halves.size()));
  for (size_t i = 0; i < halves.size(); ++i) ASSERT_EQ(Fp16ToFp32(halves[i]), theirs[i]);

  auto x = RandomFloats(4096, 3);
  x.push_back(std::ldexp(1.0f, -20));
  x.push_back(70000.0f);
  std::vector<uint16_t> h16(x.size()), b16(x.size());
  to_fp16_row(x.data(), h16.data(), static_cast<int64_t>(x.size()));
  to_bf16(x.data(), b16.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(Fp32ToFp16(x[i]), h16[i]) << x[i];
    ASSERT_EQ(Fp32ToBf16(x[i]), b16[i]) << x[i];
  }
}

// Q8_0 and Q4_0 quantisation follow ggml's reference rule exactly.
TEST_F(GgmlReference, QuantizeQ8_0AndQ4_0MatchReference) {
  const auto x = RandomFloats(32 * 64, 11, 0.3f);
  for (auto [type, symbol] : {std::pair{GgmlType::kQ8_0, "quantize_row_q8_0_ref"},
                              std::pair{GgmlType::kQ4_0, "quantize_row_q4_0_ref"}}) {
    auto* ref = lib_->Get<QuantFn>(symbol);
    ASSERT_NE(ref, nullptr) << symbol;
    std::vector<uint8_t> ours(*RowBytes(type, x.size())), theirs(ours.size());
    ASSERT_TRUE(QuantizeRow(type, x, ours).ok());
    ref(x.data(), theirs.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(ours, theirs) << symbol;
  }
}

}  // namespace
}  // namespace llmcache::engine
