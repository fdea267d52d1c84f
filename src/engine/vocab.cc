#include "engine/vocab.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <array>
#include <map>
#include <queue>
#include <unordered_map>
#include <unordered_set>

namespace llmcache::engine {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 "▁"

// Length of a UTF-8 sequence from its first byte; stray continuation bytes
// count as one (the tokenizers must make progress on any input).
size_t Utf8Len(uint8_t lead) {
  static constexpr std::array<uint8_t, 16> kLen = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A code point and where its bytes are in the source text. Malformed UTF-8
// decodes byte by byte as U+FFFD, keeping the original bytes for output.
struct Cpt {
  uint32_t cp;
  uint32_t offset;
  uint32_t len;
};

std::vector<Cpt> DecodeUtf8(std::string_view s) {
  std::vector<Cpt> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    const size_t n = Utf8Len(b0);
    uint32_t cp = 0xFFFD;
    size_t len = 1;
    if (n == 1 && b0 < 0x80) {
      cp = b0;
    } else if (n > 1 && i + n <= s.size()) {
      bool ok = true;
      uint32_t v = b0 & (0x7F >> n);
      for (size_t k = 1; k < n; ++k) {
        const auto b = static_cast<uint8_t>(s[i + k]);
        if ((b & 0xC0) != 0x80) {
          ok = false;
          break;
        }
        v = (v << 6) | (b & 0x3F);
      }
      if (ok) {
        cp = v;
        len = n;
      }
    }
    out.push_back({cp, static_cast<uint32_t>(i), static_cast<uint32_t>(len)});
    i += len;
  }
  return out;
}

// Character classes the pre-tokenizer patterns use: \p{L}, \p{N}, \s.
struct CharClass {
  bool letter = false;
  bool number = false;
  bool space = false;
};

CharClass Classify(uint32_t cp) {
  CharClass c;
  const auto cat = static_cast<UCharCategory>(u_charType(static_cast<UChar32>(cp)));
  c.letter = cat == U_UPPERCASE_LETTER || cat == U_LOWERCASE_LETTER || cat == U_TITLECASE_LETTER ||
             cat == U_MODIFIER_LETTER || cat == U_OTHER_LETTER;
  c.number = cat == U_DECIMAL_DIGIT_NUMBER || cat == U_LETTER_NUMBER || cat == U_OTHER_NUMBER;
  c.space = u_isUWhiteSpace(static_cast<UChar32>(cp));
  return c;
}

// Splits text into pre-tokens following the vocabulary's regex, written out
// as a scanner. Each function below mirrors one alternative of the pattern,
// tried in the pattern's order at every position.
class PreTokenizerScanner {
 public:
  PreTokenizerScanner(std::string_view text, PreTokenizer kind)
      : text_(text), cpts_(DecodeUtf8(text)), kind_(kind) {
    classes_.reserve(cpts_.size());
    for (const auto& c : cpts_) classes_.push_back(Classify(c.cp));
  }

  std::vector<std::string_view> Split() {
    std::vector<std::string_view> words;
    size_t pos = 0;
    while (pos < cpts_.size()) {
      const size_t len = kind_ == PreTokenizer::kGpt2 ? MatchGpt2(pos) : MatchLlama3(pos);
      const size_t begin = cpts_[pos].offset;
      const size_t end = pos + len < cpts_.size() ? cpts_[pos + len].offset : text_.size();
      words.push_back(text_.substr(begin, end - begin));
      pos += len;
    }
    return words;
  }

 private:
  uint32_t Cp(size_t i) const { return i < cpts_.size() ? cpts_[i].cp : 0xFFFFFFFF; }
  bool In(size_t i) const { return i < cpts_.size(); }
  bool Letter(size_t i) const { return In(i) && classes_[i].letter; }
  bool Number(size_t i) const { return In(i) && classes_[i].number; }
  bool Space(size_t i) const { return In(i) && classes_[i].space; }
  bool Other(size_t i) const { return In(i) && !Letter(i) && !Number(i) && !Space(i); }
  static bool Newline(uint32_t cp) { return cp == '\r' || cp == '\n'; }

