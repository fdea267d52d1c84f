// Tokenizers built from GGUF tokenizer metadata, matching llama.cpp's output
// token for token on its tokenizer test vectors:
//   - SentencePiece-style (`tokenizer.ggml.model` = "llama"): score-driven
//     bigram merging, "▁" for spaces, optional space prefix, <0xXX> byte
//     fallback;
//   - byte-level BPE ("gpt2") with the pre-tokenizers "llama-bpe" (Llama 3),
//     "qwen2" and "gpt-2", implemented as hand-written scanners (no regex)
//     over Unicode categories from ICU.
// Special tokens (control / user-defined) are split out before tokenizing;
// control tokens only when the caller asks for it (parse_special).
//
// A Vocab owns copies of everything it needs: the GgufFile may be closed.
// Immutable after construction, so safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf.h"
#include "llmcache/status.h"

namespace llmcache::engine {

using TokenId = int32_t;
constexpr TokenId kNoToken = -1;

enum class VocabType { kSpm, kBpe };
enum class PreTokenizer { kNone, kGpt2, kLlama3, kQwen2 };

// Values are GGUF's tokenizer.ggml.token_type.
enum class TokenKind : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

class Vocab {
 public:
  // Reads tokenizer.ggml.* metadata. Unsupported models or pre-tokenizers are
  // an InvalidArgument naming them.
  static Result<Vocab> FromGguf(const GgufFile& file);

  Vocab(Vocab&&) noexcept;
  Vocab& operator=(Vocab&&) noexcept;
  ~Vocab();

  // add_special: BOS/EOS as the metadata says (tokenizer.ggml.add_bos_token,
  // add_eos_token, or the model type's default). parse_special: control
  // tokens written in the text (e.g. "<|im_start|>") become those tokens;
  // otherwise they are tokenized as plain text.
  std::vector<TokenId> Tokenize(std::string_view text, bool add_special, bool parse_special) const;

  // The text of one token; control/unknown tokens yield "" unless `special`.
  std::string TokenToPiece(TokenId id, bool special) const;
  // Concatenated pieces with llama.cpp's clean-ups (leading space of SPM,
  // space-before-punctuation for gpt-2 style vocabularies).
  std::string Detokenize(std::span<const TokenId> tokens, bool special) const;

  VocabType type() const;
  PreTokenizer pre_tokenizer() const;
  size_t size() const;
  TokenId bos() const;
  TokenId eos() const;
  bool add_bos() const;
  bool add_eos() const;
  // End-of-generation: EOS, EOT and the usual end-of-turn control tokens.
  bool IsEog(TokenId id) const;
  TokenKind kind(TokenId id) const;
  const std::string& text(TokenId id) const;  // REQUIRES: 0 <= id < size()
  TokenId Find(std::string_view text) const;  // kNoToken when absent

 private:
  struct Impl;
  explicit Vocab(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmcache::engine
