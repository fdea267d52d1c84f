// `llmcache calibrate PAIRS.jsonl --max-false-hit 0.01`: picks the semantic
// threshold (and the short-query threshold) for a target false-hit rate from
// labelled question pairs {"a","b","same","lang","kind"}.
//
// A pair is accepted at θ when cos(a, b) >= θ, the lexical guard passes (when
// used) and neither side is beyond the embedder's unknown-fraction limit, as
// the cache decides. The false-hit rate at θ is the share of different-answer
// pairs accepted; the recall the share of same-answer pairs accepted. The
// chosen θ is the lowest on the grid whose false-hit rate is within the
// target; the short θ the same over pairs whose `a` has at most
// short_query_words words (never below θ).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "llmcache/embedder.h"
#include "llmcache/lexical_guard.h"
#include "llmcache/status.h"

namespace llmcache::semantic {

struct LabelledPair {
  std::string a, b;
  bool same = false;
  std::string lang;
  std::string kind;
};

Result<std::vector<LabelledPair>> LoadPairs(const std::string& path);

struct CalibrateOptions {
  std::shared_ptr<Embedder> embedder;
  std::shared_ptr<const LexicalGuard> guard;  // null: cosine only
  double max_false_hit = 0.01;
  size_t short_query_words = 5;
  double max_unknown_fraction = 0.25;
  double grid_from = 0.50, grid_to = 0.99, grid_step = 0.01;
};

struct CurvePoint {
  double threshold = 0;
  double recall = 0, false_hit = 0;              // all pairs
  double short_recall = 0, short_false_hit = 0;  // pairs with a short `a`
};

struct Calibration {
  // The lowest grid θ within the target; 1.0 (never hit) when none is.
  double threshold = 1.0;
  double short_threshold = 1.0;
  bool feasible = false;
  size_t positives = 0, negatives = 0, short_positives = 0, short_negatives = 0;
  std::vector<CurvePoint> curve;
};

Result<Calibration> Calibrate(const std::vector<LabelledPair>& pairs,
                              const CalibrateOptions& options);

// The choice and the curve as markdown.
std::string CalibrationMarkdown(const Calibration& c, const CalibrateOptions& options);

struct CalibrateCommandOptions {
  std::string pairs_path;
  std::string model_dir;  // use-lite package directory; empty: the default
  double max_false_hit = 0.01;
  bool guard = true;
};

int RunCalibrateCommand(const CalibrateCommandOptions& options, std::ostream& out,
                        std::ostream& err);

}  // namespace llmcache::semantic
