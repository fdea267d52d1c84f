#include "semantic/lexical_guard.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "llmcache/lexical_guard.h"
#include "semantic/japanese_text.h"
#include "semantic/thesaurus.h"
#include "semantic/wordnet.h"

#ifndef LLMCACHE_DEFAULT_WORDNET_DIR
#define LLMCACHE_DEFAULT_WORDNET_DIR ""
#endif
#ifndef LLMCACHE_DEFAULT_SUDACHI_SYNONYMS
#define LLMCACHE_DEFAULT_SUDACHI_SYNONYMS ""
#endif

namespace llmcache::semantic {
namespace {

template <size_t N>
bool In(const std::string_view (&set)[N], std::string_view w) {
  return std::find(std::begin(set), std::end(set), w) != std::end(set);
}

// Words that never decide what a question asks for: articles, pronouns,
// auxiliaries, most prepositions, and the scaffolding of questions ("how do
// I", "what is the way to", "steps", "please", "tell me").
constexpr std::string_view kStopWords[] = {
    "a", "an", "the", "this", "that", "these", "those", "there", "here", "it", "its", "i", "me",
    "my", "mine", "myself", "we", "us", "our", "ours", "you", "your", "yours", "yourself", "he",
    "him", "his", "she", "her", "they", "them", "their", "someone", "something", "anyone",
    "anything", "am", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did",
    "doing", "done", "have", "has", "had", "having", "will", "would", "shall", "should", "can",
    "could", "may", "might", "must", "of", "for", "in", "on", "at", "by", "with", "about", "as",
    "via", "per", "through", "during", "within", "across", "along", "among", "around", "and", "or",
    "but", "if", "so", "then", "also", "just", "only", "even", "still", "else", "how", "what",
    "which", "please", "tell", "show", "explain", "help", "know", "want", "need", "like", "let",
    "learn", "understand", "way", "ways", "step", "steps", "process", "procedure", "method",
    "methods", "guide", "instructions", "instruction", "tutorial", "tips", "possible", "any",
    "some", "each", "every", "very", "really", "actually", "kindly", "hi", "hello", "thanks",
    "thank", "ok", "okay", "able", "wondering", "question", "whether", "to", "into", "from", "vs",
    "versus", "towards", "toward", "until", "till", "ones",
    // Asking for an explanation rather than for a thing: "what does X
    // mean", "X explained", "the command to X", "where can I see X".
    "mean", "means", "meaning", "explained", "explanation", "command", "example", "examples",
    "definition", "define", "see", "check", "find", "look", "all", "exactly", "currently",
    // Light verbs: in a question they carry no meaning of their own, the
    // noun after them does ("get a refund", "take a day off", "go from A to
    // B", "make a booking" is "book"). Verbs that do decide the answer
    // (cancel, change, add, remove) are not here.
    "get", "gets", "got", "getting", "take", "takes", "took", "taking", "make", "makes", "making",
    "go", "goes", "going", "give", "gives",
    // Asking for information rather than naming what it is about.
    "info", "information", "detail", "details", "allowed", "permitted"};

// Stop words only in front of "way"/"method": "the best way to", "the right
// way to" (but "the best laptop" keeps "best").
constexpr std::string_view kWayAdjectives[] = {"best",        "easiest", "simplest", "fastest",
                                               "quickest",    "proper",  "correct",  "right",
                                               "recommended", "good",    "quick"};

constexpr std::string_view kNegations[] = {"not",     "no",     "never",   "without", "none",
                                           "nothing", "nobody", "neither", "nor",     "nowhere"};

// Asking where instead of when changes the answer; no synonyms allowed.
constexpr std::string_view kQuestionWords[] = {"where", "when", "who", "why", "whom", "whose"};

// Verbs that only say "I want this thing" in a question: "apply for paid
// leave", "take paid leave", "get paid leave", "取得", "申請", "取る".
constexpr std::string_view kRequestVerbs[] = {
    "apply", "application", "request", "take",     "get",  "obtain",   "claim",  "submit",
    "申請",  "取る",        "取得",    "申し込む", "申込", "申し込み", "もらう", "得る"};

constexpr std::string_view kUnits[] = {"zero",    "one",     "two",       "three",    "four",
                                       "five",    "six",     "seven",     "eight",    "nine",
                                       "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                       "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
constexpr std::string_view kTens[] = {"twenty", "thirty",  "forty",  "fifty",
                                      "sixty",  "seventy", "eighty", "ninety"};
constexpr std::string_view kOrdinals[] = {"first", "second", "third",    "fourth",
                                          "fifth", "sixth",  "seventh",  "eighth",
                                          "ninth", "tenth",  "eleventh", "twelfth"};

template <size_t N>
int IndexOf(const std::string_view (&set)[N], std::string_view w) {
  auto it = std::find(std::begin(set), std::end(set), w);
  return it == std::end(set) ? -1 : static_cast<int>(it - std::begin(set));
}

uint64_t ScaleOf(std::string_view w) {
  if (w == "hundred") return 100;
  if (w == "thousand") return 1000;
  if (w == "million") return 1000000;
  if (w == "billion") return 1000000000;
  return 0;
}

bool IsNumberWord(std::string_view w) {
  return IndexOf(kUnits, w) >= 0 || IndexOf(kTens, w) >= 0 || ScaleOf(w) != 0;
}

// Strict UTF-8 decoding (no overlongs, surrogates or values past U+10FFFF).
bool NextCodePoint(std::string_view s, size_t* i, char32_t* cp) {
  auto b0 = static_cast<unsigned char>(s[*i]);
  if (b0 < 0x80) {
    *cp = b0;
    ++*i;
    return true;
  }
  int len = (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : (b0 & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || *i + len > s.size()) return false;
  char32_t v = b0 & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    auto b = static_cast<unsigned char>(s[*i + k]);
    if ((b & 0xC0) != 0x80) return false;
    v = (v << 6) | (b & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return false;
  *cp = v;
  *i += len;
  return true;
}

bool IsJapaneseChar(char32_t c) {
  return (c >= 0x3040 && c <= 0x30FF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) ||
         (c >= 0xFF66 && c <= 0xFF9F);
}
bool IsLatinLetter(char32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7);
}
// Punctuation, symbols, spaces and digits of any width: neutral to language.
bool IsNeutral(char32_t c) {
  return c < 0x80 || (c >= 0x80 && c <= 0xBF) || c == 0xD7 || c == 0xF7 ||
         (c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
         (c >= 0xFF00 && c <= 0xFF65) || (c >= 0xFE00 && c <= 0xFE6F) || c >= 0x1F000;
}

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "007" -> "7", "0.5" stays; versions keep their dots ("3.10" != "3.1").
std::string NormalizeDigits(std::string s) {
  size_t nz = 0;
  while (nz + 1 < s.size() && s[nz] == '0' && IsDigit(s[nz + 1])) ++nz;
  return s.substr(nz);
}

// Joins Title-Case / contraction handling: emits the word (and a "not" for
// "n't") with its case features.
void EmitWord(std::string_view original, bool sentence_start, std::vector<EnToken>* out) {
  std::string word(original);
  // Curly apostrophes become straight ones.
  for (size_t p; (p = word.find("\xE2\x80\x99")) != std::string::npos;) word.replace(p, 3, "'");
  bool negated = false;
  std::string lower = LowerAscii(word);
  if (lower.size() > 3 && lower.ends_with("n't")) {
    word.resize(word.size() - 3);
    lower.resize(lower.size() - 3);
    if (lower == "ca") lower = "can";
    if (lower == "wo") lower = "will";
    if (lower == "sha") lower = "shall";
    negated = true;
  } else if (size_t apos = lower.find('\''); apos != std::string::npos) {
    word.resize(apos);
    lower.resize(apos);
  } else if (lower == "cannot") {
    lower = "can";
    negated = true;
  }
  if (lower.empty()) return;
  EnToken t;
  t.text = lower;
  size_t letters = 0, upper = 0;
  bool inner_upper = false;
  for (size_t k = 0; k < word.size(); ++k) {
    if (!IsAsciiAlpha(word[k])) continue;
    ++letters;
    bool u = word[k] >= 'A' && word[k] <= 'Z';
    upper += u;
    inner_upper |= u && k > 0;
  }
  bool first_upper = !word.empty() && word[0] >= 'A' && word[0] <= 'Z';
  bool acronym = letters >= 2 && upper == letters;
  t.entity = acronym || (inner_upper && !acronym) || (first_upper && !sentence_start);
  if (In(kNegations, lower)) t.negation = true;
  if (In(kStopWords, lower) || t.negation) {
    t.stop = true;
    t.entity = false;
  }
  if (lower == "to" || lower == "into" || lower == "towards" || lower == "toward" ||
      lower == "from" || lower == "than" || lower == "before" || lower == "after" ||
      lower == "vs" || lower == "versus") {
    t.kind = EnToken::Kind::kConnector;
  }
  out->push_back(std::move(t));
  if (negated) out->push_back({EnToken::Kind::kWord, "not", false, true, true});
}

// Number words to digits: "twenty one" -> 21, "three hundred" -> 300,
// "first" -> #1; "second" stays a word after a number or "a" ("5 seconds").
void MergeNumberWords(std::vector<EnToken>* tokens) {
  std::vector<EnToken> out;
  for (size_t i = 0; i < tokens->size(); ++i) {
    EnToken& t = (*tokens)[i];
    // "one" alone is mostly "a" or a pronoun ("reserve one", "for one
    // dollar"); only "twenty one", "one hundred" count as numbers.
    bool lone_one = t.text == "one" &&
                    (i + 1 >= tokens->size() || !IsNumberWord((*tokens)[i + 1].text)) &&
                    (out.empty() || out.back().kind != EnToken::Kind::kNumber);
    if (lone_one) {
      t.stop = true;
      out.push_back(std::move(t));
      continue;
    }
    if (t.kind == EnToken::Kind::kWord && IsNumberWord(t.text)) {
      uint64_t total = 0, current = 0;
      size_t j = i;
      while (j < tokens->size() && (*tokens)[j].kind == EnToken::Kind::kWord) {
        std::string_view w = (*tokens)[j].text;
        if (w == "and" && j + 1 < tokens->size() && IsNumberWord((*tokens)[j + 1].text) && j > i) {
          ++j;
          continue;
        }
        if (int u = IndexOf(kUnits, w); u >= 0) {
          current += static_cast<uint64_t>(u);
        } else if (int d = IndexOf(kTens, w); d >= 0) {
          current += static_cast<uint64_t>(20 + 10 * d);
        } else if (uint64_t scale = ScaleOf(w); scale == 100) {
          current = (current ? current : 1) * 100;
        } else if (scale != 0) {
          total += (current ? current : 1) * scale;
          current = 0;
        } else {
          break;
        }
        ++j;
      }
      EnToken n;
      n.kind = EnToken::Kind::kNumber;
      n.text = std::to_string(total + current);
      out.push_back(std::move(n));
      i = j - 1;
      continue;
    }
    if (t.kind == EnToken::Kind::kWord) {
      if (int o = IndexOf(kOrdinals, t.text); o >= 0) {
        bool unit = false;
        if (t.text == "second" && !out.empty()) {
          const EnToken& prev = out.back();
          unit = prev.kind == EnToken::Kind::kNumber || prev.text == "a" || prev.text == "per" ||
                 prev.text == "each" || prev.text == "every" || prev.text == "few";
        }
        if (!unit) {
          EnToken n;
          n.kind = EnToken::Kind::kNumber;
          n.text = "#" + std::to_string(o + 1);
          out.push_back(std::move(n));
          continue;
        }
      }
    }
    out.push_back(std::move(t));
  }
  // "best way to": the adjective is scaffolding too.
  for (size_t i = 0; i + 1 < out.size(); ++i) {
    std::string_view next = out[i + 1].text;
    if (In(kWayAdjectives, out[i].text) &&
        (next == "way" || next == "ways" || next == "method" || next == "methods")) {
      out[i].stop = true;
    }
  }
  *tokens = std::move(out);
}

}  // namespace

Script DetectScript(std::string_view text) {
  size_t latin = 0, japanese = 0, other = 0, digits = 0;
  for (size_t i = 0; i < text.size();) {
    char32_t cp;
    if (!NextCodePoint(text, &i, &cp)) return Script::kInvalid;
    if (cp >= '0' && cp <= '9') {
      ++digits;
    } else if (IsLatinLetter(cp)) {
      ++latin;
    } else if (IsJapaneseChar(cp)) {
      ++japanese;
    } else if (!IsNeutral(cp)) {
      ++other;
    }
  }
  if (japanese > 0 && other == 0) return Script::kJapanese;
  if (other > 0) return Script::kOther;
  if (latin + digits > 0) return Script::kLatin;
  return Script::kEmpty;
}

std::vector<EnToken> TokenizeEnglish(std::string_view text) {
  std::vector<EnToken> out;
  bool sentence_start = true;
  auto symbol = [&](std::string word) {
    out.push_back({EnToken::Kind::kWord, std::move(word), false, false, false});
    sentence_start = false;
  };
  for (size_t i = 0; i < text.size();) {
    char c = text[i];
    if (IsDigit(c)) {
      std::string number;
      while (i < text.size()) {
        if (IsDigit(text[i])) {
          number += text[i++];
        } else if ((text[i] == '.' || text[i] == ',' || text[i] == ':') && i + 1 < text.size() &&
                   IsDigit(text[i + 1])) {
          // "1,000" is a thousand; "3.12" a version or decimal; "3:30" a time.
          if (text[i] != ',') number += text[i];
          ++i;
        } else {
          break;
        }
      }
      std::string suffix;
      for (size_t k = i; k < text.size() && k < i + 2 && IsAsciiAlpha(text[k]); ++k) {
        suffix += static_cast<char>(text[k] | 0x20);
      }
      bool ordinal = suffix.size() == 2 &&
                     (suffix == "st" || suffix == "nd" || suffix == "rd" || suffix == "th") &&
                     (i + 2 >= text.size() || !IsAsciiAlpha(text[i + 2]));
      EnToken t;
      t.kind = EnToken::Kind::kNumber;
      t.text = (ordinal ? "#" : "") + NormalizeDigits(number);
      if (ordinal) i += 2;
      out.push_back(std::move(t));
      sentence_start = false;
      continue;
    }
    auto b = static_cast<unsigned char>(c);
    bool letter = IsAsciiAlpha(c);
    if (!letter && b >= 0x80) {
      size_t j = i;
      char32_t cp = 0;
      if (!NextCodePoint(text, &j, &cp)) {
        ++i;
        continue;
      }
      if (!IsLatinLetter(cp)) {
        if (cp == 0x20AC) symbol("euro");
        if (cp == 0xA3) symbol("pound");
        if (cp == 0xA5) symbol("yen");
        i = j;  // quotes, dashes and other symbols separate words

        continue;
      }
      letter = true;
    }
    if (letter) {
      size_t start = i;
      while (i < text.size()) {
        char d = text[i];
        if (IsAsciiAlpha(d)) {
          ++i;
        } else if (static_cast<unsigned char>(d) >= 0x80) {
          size_t j = i;
          char32_t cp = 0;
          if (!NextCodePoint(text, &j, &cp)) break;
          bool apostrophe = cp == 0x2019 && j < text.size() && IsAsciiAlpha(text[j]);
          if (!IsLatinLetter(cp) && !apostrophe) break;
          i = j;
        } else if (d == '\'' && i + 1 < text.size() && IsAsciiAlpha(text[i + 1])) {
          ++i;
        } else {
          break;
        }
      }
      // "C++", "C#", "F#" are names of their own.
      while (i < text.size() && (text[i] == '+' || text[i] == '#')) ++i;
      EmitWord(text.substr(start, i - start), sentence_start, &out);
      sentence_start = false;
      continue;
    }
    switch (c) {
      case '.':
      case '?':
      case '!':
      case ':':
      case ';':
      case '\n':
        sentence_start = true;
        break;
      case '$':
        symbol("dollar");
        break;
      case '%':
        symbol("percent");
        break;
      case '/':
        out.push_back({EnToken::Kind::kConnector, "/", false, false, true});
        break;
      default:
        break;
    }
    ++i;
  }
  MergeNumberWords(&out);
  return out;
}

namespace {

GuardVerdict Pass() { return {true, "", ""}; }
GuardVerdict Refuse(std::string reason, std::string detail) {
  return {false, std::move(reason), std::move(detail)};
}

// The multiset of numbers must be equal on both sides.
std::optional<GuardVerdict> CompareNumbers(std::vector<std::string> a, std::vector<std::string> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (a == b) return std::nullopt;
  std::vector<std::string> only_a, only_b;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only_a));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(only_b));
  return Refuse("number",
                (only_a.empty() ? "-" : only_a[0]) + " vs " + (only_b.empty() ? "-" : only_b[0]));
}

// Direction roles of terms around order-sensitive connectors. A term with one
// role on one side and a conflicting role on the other means the pair was
// reversed ("USD to EUR" vs "EUR to USD", "A before B" vs "B before A",
// "ドルを円に" vs "円をドルに").
enum Role : char {
  kSource = 'S',
  kTarget = 'T',
  kObject = 'O',
  kEarlier = 'E',
  kLater = 'L',
  kMore = 'M',
  kLess = 'm'
};

bool Conflict(char a, char b) {
  auto is = [&](char x, char y) { return (a == x && b == y) || (a == y && b == x); };
  return is(kSource, kTarget) || is(kObject, kTarget) || is(kEarlier, kLater) || is(kMore, kLess);
}

using Roles = std::map<std::string, char>;

std::optional<GuardVerdict> CompareRoles(const Roles& a, const Roles& b) {
  for (const auto& [term, role] : a) {
    auto it = b.find(term);
    if (it != b.end() && Conflict(role, it->second)) {
      return Refuse("order", term + " swapped sides");
    }
  }
  return std::nullopt;
}

// Terms present on both sides, as positions (a_pos[k], b_pos[k]). Two of them
// in the opposite order on the other side, when they are things of one kind,
// swap what is asked ("euros for one dollar" vs "dollars for one euro").
template <class SameKind>
std::optional<GuardVerdict> CompareSwaps(const std::vector<size_t>& a_pos,
                                         const std::vector<size_t>& b_pos,
                                         const std::vector<std::string>& names,
                                         SameKind&& same_kind) {
  for (size_t i = 0; i < a_pos.size(); ++i) {
    for (size_t j = 0; j < a_pos.size(); ++j) {
      if (a_pos[i] < a_pos[j] && b_pos[i] > b_pos[j] && same_kind(i, j)) {
        return Refuse("order", names[i] + " and " + names[j] + " swapped");
      }
    }
  }
  return std::nullopt;
}

class LexicalGuardImpl final : public LexicalGuard {
 public:
  LexicalGuardImpl(std::unique_ptr<WordNet> wn, std::unique_ptr<JapaneseText> ja,
                   std::unique_ptr<Thesaurus> thesaurus, const LexicalGuardOptions& o)
      : wn_(std::move(wn)),
        ja_(std::move(ja)),
        thesaurus_(std::move(thesaurus)),
        max_bytes_(o.max_query_bytes),
        max_inserted_(o.max_inserted_words),
        word_embedder_(o.word_embedder),
        min_word_similarity_(o.min_word_similarity),
        loose_raise_(o.loose_threshold_raise) {}

