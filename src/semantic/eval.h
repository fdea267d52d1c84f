// `llmcache eval SET.jsonl`: measures the semantic cache on a labelled set.
//
// Each line is {"text","intent","family","lang"}: the same intent means a
// paraphrase (same answer); the same family with another intent is a hard
// negative ("paid leave" vs "sick leave"). Whole intents are held out: the
// cache is seeded with the first query of every other intent and queried
// with the rest, so held-out intents test the hard negatives of their cached
// siblings. For each threshold the report gives the hit rate on true
// paraphrases and the false-hit rate, per language, with and without the
// lexical guard (and with the verifier when one is configured).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/lexical_guard.h"
#include "llmcache/semantic_cache.h"

namespace llmcache::semantic {

struct EvalItem {
  std::string text;
  std::string intent;
  std::string family;
  std::string lang;
};

// One item per non-empty line. InvalidArgument names the bad line.
Result<std::vector<EvalItem>> LoadEvalSet(const std::string& path);

struct EvalOptions {
  // The cache configuration under test (embedder, guard, verifier, index,
  // top_k, thresholds, max_unknown_fraction, ...). data_dir is ignored.
  SemanticCacheOptions cache;
  // Thresholds to sweep; the short-query threshold keeps its distance to the
  // threshold from cache.thresholds (capped at 0.99).
  std::vector<double> thresholds = {0.60,  0.65, 0.70,  0.75, 0.775, 0.80,
                                    0.825, 0.85, 0.875, 0.90, 0.925, 0.95};
  // Share of each family's intents held out (at least one of every family
  // with two or more intents).
  double holdout_fraction = 0.3;
  uint64_t seed = 42;
};

struct EvalRow {
  std::string lang;  // "all" or a language
  std::string mode;  // "cosine", "guard", "guard+verifier"
  double threshold = 0;
  double short_threshold = 0;
  size_t queries = 0;             // every query of this language
  size_t paraphrase_queries = 0;  // queries whose intent is cached
  size_t true_hits = 0;           // served their own intent's answer
  size_t false_hits = 0;          // served another intent's answer
  // Why paraphrase queries of cached intents got no hit (SemanticLookup::reason).
  std::map<std::string, size_t> paraphrase_misses;
  // Questions put to the verifier (memo hits included: each is a call
  // without the memo, which the sweep shares across thresholds).
  size_t verifier_asks = 0;
  double hit_rate() const {
    return paraphrase_queries ? double(true_hits) / paraphrase_queries : 0;
  }
  double false_hit_rate() const { return queries ? double(false_hits) / queries : 0; }
};

struct EvalReport {
  size_t items = 0;
  size_t intents = 0;
  size_t cached_intents = 0;
  size_t held_out_intents = 0;
  std::vector<EvalRow> rows;
};

Result<EvalReport> RunEval(const std::vector<EvalItem>& items, const EvalOptions& options);

// A markdown table, one row per (language, mode, threshold), then why
// paraphrases were missed (all languages) per mode and threshold.
std::string EvalMarkdown(const EvalReport& report);

// The dev set split in two halves by family (a fixed hash of the family
// name), so that rules tuned on one half can be checked on the other: true
// for the tuning half, false for the held-out ("test") half.
bool InTuningHalf(std::string_view family);

// Keeps the items of one half: split "tune" or "test"; "" keeps all.
// InvalidArgument for another name.
Result<std::vector<EvalItem>> SplitEvalSet(std::vector<EvalItem> items, std::string_view split);

struct EvalCommandOptions {
  std::string set_path;
  std::string model_dir;  // use-lite package directory; empty: the default
  bool guard = true;      // also measure with the lexical guard (when built)
  double holdout_fraction = 0.3;
  uint64_t seed = 42;
  std::vector<double> thresholds;  // empty: EvalOptions' default sweep
  std::string split;               // "", "tune" or "test" (InTuningHalf)
  // Guard settings under test; unset: LexicalGuardOptions' defaults. Word
  // alignment is off unless min_word_similarity > 0 (then by the use-lite
  // embedder under test).
  std::optional<size_t> max_inserted_words;
  std::optional<double> min_word_similarity;
  std::optional<double> loose_threshold_raise;
  // "oracle" or "oracle:ACCURACY": a simulated grey-band check that answers
  // from the labels (wrong on a seeded share 1 - ACCURACY of the pairs), to
  // show what an LLM check could add; "" measures without a verifier.
  std::string verifier;
  std::optional<double> grey_band;  // unset: SemanticCacheOptions' default
  // With a verifier: content-word refusals at or above θ go to it
  // (SemanticCacheOptions::overrule_content_words).
  bool overrule_content_words = false;
  // A MyThes thesaurus as an extra synonym source of the guard
  // (LexicalGuardOptions::thesaurus_path); empty: none.
  std::string thesaurus_path;
  bool thesaurus_similar_terms = false;
};

// Exit code: 0 ok, 1 failure, 2 unusable options. The table goes to `out`.
int RunEvalCommand(const EvalCommandOptions& options, std::ostream& out, std::ostream& err);

// The lexical guard with the resources install-deps provides, when this
// build has one; null otherwise (and `why` says so). `options` may set the
// rules (word embedder, inserted words); its resource paths are filled in.
std::shared_ptr<const LexicalGuard> DefaultLexicalGuard(std::string* why,
                                                        LexicalGuardOptions options = {});

// The guard's word embedder for a cache embedder: use-lite only, since the
// word-similarity threshold is measured on its scale; null for any other.
std::shared_ptr<Embedder> WordEmbedderFor(const std::shared_ptr<Embedder>& embedder);

}  // namespace llmcache::semantic
