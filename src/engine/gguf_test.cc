#include "engine/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/gguf_writer.h"
#include "engine/test_util.h"

namespace llmcache::engine {
namespace {

std::vector<uint8_t> SampleFile() {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetU32("llama.block_count", 2);
  w.SetI32("neg", -5);
  w.SetU64("big", 1ull << 40);
  w.SetF32("llama.rope.freq_base", 10000.0f);
  w.SetBool("flag", true);
  const std::vector<std::string> strs = {"a", "", "hello"};
  w.SetStringArray("tokens", strs);
  const std::vector<float> floats = {0.5f, -1.0f};
  w.SetF32Array("scores", floats);
  const std::vector<int32_t> ints = {1, 2, 3};
  w.SetI32Array("types", ints);
  std::vector<float> t0(64);
  for (size_t i = 0; i < t0.size(); ++i) t0[i] = static_cast<float>(i);
  std::vector<uint8_t> bytes(t0.size() * 4);
  std::memcpy(bytes.data(), t0.data(), bytes.size());
  const uint64_t ne0[] = {32, 2};
  EXPECT_TRUE(w.AddTensor("t0", GgmlType::kF32, ne0, bytes).ok());
  const uint64_t ne1[] = {64};
  EXPECT_TRUE(w.AddTensor("t1", GgmlType::kQ8_0, ne1, std::vector<uint8_t>(68, 1)).ok());
  return w.Serialize();
}

TEST(Gguf, ReadsBackWhatTheWriterWrote) {
  const auto bytes = SampleFile();
  auto f = GgufFile::Parse(bytes);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(*f->GetString("general.architecture"), "llama");
  EXPECT_EQ(*f->GetU32("llama.block_count"), 2u);
  EXPECT_EQ(*f->GetI64("neg"), -5);
  EXPECT_FALSE(f->GetU32("neg").has_value());
  EXPECT_FALSE(f->GetU32("big").has_value());  // does not fit
  EXPECT_EQ(*f->GetU64("big"), 1ull << 40);
  EXPECT_EQ(*f->GetF32("llama.rope.freq_base"), 10000.0f);
  EXPECT_TRUE(*f->GetBool("flag"));
  EXPECT_EQ(**f->GetStringArray("tokens"), (std::vector<std::string_view>{"a", "", "hello"}));
  EXPECT_EQ(*f->GetF32Array("scores"), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(*f->GetI32Array("types"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(f->GetString("missing").error().IsNotFound());
  EXPECT_EQ(f->GetString("flag").error().code(), StatusCode::kInvalidArgument);

  ASSERT_EQ(f->tensors().size(), 2u);
  const GgufTensorInfo* t0 = f->FindTensor("t0");
  ASSERT_NE(t0, nullptr);
  EXPECT_EQ(t0->n_dims, 2u);
  EXPECT_EQ(t0->ne[0], 32u);
  EXPECT_EQ(t0->ne[1], 2u);
  EXPECT_EQ(t0->n_bytes, 256u);
  EXPECT_EQ((f->data_offset() + t0->offset) % 32, 0u);
  float v;
  std::memcpy(&v, t0->data.data() + 4 * 63, 4);
  EXPECT_EQ(v, 63.0f);
  const GgufTensorInfo* t1 = f->FindTensor("t1");
  ASSERT_NE(t1, nullptr);
  EXPECT_EQ(t1->type, GgmlType::kQ8_0);
  EXPECT_EQ(t1->n_bytes, 68u);
}

TEST(Gguf, OpensFilesThroughMmap) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("gguf_test_" + std::to_string(::getpid()) + ".gguf");
  GgufWriter w(64);
  w.SetString("k", "v");
  const uint64_t ne[] = {4};
  ASSERT_TRUE(w.AddTensor("x", GgmlType::kF16, ne, std::vector<uint8_t>(8, 0)).ok());
  ASSERT_TRUE(w.WriteFile(path).ok());
  auto f = GgufFile::Open(path);
  std::filesystem::remove(path);  // the mapping stays valid
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(*f->GetString("k"), "v");
  EXPECT_EQ(f->FindTensor("x")->n_bytes, 8u);

  auto missing = GgufFile::Open(path.string() + ".absent");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), StatusCode::kIOError);
}

TEST(Gguf, AcceptsVersion2RejectsOthers) {
  auto bytes = SampleFile();
  for (uint32_t version : {1u, 2u, 4u}) {
    std::memcpy(bytes.data() + 4, &version, 4);
    auto f = GgufFile::Parse(bytes);
    EXPECT_EQ(f.has_value(), version == 2) << version;
    if (!f) {
      EXPECT_NE(f.error().message().find("version"), std::string::npos);
    }
  }
}

TEST(Gguf, EveryTruncationIsACleanError) {
  const auto bytes = SampleFile();
  for (size_t n = 0; n < bytes.size(); ++n) {
    // Copy so ASan catches reads past the truncated length.
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<long>(n));
    auto f = GgufFile::Parse(prefix);
    // The last tensor's padding is optional: a file cut inside it stays valid.
    if (f.has_value()) {
      ASSERT_GE(n, bytes.size() - 32);
      continue;
    }
    ASSERT_EQ(f.error().code(), StatusCode::kCorruption) << n;
  }
}

TEST(Gguf, RandomCorruptionNeverCrashes) {
  const auto bytes = SampleFile();
  std::mt19937 rng(1234);
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto copy = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) copy[rng() % copy.size()] = static_cast<uint8_t>(rng());
    auto f = GgufFile::Parse(copy);
    if (!f) {
      ++rejected;
      continue;
    }
    for (const auto& t : f->tensors()) {
      ASSERT_LE(t.data.data() + t.data.size(), copy.data() + copy.size());
    }
  }
  EXPECT_GT(rejected, 0);
}

