// The SentencePiece-style unigram tokenizer of the Universal Sentence Encoder
// Lite model, a faithful port of the reference (the `Tokenizer` class of
// @energetic-ai/embeddings 0.2.0, itself the TF.js USE tokenizer), including
// its quirks, because the model only gives the reference's embeddings when it
// is fed the reference's ids:
//
// - Text is NFKC-normalized; then, if not empty, "▁" (U+2581) is prepended and
//   every U+0020 space becomes "▁". Other whitespace (tab, newline) is kept
//   as a symbol of its own, which is unknown to the vocabulary.
// - Symbols are Unicode code points. Every vocabulary piece from index 6 on is
//   put in a trie (the first 6 are reserved: "�", <s>, </s>, extra ids); a
//   piece listed twice keeps its last index and score.
// - From each position, every piece that is a prefix of the rest is an edge of
//   the lattice; a position with no such piece gets a one-symbol edge to the
//   unknown id 0 with score 0.
// - Viterbi over the lattice in double precision: for each end position, edges
//   in ascending start order, an edge wins if the best is still 0 ("unset"; a
//   real best of exactly 0 counts as unset too) or if its score >= the best (a
//   tie goes to the later edge). A null score in vocab.json counts as 0, as
//   `null + number` does in JavaScript.
// - Backtracking steps back by the UTF-16 length of the chosen piece.
// - Consecutive unknown ids are merged into one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llmcache/status.h"

namespace llmcache::semantic {

struct TokenizedText {
  std::vector<int32_t> ids;
  // Code points after normalization, word separators included.
  size_t symbols = 0;
  // Code points that are not the word separator "▁".
  size_t content_symbols = 0;
  // Content code points the vocabulary does not cover (each became the unknown
  // id 0 before runs of unknowns were merged).
  size_t unknown_symbols = 0;

  // Share of the text the model cannot represent: 0 for plain English, close
  // to 1 for Japanese. 0 for a text without content symbols.
  double UnknownFraction() const {
    return content_symbols == 0 ? 0.0 : static_cast<double>(unknown_symbols) / content_symbols;
  }
};

class UnigramTokenizer {
 public:
  static constexpr int32_t kUnknownId = 0;
  static constexpr int kReservedSymbols = 6;
  static constexpr char32_t kSeparator = U'\u2581';

  // Reads vocab.json: a JSON array of [piece, score] pairs.
  static Result<UnigramTokenizer> Load(const std::string& vocab_json_path);
  // The same from the file's contents (`what` names it in errors).
  static Result<UnigramTokenizer> FromJson(std::string_view json, std::string_view what);

  // Thread-safe. Invalid UTF-8 bytes are read as U+FFFD.
  TokenizedText Encode(std::string_view utf8) const;

  size_t vocab_size() const { return pieces_.size(); }
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)].text; }

 private:
  struct Piece {
    std::string text;
    double score = 0;
    int utf16_length = 0;
  };
  struct Node {
    int32_t piece = -1;  // vocabulary index if a piece ends here
    double score = 0;
  };

  UnigramTokenizer() = default;
  int32_t Child(int32_t node, char32_t symbol) const;
  int32_t AddChild(int32_t node, char32_t symbol);

  std::vector<Piece> pieces_;
  std::vector<Node> nodes_;  // nodes_[0] is the root
  // Children of the root for ASCII symbols, the common case, without hashing.
  int32_t root_ascii_[128];
  std::unordered_map<uint64_t, int32_t> children_;  // (node << 21 | symbol) -> node
};

// NFKC-normalizes `utf8` and maps it to the symbols the tokenizer sees
// ("▁"-prefixed, spaces replaced). Exposed for tests.
std::u32string SentencePieceSymbols(std::string_view utf8);

}  // namespace llmcache::semantic
