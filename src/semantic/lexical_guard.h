// Internals of the lexical guard (include/llmcache/lexical_guard.h) that the
// tests exercise directly: script detection and the English tokenizer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmcache::semantic {

enum class Script {
  kEmpty,     // nothing but spaces and punctuation
  kInvalid,   // not UTF-8
  kLatin,     // English (ASCII and Latin-1 letters)
  kJapanese,  // has kana or kanji (Latin words may be mixed in)
  kOther,     // another script the guard cannot judge
};
Script DetectScript(std::string_view text);

struct EnToken {
  enum class Kind : uint8_t { kWord, kNumber, kConnector };
  Kind kind = Kind::kWord;
  // Lowercase word; a normalized number ("1000", "3.12", "#2" for "second"
  // or "2nd"); or the connector ("to", "from", "than", "before", ...).
  std::string text;
  bool entity = false;    // capitalised mid-sentence, acronym, mixed case
  bool negation = false;  // not, no, never, without, n't, ...
  bool stop = false;      // stop word or question scaffolding
};

// Splits English text into tokens: contractions expanded ("can't" -> can,
// not), number words converted ("twenty-one" -> 21), currency and percent
// signs spelled out, letters and digits split ("3pm" -> 3, pm).
std::vector<EnToken> TokenizeEnglish(std::string_view text);

}  // namespace llmcache::semantic