  size_t Run(size_t i, bool (PreTokenizerScanner::*pred)(size_t) const) const {
    size_t j = i;
    while ((this->*pred)(j)) ++j;
    return j - i;
  }

  // 's 't 're 've 'm 'll 'd; case-insensitive for the Llama 3 family.
  size_t Contraction(size_t pos, bool ignore_case) const {
    if (Cp(pos) != '\'') return 0;
    auto lower = [&](size_t i) -> uint32_t {
      const uint32_t c = Cp(i);
      return ignore_case && c >= 'A' && c <= 'Z' ? c + 32 : c;
    };
    const uint32_t c1 = lower(pos + 1);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    const uint32_t c2 = lower(pos + 2);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
  }

  // \s+(?!\S)|\s+ : a whitespace run leaves its last character to the next
  // token when a non-space follows, unless that would leave nothing.
  size_t Whitespace(size_t pos) const {
    const size_t n = Run(pos, &PreTokenizerScanner::Space);
    if (n > 1 && In(pos + n)) return n - 1;
    return n;
  }

  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  size_t MatchGpt2(size_t pos) const {
    if (size_t n = Contraction(pos, false)) return n;
    const size_t sp = Cp(pos) == ' ' ? 1 : 0;
    if (Letter(pos + sp)) return sp + Run(pos + sp, &PreTokenizerScanner::Letter);
    if (Number(pos + sp)) return sp + Run(pos + sp, &PreTokenizerScanner::Number);
    if (Other(pos + sp)) return sp + Run(pos + sp, &PreTokenizerScanner::Other);
    if (Space(pos)) return Whitespace(pos);
    return 1;  // unreachable: every code point is in one class
  }

  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
  //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  // (Qwen2: \p{N} one digit at a time.)
  size_t MatchLlama3(size_t pos) const {
    if (size_t n = Contraction(pos, true)) return n;
    if (Letter(pos)) return Run(pos, &PreTokenizerScanner::Letter);
    if (!Newline(Cp(pos)) && !Number(pos) && Letter(pos + 1)) {
      return 1 + Run(pos + 1, &PreTokenizerScanner::Letter);
    }
    if (Number(pos)) {
      const size_t max_digits = kind_ == PreTokenizer::kQwen2 ? 1 : 3;
      return std::min(max_digits, Run(pos, &PreTokenizerScanner::Number));
    }
    const size_t sp = Cp(pos) == ' ' ? 1 : 0;
    if (Other(pos + sp)) {
      size_t n = sp + Run(pos + sp, &PreTokenizerScanner::Other);
      while (In(pos + n) && Newline(Cp(pos + n))) ++n;
      return n;
    }
    // \s*[\r\n]+ ends after the last newline inside the whitespace run.
    const size_t ws = Run(pos, &PreTokenizerScanner::Space);
    for (size_t k = ws; k > 0; --k) {
      if (Newline(Cp(pos + k - 1))) return k;
    }
    if (ws > 0) return Whitespace(pos);
    return 1;
  }

  std::string_view text_;
  std::vector<Cpt> cpts_;
  std::vector<CharClass> classes_;
  PreTokenizer kind_;
};

// GPT-2's reversible byte -> printable code point mapping.
struct ByteCoder {
  std::array<std::string, 256> byte_to_utf8;
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;

  ByteCoder() {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? b : next++;
      AppendUtf8(byte_to_utf8[b], cp);
      cp_to_byte[cp] = static_cast<uint8_t>(b);
    }
  }
  static const ByteCoder& Get() {
    static const ByteCoder coder;
    return coder;
  }
};

// One piece of the input: raw text still to tokenize, or an already
// recognised special token.
struct Fragment {
  TokenId token = kNoToken;  // kNoToken: raw text
  std::string_view text;
};

