#include "semantic/japanese_text.h"

#include <mecab.h>
#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace llmcache::semantic {
namespace {

// Question scaffolding ("…の方法を教えてください", "どうすればいい") and
// light nouns/verbs that carry no deciding meaning.
constexpr std::string_view kScaffolding[] = {
    "する",     "できる", "ある",   "いる",   "なる", "れる", "られる", "方法", "やり方",
    "仕方",     "手順",   "方",     "教える", "知る", "こと", "もの",   "ため", "よう",
    "くださる", "下さる", "お願い", "願う",   "思う", "良い", "いい",   "よい", "分かる",
    "わかる",   "どう",   "何",     "なに",   "いう", "言う", "際"};

bool IsScaffolding(std::string_view base) {
  return std::find(std::begin(kScaffolding), std::end(kScaffolding), base) !=
         std::end(kScaffolding);
}

// IPADIC gives some of them a kanji base form (いつ -> 何時), so the
// surface is checked too.
bool IsQuestionWord(std::string_view w) {
  return w == "どこ" || w == "いつ" || w == "誰" || w == "だれ" || w == "なぜ" || w == "なんで" ||
         w == "どうして";
}

std::vector<std::string_view> SplitCsv(std::string_view s) {
  std::vector<std::string_view> out;
  while (true) {
    size_t comma = s.find(',');
    out.push_back(s.substr(0, comma));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

// Decodes one UTF-8 code point; the guard has validated the text already.
char32_t Decode(std::string_view s, size_t* i) {
  auto c = static_cast<unsigned char>(s[*i]);
  int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len && *i + k < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[*i + k]) & 0x3F);
  }
  *i += len;
  return cp;
}

int KanjiDigit(char32_t cp) {
  switch (cp) {
    case U'〇':
    case U'零':
      return 0;
    case U'一':
      return 1;
    case U'二':
      return 2;
    case U'三':
      return 3;
    case U'四':
      return 4;
    case U'五':
      return 5;
    case U'六':
      return 6;
    case U'七':
      return 7;
    case U'八':
      return 8;
    case U'九':
      return 9;
    default:
      return -1;
  }
}

uint64_t KanjiUnit(char32_t cp) {
  switch (cp) {
    case U'十':
      return 10;
    case U'百':
      return 100;
    case U'千':
      return 1000;
    case U'万':
      return 10000;
    case U'億':
      return 100000000;
    case U'兆':
      return 1000000000000;
    default:
      return 0;
  }
}

// "十五" -> "15", "２０２４" -> "2024", "3万" -> "30000", "1.5" -> "1.5".
std::string NormalizeNumber(std::string_view text) {
  std::string digits;
  uint64_t total = 0, section = 0, current = 0;
  bool kanji_units = false, decimal = false;
  for (size_t i = 0; i < text.size();) {
    char32_t cp = Decode(text, &i);
    if (cp >= U'０' && cp <= U'９') cp = U'0' + (cp - U'０');
    if (cp == U'．' || cp == U'.') {
      decimal = true;
      digits += '.';
      continue;
    }
    int d = cp >= U'0' && cp <= U'9' ? static_cast<int>(cp - U'0') : KanjiDigit(cp);
    if (d >= 0) {
      digits += static_cast<char>('0' + d);
      current = current * 10 + static_cast<uint64_t>(d);
      continue;
    }
    uint64_t unit = KanjiUnit(cp);
    if (unit == 0) continue;  // separators such as "，"
    kanji_units = true;
    if (unit < 10000) {
      section += (current ? current : 1) * unit;
    } else {
      total += (section + current) * unit;
      section = 0;
    }
    current = 0;
  }
  if (decimal || !kanji_units) {
    // Leading zeros do not change a value ("05" is "5").
    size_t nz = digits.find_first_not_of('0');
    if (nz == std::string::npos) return digits.empty() ? std::string(text) : "0";
    if (digits[nz] == '.') --nz;
    return digits.substr(nz);
  }
  return std::to_string(total + section + current);
}

bool HasUpperAscii(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}
bool AllAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}
std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

JapaneseText::~JapaneseText() {
  delete tagger_;
  delete model_;
}

Result<std::unique_ptr<JapaneseText>> JapaneseText::Load(const std::string& mecab_dicdir,
                                                         const std::string& synonyms_path) {
  std::unique_ptr<JapaneseText> ja(new JapaneseText());
  std::string args = mecab_dicdir.empty() ? std::string("mecab") : "mecab -d " + mecab_dicdir;
  ja->model_ = MeCab::createModel(args.c_str());
  if (ja->model_ == nullptr) {
    return Err(Status::NotFound(std::string("MeCab dictionary: ") + MeCab::getLastError()));
  }
  ja->tagger_ = ja->model_->createTagger();
  if (ja->tagger_ == nullptr) return Err(Status::Internal("MeCab: cannot create a tagger"));

  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto error = parser.load(synonyms_path).get(root)) {
    return Err(Status::NotFound("Sudachi synonyms " + synonyms_path + ": " +
                                simdjson::error_message(error)));
  }
  simdjson::dom::array groups;
  if (root.get_array().get(groups))
    return Err(Status::Corruption("Sudachi synonyms: not an array"));
  uint32_t group_id = 0;
  for (simdjson::dom::element group : groups) {
    simdjson::dom::array items;
    if (group["items"].get_array().get(items)) {
      return Err(Status::Corruption("Sudachi synonyms: a group without items"));
    }
    for (simdjson::dom::element item : items) {
      std::string_view headword;
      int64_t expand = 0;
      if (item["midashi"].get_string().get(headword)) continue;
      // 2 marks a deleted (harmful) entry kept only as history.
      if (!item["expandControl"].get_int64().get(expand) && expand == 2) continue;
      auto& ids = ja->groups_[Lower(headword)];
      if (ids.empty() || ids.back() != group_id) ids.push_back(group_id);
    }
    ++group_id;
  }
  return ja;
}

