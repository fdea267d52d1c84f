// Generated token ids -> the text a client sees, piece by piece, so that a
// stream's deltas concatenate to exactly the non-stream answer:
//   - a UTF-8 sequence is never split between pieces (byte tokens and
//     byte-level BPE emit characters a byte at a time);
//   - text that may still change is held back: the start of a possible stop
//     string, and a trailing space the detokenizer's clean-up ("Hello ." ->
//     "Hello.") may still remove;
//   - the text ends before the first stop string, which is not included;
//   - invalid UTF-8 becomes U+FFFD, so every piece is valid JSON string text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/vocab.h"

namespace llmcache::engine {

class TextStream {
 public:
  // REQUIRES: vocab outlives the stream. Empty stop strings are ignored.
  TextStream(const Vocab& vocab, std::vector<std::string> stops);

  // Adds one generated token and returns the text that became final (maybe
  // empty). End-of-generation tokens add no text. After a stop string
  // completed, stopped() is true and further tokens are ignored.
  std::string Push(int32_t token);
  // The rest of the text, once generation is over.
  std::string Finish();
  bool stopped() const { return stopped_; }

 private:
  std::string Emit(size_t end);

  const Vocab& vocab_;
  std::vector<std::string> stops_;
  size_t max_stop_ = 0;
  std::vector<int32_t> tokens_;
  // The whole answer so far, re-detokenized after each token: the clean-ups
  // look across token boundaries, so pieces of single tokens would differ.
  std::string text_;
  size_t emitted_ = 0;
  bool stopped_ = false;
};

// Valid UTF-8 stays as it is; each invalid byte sequence becomes U+FFFD.
std::string SanitizeUtf8(std::string_view s);
// The largest n <= s.size() such that s[0, n) does not end inside a
// (so far valid) multi-byte sequence.
size_t CompleteUtf8Prefix(std::string_view s);

}  // namespace llmcache::engine