// Texts llama.cpp promotes to control tokens (end-of-generation and FIM).
const std::unordered_set<std::string_view> kControlLooking = {"<|eot_id|>",
                                                              "<|im_end|>",
                                                              "<|end|>",
                                                              "<|return|>",
                                                              "<|call|>",
                                                              "<|flush|>",
                                                              "<|calls|>",
                                                              "<end_of_turn>",
                                                              "<|endoftext|>",
                                                              "</s>",
                                                              "<|eom_id|>",
                                                              "<EOT>",
                                                              "_<EOT>",
                                                              "[EOT]",
                                                              "[EOS]",
                                                              "<|end_of_text|>",
                                                              "<end_of_utterance>",
                                                              "<eos>",
                                                              "<turn|>",
                                                              "<|tool_response>",
                                                              "<\xEF\xBD\x9C"
                                                              "end\xE2\x96\x81"
                                                              "of\xE2\x96\x81"
                                                              "sentence\xEF\xBD\x9C>",
                                                              "[e~[",
                                                              "<|fim_prefix|>",
                                                              "<fim-prefix>",
                                                              "<fim_prefix>",
                                                              "<PRE>",
                                                              "\xE2\x96\x81<PRE>",
                                                              "<|code_prefix|>",
                                                              "<|prefix|>",
                                                              "<|fim_suffix|>",
                                                              "<fim-suffix>",
                                                              "<fim_suffix>",
                                                              "<SUF>",
                                                              "\xE2\x96\x81<SUF>",
                                                              "<|code_suffix|>",
                                                              "<|suffix|>",
                                                              "<|fim_middle|>",
                                                              "<fim-middle>",
                                                              "<fim_middle>",
                                                              "<MID>",
                                                              "\xE2\x96\x81<MID>",
                                                              "<|code_middle|>",
                                                              "<|middle|>",
                                                              "<|fim_pad|>",
                                                              "<fim-pad>",
                                                              "<fim_pad>",
                                                              "<PAD>",
                                                              "[PAD]",
                                                              "<|fim_repo|>",
                                                              "<|repo_name|>",
                                                              "<fim-repo>",
                                                              "<REPO>",
                                                              "<reponame>",
                                                              "<|file_sep|>"};

// End-of-generation texts (llama.cpp's list, minus FIM).
const std::unordered_set<std::string_view> kEogTexts = {"<|eot_id|>",
                                                        "<|im_end|>",
                                                        "<|end|>",
                                                        "<|return|>",
                                                        "<|call|>",
                                                        "<|flush|>",
                                                        "<|calls|>",
                                                        "<end_of_turn>",
                                                        "<|endoftext|>",
                                                        "</s>",
                                                        "<|eom_id|>",
                                                        "<EOT>",
                                                        "_<EOT>",
                                                        "[EOT]",
                                                        "[EOS]",
                                                        "<|end_of_text|>",
                                                        "<end_of_utterance>",
                                                        "<eos>",
                                                        "<turn|>"};

struct Symbol {
  int prev;
  int next;
  const char* text;
  size_t n;
};

}  // namespace

struct Vocab::Impl {
  VocabType type = VocabType::kSpm;
  PreTokenizer pre = PreTokenizer::kNone;
  std::vector<std::string> texts;
  std::vector<float> scores;
  std::vector<TokenKind> kinds;
  std::unordered_map<std::string_view, TokenId> by_text;  // views into `texts`
  std::unordered_map<std::string, int> merge_rank;        // "left right" -> rank
  std::vector<TokenId> specials;  // control/user-defined/unknown, longest text first
  std::unordered_set<TokenId> eog;
  TokenId bos = kNoToken, eos = kNoToken, unk = kNoToken;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = false;
  bool ignore_merges = false;  // Llama 3: a pre-token that is a whole token is kept
  bool clean_spaces = false;

  TokenId Find(std::string_view s) const {
    auto it = by_text.find(s);
    return it == by_text.end() ? kNoToken : it->second;
  }

  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const;
  void TokenizeSpm(std::string_view text, std::vector<TokenId>& out) const;
  void TokenizeBpe(std::string_view text, std::vector<TokenId>& out) const;
  TokenId ByteToken(uint8_t byte) const;
};

