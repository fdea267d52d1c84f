// Which lexical-guard refusals the grey-band LLM check may overrule
// (SemanticCacheOptions::overrule_content_words). Pure, so the routing is
// tested apart from the cache.
#pragma once

#include "llmcache/lexical_guard.h"

namespace llmcache::semantic {

struct OverruleInput {
  bool enabled = false;        // overrule_content_words
  bool have_verifier = false;  // a PairVerifier answers for the namespace
  double similarity = 0;       // of the candidate
  double entry_threshold = 0;  // the similarity it would be accepted at
};

// True when a refused candidate goes to the verifier, which then decides:
// only a refusal that rests on unmatched content words alone
// (GuardVerdict::overrulable: numbers, names, negation, order and question
// words agreed), and only at or above the candidate's accept threshold — the
// grey band below it already needs the guard's pass and the verifier's yes.
inline bool OverruleByVerifier(const GuardVerdict& v, const OverruleInput& in) {
  return in.enabled && in.have_verifier && !v.pass && v.overrulable && v.reason == "content_word" &&
         in.similarity >= in.entry_threshold;
}

}  // namespace llmcache::semantic
