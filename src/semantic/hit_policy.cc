#include "semantic/hit_policy.h"

#include <algorithm>
#include <cmath>

namespace llmcache::semantic {

double EntryThreshold(const std::vector<Observation>& observations, const ThresholdBounds& b) {
  // Just above a proven "no": similarities are floats, so a small step.
  constexpr double kAboveNegative = 1e-4;
  double highest_no = -2;
  for (const auto& o : observations) {
    if (!o.same) highest_no = std::max(highest_no, static_cast<double>(o.similarity));
  }
  double t = b.base;
  if (highest_no >= t) return std::min(1.0 + kAboveNegative, highest_no + kAboveNegative);

  const size_t needed = std::max<size_t>(
      3, static_cast<size_t>(std::ceil(1.0 / std::max(b.target_error_rate, 1e-6) / 10.0)));
  std::vector<double> yes;
  for (const auto& o : observations) {
    if (o.same && o.similarity < b.base && o.similarity > highest_no) yes.push_back(o.similarity);
  }
  if (yes.size() >= needed) {
    std::sort(yes.begin(), yes.end(), std::greater<>());
    // The needed-th highest "yes" below base: at least `needed` outcomes
    // vouch for [t, base).
    double lowered = yes[needed - 1];
    t = std::max(lowered, b.floor);
  }
  return std::max(t, highest_no + kAboveNegative);
}

void AddObservation(std::vector<Observation>* observations, Observation o) {
  if (observations->size() >= kMaxObservations) {
    observations->erase(observations->begin(),
                        observations->begin() + (observations->size() - kMaxObservations + 1));
  }
  observations->push_back(o);
}

CandidateAction Decide(const PolicyInput& in) {
  if (in.must_verify) {
    return in.have_verifier && in.similarity >= std::min(in.grey_floor, in.entry_threshold)
               ? CandidateAction::kVerify
               : CandidateAction::kRefuse;
  }
  if (in.similarity >= in.entry_threshold) {
    return in.have_verifier && in.explore ? CandidateAction::kVerify : CandidateAction::kAccept;
  }
  if (in.have_verifier && in.similarity >= in.grey_floor) return CandidateAction::kVerify;
  return CandidateAction::kRefuse;
}

}  // namespace llmcache::semantic
