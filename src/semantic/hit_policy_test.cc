#include "semantic/hit_policy.h"

#include <gtest/gtest.h>

namespace llmcache::semantic {
namespace {

TEST(EntryThreshold, BaseWithoutEvidence) {
  ThresholdBounds b{0.85, 0.75, 0.01};
  EXPECT_DOUBLE_EQ(EntryThreshold({}, b), 0.85);
  // Too few "yes" outcomes to lower it.
  EXPECT_DOUBLE_EQ(EntryThreshold({{0.80f, true}, {0.81f, true}}, b), 0.85);
}

TEST(EntryThreshold, ANoRaisesItAboveTheNegative) {
  ThresholdBounds b{0.85, 0.75, 0.01};
  EXPECT_GT(EntryThreshold({{0.90f, false}}, b), 0.90);
  // A "no" below base leaves base, and blocks lowering through it.
  std::vector<Observation> obs = {{0.80f, false}};
  for (int i = 0; i < 20; ++i) obs.push_back({0.78f, true});
  EXPECT_DOUBLE_EQ(EntryThreshold(obs, b), 0.85);
}

TEST(EntryThreshold, EnoughYesLowersItNeverBelowTheFloor) {
  ThresholdBounds b{0.85, 0.80, 0.01};  // needs 10 outcomes
  std::vector<Observation> obs;
  for (int i = 0; i < 9; ++i) obs.push_back({0.82f, true});
  EXPECT_DOUBLE_EQ(EntryThreshold(obs, b), 0.85);
  obs.push_back({0.82f, true});
  EXPECT_NEAR(EntryThreshold(obs, b), 0.82, 1e-6);
  obs.clear();
  for (int i = 0; i < 10; ++i) obs.push_back({0.70f, true});
  EXPECT_DOUBLE_EQ(EntryThreshold(obs, b), 0.80);
}

TEST(EntryThreshold, KeepsTheNewestObservations) {
  std::vector<Observation> obs;
  for (size_t i = 0; i < kMaxObservations + 5; ++i) AddObservation(&obs, {float(i), true});
  ASSERT_EQ(obs.size(), kMaxObservations);
  EXPECT_FLOAT_EQ(obs.front().similarity, 5.0f);
}

TEST(Decide, Bands) {
  PolicyInput in;
  in.entry_threshold = 0.85;
  in.grey_floor = 0.75;
  in.similarity = 0.86;
  EXPECT_EQ(Decide(in), CandidateAction::kAccept);
  in.similarity = 0.80;
  EXPECT_EQ(Decide(in), CandidateAction::kRefuse);  // no verifier: no grey band
  in.have_verifier = true;
  EXPECT_EQ(Decide(in), CandidateAction::kVerify);
  in.similarity = 0.70;
  EXPECT_EQ(Decide(in), CandidateAction::kRefuse);
  in.similarity = 0.95;
  in.explore = true;
  EXPECT_EQ(Decide(in), CandidateAction::kVerify);
  in.explore = false;
  in.must_verify = true;
  EXPECT_EQ(Decide(in), CandidateAction::kVerify);
  in.have_verifier = false;
  EXPECT_EQ(Decide(in), CandidateAction::kRefuse);  // unrepresentable, nobody to ask
}

}  // namespace
}  // namespace llmcache::semantic