  GuardVerdict Check(std::string_view query, std::string_view candidate) const override {
    if (query.size() > max_bytes_ || candidate.size() > max_bytes_) {
      return Refuse("unsupported", "longer than " + std::to_string(max_bytes_) + " bytes");
    }
    Script sq = DetectScript(query), sc = DetectScript(candidate);
    if (sq == Script::kInvalid || sc == Script::kInvalid)
      return Refuse("unsupported", "invalid UTF-8");
    if (sq == Script::kEmpty || sc == Script::kEmpty) return Refuse("unsupported", "empty");
    if (Normalized(query) == Normalized(candidate)) return Pass();
    if (sq != sc) return Refuse("language", "mixed languages");
    if (sq == Script::kLatin) return CheckEnglish(query, candidate);
    if (sq == Script::kJapanese) return CheckJapanese(query, candidate);
    return Refuse("unsupported", "script not supported");
  }

 private:
  struct Word {
    std::string text;
    std::vector<std::string> lemmas;  // empty: unknown to WordNet
    bool entity = false;
    bool unit = false;  // follows a number: "5 seconds" is not "5 minutes"
    WnSenses senses;    // of all lemmas; units keep only their first sense
  };
  struct EnSide {
    std::vector<Word> words;  // content words and entities
    std::vector<std::string> numbers;
    int negations = 0;
    Roles roles;
  };