// Splits out special tokens, longest first, as llama.cpp does. Control and
// unknown tokens are only recognised with parse_special; user-defined tokens
// always are.
std::vector<Fragment> Vocab::Impl::Partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags = {{kNoToken, text}};
  if (text.empty()) return {};
  for (TokenId id : specials) {
    const TokenKind k = kinds[id];
    if (!parse_special && (k == TokenKind::kControl || k == TokenKind::kUnknown)) continue;
    const std::string& needle = texts[id];
    if (needle.empty()) continue;
    std::vector<Fragment> next;
    next.reserve(frags.size());
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      for (size_t at; (at = rest.find(needle)) != std::string_view::npos;) {
        if (at > 0) next.push_back({kNoToken, rest.substr(0, at)});
        next.push_back({id, {}});
        rest.remove_prefix(at + needle.size());
      }
      if (!rest.empty()) next.push_back({kNoToken, rest});
    }
    frags = std::move(next);
  }
  return frags;
}

TokenId Vocab::Impl::ByteToken(uint8_t byte) const {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const char buf[6] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
  TokenId id = Find(std::string_view(buf, 6));
  if (id == kNoToken) id = Find(std::string_view(reinterpret_cast<const char*>(&byte), 1));
  return id == kNoToken ? unk : id;
}

