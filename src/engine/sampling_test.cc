#include "engine/sampling.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace llmcache::engine {
namespace {

TEST(SamplerTest, GreedyPicksArgmaxLowestIdOnTies) {
  Sampler s({});
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.Sample(logits), 1);
}

TEST(SamplerTest, TopKOneIsGreedy) {
  Sampler s({.temperature = 1.5f, .top_k = 1, .seed = 3});
  const std::vector<float> logits = {0.1f, 0.3f, 0.2f};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.Sample(logits), 1);
}

TEST(SamplerTest, TopKAndTopPRestrictTheSupport) {
  const std::vector<float> logits = {3.0f, 2.9f, 2.8f, 0.0f, -5.0f};
  Sampler k({.temperature = 1.0f, .top_k = 2, .seed = 1});
  Sampler p({.temperature = 1.0f, .top_p = 0.5f, .seed = 1});
  std::map<int, int> seen_k, seen_p;
  for (int i = 0; i < 400; ++i) {
    ++seen_k[k.Sample(logits)];
    ++seen_p[p.Sample(logits)];
  }
  EXPECT_EQ(seen_k.size(), 2u);
  EXPECT_TRUE(seen_k.count(0) && seen_k.count(1));
  // p(0) ~ 0.36 < 0.5, p(0)+p(1) ~ 0.69: the nucleus is {0, 1}.
  EXPECT_EQ(seen_p.size(), 2u);
  EXPECT_FALSE(seen_p.count(2));
}

TEST(SamplerTest, SameSeedSameSequenceAndTemperatureSpreads) {
  const std::vector<float> logits = {1.0f, 1.1f, 0.9f, 1.05f};
  Sampler a({.temperature = 1.0f, .seed = 42});
  Sampler b({.temperature = 1.0f, .seed = 42});
  std::map<int, int> seen;
  for (int i = 0; i < 200; ++i) {
    const int t = a.Sample(logits);
    EXPECT_EQ(t, b.Sample(logits));
    ++seen[t];
  }
  EXPECT_EQ(seen.size(), 4u);
}

}  // namespace
}  // namespace llmcache::engine