  // Case, runs of spaces and the final punctuation never change a question
  // (inner punctuation may: "3.5" is not "35").
  static std::string Normalized(std::string_view s) {
    std::string out;
    bool space = false;
    for (char c : s) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        space = !out.empty();
        continue;
      }
      if (space) out += ' ';
      space = false;
      out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    while (!out.empty() &&
           (out.back() == '?' || out.back() == '.' || out.back() == '!' || out.back() == ' ')) {
      out.pop_back();
    }
    return out;
  }

  EnSide AnalyzeEnglish(std::string_view text) const {
    EnSide side;
    std::vector<EnToken> tokens = MergeCollocations(TokenizeEnglish(text));
    for (size_t i = 0; i < tokens.size(); ++i) {
      const EnToken& t = tokens[i];
      if (t.kind == EnToken::Kind::kNumber) {
        side.numbers.push_back(t.text);
        continue;
      }
      if (t.negation) ++side.negations;
      bool content_connector = t.text == "before" || t.text == "after" || t.text == "than";
      if (t.stop && !content_connector) continue;
      Word w;
      w.text = t.text;
      for (int pos = 0; pos < kWnPosCount; ++pos) {
        wn_->Lemmas(t.text, static_cast<WnPos>(pos), &w.lemmas);
      }
      w.unit = i > 0 && tokens[i - 1].kind == EnToken::Kind::kNumber;
      for (const std::string& lemma : w.lemmas) {
        wn_->CollectSenses(lemma, w.unit ? 1 : WordNet::kMaxSenses, &w.senses);
      }
      w.entity = t.entity ||
                 (!w.lemmas.empty() && wn_->IsInstance(w.lemmas.front()) && w.lemmas.size() == 1);
      side.words.push_back(std::move(w));
    }
    side.roles = EnglishRoles(tokens);
    return side;
  }

