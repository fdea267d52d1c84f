// Our random-weight GGUF files load and run in llama.cpp (the reference).
#include "engine/llama_ref.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "engine/gguf.h"
#include "engine/test_model.h"
#include "engine/test_util.h"
#include "engine/vocab.h"

namespace llmcache::engine {
namespace {

// The 128k/152k-entry vocabularies (llama-bpe, qwen2) load the same way but
// make each file several times larger; the small ones keep the suite fast.
struct Case {
  std::string arch;
  std::string vocab;  // file name under llama.cpp/models
  TestModelType type;
  std::string name;
};

class LlamaLoadTest : public ::testing::TestWithParam<Case> {};

TEST_P(LlamaLoadTest, LoadsAndDecodes) {
#if !defined(LLMCACHE_HAVE_LLAMA_H)
  GTEST_SKIP() << "llama.h not found under models/llama-cpp (run scripts/install-deps)";
#else
  const Case& c = GetParam();
  const auto lib_dir = enginetest::LlamaLibDir();
  LLMCACHE_REQUIRE_PATH(lib_dir);
  const auto& api = enginetest::LlamaApi::Get(lib_dir);
  ASSERT_TRUE(api.ok()) << api.error;

  TestModelOptions o;
  o.arch = c.arch;
  o.vocab_path = enginetest::VocabDir() / c.vocab;
  o.type = c.type;
  o.n_layer = 2;
  o.n_embd = 256;
  o.n_head = 4;
  o.n_head_kv = 2;
  o.n_ff = 512;
  o.seed = 7;
  const auto path = std::filesystem::temp_directory_path() /
                    ("llmcache-" + c.name + "-" + std::to_string(::getpid()) + ".gguf");
  ASSERT_TRUE(WriteTestModel(o, path).ok());
  auto ours = GgufFile::Open(path);
  ASSERT_TRUE(ours.has_value()) << ours.error().ToString();
  const auto n_vocab = (*ours->GetStringArray("tokenizer.ggml.tokens"))->size();

  auto mp = api.model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = api.model_load_from_file(path.c_str(), mp);
  std::filesystem::remove(path);
  ASSERT_NE(model, nullptr) << "llama.cpp rejected the file";
  EXPECT_EQ(api.vocab_n_tokens(api.model_get_vocab(model)), static_cast<int32_t>(n_vocab));
  EXPECT_EQ(api.model_n_embd(model), 256);

  auto cp = api.context_default_params();
  cp.n_ctx = 64;
  cp.n_batch = 64;
  // One thread: ggml's spinning workers crawl on an oversubscribed CI machine.
  cp.n_threads = 1;
  cp.n_threads_batch = 1;
  llama_context* ctx = api.init_from_model(model, cp);
  ASSERT_NE(ctx, nullptr);
  llama_token tokens[] = {1, 100, 200, 300, 400};
  EXPECT_EQ(api.decode(ctx, api.batch_get_one(tokens, 5)), 0);
  const float* logits = api.get_logits_ith(ctx, -1);
  ASSERT_NE(logits, nullptr);
  float sum = 0;
  for (size_t i = 0; i < n_vocab; ++i) sum += std::fabs(logits[i]);
  EXPECT_TRUE(std::isfinite(sum));
  EXPECT_GT(sum, 0.0f);
  api.free(ctx);
  api.model_free(model);
#endif
}

INSTANTIATE_TEST_SUITE_P(
    Models, LlamaLoadTest,
    ::testing::Values(
        Case{"llama", "ggml-vocab-llama-spm.gguf", TestModelType::kF32, "llama_f32"},
        Case{"llama", "ggml-vocab-llama-spm.gguf", TestModelType::kF16, "llama_f16"},
        Case{"llama", "ggml-vocab-llama-spm.gguf", TestModelType::kBF16, "llama_bf16"},
        Case{"llama", "ggml-vocab-llama-spm.gguf", TestModelType::kQ8_0, "llama_q8_0"},
        Case{"llama", "ggml-vocab-llama-spm.gguf", TestModelType::kQ4_0, "llama_q4_0"},
        Case{"llama", "ggml-vocab-llama-spm.gguf", TestModelType::kQ4_K, "llama_q4_k"},
        Case{"llama", "ggml-vocab-llama-spm.gguf", TestModelType::kQ6_K, "llama_q6_k"},
        Case{"llama", "ggml-vocab-llama-spm.gguf", TestModelType::kQ4_K_M, "llama_q4_k_m"},
        Case{"qwen2", "ggml-vocab-gpt-2.gguf", TestModelType::kF32, "qwen2_f32"},
        Case{"qwen2", "ggml-vocab-gpt-2.gguf", TestModelType::kQ4_K_M, "qwen2_q4_k_m"},
        Case{"qwen2", "ggml-vocab-gpt-2.gguf", TestModelType::kQ8_0, "qwen2_q8_0"}),
    [](const auto& info) { return info.param.name; });

// The reference half of the parity harness: llama.cpp greedy decoding of our
// files is deterministic, so an engine can later be held to its exact tokens.
TEST(GreedyHarness, ReferenceRunsAreDeterministic) {
#if !defined(LLMCACHE_HAVE_LLAMA_H)
  GTEST_SKIP() << "llama.h not found under models/llama-cpp (run scripts/install-deps)";
#else
  const auto lib_dir = enginetest::LlamaLibDir();
  LLMCACHE_REQUIRE_PATH(lib_dir);
  const auto& api = enginetest::LlamaApi::Get(lib_dir);
  ASSERT_TRUE(api.ok()) << api.error;
  TestModelOptions o;
  o.vocab_path = enginetest::VocabDir() / "ggml-vocab-llama-spm.gguf";
  o.weight_scale = 0.1f;  // larger weights: less flat logits, varied tokens
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("llmcache-greedy-" + std::to_string(::getpid()) + ".gguf"))
                               .string();
  ASSERT_TRUE(WriteTestModel(o, path).ok());
  const auto a = enginetest::RunGreedy(api, path, {1, 15043, 3186}, 64);
  const auto b = enginetest::RunGreedy(api, path, {1, 15043, 3186}, 64);
  std::filesystem::remove(path);
  ASSERT_TRUE(a.error.empty()) << a.error;
  ASSERT_EQ(a.tokens.size(), 64u);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.logits, b.logits);
  ASSERT_EQ(a.logits.size(), 64u * a.n_vocab);
#endif
}

