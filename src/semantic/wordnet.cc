#include "semantic/wordnet.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <optional>

namespace llmcache::semantic {
namespace {

constexpr const char* kPosNames[kWnPosCount] = {"noun", "verb", "adj", "adv"};

Result<std::string> ReadWhole(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err(Status::NotFound("cannot open " + path.string()));
  std::string data;
  in.seekg(0, std::ios::end);
  data.resize(static_cast<size_t>(in.tellg()));
  in.seekg(0);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (!in) return Err(Status::IOError("cannot read " + path.string()));
  return data;
}

// Splits on single spaces, the only separator wndb uses.
class Fields {
 public:
  explicit Fields(std::string_view line) : rest_(line) {}
  bool Next(std::string_view* out) {
    while (!rest_.empty() && rest_.front() == ' ') rest_.remove_prefix(1);
    if (rest_.empty()) return false;
    size_t end = rest_.find(' ');
    *out = rest_.substr(0, end);
    rest_.remove_prefix(end == std::string_view::npos ? rest_.size() : end);
    return true;
  }

 private:
  std::string_view rest_;
};

template <class Fn>
void ForEachLine(std::string_view text, Fn&& fn) {
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    // The license header lines start with two spaces.
    if (line.empty() || line.front() == ' ') continue;
    fn(line);
  }
}

bool ParseUint(std::string_view s, int base, uint32_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

int PosOfChar(char c) {
  switch (c) {
    case 'n':
      return 0;
    case 'v':
      return 1;
    case 'a':
    case 's':
      return 2;
    case 'r':
      return 3;
    default:
      return -1;
  }
}

// Data file words carry case ("Tokyo") and adjective markers ("galore(ip)").
std::string NormalizeWord(std::string_view w) {
  if (size_t paren = w.find('('); paren != std::string_view::npos) w = w.substr(0, paren);
  std::string out(w);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

char PointerType(std::string_view symbol) {
  if (symbol == "@i") return 'I';
  if (symbol == "~i") return 'i';
  switch (symbol.front()) {
    case '!':
    case '@':
    case '~':
    case '&':
    case '+':
    case '^':
    case '$':
    case '\\':
    case '<':
      return symbol.size() == 1 ? symbol.front() : 0;
    default:
      return 0;  // meronyms, domains, entailment, cause: unused
  }
}

struct Rule {
  std::string_view suffix, ending;
};
// Morphy's detachment rules (wndb's morphy(7)).
constexpr Rule kNounRules[] = {{"s", ""},      {"ses", "s"},   {"xes", "x"},   {"zes", "z"},
                               {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}};
constexpr Rule kVerbRules[] = {{"s", ""},   {"ies", "y"}, {"es", "e"},  {"es", ""},
                               {"ed", "e"}, {"ed", ""},   {"ing", "e"}, {"ing", ""}};
constexpr Rule kAdjRules[] = {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}};

std::span<const Rule> RulesOf(WnPos pos) {
  switch (pos) {
    case WnPos::kNoun:
      return kNounRules;
    case WnPos::kVerb:
      return kVerbRules;
    case WnPos::kAdj:
      return kAdjRules;
    default:
      return {};
  }
}

}  // namespace

std::optional<uint32_t> WordNet::OffsetTable::Find(int pos, uint32_t offset) const {
  const std::vector<uint32_t>& v = offsets[pos];
  auto it = std::lower_bound(v.begin(), v.end(), offset);
  if (it == v.end() || *it != offset) return std::nullopt;
  return first_id[pos] + static_cast<uint32_t>(it - v.begin());
}

Result<std::unique_ptr<WordNet>> WordNet::Load(const std::filesystem::path& dir) {
  std::unique_ptr<WordNet> wn(new WordNet());
  OffsetTable ids;
  if (Status s = wn->LoadData(dir, &ids); !s.ok()) return Err(s);
  if (Status s = wn->LoadIndex(dir, ids); !s.ok()) return Err(s);
  if (Status s = wn->LoadExceptions(dir); !s.ok()) return Err(s);
  return wn;
}

namespace {

// Word `n` (1-based) of a data file line, normalized; empty if absent.
std::string WordOfLine(std::string_view line, uint32_t n) {
  Fields f(line);
  std::string_view tok;
  for (int i = 0; i < 4; ++i) f.Next(&tok);  // offset, lex_filenum, ss_type, w_cnt
  for (uint32_t i = 1; i < n; ++i) {
    f.Next(&tok);
    f.Next(&tok);
  }
  return f.Next(&tok) ? NormalizeWord(tok) : std::string();
}

}  // namespace

Status WordNet::LoadData(const std::filesystem::path& dir, OffsetTable* ids) {
  struct RawPointer {
    uint32_t from;
    uint32_t target_offset;
    uint8_t target_pos;
    char type;
    uint8_t source_word, target_word;
  };
  std::vector<RawPointer> raw;
  raw.reserve(300000);
  // The files stay in memory while loading: antonym pointers name words of
  // their synsets, read back from the synset's line.
  std::string texts[kWnPosCount];
  std::vector<std::string_view> lines;
  for (int pos = 0; pos < kWnPosCount; ++pos) {
    auto path = dir / (std::string("data.") + kPosNames[pos]);
    auto text = ReadWhole(path);
    if (!text) return text.error();
    texts[pos] = std::move(*text);
    ids->first_id[pos] = static_cast<uint32_t>(synset_pos_.size());
    Status bad;
    ForEachLine(texts[pos], [&](std::string_view line) {
      if (!bad.ok()) return;
      Fields f(line);
      std::string_view tok;
      uint32_t offset = 0, w_cnt = 0, p_cnt = 0;
      auto fail = [&] {
        bad = Status::Corruption(path.string() + ": bad line at offset " +
                                 std::string(line.substr(0, 8)));
      };
      if (!f.Next(&tok) || !ParseUint(tok, 10, &offset)) return fail();
      f.Next(&tok);  // lex_filenum
      f.Next(&tok);  // ss_type
      if (!f.Next(&tok) || !ParseUint(tok, 16, &w_cnt)) return fail();
      // Offsets ascend within a file (they are byte positions).
      if (!ids->offsets[pos].empty() && ids->offsets[pos].back() >= offset) return fail();
      uint32_t id = static_cast<uint32_t>(synset_pos_.size());
      synset_pos_.push_back(static_cast<uint8_t>(pos));
      ids->offsets[pos].push_back(offset);
      lines.push_back(line);
      for (uint32_t i = 0; i < 2 * w_cnt; ++i) {
        if (!f.Next(&tok)) return fail();  // word, lex_id
      }
      if (!f.Next(&tok) || !ParseUint(tok, 10, &p_cnt)) return fail();
      for (uint32_t i = 0; i < p_cnt; ++i) {
        std::string_view symbol, target, pos_char, source_target;
        uint32_t target_offset = 0, st = 0;
        if (!f.Next(&symbol) || !f.Next(&target) || !f.Next(&pos_char) || !f.Next(&source_target) ||
            !ParseUint(target, 10, &target_offset) || !ParseUint(source_target, 16, &st) ||
            pos_char.empty() || PosOfChar(pos_char.front()) < 0) {
          return fail();
        }
        char type = PointerType(symbol);
        if (type == 0) continue;
        raw.push_back({id, target_offset, static_cast<uint8_t>(PosOfChar(pos_char.front())), type,
                       static_cast<uint8_t>(st >> 8), static_cast<uint8_t>(st & 0xff)});
      }
    });
    if (!bad.ok()) return bad;
  }
  // Pointers come grouped by source synset, in id order.
  ptr_begin_.assign(synset_pos_.size() + 1, 0);
  ptrs_.reserve(raw.size());
  for (const RawPointer& r : raw) {
    std::optional<uint32_t> target = ids->Find(r.target_pos, r.target_offset);
    if (!target) continue;
    if (r.type == '!' && r.source_word >= 1 && r.target_word >= 1) {
      std::string a = WordOfLine(lines[r.from], r.source_word);
      std::string b = WordOfLine(lines[*target], r.target_word);
      if (!a.empty() && !b.empty()) {
        antonyms_.insert(a + "|" + b);
        antonyms_.insert(b + "|" + a);
      }
      // Kept as a synset pointer too: "unsafe" shares the synset of
      // "dangerous", the marked antonym of "safe".
    }
    ptrs_.push_back({*target, r.type});
    ++ptr_begin_[r.from + 1];
  }
  for (size_t i = 1; i < ptr_begin_.size(); ++i) ptr_begin_[i] += ptr_begin_[i - 1];
  return Status::OK();
}

Status WordNet::LoadIndex(const std::filesystem::path& dir, const OffsetTable& ids) {
  index_.reserve(160000);
  for (int pos = 0; pos < kWnPosCount; ++pos) {
    auto path = dir / (std::string("index.") + kPosNames[pos]);
    auto text = ReadWhole(path);
    if (!text) return text.error();
    Status bad;
    ForEachLine(*text, [&](std::string_view line) {
      if (!bad.ok()) return;
      Fields f(line);
      std::string_view lemma, tok;
      uint32_t synset_cnt = 0, p_cnt = 0;
      f.Next(&lemma);
      f.Next(&tok);  // pos
      if (!f.Next(&tok) || !ParseUint(tok, 10, &synset_cnt) || !f.Next(&tok) ||
          !ParseUint(tok, 10, &p_cnt)) {
        bad = Status::Corruption(path.string() + ": bad entry " + std::string(lemma));
        return;
      }
      for (uint32_t i = 0; i < p_cnt + 2; ++i) f.Next(&tok);  // symbols, sense/tagsense counts
      LemmaSenses& entry = index_[std::string(lemma)];
      entry.begin[pos] = static_cast<uint32_t>(senses_.size());
      for (uint32_t i = 0; i < synset_cnt; ++i) {
        uint32_t offset = 0;
        if (!f.Next(&tok) || !ParseUint(tok, 10, &offset)) break;
        if (auto id = ids.Find(pos, offset)) senses_.push_back(*id);
      }
      entry.count[pos] = static_cast<uint16_t>(senses_.size() - entry.begin[pos]);
    });
    if (!bad.ok()) return bad;
  }
  return Status::OK();
}

Status WordNet::LoadExceptions(const std::filesystem::path& dir) {
  for (int pos = 0; pos < kWnPosCount; ++pos) {
    auto path = dir / (std::string(kPosNames[pos]) + ".exc");
    auto text = ReadWhole(path);
    if (!text) return text.error();
    ForEachLine(*text, [&](std::string_view line) {
      Fields f(line);
      std::string_view inflected, base;
      if (!f.Next(&inflected)) return;
      auto& bases = exceptions_[pos][std::string(inflected)];
      while (f.Next(&base)) bases.emplace_back(base);
    });
  }
  return Status::OK();
}

std::span<const uint32_t> WordNet::Senses(std::string_view lemma, WnPos pos) const {
  auto it = index_.find(lemma);
  if (it == index_.end()) return {};
  int p = static_cast<int>(pos);
  return std::span<const uint32_t>(senses_).subspan(it->second.begin[p], it->second.count[p]);
}

void WordNet::Lemmas(std::string_view word, WnPos pos, std::vector<std::string>* out) const {
  auto add = [&](std::string_view base) {
    if (Senses(base, pos).empty()) return;
    if (std::find(out->begin(), out->end(), base) == out->end()) out->emplace_back(base);
  };
  if (auto it = exceptions_[static_cast<int>(pos)].find(word);
      it != exceptions_[static_cast<int>(pos)].end()) {
    for (const std::string& base : it->second) add(base);
  }
  add(word);
  std::string base;
  for (const Rule& rule : RulesOf(pos)) {
    if (word.size() <= rule.suffix.size() || !word.ends_with(rule.suffix)) continue;
    base.assign(word.substr(0, word.size() - rule.suffix.size()));
    base += rule.ending;
    add(base);
  }
}

bool WordNet::IsInstance(std::string_view lemma) const {
  auto it = index_.find(lemma);
  if (it == index_.end()) return false;
  const LemmaSenses& e = it->second;
  if (e.count[0] == 0 || e.count[1] + e.count[2] + e.count[3] != 0) return false;
  for (uint32_t id : Senses(lemma, WnPos::kNoun)) {
    bool instance = false;
    for (uint32_t p = ptr_begin_[id]; p < ptr_begin_[id + 1]; ++p) instance |= ptrs_[p].type == 'I';
    if (!instance) return false;
  }
  return true;
}

void WordNet::SensesOf(std::string_view lemma, size_t max_senses,
                       std::vector<uint32_t>* out) const {
  for (int pos = 0; pos < kWnPosCount; ++pos) {
    auto senses = Senses(lemma, static_cast<WnPos>(pos));
    out->insert(out->end(), senses.begin(),
                senses.begin() + static_cast<ptrdiff_t>(std::min(senses.size(), max_senses)));
  }
}

bool WordNet::IsAntonym(std::string_view a, std::string_view b) const {
  std::string key;
  key.reserve(a.size() + b.size() + 1);
  key.append(a).append("|").append(b);
  return antonyms_.contains(key);
}

void WordNet::CollectSenses(std::string_view lemma, size_t max_senses, WnSenses* out) const {
  SensesOf(lemma, kAntonymSenses, &out->main);
  SensesOf(lemma, max_senses, &out->all);
}

WnRelation WordNet::Relate(std::string_view a, std::string_view b, size_t max_senses) const {
  if (a == b) return WnRelation::kSynonym;
  if (IsAntonym(a, b)) return WnRelation::kAntonym;
  WnSenses sa, sb;
  CollectSenses(a, max_senses, &sa);
  CollectSenses(b, max_senses, &sb);
  return RelateSenses(sa, sb);
}

bool WordNet::SameKind(const WnSenses& a, const WnSenses& b, size_t noun_senses) const {
  auto ancestors = [&](const WnSenses& s) {
    std::vector<uint32_t> out;
    size_t used = 0;
    // `main` holds the first kAntonymSenses senses per part of speech: the
    // noun ones say what kind of thing a word names.
    for (uint32_t x : s.main) {
      if (synset_pos_[x] != static_cast<uint8_t>(WnPos::kNoun)) continue;
      if (used++ == noun_senses) break;
      std::vector<uint32_t> level = {x};
      for (int depth = 0; depth < 2; ++depth) {
        std::vector<uint32_t> next;
        for (uint32_t y : level) {
          for (uint32_t p = ptr_begin_[y]; p < ptr_begin_[y + 1]; ++p) {
            if (ptrs_[p].type == '@' || ptrs_[p].type == 'I') next.push_back(ptrs_[p].target);
          }
        }
        out.insert(out.end(), next.begin(), next.end());
        level = std::move(next);
      }
    }
    return out;
  };
  std::vector<uint32_t> pa = ancestors(a), pb = ancestors(b);
  for (uint32_t x : pa) {
    if (std::find(pb.begin(), pb.end(), x) != pb.end()) return true;
  }
  return false;
}

WnRelation WordNet::RelateSenses(const WnSenses& a, const WnSenses& b) const {
  auto contains = [](const std::vector<uint32_t>& v, uint32_t x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  auto points = [&](const std::vector<uint32_t>& from, const std::vector<uint32_t>& to) {
    for (uint32_t x : from) {
      for (uint32_t p = ptr_begin_[x]; p < ptr_begin_[x + 1]; ++p) {
        if (ptrs_[p].type == '!' && contains(to, ptrs_[p].target)) return true;
      }
    }
    return false;
  };
  // Antonymy through a synonym ("unsafe" is in the synset of "dangerous",
  // the antonym of "safe"), from the main senses only: "get" and "leave" are
  // opposites only in rare senses.
  if (points(a.main, b.main) || points(b.main, a.main)) return WnRelation::kAntonym;
  if (a.all.empty() || b.all.empty()) return WnRelation::kNone;
  for (uint32_t x : a.all) {
    if (contains(b.all, x)) return WnRelation::kSynonym;
  }
  auto hop = [&](const std::vector<uint32_t>& from, const std::vector<uint32_t>& to) {
    for (uint32_t x : from) {
      bool verb = synset_pos_[x] == static_cast<uint8_t>(WnPos::kVerb);
      for (uint32_t p = ptr_begin_[x]; p < ptr_begin_[x + 1]; ++p) {
        const Pointer& ptr = ptrs_[p];
        bool safe = ptr.type == '&' || ptr.type == '^' || ptr.type == '+' || ptr.type == '\\' ||
                    ptr.type == '<' || ptr.type == '$' ||
                    (verb && (ptr.type == '@' || ptr.type == '~'));
        if (safe && contains(to, ptr.target)) return true;
      }
    }
    return false;
  };
  if (hop(a.all, b.all) || hop(b.all, a.all)) return WnRelation::kRelated;
  return WnRelation::kNone;
}

}  // namespace llmcache::semantic
