// A read-only English thesaurus in the MyThes format (LibreOffice's
// thesaurus, Debian mythes-en-us: th_en_US_v2.dat), an optional extra source
// of synonyms for the lexical guard.
//
// The .dat file is text: a first line naming the encoding, then entries
//   headword|N
//   (pos)|term|term|broader term (generic term)|opposite (antonym)|...
// with N sense lines each. Only the plain terms of a sense are kept (the
// synonyms); generic, similar and related terms and antonyms are dropped,
// because "apple" vs "fruit" or "buy" vs "sell" ask different things. The
// .idx file (byte offsets) is not needed: the whole file is read once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llmcache/status.h"

namespace llmcache::semantic {

struct ThesaurusOptions {
  // Only the first max_senses senses of a headword count, as with WordNet:
  // a rare sense must not make two everyday words equal.
  size_t max_senses = 8;
  // Multi-word terms ("time off") are dropped unless set; they are joined
  // with '_' like WordNet collocations.
  bool multi_word_terms = false;
  // Also keep "(similar term)" entries (adjective clusters).
  bool similar_terms = false;
  // Bounds on untrusted input: larger files, longer lines or more senses per
  // entry are Corruption, not a reason to allocate without limit.
  size_t max_file_bytes = 256u << 20;
  size_t max_line_bytes = 64u << 10;
  size_t max_entry_senses = 1000;
};

// Immutable after Load: every const method is thread-safe.
class Thesaurus {
 public:
  // NotFound when the file is missing; Corruption (naming the line) when it
  // is not a MyThes UTF-8 file or an entry is malformed or truncated.
  static Result<std::unique_ptr<Thesaurus>> Load(const std::string& dat_path,
                                                 const ThesaurusOptions& options = {});
  static Result<std::unique_ptr<Thesaurus>> Parse(std::string_view text,
                                                  const ThesaurusOptions& options = {});

  // True when one lowercase word is listed among the plain terms of one of
  // the other's first senses (either direction), in the same part of speech
  // (a sense line has one). A word is never its own synonym here.
  bool Synonyms(std::string_view a, std::string_view b) const;

  size_t headword_count() const { return headwords_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Ids = std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>>;

  Thesaurus() = default;
  uint32_t Intern(std::string term);
  bool Lists(std::string_view head, uint32_t term) const;

  Ids terms_;  // term -> id
  // Headword id -> [begin, end) into sense_begin_ (its kept senses).
  std::unordered_map<uint32_t, std::pair<uint32_t, uint32_t>> headwords_;
  // Sense -> [sense_begin_[s], sense_begin_[s + 1]) into sense_terms_.
  std::vector<uint32_t> sense_begin_ = {0};
  std::vector<uint32_t> sense_terms_;
};

}  // namespace llmcache::semantic
