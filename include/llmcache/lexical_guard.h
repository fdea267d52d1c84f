// The lexical verification guard of the semantic cache: given a new question
// and the cached question an embedding search found, decides whether they may
// share an answer. Embeddings cannot tell "paid leave" from "sick leave" or
// "USD to EUR" from "EUR to USD"; this guard can, and when in doubt it
// refuses (a wrong answer is worse than a miss).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "llmcache/embedder.h"
#include "llmcache/status.h"

namespace llmcache {

struct GuardVerdict {
  bool pass = false;
  // Why a candidate was refused, one stable word for the metrics label:
  // "number", "entity", "negation", "order", "content_word", "language",
  // "unsupported". Empty when pass is true.
  std::string reason;
  // Human-readable detail for logs and `llmcache eval`, e.g. "sick vs paid";
  // on a loose pass what it rests on, e.g. "loose: freeze~lock +account".
  std::string detail;
  // A loose pass: every word was accounted for, but only through a weaker
  // rule (an inserted generic word, a word matched by its embedding rather
  // than by WordNet). The caller should then demand this much more embedding
  // similarity than its threshold. 0 on a strict pass and on refusals.
  double threshold_raise = 0;
  // A refusal that rests only on content words present on one side that no
  // synonym source relates ("PTO" vs "paid leave"): numbers, names,
  // negation, order and question words all agreed. A stronger judge (the
  // grey-band LLM check, SemanticCacheOptions::overrule_content_words) may
  // decide such a candidate; every other refusal is final.
  bool overrulable = false;
};

// Thread-safe; Check is const and may run from any thread.
class LexicalGuard {
 public:
  virtual ~LexicalGuard() = default;
  virtual GuardVerdict Check(std::string_view query, std::string_view candidate) const = 0;
};

struct LexicalGuardOptions {
  // Empty paths mean the locations the build found (the Debian packages and
  // the npm data that scripts/install-deps installs).
  // WordNet 3.0 database files (Debian wordnet-base): index.*, data.*, *.exc.
  std::string wordnet_dir;
  // MeCab dictionary directory (Debian mecab-ipadic-utf8); empty: MeCab's
  // configured default.
  std::string mecab_dicdir;
  // sudachi-synonyms-dictionary.json from the npm package
  // sudachi-synonyms-dictionary (installed under models/node_modules).
  std::string sudachi_synonyms_path;
  // Longer questions are refused ("unsupported") unread: the guard's cost
  // stays bounded and long prompts are rarely paraphrases of each other.
  size_t max_query_bytes = 2048;

  // English only; Japanese is unaffected by the three rules below.
  // Inserted words: words on one side only whose other side has nothing left
  // unmatched (an insertion, not a replacement: "reset my account password"
  // vs "reset my password"). Up to this many pass when each is a known,
  // generic word: in WordNet, no name, no unit, more noun and adjective
  // senses than verb senses (an inserted action, "remove the block", changes
  // the question) and no adverb sense ("turn off" vs "turn on": "on" is a
  // stop word, "off" is not). Verbs of asking ("apply for", "request") and
  // light verbs ("get", "take") never count: they are scaffolding.
  // 0 refuses every insertion. 1: measured on both halves of the dev set
  // (docs/semantic-eval.md).
  size_t max_inserted_words = 1;
  // Word alignment by embeddings: a one-sided word that WordNet does not
  // relate to anything may be matched with a one-sided word of the other
  // side whose single-word embedding cosine is at least min_word_similarity
  // ("freeze" / "lock"). Never for names, numbers, units, words WordNet does
  // not know, or WordNet antonyms. Null (the default): off. Measured with
  // use-lite it does not pay: single-word cosines rank siblings ("buy" /
  // "sell" 0.81, "freeze" / "unfreeze" 0.74) as high as paraphrases, so it
  // added false hits and no hits (docs/semantic-eval.md). The threshold is on
  // the embedder's own scale.
  std::shared_ptr<Embedder> word_embedder;
  double min_word_similarity = 0.8;
  // GuardVerdict::threshold_raise of a loose pass (either rule above).
  double loose_threshold_raise = 0.0;

  // An extra synonym source: a MyThes thesaurus .dat file (LibreOffice's,
  // Debian mythes-en-us). Only the plain single-word terms of a word's first
  // senses count, never for names, numbers or units, and never against a
  // WordNet antonym. Empty (the default): off. Measured on the dev set it
  // adds no hit, since the file is derived from WordNet itself
  // (docs/semantic-eval.md).
  std::string thesaurus_path;
  // Also take its "(similar term)" entries (adjective clusters).
  bool thesaurus_similar_terms = false;
};

// NotFound / Corruption when a resource is missing or unreadable. Loading
// reads about 45 MB of text once (well under a second); share the guard.
Result<std::unique_ptr<LexicalGuard>> NewLexicalGuard(const LexicalGuardOptions& options);

}  // namespace llmcache
