// Picking the next token from logits: greedy (temperature 0) or temperature
// sampling restricted by top-k and top-p, from a seeded generator so a run is
// reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace llmcache::engine {

struct SamplingOptions {
  float temperature = 0.0f;  // <= 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;         // <= 0: no limit
  float top_p = 1.0f;        // >= 1: no limit; keeps the smallest set with mass >= top_p
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplingOptions options) : options_(options), rng_(options.seed) {}
  // REQUIRES: logits is not empty.
  int32_t Sample(std::span<const float> logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

int32_t ArgMax(std::span<const float> logits);

}  // namespace llmcache::engine