// SentencePiece BPE: repeatedly merge the adjacent pair whose merged text is
// the highest-scoring token (ties: leftmost), then emit tokens, splitting
// pieces that are not tokens back along their merge history or into bytes.
void Vocab::Impl::TokenizeSpm(std::string_view text, std::vector<TokenId>& out) const {
  std::vector<Symbol> sym;
  for (size_t offs = 0; offs < text.size();) {
    const size_t n = std::min(Utf8Len(static_cast<uint8_t>(text[offs])), text.size() - offs);
    const int index = static_cast<int>(sym.size());
    sym.push_back({index - 1, offs + n == text.size() ? -1 : index + 1, text.data() + offs, n});
    offs += n;
  }
  struct Bigram {
    int left, right;
    float score;
    size_t size;
  };
  auto cmp = [](const Bigram& l, const Bigram& r) {
    return l.score < r.score || (l.score == r.score && l.left > r.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(cmp)> queue(cmp);
  std::map<std::string, std::pair<int, int>, std::less<>> rev_merge;

  auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    std::string merged(sym[left].text, sym[left].n + sym[right].n);
    const TokenId id = Find(merged);
    if (id == kNoToken) return;
    queue.push({left, right, scores[id], merged.size()});
    rev_merge[std::move(merged)] = {left, right};
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  auto resegment = [&](auto& self, const Symbol& s) -> void {
    const std::string_view piece(s.text, s.n);
    if (TokenId id = Find(piece); id != kNoToken) {
      out.push_back(id);
      return;
    }
    auto it = rev_merge.find(piece);
    if (it == rev_merge.end()) {
      for (char c : piece) out.push_back(ByteToken(static_cast<uint8_t>(c)));
      return;
    }
    self(self, sym[it->second.first]);
    self(self, sym[it->second.second]);
  };
  for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) resegment(resegment, sym[i]);
}

// Byte-level BPE: pre-tokenize, map bytes to printable code points, then
// apply merges by rank (lowest first, ties leftmost) within each pre-token.
void Vocab::Impl::TokenizeBpe(std::string_view text, std::vector<TokenId>& out) const {
  const ByteCoder& coder = ByteCoder::Get();
  PreTokenizerScanner scanner(text, pre);
  for (std::string_view raw : scanner.Split()) {
    std::string word;
    for (char c : raw) word += coder.byte_to_utf8[static_cast<uint8_t>(c)];
    if (ignore_merges) {
      if (TokenId id = Find(word); id != kNoToken) {
        out.push_back(id);
        continue;
      }
    }
    std::vector<Symbol> sym;
    for (size_t offs = 0; offs < word.size();) {
      const size_t n = std::min(Utf8Len(static_cast<uint8_t>(word[offs])), word.size() - offs);
      const int index = static_cast<int>(sym.size());
      sym.push_back({index - 1, offs + n == word.size() ? -1 : index + 1, word.data() + offs, n});
      offs += n;
    }
    struct Bigram {
      int left, right;
      int rank;
      std::string text;
    };
    auto cmp = [](const Bigram& l, const Bigram& r) {
      return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
    };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(cmp)> queue(cmp);
    std::string key;
    auto try_add = [&](int left, int right) {
      if (left == -1 || right == -1) return;
      key.assign(sym[left].text, sym[left].n);
      key += ' ';
      key.append(sym[right].text, sym[right].n);
      auto it = merge_rank.find(key);
      if (it == merge_rank.end()) return;
      queue.push(
          {left, right, it->second,
           std::string(sym[left].text, sym[left].n) + std::string(sym[right].text, sym[right].n)});
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.n == 0 || r.n == 0) continue;
      if (std::string_view(l.text, l.n + r.n) != b.text || l.text + l.n != r.text) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    for (const Symbol& s : sym) {
      if (s.n == 0) continue;
      const std::string_view piece(s.text, s.n);
      if (TokenId id = Find(piece); id != kNoToken) {
        out.push_back(id);
        continue;
      }
      // Not a token: fall back to single bytes when the vocabulary has them.
      for (char c : piece) {
        if (TokenId id = Find(std::string_view(&c, 1)); id != kNoToken) out.push_back(id);
      }
    }
  }
}

Vocab::Vocab(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Vocab::Vocab(Vocab&&) noexcept = default;
Vocab& Vocab::operator=(Vocab&&) noexcept = default;
Vocab::~Vocab() = default;

Result<Vocab> Vocab::FromGguf(const GgufFile& file) {
  auto impl = std::make_unique<Impl>();
  auto model = file.GetString("tokenizer.ggml.model");
  if (!model) return Err(model.error());
  auto tokens = file.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens) return Err(tokens.error());
  const size_t n = (*tokens)->size();
  if (n == 0 || n > static_cast<size_t>(INT32_MAX)) {
    return Err(Status::InvalidArgument("vocab: token count " + std::to_string(n) + " invalid"));
  }
  impl->texts.assign((*tokens)->begin(), (*tokens)->end());
  impl->scores.assign(n, 0.0f);
  if (file.Find("tokenizer.ggml.scores") != nullptr) {
    auto scores = file.GetF32Array("tokenizer.ggml.scores");
    if (!scores) return Err(scores.error());
    if (scores->size() != n) return Err(Status::InvalidArgument("vocab: scores count mismatch"));
    impl->scores = std::move(*scores);
  }
  impl->kinds.assign(n, TokenKind::kNormal);
  if (file.Find("tokenizer.ggml.token_type") != nullptr) {
    auto types = file.GetI32Array("tokenizer.ggml.token_type");
    if (!types) return Err(types.error());
    if (types->size() != n) return Err(Status::InvalidArgument("vocab: token_type count mismatch"));
    for (size_t i = 0; i < n; ++i) {
      const int32_t t = (*types)[i];
      impl->kinds[i] = t >= 0 && t <= 6 ? static_cast<TokenKind>(t) : TokenKind::kUndefined;
    }
  }
  // Like llama.cpp, treat well-known end-of-turn / fill-in-the-middle texts
  // as control tokens even when the converter typed them as normal (e.g.
  // "</s>" in Qwen2's vocabulary); otherwise parse_special would differ.
  for (size_t i = 0; i < n; ++i) {
    if (kControlLooking.contains(impl->texts[i])) impl->kinds[i] = TokenKind::kControl;
  }
  impl->by_text.reserve(n);
  for (size_t i = 0; i < n; ++i) impl->by_text.emplace(impl->texts[i], static_cast<TokenId>(i));

  if (*model == "llama") {
    impl->type = VocabType::kSpm;
    impl->bos = 1;
    impl->eos = 2;
    impl->unk = 0;
    impl->add_bos = true;
    impl->add_space_prefix = true;
  } else if (*model == "gpt2") {
    impl->type = VocabType::kBpe;
    impl->bos = impl->eos = 11;
    impl->clean_spaces = true;
    auto pre = file.GetString("tokenizer.ggml.pre");
    const std::string_view p = pre ? *pre : std::string_view("default");
    if (p == "llama-bpe" || p == "llama3" || p == "llama-v3") {
      impl->pre = PreTokenizer::kLlama3;
      impl->ignore_merges = true;
      impl->add_bos = true;
      impl->clean_spaces = false;
    } else if (p == "qwen2") {
      impl->pre = PreTokenizer::kQwen2;
      impl->clean_spaces = false;
    } else if (p == "gpt-2" || p == "default") {
      impl->pre = PreTokenizer::kGpt2;
    } else {
      return Err(Status::InvalidArgument("vocab: unsupported pre-tokenizer '" + std::string(p) +
                                         "' (supported: llama-bpe, qwen2, gpt-2)"));
    }
    auto merges = file.GetStringArray("tokenizer.ggml.merges");
    if (!merges) return Err(merges.error());
    impl->merge_rank.reserve((*merges)->size());
    for (size_t i = 0; i < (*merges)->size(); ++i) {
      impl->merge_rank.emplace(std::string((**merges)[i]), static_cast<int>(i));
    }
  } else {
    return Err(Status::InvalidArgument("vocab: unsupported tokenizer model '" +
                                       std::string(*model) + "' (supported: llama, gpt2)"));
  }

  auto read_id = [&](const char* key, TokenId* out) -> Status {
    if (file.Find(key) == nullptr) return Status::OK();
    auto v = file.GetI64(key);
    if (!v) return v.error();
    if (*v < 0) {
      *out = kNoToken;  // some converters write -1 for "none"
    } else if (static_cast<uint64_t>(*v) >= n) {
      return Status::InvalidArgument(std::string("vocab: ") + key + " " + std::to_string(*v) +
                                     " is outside the vocabulary");
    } else {
      *out = static_cast<TokenId>(*v);
    }
    return Status::OK();
  };
  TokenId eot = kNoToken, eom = kNoToken;
  for (auto [key, out] : {std::pair{"tokenizer.ggml.bos_token_id", &impl->bos},
                          std::pair{"tokenizer.ggml.eos_token_id", &impl->eos},
                          std::pair{"tokenizer.ggml.unknown_token_id", &impl->unk},
                          std::pair{"tokenizer.ggml.eot_token_id", &eot},
                          std::pair{"tokenizer.ggml.eom_token_id", &eom}}) {
    if (Status s = read_id(key, out); !s.ok()) return Err(s);
  }
  if (impl->unk >= static_cast<TokenId>(n)) impl->unk = kNoToken;
  for (auto [key, out] : {std::pair{"tokenizer.ggml.add_bos_token", &impl->add_bos},
                          std::pair{"tokenizer.ggml.add_eos_token", &impl->add_eos},
                          std::pair{"tokenizer.ggml.add_space_prefix", &impl->add_space_prefix}}) {
    if (file.Find(key) == nullptr) continue;
    auto v = file.GetBool(key);
    if (!v) return Err(v.error());
    *out = *v;
  }

  for (size_t i = 0; i < n; ++i) {
    const TokenKind k = impl->kinds[i];
    if (k == TokenKind::kControl || k == TokenKind::kUserDefined || k == TokenKind::kUnknown) {
      impl->specials.push_back(static_cast<TokenId>(i));
    }
  }
  std::stable_sort(impl->specials.begin(), impl->specials.end(), [&](TokenId a, TokenId b) {
    return impl->texts[a].size() > impl->texts[b].size();
  });

  for (TokenId id : {impl->eos, eot, eom}) {
    if (id >= 0 && id < static_cast<TokenId>(n)) impl->eog.insert(id);
  }
  for (std::string_view t : kEogTexts) {
    if (const TokenId id = impl->Find(t); id != kNoToken) impl->eog.insert(id);
  }
  return Vocab(std::move(impl));
}

std::vector<TokenId> Vocab::Tokenize(std::string_view text, bool add_special,
                                     bool parse_special) const {
  const Impl& v = *impl_;
  std::vector<TokenId> out;
  if (add_special && v.add_bos && v.bos != kNoToken) out.push_back(v.bos);
  bool prev_special = true;  // SPM: a space prefix at the start and after specials
  for (const Fragment& f : v.Partition(text, parse_special)) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    if (v.type == VocabType::kSpm) {
      std::string escaped;
      if (v.add_space_prefix && prev_special) escaped = kSpmSpace;
      for (char c : f.text) {
        if (c == ' ') {
          escaped += kSpmSpace;
        } else {
          escaped += c;
        }
      }
      v.TokenizeSpm(escaped, out);
      prev_special = false;
    } else {
      v.TokenizeBpe(f.text, out);
    }
  }
  if (add_special && v.add_eos && v.eos != kNoToken) out.push_back(v.eos);
  return out;
}

