#include "engine/server/text_stream.h"

#include <algorithm>

namespace llmcache::engine {
namespace {

// Length of the sequence a lead byte starts; 0 for a byte that cannot start one.
size_t SequenceLength(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Length of the valid sequence at s[i], or 0 when it is invalid or cut short.
size_t ValidSequenceAt(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const size_t n = SequenceLength(c);
  if (n <= 1 || i + n > s.size()) return n == 1 ? 1 : 0;
  const auto c1 = static_cast<unsigned char>(s[i + 1]);
  // The second byte's range excludes overlong forms and surrogates.
  if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
      (c == 0xF4 && c1 > 0x8F)) {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if (!IsContinuation(static_cast<unsigned char>(s[i + k]))) return 0;
  }
  return n;
}

}  // namespace

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = ValidSequenceAt(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    out += "\xEF\xBF\xBD";
    // Skip the lead byte and the continuation bytes that follow it.
    ++i;
    while (i < s.size() && IsContinuation(static_cast<unsigned char>(s[i]))) ++i;
  }
  return out;
}

size_t CompleteUtf8Prefix(std::string_view s) {
  // Only the last three bytes can belong to an unfinished sequence.
  const size_t lo = s.size() >= 3 ? s.size() - 3 : 0;
  for (size_t i = s.size(); i > lo; --i) {
    const auto c = static_cast<unsigned char>(s[i - 1]);
    if (IsContinuation(c)) continue;
    const size_t n = SequenceLength(c);
    // A lead byte whose sequence is not complete yet: cut before it, unless
    // the bytes so far are already invalid (they will not become valid).
    if (n > 1 && i - 1 + n > s.size()) {
      for (size_t k = i; k < s.size(); ++k) {
        if (!IsContinuation(static_cast<unsigned char>(s[k]))) return s.size();
      }
      return i - 1;
    }
    return s.size();
  }
  return s.size();
}

TextStream::TextStream(const Vocab& vocab, std::vector<std::string> stops) : vocab_(vocab) {
  for (auto& s : stops) {
    if (s.empty()) continue;
    max_stop_ = std::max(max_stop_, s.size());
    stops_.push_back(std::move(s));
  }
}

std::string TextStream::Push(int32_t token) {
  if (stopped_ || vocab_.IsEog(token)) return {};
  tokens_.push_back(token);
  text_ = vocab_.Detokenize(tokens_, /*special=*/false);
  // Held-back text may have changed; what was sent has not (see Emit).
  const size_t from = std::min(emitted_, text_.size());

  size_t stop_at = std::string::npos;
  for (const auto& s : stops_) stop_at = std::min(stop_at, text_.find(s, from));
  if (stop_at != std::string::npos) {
    stopped_ = true;
    text_.resize(stop_at);
    return Emit(text_.size());
  }

  size_t end = text_.size();
  // The longest tail that starts a stop string waits for the next tokens.
  for (size_t k = std::min(max_stop_ - (max_stop_ > 0 ? 1 : 0), end - from); k > 0; --k) {
    const std::string_view tail = std::string_view(text_).substr(end - k);
    if (std::any_of(stops_.begin(), stops_.end(),
                    [&](const std::string& s) { return s.starts_with(tail); })) {
      end -= k;
      break;
    }
  }
  // gpt-2 style clean-up removes a space before . , ! ? and ' forms; it
  // looks at most three characters ahead of the space.
  const size_t window = end >= 4 ? end - 4 : 0;
  const size_t space = std::string_view(text_).substr(0, end).rfind(' ');
  if (space != std::string_view::npos && space >= std::max(window, from)) end = space;
  end = std::max(from, CompleteUtf8Prefix(std::string_view(text_).substr(0, end)));
  return Emit(end);
}

std::string TextStream::Finish() { return Emit(text_.size()); }

std::string TextStream::Emit(size_t end) {
  if (end <= emitted_) return {};
  std::string piece = SanitizeUtf8(std::string_view(text_).substr(emitted_, end - emitted_));
  emitted_ = end;
  return piece;
}

}  // namespace llmcache::engine
