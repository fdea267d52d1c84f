// Conversions between the two shapes of a cached answer: a complete JSON
// response (`chat.completion`, `text_completion`) and the `data:` payloads
// of an OpenAI SSE stream (`chat.completion.chunk`, `text_completion`
// chunks, without the final "[DONE]"). Because the cache key ignores
// `stream` (see canonical.h), an answer recorded in one shape must be able
// to serve a request for the other.
//
// Pure functions: no I/O, no global state, no exceptions escape; malformed
// or unexpected JSON gives an error value. Numbers are parsed with correct
// rounding, so converting back and forth does not drift:
//   Assemble(Synthesize(Assemble(events))) == Assemble(events).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "llmcache/cache_entry.h"

namespace llmcache::gateway {

// Merges stream chunks into the equivalent non-stream response body.
//
// Chat (`chat.completion.chunk` -> `chat.completion`):
//   * id, created, model, system_fingerprint, service_tier: the first
//     non-null value found, normally in the first chunk;
//   * choices: one per `index`, sorted by index, each
//     {"index", "message", "logprobs", "finish_reason", ...}:
//       - message.role: first non-empty delta role, default "assistant";
//       - message.content: delta contents concatenated; null if no delta
//         ever carried a string content (e.g. tool-call-only answers);
//       - any other string delta field (refusal, reasoning_content,
//         reasoning, ...) is concatenated the same way; null-only fields
//         stay null; non-string fields keep their last value;
//       - message.tool_calls: merged by their `index` (position in the delta
//         array if absent): id and type set once (type defaults to
//         "function"), in each object member (function, custom) "name" set
//         once and other strings (arguments, input) concatenated;
//       - message.function_call (legacy): name set once, arguments
//         concatenated;
//       - logprobs: null unless some chunk carried one; arrays (content,
//         refusal) concatenated;
//       - finish_reason: the last non-null one; other choice fields
//         (e.g. vLLM's stop_reason) likewise;
//   * usage: from the last chunk carrying a non-null usage; omitted if none.
// Completions (`text_completion` chunks): per index, text concatenated,
// logprobs arrays (tokens, token_logprobs, top_logprobs, text_offset)
// concatenated, finish_reason as above; usage as above.
// Embeddings are never streamed: error.
// Errors: no events, an event that is not a JSON object, an "error" event,
// a wrong "object" type, or fields of unexpected types.
tl::expected<std::string, std::string> AssembleFromStream(Route route,
                                                          const std::vector<std::string>& events);

// The reverse: chunks as OpenAI would stream `body` (a complete
// `chat.completion` or `text_completion`). Chat, per choice in order:
//   1. delta {"role", "content": "" (null when content is null), other
//      message fields with "" / null / their value}, finish_reason null;
//   2. one chunk per non-empty string field (content first) with the whole
//      text; the content chunk carries the choice's logprobs;
//   3. one chunk per tool call: {"tool_calls":[{"index", "id", "type",
//      "function"}]}; one for a legacy function_call;
//   4. delta {} with finish_reason (and the logprobs if no content chunk
//      carried them).
// Then, if the body has a non-null usage, a chunk with "choices":[] and the
// usage. Every chunk has object "chat.completion.chunk" and the body's id,
// created, model, service_tier and system_fingerprint (when present).
// Completions: one chunk per choice {"text", "index", "logprobs",
// "finish_reason"} (object "text_completion"), then the usage chunk.
// Embeddings: error.
tl::expected<std::vector<std::string>, std::string> SynthesizeStream(Route route,
                                                                     std::string_view body);

// The gateway always asks the upstream for usage; a client that did not
// (include_usage false) must not see it. Then chunks whose only purpose is
// usage (empty choices + non-null usage) are dropped and a non-null `usage`
// is removed from other chunks. Only chunks containing the text "usage"
// followed by something other than null are parsed; chunks that do not
// parse are passed through unchanged. With include_usage true the events
// are returned as they are (also when none carries usage).
std::vector<std::string> AdaptStreamForClient(const std::vector<std::string>& events,
                                              bool include_usage);

struct Usage {
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  bool present = false;  // a usage object was found
};

// `usage` of a complete response body (counts saturate at UINT32_MAX;
// missing or non-integer counts are 0). Not present on any error.
Usage ExtractUsage(std::string_view body);
// One parse for what a miss needs of a complete response body: nullopt when
// it is not a JSON object (not to be cached), else its `usage` as
// ExtractUsage reports it.
std::optional<Usage> ParseAnswerUsage(std::string_view body);
// The last non-null `usage` of a stream.
Usage ExtractUsageFromStream(const std::vector<std::string>& events);

}  // namespace llmcache::gateway
