// Canonical form of an OpenAI-style request body, and the cache key built
// from it. Pure functions: no I/O, no global state, no exceptions escape.
//
// Two requests get the same cache key exactly when every field that can
// change the upstream's answer is equal. The canonical form is therefore the
// whole body minus a short list of fields that provably do not change the
// answer (see kVolatileFields in canonical.cc and below), serialized so that
// every JSON spelling of one value produces the same bytes:
//
//   * object keys sorted by their UTF-8 bytes (memcmp order), no whitespace;
//   * strings unescaped and re-escaped with only the escapes JSON requires:
//     \" \\ and control characters U+0000..U+001F as \u00xx (lowercase hex);
//     everything else, including non-ASCII, is written as raw UTF-8. So
//     "\u0041", "A" and "\/" vs "/" are equal;
//   * numbers by value: an integral value that fits int64/uint64 is written
//     as an integer (0, 0.0, 0e0, -0, -0.0 -> 0; 1.5e1 -> 15; 1e2 -> 100),
//     anything else as the shortest round-trip std::to_chars form
//     (0.5, 1e+22, 1.8446744073709552e+19). Integers are kept exact (no
//     detour through double); non-integers are parsed with correct rounding
//     (std::from_chars), so the output is a fixed point:
//     Canonicalize(Canonicalize(b).canonical).canonical ==
//     Canonicalize(b).canonical for the same route and options.
//     A number whose magnitude overflows double is rejected (400); one that
//     underflows is 0.
//   * no defaults are invented: an absent field stays absent and differs
//     from any explicit value (upstreams differ in their defaults), and an
//     explicit null differs from absent.
//
// Fields dropped from the key (top level only): user, stream,
// stream_options, metadata, request_id, store, llmcache (our extension
// object). `stream` is dropped because a cached answer can be converted
// between SSE and plain JSON (see stream_convert.h); `stream_options`
// only affects usage reporting, handled by AdaptStreamForClient.
// `service_tier` is KEPT: it can select a different model tier.
// Every other field, including ones unknown to us, is part of the key:
// a wrong answer is worse than a cache miss.
//
// Duplicate object keys (at any depth) are rejected with a 400: servers
// disagree on which duplicate wins, so accepting them would let two
// requests that upstream reads differently share one key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "llmcache/cache_entry.h"

namespace llmcache::gateway {

struct CanonicalOptions {
  // Off by default. When on, message text is trimmed and every run of
  // whitespace (ASCII \t \n \v \f \r and space, plus Unicode White_Space:
  // U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
  // U+3000) is collapsed to one U+0020, in the canonical form only (the
  // body sent upstream is the caller's business). Message text means:
  //   chat:        messages[*].content when it is a string, and the "text"
  //                of content parts whose "type" is "text";
  //   completions: prompt when it is a string, and the strings of a prompt
  //                array.
  // Embeddings input is never normalized (whitespace changes vectors).
  // Requests whose text differs only in whitespace then share a key.
  bool normalize_whitespace = false;
  // Maximum nesting of arrays/objects; the top-level object counts as 1.
  size_t max_depth = 64;

  // Every field, so that CanonicalMemo never reuses a form made under other options.
  bool operator==(const CanonicalOptions&) const = default;
};

// An OpenAI-style error, ready to be rendered as
// {"error":{"message":..,"type":..,"param":..,"code":..}} (see
// RequestErrorJson). Empty param/code render as null.
struct RequestError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;
  std::string code;
};

// The JSON error body for `e`, as OpenAI sends it.
std::string RequestErrorJson(const RequestError& e);

struct CanonicalRequest {
  // Canonical JSON of everything that may change the answer (see above).
  std::string canonical;
  // The requested model name (non-empty).
  std::string model;
  // `stream` of the request (false when absent or null).
  bool stream = false;
  // `stream_options.include_usage` (false when absent or null). Reported
  // whatever `stream` is; it only matters for streaming answers.
  bool include_usage = false;
  // For later semantic matching; may be empty. Chat: the text of the last
  // message when its role is "user" (string content, or the "text" of its
  // text parts joined with "\n"). Completions: the prompt when it is a single
  // string. Embeddings: empty. Whitespace-normalized when the option is on.
  std::string last_user_text;
};

// Validates and canonicalizes a request body for `route`.
// Errors (all http_status 400, type "invalid_request_error"):
//   * body not valid JSON (message gives line, column and byte offset), not
//     valid UTF-8, nested deeper than options.max_depth, containing a
//     duplicate object key or a number too large for a double;
//   * top level not an object;
//   * model missing, not a string, or empty (param "model");
//   * stream not a boolean/null; stream_options not an object/null;
//     stream_options.include_usage not a boolean/null;
//   * n, max_tokens, max_completion_tokens not an integer/null;
//     temperature, top_p not a number/null;
//   * chat: messages missing, not an array, empty, or an element that is not
//     an object with a string "role" (param "messages[i].role");
//   * completions: prompt missing or not one of string, array of strings,
//     array of integers, array of arrays of integers;
//   * embeddings: input likewise; stream=true (param "stream").
tl::expected<CanonicalRequest, RequestError> Canonicalize(Route route, std::string_view body,
                                                          const CanonicalOptions& options);

struct KeyParts {
  std::string_view ns;              // tenant namespace
  std::string_view model_revision;  // e.g. the upstream's model digest; may be empty
  std::string_view canonical;       // CanonicalRequest::canonical
  Route route = Route::kChat;
};

// Lowercase hex SHA-256 (64 characters) over a versioned, length-prefixed
// encoding of all parts, so no two distinct KeyParts can produce the same
// byte stream (e.g. ns "ab" + revision "c" vs ns "a" + revision "bc").
std::string CacheKey(const KeyParts& parts);

// A fast 64-bit hash of a cache key for in-memory tables (XXH3). Not
// collision resistant; never use it as a persisted identity.
uint64_t FastKeyHash(std::string_view key);

}  // namespace llmcache::gateway