std::string Vocab::TokenToPiece(TokenId id, bool special) const {
  const Impl& v = *impl_;
  if (id < 0 || id >= static_cast<TokenId>(v.texts.size())) return {};
  const TokenKind k = v.kinds[id];
  const std::string& t = v.texts[id];
  if (k == TokenKind::kControl || k == TokenKind::kUnknown) return special ? t : std::string();
  if (k == TokenKind::kUserDefined) return t;
  if (k == TokenKind::kByte) {
    // "<0xXX>"
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>' || hex(t[3]) < 0 || hex(t[4]) < 0) {
      return {};
    }
    return std::string(1, static_cast<char>(hex(t[3]) * 16 + hex(t[4])));
  }
  if (k != TokenKind::kNormal) return {};
  std::string out;
  if (v.type == VocabType::kSpm) {
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
        out += ' ';
        i += kSpmSpace.size();
      } else {
        out += t[i++];
      }
    }
    return out;
  }
  const ByteCoder& coder = ByteCoder::Get();
  for (const Cpt& c : DecodeUtf8(t)) {
    auto it = coder.cp_to_byte.find(c.cp);
    if (it != coder.cp_to_byte.end()) {
      out += static_cast<char>(it->second);
    } else {
      out.append(t, c.offset, c.len);
    }
  }
  return out;
}

