// Splits a canonical chat request into what the semantic cache matches by
// meaning (the final user message's text) and what must match exactly (the
// context key: everything else).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "llmcache/semantic_cache.h"

namespace llmcache::semantic {

struct SplitOptions {
  size_t max_query_chars = 1000;
  bool enabled = true;  // false: every query comes back not eligible ("disabled")
};

// Fills ns, eligible, reason, text, context_key and words of a SemanticQuery.
// The context key hashes the request with the final message's content
// removed (its role and name stay), plus the namespace, model, revision and
// route, in a versioned, length-prefixed encoding. Fields that never change
// the answer (user, stream, metadata, ... as in gateway/canonical.h) are
// dropped so a non-canonical caller does not split partitions needlessly.
// The embedder id is not part of it: the index partition adds it (see
// IndexPartition), so the stored key survives a change of embedder.
SemanticQuery SplitRequest(const boost::json::value& request, const SemanticKey& key,
                           const SplitOptions& options);

// Whitespace-separated words; for text without spaces (Japanese), code points
// divided by 2, which is what a short Japanese question spans.
size_t CountWords(std::string_view text);

// Unicode code points of UTF-8 text (invalid bytes count one each).
size_t CountCodePoints(std::string_view text);

// The VectorIndex partition of a context key under an embedder.
std::string IndexPartition(std::string_view context_key, std::string_view embedder_id);

}  // namespace llmcache::semantic
