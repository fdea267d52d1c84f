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

#include "llmcache/status.h"

namespace llmcache {

struct GuardVerdict {
  bool pass = false;
  // Why a candidate was refused, one stable word for the metrics label:
  // "number", "entity", "negation", "order", "content_word", "language",
  // "unsupported". Empty when pass is true.
  std::string reason;
  // Human-readable detail for logs and `llmcache eval`, e.g. "sick vs paid".
  std::string detail;
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
};

// NotFound / Corruption when a resource is missing or unreadable. Loading
// reads about 45 MB of text once (well under a second); share the guard.
Result<std::unique_ptr<LexicalGuard>> NewLexicalGuard(const LexicalGuardOptions& options);

}  // namespace llmcache
