// Parity of the C++ use-lite embedder with the reference implementation
// (TF.js + WebAssembly, see reference/make_golden.mjs), and its contract:
// normalized vectors, batch == single, thread safety.
#include "semantic/use_lite.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <thread>

#include "semantic/test_util.h"

namespace llmcache::semantic {
namespace {

std::unique_ptr<UseLiteEmbedder> Make(Isa isa = BestIsa(), int threads = 1) {
  UseLiteOptions options;
  options.model_dir = testing::ModelDir();
  options.threads = threads;
  auto e = UseLiteEmbedder::Create(options, isa);
  EXPECT_TRUE(e.has_value()) << e.error().ToString();
  return e ? std::move(*e) : nullptr;
}

std::vector<std::string> Texts(const std::vector<testing::Golden>& golden) {
  std::vector<std::string> out;
  for (const auto& g : golden) out.push_back(g.text);
  return out;
}

class UseLiteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::ModelInstalled()) << testing::MissingModelMessage();
    golden_ = testing::LoadGolden();
    ASSERT_GE(golden_.size(), 60u) << "testdata/use_lite_golden.jsonl is missing or malformed";
  }
  std::vector<testing::Golden> golden_;
};

TEST_F(UseLiteTest, Identity) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->id(), "use-lite");
  EXPECT_EQ(e->dimension(), 512u);
  EXPECT_EQ(e->model().max_tokens(), 128);
  auto via_factory = NewUseLiteEmbedder({testing::ModelDir(), 1});
  ASSERT_TRUE(via_factory.has_value()) << via_factory.error().ToString();
  EXPECT_EQ((*via_factory)->id(), "use-lite");
}

// Each golden sentence, embedded on its own as the reference did, reaches
// cosine >= 0.999 with the reference's vector; with every kernel variant
// this CPU runs.
TEST_F(UseLiteTest, MatchesTheReferenceEmbeddings) {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric}) {
    if (!IsaSupported(isa)) continue;
    auto e = Make(isa);
    ASSERT_NE(e, nullptr);
    double min_cos = 1, sum_cos = 0, max_abs = 0;
    std::string worst;
    for (const auto& g : golden_) {
      auto raw = e->EmbedRaw(std::vector<std::string>{g.text});
      ASSERT_TRUE(raw.has_value()) << raw.error().ToString();
      ASSERT_EQ((*raw)[0].size(), 512u);
      const double cos = testing::Cosine((*raw)[0], g.embedding);
      EXPECT_GE(cos, 0.999) << IsaName(isa) << ": \"" << g.text << "\"";
      sum_cos += cos;
      for (size_t c = 0; c < 512; ++c) {
        max_abs = std::max(max_abs, static_cast<double>(std::abs((*raw)[0][c] - g.embedding[c])));
      }
      if (cos < min_cos) {
        min_cos = cos;
        worst = g.text;
      }
    }
    std::printf(
        "use-lite %s: %zu golden sentences, min cosine %.10f (1 - %.1e, \"%s\"), "
        "mean %.10f, max |difference| %.1e\n",
        std::string(IsaName(isa)).c_str(), golden_.size(), min_cos, 1 - min_cos,
        worst.substr(0, 40).c_str(), sum_cos / golden_.size(), max_abs);
  }
}

TEST_F(UseLiteTest, VectorsAreNormalized) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  auto v = e->Embed(Texts(golden_));
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  ASSERT_EQ(v->size(), golden_.size());
  for (const auto& x : *v) {
    ASSERT_EQ(x.size(), 512u);
    EXPECT_NEAR(testing::Norm(x), 1.0, 1e-6);
  }
}

TEST_F(UseLiteTest, BatchEqualsSingle) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const std::vector<std::string> texts = Texts(golden_);
  auto batch = e->Embed(texts);
  ASSERT_TRUE(batch.has_value()) << batch.error().ToString();
  for (size_t i = 0; i < texts.size(); ++i) {
    auto one = e->Embed(std::span<const std::string>(&texts[i], 1));
    ASSERT_TRUE(one.has_value());
    EXPECT_EQ((*one)[0], (*batch)[i]) << texts[i];
  }
  // Several threads per call split the batch; the vectors stay the same.
  auto threaded = Make(BestIsa(), 2);
  ASSERT_NE(threaded, nullptr);
  auto split = threaded->Embed(texts);
  ASSERT_TRUE(split.has_value());
  EXPECT_EQ(*split, *batch);
  auto empty = e->Embed({});
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST_F(UseLiteTest, ConcurrentCallsGiveTheSameVectors) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const std::vector<std::string> texts = Texts(golden_);
  auto want = e->Embed(texts);
  ASSERT_TRUE(want.has_value());
  std::atomic<int> mismatches{0};
  auto worker = [&](size_t offset) {
    for (int round = 0; round < 5; ++round) {
      for (size_t k = 0; k < texts.size(); k += 7) {
        const size_t i = (k + offset + round) % texts.size();
        auto got = e->Embed(std::span<const std::string>(&texts[i], 1));
        if (!got || (*got)[0] != (*want)[i]) ++mismatches;
      }
    }
  };
  std::thread a(worker, 0), b(worker, 3);
  a.join();
  b.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_F(UseLiteTest, ReportsUnknownShareAndTruncation) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const std::string long_text(2000, 'a');
  std::string words;
  for (int i = 0; i < 200; ++i) words += "leave ";
  auto info = e->EmbedWithInfo(std::vector<std::string>{"How do I apply for paid leave?",
                                                        "有給休暇の申請方法は？", words, ""});
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  EXPECT_EQ((*info)[0].unknown_fraction, 0.0);
  EXPECT_EQ((*info)[0].tokens, 8u);
  EXPECT_FALSE((*info)[0].truncated);
  EXPECT_GT((*info)[1].unknown_fraction, 0.8);
  EXPECT_EQ((*info)[2].tokens, 128u);
  EXPECT_TRUE((*info)[2].truncated);
  EXPECT_EQ((*info)[3].tokens, 0u);
  EXPECT_EQ((*info)[3].unknown_fraction, 0.0);
  for (const auto& i : *info) EXPECT_NEAR(testing::Norm(i.vector), 1.0, 1e-6);
}

TEST_F(UseLiteTest, HugeAndBinaryTextsDoNotBreakIt) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  std::string binary;
  for (int i = 0; i < 4096; ++i) binary.push_back(static_cast<char>(i * 37 % 256));
  std::string huge(1 << 20, 'x');
  for (size_t i = 0; i < huge.size(); i += 6) huge[i] = ' ';
  huge[UseLiteEmbedder::kMaxTextBytes - 1] = '\xc3';  // a character cut in half
  auto v = e->EmbedWithInfo(std::vector<std::string>{binary, huge});
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  for (const auto& i : *v) EXPECT_NEAR(testing::Norm(i.vector), 1.0, 1e-6);
  EXPECT_TRUE((*v)[1].truncated);
}

// Paraphrases land closer to each other than to unrelated questions: the
// property the semantic cache relies on.
TEST_F(UseLiteTest, ParaphrasesAreNeighbours) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  auto v = e->Embed(std::vector<std::string>{"How do I apply for paid leave?",
                                             "how to take paid vacation",
                                             "What is the capital of France?"});
  ASSERT_TRUE(v.has_value());
  EXPECT_GT(testing::Cosine((*v)[0], (*v)[1]), testing::Cosine((*v)[0], (*v)[2]) + 0.2);
}

}  // namespace
}  // namespace llmcache::semantic
