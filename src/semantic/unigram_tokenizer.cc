#include "semantic/unigram_tokenizer.h"

#include <simdjson.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#include <unicode/utf16.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

namespace llmcache::semantic {
namespace {

// Decodes UTF-8, reading each invalid byte as U+FFFD. Only used on text that
// simdjson validated or that took the ASCII fast path, so it is a fallback.
std::u32string DecodeUtf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    char32_t cp = 0xFFFD;
    size_t len = 1;
    if (b0 < 0x80) {
      cp = b0;
    } else if ((b0 & 0xE0) == 0xC0 || (b0 & 0xF0) == 0xE0 || (b0 & 0xF8) == 0xF0) {
      len = (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : 4;
      char32_t v = b0 & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
      bool ok = i + len <= s.size();
      for (size_t k = 1; ok && k < len; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        ok = (b & 0xC0) == 0x80;
        v = (v << 6) | (b & 0x3F);
      }
      const char32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
      if (ok && v >= min && v <= 0x10FFFF && !(v >= 0xD800 && v <= 0xDFFF)) {
        cp = v;
      } else {
        len = 1;
      }
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

const icu::Normalizer2* Nfkc() {
  static const icu::Normalizer2* instance = [] {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFKCInstance(status);
    return U_SUCCESS(status) ? n : nullptr;
  }();
  return instance;
}

int Utf16Length(const std::u32string& s) {
  int n = 0;
  for (char32_t c : s) n += c > 0xFFFF ? 2 : 1;
  return n;
}

}  // namespace

std::u32string SentencePieceSymbols(std::string_view utf8) {
  std::u32string normalized;
  const bool ascii = std::all_of(utf8.begin(), utf8.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  const icu::Normalizer2* nfkc = Nfkc();
  if (ascii || nfkc == nullptr) {
    // ASCII is its own NFKC form. (Without ICU data, which a Debian libicu
    // always has, the text goes through unnormalized rather than failing.)
    normalized = DecodeUtf8(utf8);
  } else {
    // fromUTF8 reads ill-formed sequences as U+FFFD, like a JavaScript
    // TextDecoder would when the reference receives the same bytes.
    icu::UnicodeString in = icu::UnicodeString::fromUTF8(
        icu::StringPiece(utf8.data(), static_cast<int32_t>(utf8.size())));
    UErrorCode status = U_ZERO_ERROR;
    icu::UnicodeString out = nfkc->normalize(in, status);
    if (U_FAILURE(status)) out = in;
    const char16_t* buf = out.getBuffer();
    const int32_t len = out.length();
    normalized.reserve(static_cast<size_t>(len));
    for (int32_t i = 0; i < len;) {
      UChar32 c;
      U16_NEXT(buf, i, len, c);
      normalized.push_back(static_cast<char32_t>(c));
    }
  }
  if (normalized.empty()) return normalized;
  std::u32string symbols;
  symbols.reserve(normalized.size() + 1);
  symbols.push_back(UnigramTokenizer::kSeparator);
  for (char32_t c : normalized) symbols.push_back(c == U' ' ? UnigramTokenizer::kSeparator : c);
  return symbols;
}

Result<UnigramTokenizer> UnigramTokenizer::Load(const std::string& vocab_json_path) {
  std::ifstream in(vocab_json_path, std::ios::binary);
  if (!in) {
    return Err(Status::NotFound("cannot open the vocabulary " + vocab_json_path + ": " +
                                std::error_code(errno, std::generic_category()).message()));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return Err(Status::IOError("cannot read " + vocab_json_path));
  return FromJson(buf.str(), vocab_json_path);
}

Result<UnigramTokenizer> UnigramTokenizer::FromJson(std::string_view json, std::string_view what) {
  auto bad = [&](const std::string& why) {
    return Err(Status::Corruption(std::string(what) + ": " + why));
  };
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element doc;
  if (auto err = parser.parse(padded).get(doc)) {
    return bad(std::string("not valid JSON: ") + simdjson::error_message(err));
  }
  simdjson::dom::array entries;
  if (doc.get_array().get(entries)) return bad("expected an array of [piece, score] pairs");

  UnigramTokenizer t;
  std::fill(std::begin(t.root_ascii_), std::end(t.root_ascii_), -1);
  t.nodes_.push_back(Node{});
  size_t index = 0;
  for (simdjson::dom::element entry : entries) {
    const std::string at = "entry " + std::to_string(index);
    simdjson::dom::array pair;
    if (entry.get_array().get(pair) || pair.size() < 2) {
      return bad(at + " is not a [piece, score] pair");
    }
    std::string_view text;
    if (pair.at(0).get_string().get(text)) return bad(at + ": the piece is not a string");
    simdjson::dom::element score_element = pair.at(1).value_unsafe();
    double score = 0;
    if (score_element.is_null()) {
      // vocab.json has null scores (":", "://", "▁:)", ...). The reference
      // adds them to a number, and `null + x` is x in JavaScript.
      score = 0;
    } else if (score_element.get_double().get(score)) {
      return bad(at + ": the score is neither a number nor null");
    }
    Piece piece;
    piece.text = std::string(text);
    piece.score = score;
    const std::u32string symbols = DecodeUtf8(text);
    piece.utf16_length = Utf16Length(symbols);
    t.pieces_.push_back(std::move(piece));

    if (index >= kReservedSymbols && !symbols.empty()) {
      int32_t node = 0;
      for (char32_t c : symbols) {
        int32_t child = t.Child(node, c);
        node = child >= 0 ? child : t.AddChild(node, c);
      }
      // A piece listed twice keeps its last index and score, as in the
      // reference's trie.
      t.nodes_[static_cast<size_t>(node)].piece = static_cast<int32_t>(index);
      t.nodes_[static_cast<size_t>(node)].score = score;
    }
    ++index;
  }
  if (t.pieces_.size() <= kReservedSymbols) {
    return bad("the vocabulary has " + std::to_string(t.pieces_.size()) +
               " entries; it needs more than the " + std::to_string(kReservedSymbols) +
               " reserved ones");
  }
  return t;
}

int32_t UnigramTokenizer::Child(int32_t node, char32_t symbol) const {
  if (node == 0 && symbol < 128) return root_ascii_[symbol];
  auto it = children_.find((static_cast<uint64_t>(node) << 21) | symbol);
  return it == children_.end() ? -1 : it->second;
}

int32_t UnigramTokenizer::AddChild(int32_t node, char32_t symbol) {
  const auto id = static_cast<int32_t>(nodes_.size());
  nodes_.push_back(Node{});
  if (node == 0 && symbol < 128) {
    root_ascii_[symbol] = id;
  } else {
    children_.emplace((static_cast<uint64_t>(node) << 21) | symbol, id);
  }
  return id;
}

TokenizedText UnigramTokenizer::Encode(std::string_view utf8) const {
  TokenizedText result;
  const std::u32string symbols = SentencePieceSymbols(utf8);
  const size_t n = symbols.size();
  result.symbols = n;
  result.content_symbols =
      n - static_cast<size_t>(std::count(symbols.begin(), symbols.end(), kSeparator));
  if (n == 0) return result;

  // Lattice edges, generated by ascending start and grouped by end with a
  // stable counting sort: within one end they stay in ascending start order,
  // the order in which the reference visits them.
  struct Edge {
    uint32_t start;
    uint32_t end;
    int32_t id;
    double score;
  };
  std::vector<Edge> edges;
  edges.reserve(n * 4);
  for (size_t i = 0; i < n; ++i) {
    bool matched = false;
    int32_t node = Child(0, symbols[i]);
    for (size_t j = i; node >= 0;) {
      const Node& nd = nodes_[static_cast<size_t>(node)];
      if (nd.piece >= 0) {
        edges.push_back(
            {static_cast<uint32_t>(i), static_cast<uint32_t>(j + 1), nd.piece, nd.score});
        matched = true;
      }
      if (++j >= n) break;
      node = Child(node, symbols[j]);
    }
    if (!matched) {
      edges.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(i + 1), kUnknownId, 0.0});
    }
  }
  std::vector<uint32_t> first(n + 2, 0);
  for (const Edge& e : edges) ++first[e.end + 1];
  for (size_t i = 1; i < first.size(); ++i) first[i] += first[i - 1];
  std::vector<Edge> by_end(edges.size());
  {
    std::vector<uint32_t> fill(first.begin(), first.end() - 1);
    for (const Edge& e : edges) by_end[fill[e.end]++] = e;
  }

  std::vector<double> best(n + 1, 0.0);
  std::vector<int32_t> words(n + 1, 0);
  for (size_t end = 0; end <= n; ++end) {
    for (uint32_t k = first[end]; k < first[end + 1]; ++k) {
      const Edge& e = by_end[k];
      const double score = e.score + best[e.start];
      if (best[end] == 0 || score >= best[end]) {
        best[end] = score;
        words[end] = e.id;
      }
    }
  }

  std::vector<int32_t> reversed;
  for (ptrdiff_t pos = static_cast<ptrdiff_t>(n); pos > 0;) {
    const int32_t id = words[static_cast<size_t>(pos)];
    reversed.push_back(id);
    // An unknown piece covers one symbol, the one before `pos`.
    if (id == kUnknownId && symbols[static_cast<size_t>(pos) - 1] != kSeparator) {
      ++result.unknown_symbols;
    }
    // The reference steps back by the piece's JavaScript (UTF-16) length; a
    // zero length would loop forever there, so step at least one symbol.
    pos -= std::max(1, pieces_[static_cast<size_t>(id)].utf16_length);
  }
  result.ids.reserve(reversed.size());
  bool previous_unknown = false;
  for (int32_t id : reversed) {
    if (!(previous_unknown && id == kUnknownId)) result.ids.push_back(id);
    previous_unknown = id == kUnknownId;
  }
  std::reverse(result.ids.begin(), result.ids.end());
  return result;
}

}  // namespace llmcache::semantic
