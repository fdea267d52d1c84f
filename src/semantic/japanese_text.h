// Japanese side of the lexical guard: MeCab (IPADIC) morphemes sorted into
// the kinds the guard compares, and the Sudachi synonym groups.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llmcache/status.h"

namespace MeCab {
class Model;
class Tagger;
}  // namespace MeCab

namespace llmcache::semantic {

struct JaMorpheme {
  enum class Kind : uint8_t {
    kContent,   // noun, verb, adjective, counter: must agree or be synonyms
    kNumber,    // digits and kanji numerals, merged and converted ("十五" -> "15")
    kEntity,    // proper noun or Latin acronym/product name
    kNegation,  // ない, ぬ, ず, 不/非/無/未 prefixes
    kParticle,  // から/まで/へ: the order check reads them
    kOther,     // scaffolding and function words, ignored
  };
  Kind kind = Kind::kOther;
  std::string base;  // dictionary form (lowercase for Latin), or the number
  bool noun = false;
  bool unit = false;      // counter after a number: 円, ドル, 人, 時
  bool question = false;  // どこ, いつ, 誰, なぜ: kind of answer asked for
  // Proper nouns: IPADIC's class (地域, 組織, 人名, 一般); empty for Latin words.
  std::string entity_class;
};

// Immutable after Load; Analyze and the synonym lookups are thread-safe.
class JapaneseText {
 public:
  ~JapaneseText();

  // `mecab_dicdir` empty: MeCab's configured default dictionary.
  // `synonyms_path`: sudachi-synonyms-dictionary.json.
  static Result<std::unique_ptr<JapaneseText>> Load(const std::string& mecab_dicdir,
                                                    const std::string& synonyms_path);

  // Empty when MeCab fails on the text.
  std::vector<JaMorpheme> Analyze(std::string_view text) const;

  // True when the Sudachi dictionary puts both headwords in one group.
  bool Synonyms(std::string_view a, std::string_view b) const;

  size_t headword_count() const { return groups_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  JapaneseText() = default;

  MeCab::Model* model_ = nullptr;
  MeCab::Tagger* tagger_ = nullptr;
  std::unordered_map<std::string, std::vector<uint32_t>, Hash, std::equal_to<>> groups_;
};

}  // namespace llmcache::semantic