// Hand-built headers for the specific validation rules.
class RawGguf {
 public:
  RawGguf(uint64_t n_tensors, uint64_t n_kv) {
    Put<uint32_t>(kGgufMagic);
    Put<uint32_t>(3);
    Put<uint64_t>(n_tensors);
    Put<uint64_t>(n_kv);
  }
  template <class T>
  RawGguf& Put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  RawGguf& Str(std::string_view s) {
    Put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  RawGguf& Tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t off) {
    Str(name);
    Put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (auto d : ne) Put<uint64_t>(d);
    Put<uint32_t>(type);
    return Put<uint64_t>(off);
  }
  RawGguf& Pad(size_t total) {
    b.resize(std::max(b.size(), total), 0);
    return *this;
  }
  std::string Error() const {
    auto f = GgufFile::Parse(b);
    return f.has_value() ? "OK" : f.error().message();
  }
  std::vector<uint8_t> b;
};

#define EXPECT_ERROR_MENTIONS(raw, text) \
  EXPECT_NE((raw).Error().find(text), std::string::npos) << (raw).Error()

TEST(Gguf, RejectsMalformedHeaders) {
  EXPECT_ERROR_MENTIONS(RawGguf(0, 0).Pad(0), "OK");
  {
    RawGguf r(0, 0);
    r.b[0] = 'X';
    EXPECT_ERROR_MENTIONS(r, "bad magic");
  }
  EXPECT_ERROR_MENTIONS(RawGguf(0, 1ull << 60), "cannot fit");
  EXPECT_ERROR_MENTIONS(RawGguf(1ull << 62, 0), "cannot fit");
  EXPECT_ERROR_MENTIONS(RawGguf(0, 1).Put<uint64_t>(1ull << 62).Pad(64), "exceeds");
  EXPECT_ERROR_MENTIONS(RawGguf(0, 1).Str("k").Put<uint32_t>(99).Pad(64), "unknown value type");
  EXPECT_ERROR_MENTIONS(RawGguf(0, 1).Str("k").Put<uint32_t>(7).Put<uint8_t>(2), "bool");
  EXPECT_ERROR_MENTIONS(
      RawGguf(0, 1).Str("k").Put<uint32_t>(9).Put<uint32_t>(4).Put<uint64_t>(1ull << 61).Pad(64),
      "array count");
  EXPECT_ERROR_MENTIONS(
      RawGguf(0, 1).Str("k").Put<uint32_t>(9).Put<uint32_t>(9).Put<uint64_t>(1).Pad(64), "nested");
  EXPECT_ERROR_MENTIONS(RawGguf(0, 2)
                            .Str("k")
                            .Put<uint32_t>(4)
                            .Put<uint32_t>(1)
                            .Str("k")
                            .Put<uint32_t>(4)
                            .Put<uint32_t>(1),
                        "duplicate metadata key");
  EXPECT_ERROR_MENTIONS(RawGguf(0, 1).Str("general.alignment").Put<uint32_t>(4).Put<uint32_t>(24),
                        "power of two");
  EXPECT_ERROR_MENTIONS(RawGguf(0, 1).Str("general.alignment").Put<uint32_t>(5).Put<int32_t>(32),
                        "want uint32");
}

TEST(Gguf, RejectsMalformedTensorInfos) {
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {32}, 0, 0).Pad(256), "OK");
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {1, 1, 1, 1, 1}, 0, 0).Pad(256),
                        "dimension count");
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {0}, 0, 0).Pad(256), "invalid size");
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {1ull << 40, 1ull << 30}, 0, 0).Pad(256),
                        "overflows");
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {32}, 3, 0).Pad(256), "unsupported tensor type");
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {33}, 8, 0).Pad(256), "block size");
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {32}, 0, 4).Pad(256), "not aligned");
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {32}, 0, 0).Pad(100), "outside");
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {32}, 0, 1ull << 63).Pad(256), "outside");
  EXPECT_ERROR_MENTIONS(RawGguf(1, 0).Tensor("t", {1ull << 61}, 0, 0).Pad(256), "outside");
  EXPECT_ERROR_MENTIONS(RawGguf(2, 0).Tensor("t", {8}, 0, 0).Tensor("t", {8}, 0, 32).Pad(512),
                        "duplicate tensor");
}

// The fuzzer's seeds are valid files (except the deliberately cut one), so
// fuzzing starts from inputs that reach deep into the parser.
TEST(Gguf, FuzzSeedsParse) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(LLMCACHE_GGUF_CORPUS_DIR)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    auto f = GgufFile::Parse(bytes);
    if (e.path().filename() == "vocab_prefix.gguf") {
      EXPECT_FALSE(f.has_value());
    } else {
      EXPECT_TRUE(f.has_value()) << e.path() << ": " << f.error().ToString();
    }
    ++n;
  }
  EXPECT_GE(n, 5);
}

TEST(Gguf, ReadsRealVocabFiles) {
  const auto path = enginetest::VocabDir() / "ggml-vocab-llama-spm.gguf";
  LLMCACHE_REQUIRE_PATH(path);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  EXPECT_EQ(*f->GetString("tokenizer.ggml.model"), "llama");
  auto tokens = f->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.has_value());
  EXPECT_EQ((*tokens)->size(), 32000u);
  EXPECT_EQ((**tokens)[1], "<s>");
  EXPECT_EQ(f->GetF32Array("tokenizer.ggml.scores")->size(), 32000u);
}

}  // namespace
}  // namespace llmcache::engine