  // Two words WordNet knows as one ("New York", "credit card", "sick
  // leave") become one term, so "New York" is a place, not "new" + "york".
  std::vector<EnToken> MergeCollocations(std::vector<EnToken> tokens) const {
    std::vector<EnToken> out;
    std::vector<std::string> lemmas;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i + 1 < tokens.size()) {
        const EnToken& x = tokens[i];
        const EnToken& y = tokens[i + 1];
        bool words =
            x.kind == EnToken::Kind::kWord && y.kind == EnToken::Kind::kWord && !x.stop && !y.stop;
        if (words) {
          std::string joined = x.text + "_" + y.text;
          lemmas.clear();
          wn_->Lemmas(joined, WnPos::kNoun, &lemmas);
          if (!lemmas.empty()) {
            EnToken merged = x;
            merged.text = std::move(joined);
            merged.entity = x.entity || y.entity;
            out.push_back(std::move(merged));
            ++i;
            continue;
          }
        }
      }
      out.push_back(std::move(tokens[i]));
    }
    return out;
  }

  // Roles around "to/into/from", "before/after", "than", "/".
  static Roles EnglishRoles(const std::vector<EnToken>& tokens) {
    Roles roles;
    auto salient = [&](size_t k) {
      const EnToken& t = tokens[k];
      return t.kind == EnToken::Kind::kNumber || (!t.stop && t.kind == EnToken::Kind::kWord);
    };
    // Nearest salient token to the right, skipping stop words (at most 2).
    auto right = [&](size_t i) -> const EnToken* {
      for (size_t k = i + 1; k < tokens.size() && k <= i + 3; ++k) {
        if (tokens[k].kind == EnToken::Kind::kConnector) return nullptr;
        if (salient(k)) return &tokens[k];
      }
      return nullptr;
    };
    // Only the token right before the connector ("USD to EUR").
    auto left = [&](size_t i) -> const EnToken* {
      return i > 0 && salient(i - 1) ? &tokens[i - 1] : nullptr;
    };
    bool has_from = std::any_of(tokens.begin(), tokens.end(),
                                [](const EnToken& t) { return t.text == "from"; });
    auto set = [&](const EnToken* t, char role) {
      if (t != nullptr) roles.emplace(t->text, role);
    };
    for (size_t i = 0; i < tokens.size(); ++i) {
      const EnToken& t = tokens[i];
      if (t.kind != EnToken::Kind::kConnector) continue;
      const std::string& c = t.text;
      if (c == "to" || c == "into" || c == "towards" || c == "toward" || c == "/") {
        set(right(i), kTarget);
        if (!has_from) set(left(i), kSource);
      } else if (c == "from") {
        set(right(i), kSource);
      } else if (c == "before") {
        set(left(i), kEarlier);
        set(right(i), kLater);
      } else if (c == "after") {
        set(left(i), kLater);
        set(right(i), kEarlier);
      } else if (c == "than") {
        // "A faster than B": A is before the comparative.
        if (i >= 2 && salient(i - 2)) set(&tokens[i - 2], kMore);
        set(right(i), kLess);
      }
    }
    return roles;
  }

  static bool RequestVerb(std::string_view w) { return In(kRequestVerbs, w); }

  // "upper case", "upper-case" and "uppercase" are one word.
  static std::string Squeezed(std::string_view w) {
    std::string out;
    for (char c : w) {
      if (c != '_' && c != '-') out += c;
    }
    return out;
  }

  static bool SameWord(const Word& a, const Word& b) {
    if (a.text == b.text || Squeezed(a.text) == Squeezed(b.text)) return true;
    for (const std::string& la : a.lemmas) {
      if (std::find(b.lemmas.begin(), b.lemmas.end(), la) != b.lemmas.end()) return true;
    }
    return Misspelling(a, b) || Misspelling(b, a);
  }

  // "pasword" for "password": a word WordNet does not know, one edit (a
  // letter dropped, added, changed or two swapped) from a known word of at
  // least 6 letters. Real words stay apart ("unable" / "enable" are both
  // known), and so do names.
  static bool Misspelling(const Word& typo, const Word& word) {
    if (!typo.lemmas.empty() || word.lemmas.empty() || typo.entity || word.entity) return false;
    const std::string& x = typo.text;
    const std::string& y = word.text;
    if (std::min(x.size(), y.size()) < 5 || y.size() < 6) return false;
    if (x.size() > y.size() + 1 || y.size() > x.size() + 1) return false;
    size_t i = 0;
    while (i < x.size() && i < y.size() && x[i] == y[i]) ++i;
    auto rest_equal = [&](size_t dx, size_t dy) {
      return std::string_view(x).substr(std::min(x.size(), i + dx)) ==
             std::string_view(y).substr(std::min(y.size(), i + dy));
    };
    if (x.size() == y.size()) {
      bool swapped = i + 1 < x.size() && x[i] == y[i + 1] && x[i + 1] == y[i] && rest_equal(2, 2);
      return swapped || rest_equal(1, 1);
    }
    return x.size() < y.size() ? rest_equal(0, 1) : rest_equal(1, 0);
  }

  // Finds a counterpart of a one-sided word among the other side's words.
  // Returns a refusal that no other rule may lift (an antonym, another
  // question word, a unit); otherwise sets *covered, and an uncovered word is
  // left to Resolve.
  // *by_one_sided says a counterpart was found among the other side's
  // one-sided words (a replacement), not only among the words both share.
  std::optional<GuardVerdict> Cover(const Word& w, const EnSide& other,
                                    const std::vector<const Word*>& other_only, bool* covered,
                                    bool* by_one_sided) const {
    *covered = false;
    *by_one_sided = false;
    std::string against = other_only.empty() ? "-" : other_only.front()->text;
    if (In(kQuestionWords, w.text)) {
      // "where do I request X" may be "how do I request X"; asking where
      // instead of when is another question.
      for (const Word& u : other.words) {
        if (In(kQuestionWords, u.text)) return Refuse("content_word", w.text + " vs " + u.text);
      }
      *covered = *by_one_sided = true;
      return std::nullopt;
    }
    if (w.lemmas.empty()) return std::nullopt;
    // A verb of asking says no more than the light verbs ("get", "take")
    // that are stop words: "apply for paid leave" is "get paid leave".
    bool request = IsRequestVerb(w);
    *covered = *by_one_sided = request;
    for (const Word& u : other.words) {
      // Only an opposite that replaces a word counts ("safe" vs "unsafe"),
      // not one next to it.
      bool one_sided = std::find(other_only.begin(), other_only.end(), &u) != other_only.end();
      if (one_sided && Antonyms(w, u)) return Refuse("negation", w.text + " vs " + u.text);
      bool found = false;
      switch (wn_->RelateSenses(w.senses, u.senses)) {
        case WnRelation::kAntonym:
          if (one_sided) return Refuse("negation", w.text + " vs " + u.text);
          break;
        case WnRelation::kSynonym:
          found = true;
          break;
        case WnRelation::kRelated:
          // Units stay strict: "5 seconds" is not "5 minutes".
          found = !w.unit && !u.unit;
          break;
        case WnRelation::kNone:
          found = ThesaurusSynonyms(w, u);
          break;
      }
      *covered |= found;
      *by_one_sided |= found && one_sided;
    }
    if (!*covered && w.unit) return Refuse("number", "unit " + w.text + " vs " + against);
    return std::nullopt;
  }

  // The optional thesaurus, where WordNet relates nothing: plain synonyms
  // only, never names or units (antonyms were refused before).
  bool ThesaurusSynonyms(const Word& w, const Word& u) const {
    if (!thesaurus_ || w.unit || u.unit || w.entity || u.entity) return false;
    if (thesaurus_->Synonyms(w.text, u.text)) return true;
    for (const std::string& la : w.lemmas) {
      for (const std::string& lb : u.lemmas) {
        if (thesaurus_->Synonyms(la, lb)) return true;
      }
    }
    return false;
  }

  static bool IsRequestVerb(const Word& w) {
    return RequestVerb(w.text) || std::any_of(w.lemmas.begin(), w.lemmas.end(),
                                              [](const std::string& l) { return RequestVerb(l); });
  }

  bool Antonyms(const Word& w, const Word& u) const {
    for (const std::string& la : w.lemmas) {
      for (const std::string& lb : u.lemmas) {
        if (wn_->IsAntonym(la, lb)) return true;
      }
    }
    return false;
  }

  // An inserted word that may be tolerated: known, no name or unit, and a
  // thing or a quality rather than an action (more noun and adjective senses
  // than verb senses; verbs of asking are covered before). Words with adverb
  // senses never are: particles and adverbs ("off", "out", "back", "today",
  // "late") are often the one word that differs from a stop word on the
  // other side ("turn on" / "turn off", "check-in" / "check-out").
  bool Insertable(const Word& w) const {
    if (w.lemmas.empty() || w.entity || w.unit || In(kQuestionWords, w.text)) return false;
    size_t verb = 0, thing = 0;
    for (const std::string& l : w.lemmas) {
      if (!wn_->Senses(l, WnPos::kAdv).empty()) return false;
      verb += wn_->Senses(l, WnPos::kVerb).size();
      thing += wn_->Senses(l, WnPos::kNoun).size() + wn_->Senses(l, WnPos::kAdj).size();
    }
    return thing > verb;
  }

  // Single-word vectors of `words` from the word embedder (cached); nullopt
  // when it fails.
  std::optional<std::vector<std::vector<float>>> WordVectors(
      const std::vector<std::string>& words) const {
    std::vector<std::vector<float>> out(words.size());
    std::vector<std::string> missing;
    std::vector<size_t> missing_at;
    {
      std::lock_guard<std::mutex> l(vectors_mu_);
      for (size_t i = 0; i < words.size(); ++i) {
        auto it = vectors_.find(words[i]);
        if (it != vectors_.end()) {
          out[i] = it->second;
        } else {
          missing.push_back(words[i]);
          missing_at.push_back(i);
        }
      }
    }
    if (missing.empty()) return out;
    std::vector<std::string> texts = missing;
    for (std::string& t : texts) std::replace(t.begin(), t.end(), '_', ' ');
    auto r = word_embedder_->Embed(texts);
    if (!r || r->size() != texts.size()) return std::nullopt;
    std::lock_guard<std::mutex> l(vectors_mu_);
    for (size_t k = 0; k < missing.size(); ++k) {
      out[missing_at[k]] = (*r)[k];
      if (vectors_.size() < kMaxCachedWords) vectors_.emplace(missing[k], (*r)[k]);
    }
    return out;
  }

  static double Cosine(const std::vector<float>& x, const std::vector<float>& y) {
    if (x.size() != y.size() || x.empty()) return -1;
    double dot = 0, nx = 0, ny = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      dot += double(x[i]) * y[i];
      nx += double(x[i]) * x[i];
      ny += double(y[i]) * y[i];
    }
    return nx > 0 && ny > 0 ? dot / std::sqrt(nx * ny) : -1;
  }

  // The words WordNet left uncovered on each side. A word replaced by another
  // ("paid" / "sick" in the same question) is refused unless the word
  // embedder aligns the two; what is left on one side only, with nothing
  // left on the other, is an insertion and may pass (max_inserted_words).
  // `shared_only_a/b`: one-sided words covered only by a word both sides
  // share ("keep" by "last" in "undo the last commit, keep changes"): they
  // may hide a replacement, so that side's opposite gets no insertions.
  GuardVerdict Resolve(std::vector<const Word*> open_a, std::vector<const Word*> open_b,
                       bool shared_only_a, bool shared_only_b) const {
    if (open_a.empty() && open_b.empty()) return Pass();
    bool loose = false;
    std::string loose_detail;  // says what a loose pass rests on
    auto alignable = [](const Word* w) { return !w->lemmas.empty() && !w->entity && !w->unit; };
    if (word_embedder_ && min_word_similarity_ > 0 && !open_a.empty() && !open_b.empty()) {
      std::vector<std::string> words;
      for (const Word* w : open_a) words.push_back(w->text);
      for (const Word* w : open_b) words.push_back(w->text);
      if (auto vectors = WordVectors(words)) {
        const size_t na = open_a.size();
        std::vector<bool> aligned(words.size(), false);
        for (size_t i = 0; i < na; ++i) {
          for (size_t j = na; j < words.size(); ++j) {
            const Word* x = open_a[i];
            const Word* y = open_b[j - na];
            if (!alignable(x) || !alignable(y)) continue;
            if (Cosine((*vectors)[i], (*vectors)[j]) >= min_word_similarity_) {
              if (!aligned[i]) loose_detail += " " + x->text + "~" + y->text;
              aligned[i] = aligned[j] = true;
            }
          }
        }
        std::vector<const Word*> rest_a, rest_b;
        for (size_t i = 0; i < words.size(); ++i) {
          if (aligned[i]) {
            loose = true;
          } else {
            (i < na ? rest_a : rest_b).push_back(i < na ? open_a[i] : open_b[i - na]);
          }
        }
        open_a = std::move(rest_a);
        open_b = std::move(rest_b);
      }
    }
    // Only content words are left open here: every other check agreed.
    auto refuse = [&] {
      std::string x = open_a.empty() ? "-" : open_a.front()->text;
      std::string y = open_b.empty() ? "-" : open_b.front()->text;
      GuardVerdict v = Refuse("content_word", x + " vs " + y);
      if (open_a.empty() || open_b.empty()) {
        const Word* w = open_a.empty() ? open_b.front() : open_a.front();
        if (w->lemmas.empty()) v.detail = "unknown word " + w->text;
      }
      v.overrulable = true;
      return v;
    };
    if (!open_a.empty() && !open_b.empty()) return refuse();
    const std::vector<const Word*>& inserted = open_a.empty() ? open_b : open_a;
    if (open_a.empty() ? shared_only_a : shared_only_b) return refuse();
    if (inserted.size() > max_inserted_) return refuse();
    for (const Word* w : inserted) {
      if (!Insertable(*w)) return refuse();
    }
    for (const Word* w : inserted) loose_detail += " +" + w->text;
    loose |= !inserted.empty();
    GuardVerdict v = Pass();
    if (loose) {
      v.threshold_raise = loose_raise_;
      v.detail = "loose:" + loose_detail;
    }
    return v;
  }

  GuardVerdict CheckEnglish(std::string_view query, std::string_view candidate) const {
    EnSide a = AnalyzeEnglish(query), b = AnalyzeEnglish(candidate);
    if (auto v = CompareNumbers(a.numbers, b.numbers)) return *v;
    if (a.negations != b.negations) {
      return Refuse("negation", std::to_string(a.negations) + " vs " + std::to_string(b.negations) +
                                    " negations");
    }
    std::vector<const Word*> a_only, b_only;
    for (const Word& w : a.words) {
      if (std::none_of(b.words.begin(), b.words.end(),
                       [&](const Word& u) { return SameWord(w, u); }))
        a_only.push_back(&w);
    }
    for (const Word& w : b.words) {
      if (std::none_of(a.words.begin(), a.words.end(),
                       [&](const Word& u) { return SameWord(w, u); }))
        b_only.push_back(&w);
    }
    // Entities allow no synonyms: "Tokyo" vs "Osaka", "AWS" vs "GCP".
    const Word* ea = nullptr;
    const Word* eb = nullptr;
    for (const Word* w : a_only)
      if (w->entity && !ea) ea = w;
    for (const Word* w : b_only)
      if (w->entity && !eb) eb = w;
    if (ea || eb) {
      return Refuse("entity", (ea ? ea->text : "-") + " vs " + (eb ? eb->text : "-"));
    }
    if (auto v = CompareRoles(a.roles, b.roles)) return *v;
    {
      std::vector<size_t> a_pos, b_pos;
      std::vector<std::string> names;
      std::vector<std::pair<const Word*, const Word*>> shared;
      for (size_t i = 0; i < a.words.size(); ++i) {
        for (size_t j = 0; j < b.words.size(); ++j) {
          if (SameWord(a.words[i], b.words[j])) {
            a_pos.push_back(i);
            b_pos.push_back(j);
            names.push_back(a.words[i].text);
            shared.emplace_back(&a.words[i], &b.words[j]);
            break;
          }
        }
      }
      auto same_kind = [&](size_t i, size_t j) {
        const Word& x = *shared[i].first;
        const Word& y = *shared[j].first;
        if (x.text == y.text) return false;
        // Connectors already said who is who ("to Osaka from Tokyo").
        auto has_role = [&](const Word& w) {
          return a.roles.contains(w.text) && b.roles.contains(w.text);
        };
        if (has_role(x) && has_role(y)) return false;
        // Two places, two currencies: yes; "VPN" and "Windows": no.
        // Names get all their main senses ("New York" is a city and a
        // state); common nouns only their first ("leave" and "request" are
        // both messages only in second senses).
        return wn_->SameKind(x.senses, y.senses,
                             x.entity && y.entity ? WordNet::kAntonymSenses : 1);
      };
      if (auto v = CompareSwaps(a_pos, b_pos, names, same_kind)) return *v;
    }
    std::vector<const Word*> open_a, open_b;
    bool shared_only_a = false, shared_only_b = false;
    // Every word is looked at before a question-word refusal is returned, so
    // an antonym or a unit later in the question still decides the reason
    // (those refusals are final; see GuardVerdict::overrulable).
    std::optional<GuardVerdict> question_word;
    auto cover_side = [&](const std::vector<const Word*>& only, const EnSide& other,
                          const std::vector<const Word*>& other_only,
                          std::vector<const Word*>* open, bool* shared_only) {
      for (const Word* w : only) {
        bool covered = false, by_one_sided = false;
        if (auto v = Cover(*w, other, other_only, &covered, &by_one_sided)) {
          if (v->reason != "content_word") return v;
          if (!question_word) question_word = std::move(v);
          continue;
        }
        if (!covered) open->push_back(w);
        *shared_only |= covered && !by_one_sided;
      }
      return std::optional<GuardVerdict>();
    };
    if (auto v = cover_side(a_only, b, b_only, &open_a, &shared_only_a)) return *v;
    if (auto v = cover_side(b_only, a, a_only, &open_b, &shared_only_b)) return *v;
    if (question_word) return *question_word;
    return Resolve(std::move(open_a), std::move(open_b), shared_only_a, shared_only_b);
  }

  struct JaSide {
    std::vector<JaMorpheme> morphemes;
    std::vector<std::string> terms;                // content bases plus noun compounds
    std::vector<std::vector<size_t>> compound_of;  // morpheme -> compounds (index in terms)
    std::vector<std::string> numbers;
    int negations = 0;
    Roles roles;
  };

  JaSide AnalyzeJapanese(std::string_view text) const {
    JaSide side;
    side.morphemes = ja_->Analyze(text);
    const auto& ms = side.morphemes;
    side.compound_of.resize(ms.size());
    using K = JaMorpheme::Kind;
    auto salient = [&](size_t k) {
      return ms[k].kind == K::kContent || ms[k].kind == K::kEntity || ms[k].kind == K::kNumber;
    };
    for (size_t i = 0; i < ms.size(); ++i) {
      if (ms[i].kind == K::kNumber) side.numbers.push_back(ms[i].base);
      if (ms[i].kind == K::kNegation) ++side.negations;
      if (ms[i].kind == K::kContent || ms[i].kind == K::kEntity) side.terms.push_back(ms[i].base);
    }
    // Runs of nouns: "有給" + "休暇" is also the term "有給休暇".
    for (size_t i = 0; i < ms.size();) {
      size_t j = i;
      std::string compound;
      while (j < ms.size() && ms[j].noun && (ms[j].kind == K::kContent)) compound += ms[j++].base;
      if (j - i >= 2) {
        side.terms.push_back(compound);
        for (size_t k = i; k < j; ++k) side.compound_of[k].push_back(side.terms.size() - 1);
      }
      i = j == i ? i + 1 : j;
    }
    // "AからBまで/へ": A is the source, B the target; "AよりB" compares;
    // "AをBに" (両替, 変更): A becomes B. A lone "に" marks a time or a place.
    bool has_object = std::any_of(ms.begin(), ms.end(), [](const JaMorpheme& m) {
      return m.kind == K::kParticle && m.base == "を";
    });
    for (size_t i = 0; i < ms.size(); ++i) {
      if (ms[i].kind != K::kParticle || i == 0 || !salient(i - 1)) continue;
      const std::string& p = ms[i].base;
      if (p == "に" && !has_object) continue;
      char role = p == "から" ? kSource : p == "より" ? kLess : p == "を" ? kObject : kTarget;
      side.roles.emplace(ms[i - 1].base, role);
      if (role == kSource) {
        for (size_t k = i + 1; k < ms.size() && k <= i + 3; ++k) {
          if (salient(k)) {
            side.roles.emplace(ms[k].base, kTarget);
            break;
          }
        }
      }
    }
    return side;
  }

  bool JaCovered(const JaSide& side, size_t i, const JaSide& other) const {
    const std::string& base = side.morphemes[i].base;
    bool request = RequestVerb(base);
    for (const std::string& t : other.terms) {
      if (ja_->Synonyms(base, t) || (request && RequestVerb(t))) return true;
      for (size_t c : side.compound_of[i]) {
        if (side.terms[c] == t || ja_->Synonyms(side.terms[c], t)) return true;
      }
    }
    return false;
  }

  GuardVerdict CheckJapanese(std::string_view query, std::string_view candidate) const {
    JaSide a = AnalyzeJapanese(query), b = AnalyzeJapanese(candidate);
    if (a.morphemes.empty() || b.morphemes.empty()) return Refuse("unsupported", "MeCab failed");
    if (auto v = CompareNumbers(a.numbers, b.numbers)) return *v;
    if (a.negations != b.negations) {
      return Refuse("negation", std::to_string(a.negations) + " vs " + std::to_string(b.negations) +
                                    " negations");
    }
    using K = JaMorpheme::Kind;
    auto has_term = [](const JaSide& s, const std::string& t) {
      return std::find(s.terms.begin(), s.terms.end(), t) != s.terms.end();
    };
    for (const auto* pair : {&a, &b}) {
      const JaSide& side = *pair;
      const JaSide& other = pair == &a ? b : a;
      for (const JaMorpheme& m : side.morphemes) {
        if (m.kind == K::kEntity && !has_term(other, m.base)) {
          return Refuse("entity", m.base + " vs -");
        }
      }
    }
    if (auto v = CompareRoles(a.roles, b.roles)) return *v;
    {
      // Swapped units (1ドルは何円 vs 1円は何ドル), entities, or the two
      // halves of a noun compound (ドル円 vs 円ドル).
      std::vector<size_t> a_pos, b_pos;
      std::vector<std::string> names;
      for (size_t i = 0; i < a.morphemes.size(); ++i) {
        const JaMorpheme& m = a.morphemes[i];
        if (m.kind != K::kContent && m.kind != K::kEntity) continue;
        for (size_t j = 0; j < b.morphemes.size(); ++j) {
          if (b.morphemes[j].base == m.base && b.morphemes[j].kind == m.kind) {
            a_pos.push_back(i);
            b_pos.push_back(j);
            names.push_back(m.base);
            break;
          }
        }
      }
      auto same_kind = [&](size_t i, size_t j) {
        const JaMorpheme& x = a.morphemes[a_pos[i]];
        const JaMorpheme& y = a.morphemes[a_pos[j]];
        if (x.base == y.base) return false;
        // Particles already said who is who (大阪へ東京から).
        if (a.roles.contains(x.base) && b.roles.contains(x.base) && a.roles.contains(y.base) &&
            b.roles.contains(y.base)) {
          return false;
        }
        auto adjacent = [](size_t p, size_t q) { return p + 1 == q || q + 1 == p; };
        bool same_entity_kind = x.kind == K::kEntity && y.kind == K::kEntity &&
                                !x.entity_class.empty() && x.entity_class == y.entity_class;
        return same_entity_kind || (x.unit && y.unit) ||
               (x.noun && y.noun && adjacent(a_pos[i], a_pos[j]) && adjacent(b_pos[i], b_pos[j]));
      };
      if (auto v = CompareSwaps(a_pos, b_pos, names, same_kind)) return *v;
    }
    for (const JaMorpheme& m : a.morphemes) {
      if (!m.question) continue;
      for (const JaMorpheme& n : b.morphemes) {
        if (n.question && n.base != m.base) return Refuse("content_word", m.base + " vs " + n.base);
      }
    }
    for (const auto* pair : {&a, &b}) {
      const JaSide& side = *pair;
      const JaSide& other = pair == &a ? b : a;
      for (size_t i = 0; i < side.morphemes.size(); ++i) {
        const JaMorpheme& m = side.morphemes[i];
        if (m.kind != K::kContent || has_term(other, m.base)) continue;
        if (!JaCovered(side, i, other)) {
          // The last check: numbers, names, negation, order and question
          // words agreed. A counter or currency after a number (円 vs ドル)
          // is part of the number, as units are in English.
          GuardVerdict v = Refuse("content_word", m.base + " vs -");
          v.overrulable = !m.unit;
          return v;
        }
      }
    }
    return Pass();
  }

  std::unique_ptr<WordNet> wn_;
  std::unique_ptr<JapaneseText> ja_;
  std::unique_ptr<Thesaurus> thesaurus_;  // null: off
  size_t max_bytes_;
  size_t max_inserted_;
  std::shared_ptr<Embedder> word_embedder_;
  double min_word_similarity_;
  double loose_raise_;
  // Single-word vectors, kept: the vocabulary of questions is small. Never
  // erased, so the map stays bounded by kMaxCachedWords.
  static constexpr size_t kMaxCachedWords = 50000;
  mutable std::mutex vectors_mu_;
  mutable std::unordered_map<std::string, std::vector<float>> vectors_;
};

}  // namespace
}  // namespace llmcache::semantic