bool JapaneseText::Synonyms(std::string_view a, std::string_view b) const {
  auto ia = groups_.find(a);
  auto ib = groups_.find(b);
  if (ia == groups_.end() || ib == groups_.end()) return false;
  for (uint32_t g : ia->second) {
    if (std::find(ib->second.begin(), ib->second.end(), g) != ib->second.end()) return true;
  }
  return false;
}

std::vector<JaMorpheme> JapaneseText::Analyze(std::string_view text) const {
  std::vector<JaMorpheme> out;
  MeCab::Lattice* lattice = model_->createLattice();
  if (lattice == nullptr) return out;
  std::string input(text);
  lattice->set_sentence(input.c_str());
  if (!tagger_->parse(lattice)) {
    delete lattice;
    return out;
  }
  std::string number;  // consecutive numeral morphemes
  auto flush_number = [&] {
    if (number.empty()) return;
    JaMorpheme n;
    n.kind = JaMorpheme::Kind::kNumber;
    n.base = NormalizeNumber(number);
    n.noun = true;
    out.push_back(std::move(n));
    number.clear();
  };
  for (const MeCab::Node* node = lattice->bos_node(); node != nullptr; node = node->next) {
    if (node->stat == MECAB_BOS_NODE || node->stat == MECAB_EOS_NODE) continue;
    std::string_view surface(node->surface, node->length);
    auto f = SplitCsv(node->feature);
    std::string_view pos = f[0], sub1 = f.size() > 1 ? f[1] : "", sub2 = f.size() > 2 ? f[2] : "";
    std::string_view base = f.size() > 6 && f[6] != "*" ? f[6] : surface;
    // IPADIC reads "いつ申請" as い (いる) + つ: put "いつ" back together.
    if (surface == "い" && node->next != nullptr && node->next->stat != MECAB_EOS_NODE &&
        std::string_view(node->next->surface, node->next->length) == "つ") {
      flush_number();
      JaMorpheme m;
      m.base = "いつ";
      m.question = true;
      out.push_back(std::move(m));
      node = node->next;
      continue;
    }
    if (pos == "名詞" && sub1 == "数") {
      number.append(surface);
      continue;
    }
    // "3.5": MeCab splits the point off as a symbol.
    if (!number.empty() && (surface == "." || surface == "．") && node->next &&
        node->next->stat != MECAB_EOS_NODE) {
      number.append(".");
      continue;
    }
    flush_number();
    JaMorpheme m;
    m.base = std::string(base);
    m.noun = pos == "名詞";
    if (AllAscii(surface) && std::any_of(surface.begin(), surface.end(), ::isalpha)) {
      m.kind = HasUpperAscii(surface) ? JaMorpheme::Kind::kEntity : JaMorpheme::Kind::kContent;
      m.base = Lower(surface);
    } else if (pos == "名詞" && sub1 == "固有名詞") {
      m.kind = JaMorpheme::Kind::kEntity;
      m.entity_class = std::string(sub2);
    } else if ((pos == "助動詞" && (base == "ない" || base == "ぬ" || base == "ん")) ||
               (pos == "形容詞" && base == "ない") ||
               (pos == "接頭詞" &&
                (base == "不" || base == "非" || base == "無" || base == "未"))) {
      m.kind = JaMorpheme::Kind::kNegation;
    } else if (pos == "名詞" && sub1 == "接尾" && base == "外") {
      m.kind = JaMorpheme::Kind::kNegation;  // 対象外: not covered
    } else if (IsQuestionWord(base) || IsQuestionWord(surface)) {
      m.kind = JaMorpheme::Kind::kOther;
      m.question = true;
      m.base = std::string(surface);
    } else if (pos == "助詞" && (base == "から" || base == "まで" || base == "へ" ||
                                 base == "より" || base == "を" || base == "に")) {
      m.kind = JaMorpheme::Kind::kParticle;
    } else if (IsScaffolding(base)) {
      m.kind = JaMorpheme::Kind::kOther;
    } else if (pos == "名詞" && sub1 == "接尾" && sub2 == "助数詞") {
      m.kind = JaMorpheme::Kind::kContent;  // units: 円, 時, 日, 人
      m.unit = true;
    } else if (pos == "名詞" && sub1 != "非自立" && sub1 != "代名詞" && sub1 != "接尾") {
      m.kind = JaMorpheme::Kind::kContent;
    } else if ((pos == "動詞" || pos == "形容詞") && sub1 == "自立") {
      m.kind = JaMorpheme::Kind::kContent;
    } else {
      m.kind = JaMorpheme::Kind::kOther;
    }
    out.push_back(std::move(m));
  }
  flush_number();
  delete lattice;
  return out;
}

}  // namespace llmcache::semantic
