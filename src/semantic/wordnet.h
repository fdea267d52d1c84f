// A read-only WordNet 3.0 database loaded from the Debian wordnet-base files
// (index.{noun,verb,adj,adv}, data.*, *.exc; format in wndb(5)), kept compact:
// lemma -> sense list, and per synset only its pointers to other synsets.
// Glosses, frames and sentence data are skipped while reading.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "llmcache/status.h"

namespace llmcache::semantic {

enum class WnPos : uint8_t { kNoun = 0, kVerb = 1, kAdj = 2, kAdv = 3 };
inline constexpr int kWnPosCount = 4;

enum class WnRelation : uint8_t {
  kNone,
  kSynonym,  // share a synset
  kRelated,  // one safe hop apart (see Relate)
  kAntonym,  // WordNet marks one as the antonym of the other
};

// Synsets of one or more lemmas, gathered once and compared many times.
struct WnSenses {
  std::vector<uint32_t> main;  // the first WordNet::kAntonymSenses per part of speech
  std::vector<uint32_t> all;   // the first max_senses per part of speech
};

// Immutable after Load, so every const method is thread-safe.
class WordNet {
 public:
  // `dir` holds the database files. NotFound when one is missing.
  static Result<std::unique_ptr<WordNet>> Load(const std::filesystem::path& dir);

  // Base forms of a lowercase word in `pos` that the database lists (Morphy:
  // the exception list first, then the detachment rules). Appends to `out`.
  void Lemmas(std::string_view word, WnPos pos, std::vector<std::string>* out) const;

  // Synsets of a lemma in `pos`, most frequent sense first; empty if unknown.
  std::span<const uint32_t> Senses(std::string_view lemma, WnPos pos) const;
  bool Contains(std::string_view lemma) const { return index_.contains(lemma); }

  // True when every noun sense of `lemma` is an instance (a named place,
  // person, organisation: Tokyo, Osaka) and it has no other part of speech.
  bool IsInstance(std::string_view lemma) const;

  // How two lemmas (any part of speech) relate. Synonymy considers only the
  // first `kMaxSenses` senses of each, so a rare sense does not make two
  // everyday words equal. The safe hops: similar-to, also-see, derivation,
  // pertainym, participle, verb group, and verb hypernym/troponym. Noun
  // hypernyms are not safe ("apple" vs "fruit" ask different things), and
  // siblings (two hops) never count.
  // `max_senses` narrows synonymy further (units after a number: "second"
  // and "minute" share only a late sense, "moment").
  WnRelation Relate(std::string_view a, std::string_view b, size_t max_senses = kMaxSenses) const;

  // Relate, in parts: gather the senses of each side's lemmas once, then
  // compare (the lexical antonym pairs are IsAntonym's).
  void CollectSenses(std::string_view lemma, size_t max_senses, WnSenses* out) const;
  WnRelation RelateSenses(const WnSenses& a, const WnSenses& b) const;
  bool IsAntonym(std::string_view a, std::string_view b) const;
  // True when the first `noun_senses` noun senses (at most kAntonymSenses)
  // share a hypernym within two levels (dollar and euro are both monetary
  // units; Tokyo and Osaka both cities): swapping two such words swaps what
  // the question asks.
  bool SameKind(const WnSenses& a, const WnSenses& b, size_t noun_senses) const;

  size_t lemma_count() const { return index_.size(); }
  size_t synset_count() const { return ptr_begin_.empty() ? 0 : ptr_begin_.size() - 1; }

  static constexpr size_t kMaxSenses = 8;
  static constexpr size_t kAntonymSenses = 3;

 private:
  struct Pointer {
    uint32_t target;  // synset id
    // The wndb symbol as one char: '!' antonym, '@' hypernym, 'I' instance
    // hypernym (@i), 'i' instance hyponym (~i), else the symbol itself.
    char type;
  };
  struct LemmaSenses {
    uint32_t begin[kWnPosCount] = {0, 0, 0, 0};
    uint16_t count[kWnPosCount] = {0, 0, 0, 0};
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using ExceptionMap =
      std::unordered_map<std::string, std::vector<std::string>, Hash, std::equal_to<>>;

  WordNet() = default;
  // Synset byte offsets of each data file, ascending (they are positions in
  // the file): synset id = first_id[pos] + the offset's rank. Load time only.
  struct OffsetTable {
    std::vector<uint32_t> offsets[kWnPosCount];
    uint32_t first_id[kWnPosCount] = {0, 0, 0, 0};
    std::optional<uint32_t> Find(int pos, uint32_t offset) const;
  };
  Status LoadData(const std::filesystem::path& dir, OffsetTable* ids);
  Status LoadIndex(const std::filesystem::path& dir, const OffsetTable& ids);
  Status LoadExceptions(const std::filesystem::path& dir);
  void SensesOf(std::string_view lemma, size_t max_senses, std::vector<uint32_t>* out) const;

  std::unordered_map<std::string, LemmaSenses, Hash, std::equal_to<>> index_;
  std::vector<uint32_t> senses_;
  // Synset id -> its pointers, CSR style.
  std::vector<uint32_t> ptr_begin_;
  std::vector<Pointer> ptrs_;
  std::vector<uint8_t> synset_pos_;
  // Lexical antonym pairs "a|b" (both orders).
  std::unordered_set<std::string, Hash, std::equal_to<>> antonyms_;
  ExceptionMap exceptions_[kWnPosCount];
};

}  // namespace llmcache::semantic
