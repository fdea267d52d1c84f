// The pure parts of the semantic hit decision: which threshold applies, and
// how verification outcomes move an entry's own threshold. No I/O, no locks;
// the cache and `llmcache eval` share them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace llmcache::semantic {

// One verified candidate of an entry: the similarity it was found at and
// whether the verifier said both questions share the answer.
struct Observation {
  float similarity = 0;
  bool same = false;
};

// Observations an entry keeps (oldest dropped first).
inline constexpr size_t kMaxObservations = 32;

struct ThresholdBounds {
  double base = 0.85;   // the namespace threshold for this query length
  double floor = 0.75;  // the bottom of the grey band: never auto-accept below
  double target_error_rate = 0.01;
};

// The similarity at or above which a candidate of this entry is accepted
// without asking the verifier (vCache's per-entry threshold, simplified and
// conservative):
//  * a "no" at similarity s proves that s is not safe for this entry: the
//    threshold rises above the highest such s (even above base);
//  * it falls below base only on evidence: the lowest similarity t such that
//    at least ceil(1 / target_error_rate) / 10 (>= 3) "yes" outcomes lie in
//    [t, base) and no "no" lies at or above t; never below floor.
// With no observations it is base.
double EntryThreshold(const std::vector<Observation>& observations, const ThresholdBounds& b);

// Appends an outcome, dropping the oldest past kMaxObservations.
void AddObservation(std::vector<Observation>* observations, Observation o);

enum class CandidateAction {
  kAccept,  // serve it
  kVerify,  // ask the PairVerifier; serve on "yes"
  kRefuse,  // below every band
};

struct PolicyInput {
  double similarity = 0;
  double entry_threshold = 0;  // EntryThreshold(...)
  double grey_floor = 0;       // bottom of the grey band; >= entry_threshold disables it
  bool have_verifier = false;
  // The query is not representable by the embedder: only a verifier may
  // admit it.
  bool must_verify = false;
  // Exploration: verify an otherwise accepted candidate.
  bool explore = false;
};

// What to do with one candidate that passed the lexical guard.
CandidateAction Decide(const PolicyInput& in);

}  // namespace llmcache::semantic
