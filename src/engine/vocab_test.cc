#include "engine/vocab.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "engine/gguf_writer.h"
#include "engine/test_util.h"

namespace llmcache::engine {
namespace {

struct VectorCase {
  std::string text;
  std::vector<TokenId> expected;
};

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// llama.cpp's tests/test-tokenizer-0 format: .inp holds the texts separated
// by a marker line, .out one line of token ids per text.
std::vector<VectorCase> ReadVectors(const std::filesystem::path& vocab) {
  const std::string inp = ReadAll(vocab.string() + ".inp");
  const std::string out = ReadAll(vocab.string() + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(inp.substr(pos));
      break;
    }
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<VectorCase> cases;
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    if (i >= texts.size()) break;
    VectorCase c{texts[i], {}};
    std::istringstream ids(line);
    for (TokenId id; ids >> id;) c.expected.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), texts.size()) << vocab;
  return cases;
}

std::string Show(const std::vector<TokenId>& v) {
  std::string s;
  for (TokenId t : v) s += std::to_string(t) + " ";
  return s;
}

class TokenizerVectors : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = enginetest::VocabDir() / GetParam();
    LLMCACHE_REQUIRE_PATH(path_);
    auto file = GgufFile::Open(path_);
    ASSERT_TRUE(file.has_value()) << file.error().ToString();
    auto vocab = Vocab::FromGguf(*file);
    ASSERT_TRUE(vocab.has_value()) << vocab.error().ToString();
    vocab_ = std::make_unique<Vocab>(std::move(*vocab));
  }
  std::filesystem::path path_;
  std::unique_ptr<Vocab> vocab_;
};

TEST_P(TokenizerVectors, MatchLlamaCpp) {
  const auto cases = ReadVectors(path_);
  ASSERT_GT(cases.size(), 30u);
  for (const auto& c : cases) {
    EXPECT_EQ(Show(vocab_->Tokenize(c.text, false, false)), Show(c.expected))
        << "text: '" << c.text << "'";
  }
}

TEST_P(TokenizerVectors, DetokenizeIsLosslessWithoutCleanup) {
  // gpt-2 style vocabularies remove spaces before punctuation on purpose.
  if (vocab_->pre_tokenizer() == PreTokenizer::kGpt2) GTEST_SKIP() << "lossy clean-up by design";
  for (const auto& c : ReadVectors(path_)) {
    EXPECT_EQ(vocab_->Detokenize(c.expected, false), c.text);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, TokenizerVectors,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf",
                                           "ggml-vocab-qwen2.gguf", "ggml-vocab-gpt-2.gguf"),
                         [](const auto& info) {
                           std::string n = info.param.substr(11, info.param.size() - 16);
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

Result<Vocab> Load(const std::string& name) {
  auto file = GgufFile::Open(enginetest::VocabDir() / name);
  if (!file) return Err(file.error());
  return Vocab::FromGguf(*file);
}

TEST(Vocab, SpecialTokensOnlyWhenAsked) {
  LLMCACHE_REQUIRE_PATH(enginetest::VocabDir() / "ggml-vocab-qwen2.gguf");
  auto v = Load("ggml-vocab-qwen2.gguf");
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  const TokenId im_start = v->Find("<|im_start|>");
  ASSERT_NE(im_start, kNoToken);
  EXPECT_EQ(v->kind(im_start), TokenKind::kControl);
  auto parsed = v->Tokenize("<|im_start|>user\nhi", false, true);
  ASSERT_FALSE(parsed.empty());
  EXPECT_EQ(parsed[0], im_start);
  auto plain = v->Tokenize("<|im_start|>user\nhi", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), im_start), 0);
  EXPECT_GT(plain.size(), parsed.size());
  EXPECT_EQ(v->Detokenize(parsed, true), "<|im_start|>user\nhi");
  EXPECT_EQ(v->Detokenize(parsed, false), "user\nhi");
  EXPECT_TRUE(v->IsEog(v->Find("<|im_end|>")));
  EXPECT_TRUE(v->IsEog(v->eos()));
}