std::string Vocab::Detokenize(std::span<const TokenId> tokens, bool special) const {
  const Impl& v = *impl_;
  std::string text;
  bool strip_space = v.add_space_prefix;
  for (TokenId id : tokens) {
    std::string piece = TokenToPiece(id, special);
    if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    text += piece;
  }
  if (!v.clean_spaces || text.empty()) return text;
  // gpt-2 style clean-up: no space before . , ! ? and before 's 'm 're 've,
  // and " ' " -> "'".
  std::string a;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i > 0 && (c == '?' || c == '!' || c == '.' || c == ',') && !a.empty() && a.back() == ' ' &&
        text[i - 1] == ' ') {
      a.pop_back();
    }
    a += c;
  }
  std::string b;
  for (size_t i = 0; i < a.size(); ++i) {
    if (i > 0 && a[i] == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
      b.pop_back();
      b += '\'';
      ++i;
      continue;
    }
    b += a[i];
  }
  std::string c;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i > 0 && b[i - 1] == ' ' && b[i] == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      const char x2 = i + 2 < b.size() ? b[i + 2] : '\0';
      if (x1 == 's' || x1 == 'm' || (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) {
        c.pop_back();
      }
    }
    c += b[i];
  }
  return c;
}

VocabType Vocab::type() const { return impl_->type; }
PreTokenizer Vocab::pre_tokenizer() const { return impl_->pre; }
size_t Vocab::size() const { return impl_->texts.size(); }
TokenId Vocab::bos() const { return impl_->bos; }
TokenId Vocab::eos() const { return impl_->eos; }
bool Vocab::add_bos() const { return impl_->add_bos; }
bool Vocab::add_eos() const { return impl_->add_eos; }
bool Vocab::IsEog(TokenId id) const { return impl_->eog.contains(id); }
TokenKind Vocab::kind(TokenId id) const { return impl_->kinds.at(id); }
const std::string& Vocab::text(TokenId id) const { return impl_->texts.at(id); }
TokenId Vocab::Find(std::string_view text) const { return impl_->Find(text); }

}  // namespace llmcache::engine