namespace llmcache {

Result<std::unique_ptr<LexicalGuard>> NewLexicalGuard(const LexicalGuardOptions& options) {
  std::string wordnet_dir =
      options.wordnet_dir.empty() ? LLMCACHE_DEFAULT_WORDNET_DIR : options.wordnet_dir;
  std::string synonyms = options.sudachi_synonyms_path.empty() ? LLMCACHE_DEFAULT_SUDACHI_SYNONYMS
                                                               : options.sudachi_synonyms_path;
  if (wordnet_dir.empty()) return Err(Status::NotFound("no WordNet directory configured"));
  if (synonyms.empty()) return Err(Status::NotFound("no Sudachi synonyms file configured"));
  auto wn = semantic::WordNet::Load(wordnet_dir);
  if (!wn) return Err(wn.error());
  auto ja = semantic::JapaneseText::Load(options.mecab_dicdir, synonyms);
  if (!ja) return Err(ja.error());
  std::unique_ptr<semantic::Thesaurus> thesaurus;
  if (!options.thesaurus_path.empty()) {
    semantic::ThesaurusOptions to;
    to.similar_terms = options.thesaurus_similar_terms;
    auto t = semantic::Thesaurus::Load(options.thesaurus_path, to);
    if (!t) return Err(t.error());
    thesaurus = std::move(*t);
  }
  return std::unique_ptr<LexicalGuard>(std::make_unique<semantic::LexicalGuardImpl>(
      std::move(*wn), std::move(*ja), std::move(thesaurus), options));
}

}  // namespace llmcache