TEST(Vocab, BosEosFollowMetadata) {
  LLMCACHE_REQUIRE_PATH(enginetest::VocabDir() / "ggml-vocab-llama-bpe.gguf");
  auto spm = Load("ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(spm.has_value());
  EXPECT_EQ(spm->type(), VocabType::kSpm);
  auto with = spm->Tokenize("Hello", true, false);
  ASSERT_FALSE(with.empty());
  EXPECT_EQ(with.front(), 1);
  EXPECT_EQ(with.size(), spm->Tokenize("Hello", false, false).size() + 1);
  EXPECT_TRUE(spm->Tokenize("", false, false).empty());

  auto llama3 = Load("ggml-vocab-llama-bpe.gguf");
  ASSERT_TRUE(llama3.has_value());
  EXPECT_TRUE(llama3->add_bos());
  EXPECT_EQ(llama3->Tokenize("Hi", true, false).front(), llama3->bos());
  EXPECT_EQ(llama3->text(llama3->bos()), "<|begin_of_text|>");
  // Control text in user input stays text unless parse_special.
  auto plain = llama3->Tokenize("<|eot_id|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(llama3->Tokenize("<|eot_id|>", false, true),
            std::vector<TokenId>{llama3->Find("<|eot_id|>")});
}

TEST(Vocab, SpmByteFallback) {
  LLMCACHE_REQUIRE_PATH(enginetest::VocabDir() / "ggml-vocab-llama-spm.gguf");
  auto v = Load("ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(v.has_value());
  // U+1F9D1 is not in the vocabulary: four byte tokens.
  const std::string text = "\xF0\x9F\xA7\x91";
  auto ids = v->Tokenize(text, false, false);
  int bytes = 0;
  for (TokenId id : ids) bytes += v->kind(id) == TokenKind::kByte;
  EXPECT_EQ(bytes, 4);
  EXPECT_EQ(v->Detokenize(ids, false), text);
}

TEST(Vocab, RejectsUnsupportedTokenizers) {
  LLMCACHE_REQUIRE_PATH(enginetest::VocabDir() / "ggml-vocab-bert-bge.gguf");
  auto bert = Load("ggml-vocab-bert-bge.gguf");
  ASSERT_FALSE(bert.has_value());
  EXPECT_NE(bert.error().message().find("bert"), std::string::npos) << bert.error().message();
  auto falcon = Load("ggml-vocab-falcon.gguf");
  ASSERT_FALSE(falcon.has_value());
  EXPECT_NE(falcon.error().message().find("falcon"), std::string::npos);
}

// A tiny hand-made SPM vocabulary: the merge order follows the scores.
class TinyVocab : public ::testing::Test {
 protected:
  GgufWriter Base() {
    GgufWriter w;
    w.SetString("tokenizer.ggml.model", "llama");
    w.SetStringArray("tokenizer.ggml.tokens", tokens_);
    w.SetF32Array("tokenizer.ggml.scores", scores_);
    w.SetI32Array("tokenizer.ggml.token_type", types_);
    return w;
  }
  static Result<Vocab> Build(const GgufWriter& w) {
    bytes_ = w.Serialize();
    auto f = GgufFile::Parse(bytes_);
    if (!f) return Err(f.error());
    return Vocab::FromGguf(*f);
  }
  const std::vector<std::string> tokens_ = {"<unk>", "<s>", "</s>",           "\xE2\x96\x81", "a",
                                            "b",     "ab",  "\xE2\x96\x81" "ab", "<0x63>"};
  const std::vector<float> scores_ = {0, 0, 0, -1, -2, -2, -0.5f, -0.1f, 0};
  const std::vector<int32_t> types_ = {2, 3, 3, 1, 1, 1, 1, 1, 6};
  static inline std::vector<uint8_t> bytes_;
};

TEST_F(TinyVocab, MergesByScoreAndFallsBackToBytes) {
  auto v = Build(Base());
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_EQ(v->Tokenize("ab", false, false), (std::vector<TokenId>{7}));
  EXPECT_EQ(v->Tokenize("abc", true, false), (std::vector<TokenId>{1, 7, 8}));
  EXPECT_EQ(v->Detokenize(std::vector<TokenId>{7, 8}, false), "abc");
  // As in llama.cpp, only the first token's leading space is dropped, even
  // when that token is a hidden BOS.
  EXPECT_EQ(v->Detokenize(std::vector<TokenId>{1, 7, 8}, false), " abc");
  EXPECT_EQ(v->Detokenize(std::vector<TokenId>{1, 7, 8}, true), "<s> abc");
}

TEST_F(TinyVocab, MalformedMetadataIsAnError) {
  {
    GgufWriter w = Base();
    w.SetU32("tokenizer.ggml.bos_token_id", 99);
    auto v = Build(w);
    ASSERT_FALSE(v.has_value());
    EXPECT_NE(v.error().message().find("outside the vocabulary"), std::string::npos);
  }
  {
    GgufWriter w = Base();
    w.SetF32Array("tokenizer.ggml.scores", std::vector<float>{1.0f});
    EXPECT_FALSE(Build(w).has_value());
  }
  {
    GgufWriter w = Base();
    w.Remove("tokenizer.ggml.tokens");
    auto v = Build(w);
    ASSERT_FALSE(v.has_value());
    EXPECT_TRUE(v.error().IsNotFound());
  }
  {
    GgufWriter w = Base();
    w.SetI32("tokenizer.ggml.eos_token_id", -1);  // "none" is accepted
    auto v = Build(w);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->eos(), kNoToken);
  }
}

}  // namespace
}  // namespace llmcache::engine