TEST(TestModel, RejectsBadShapes) {
  TestModelOptions o;
  o.vocab_path = "unused";
  o.arch = "gpt2";
  EXPECT_EQ(WriteTestModel(o, "unused").code(), StatusCode::kInvalidArgument);
  o.arch = "llama";
  o.rope_type = RopeType::kNeox;
  EXPECT_NE(WriteTestModel(o, "unused").message().find("RoPE"), std::string::npos);
  o.rope_type.reset();
  o.n_head = 3;
  EXPECT_EQ(WriteTestModel(o, "unused").code(), StatusCode::kInvalidArgument);
}

TEST(TestModel, SameSeedSameBytesAndQwen2HasBiases) {
  const auto vocab = enginetest::VocabDir() / "ggml-vocab-llama-spm.gguf";
  LLMCACHE_REQUIRE_PATH(vocab);
  TestModelOptions o;
  o.arch = "qwen2";
  o.vocab_path = vocab;
  o.n_layer = 1;
  o.n_embd = 64;
  o.n_head = 2;
  o.n_head_kv = 1;
  o.n_ff = 128;
  o.type = TestModelType::kQ8_0;
  o.chat_template = "{{ custom }}";
  const auto dir = std::filesystem::temp_directory_path();
  const auto a = dir / ("llmcache-seed-a-" + std::to_string(::getpid()) + ".gguf");
  const auto b = dir / ("llmcache-seed-b-" + std::to_string(::getpid()) + ".gguf");
  ASSERT_TRUE(WriteTestModel(o, a).ok());
  ASSERT_TRUE(WriteTestModel(o, b).ok());
  auto fa = GgufFile::Open(a);
  auto fb = GgufFile::Open(b);
  std::filesystem::remove(a);
  std::filesystem::remove(b);
  ASSERT_TRUE(fa && fb);
  ASSERT_EQ(fa->bytes().size(), fb->bytes().size());
  EXPECT_TRUE(std::equal(fa->bytes().begin(), fa->bytes().end(), fb->bytes().begin()));
  EXPECT_EQ(*fa->GetString("tokenizer.chat_template"), "{{ custom }}");
  EXPECT_EQ(*fa->GetString("tokenizer.ggml.model"), "llama");
  ASSERT_NE(fa->FindTensor("blk.0.attn_k.bias"), nullptr);
  EXPECT_EQ(fa->FindTensor("blk.0.attn_k.bias")->ne[0], 32u);
  EXPECT_EQ(fa->FindTensor("blk.0.attn_k.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ(fa->FindTensor("blk.0.attn_norm.weight")->type, GgmlType::kF32);
  EXPECT_EQ(fa->FindTensor("output.weight")->ne[1], 32000u);
}

// Beyond the fixed vectors: random mixed-script texts tokenize identically in
// our tokenizers and in llama.cpp (vocab-only load of the same file).
class TokenizerParity : public ::testing::TestWithParam<std::string> {};

std::string RandomText(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {"Hello",
                                                  "world",
                                                  " ",
                                                  "  ",
                                                  "\n",
                                                  "\n\n",
                                                  "\t",
                                                  " \n ",
                                                  "'s",
                                                  "'LL",
                                                  "'re",
                                                  "don't",
                                                  "123",
                                                  "4567890",
                                                  "3.14",
                                                  "!!",
                                                  "?",
                                                  "...",
                                                  "(x)",
                                                  "{\"k\": [1,2]}",
                                                  "über",
                                                  "Ñandú",
                                                  "日本語",
                                                  "中文字符",
                                                  "한국어",
                                                  "Привет",
                                                  "مرحبا",
                                                  "🦙",
                                                  "🧑‍💻",
                                                  "e\u0301",
                                                  "\u00a0",
                                                  "\u3000",
                                                  "<s>",
                                                  "</s>",
                                                  "<|im_start|>",
                                                  "<|eot_id|>",
                                                  "<|endoftext|>",
                                                  "▁",
                                                  "\r\n",
                                                  "ǅ",
                                                  "Ⅻ",
                                                  "½",
                                                  "x²",
                                                  "__init__",
                                                  "http://a.b/c?d=e",
                                                  "  \t\n  x",
                                                  "ﬁ"};
  std::string s;
  const int n = 1 + static_cast<int>(rng() % 12);
  for (int i = 0; i < n; ++i) s += pieces[rng() % pieces.size()];
  return s;
}

TEST_P(TokenizerParity, RandomTextsMatchLlamaCpp) {
#if !defined(LLMCACHE_HAVE_LLAMA_H)
  GTEST_SKIP() << "llama.h not found under models/llama-cpp (run scripts/install-deps)";
#else
  const auto lib_dir = enginetest::LlamaLibDir();
  LLMCACHE_REQUIRE_PATH(lib_dir);
  const auto& api = enginetest::LlamaApi::Get(lib_dir);
  ASSERT_TRUE(api.ok()) << api.error;
  const auto path = enginetest::VocabDir() / GetParam();
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.has_value());
  auto vocab = Vocab::FromGguf(*file);
  ASSERT_TRUE(vocab.has_value()) << vocab.error().ToString();
  auto mp = api.model_default_params();
  mp.vocab_only = true;
  llama_model* model = api.model_load_from_file(path.c_str(), mp);
  ASSERT_NE(model, nullptr);
  const llama_vocab* ref = api.model_get_vocab(model);
  std::mt19937 rng(99);
  for (int i = 0; i < 300; ++i) {
    const std::string text = RandomText(rng);
    for (bool parse_special : {false, true}) {
      const bool add_special = i % 2 == 0;
      std::vector<llama_token> want(text.size() * 4 + 8);
      const int32_t n =
          api.tokenize(ref, text.data(), static_cast<int32_t>(text.size()), want.data(),
                       static_cast<int32_t>(want.size()), add_special, parse_special);
      ASSERT_GE(n, 0);
      want.resize(n);
      const auto got = vocab->Tokenize(text, add_special, parse_special);
      ASSERT_EQ(got, want) << "text: '" << text << "' parse_special=" << parse_special;
    }
  }
  api.model_free(model);
#endif
}

INSTANTIATE_TEST_SUITE_P(Vocabs, TokenizerParity,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf",
                                           "ggml-vocab-qwen2.gguf", "ggml-vocab-gpt-2.gguf"),
                         [](const auto& info) {
                           std::string n = info.param.substr(11, info.param.size() - 16);
                           for (auto& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace llmcache::engine
