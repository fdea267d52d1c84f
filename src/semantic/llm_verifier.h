// PairVerifiers for the semantic cache's grey band (see PairVerifier in
// llmcache/semantic_cache.h):
//
//  * NewLlmVerifier asks an OpenAI-compatible chat endpoint (the gateway's
//    upstream, a local Ollama, the engine's server) a one-word question:
//    "do these two questions ask for the same answer?". Temperature 0, a
//    few output tokens: far cheaper than generating the answer. Only an
//    exact "yes" is a yes; any other answer is a "no" (when unsure, miss);
//    a failure or timeout is an error, which the cache turns into a refused
//    candidate, never an error to the client. The cache remembers answers
//    per (normalized question pair, answerer), so a pair costs one call.
//  * NewNamespaceVerifier routes by namespace: another model per namespace,
//    or none (the namespace is not verified).
//  * NewOracleVerifier answers from labels, optionally wrong at a seeded
//    rate: `llmcache eval --verifier oracle[:ACCURACY]` uses it to show what
//    a perfect or an imperfect check would add when no model is at hand.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "llmcache/semantic_cache.h"

namespace llmcache::semantic {

struct LlmVerifierOptions {
  // Base URL like an OpenAI client's base_url, e.g. http://127.0.0.1:11434/v1.
  std::string url;
  // Required: an instruction-tuned chat model. Small ones do: the question
  // is short and the answer one word.
  std::string model;
  // Sent as a Bearer token; empty: no Authorization header.
  std::string api_key;
  // Bound on one exchange (connect, send, whole answer). The check sits on
  // the request path of a grey-band candidate; past this the candidate is
  // refused and the request proceeds as a miss.
  std::chrono::milliseconds timeout{2'000};
  // Output tokens asked for: "yes"/"no" is one token for most tokenizers.
  int max_tokens = 2;
  // TLS for https:// URLs: extra trust anchors (PEM) beside the system
  // store, and certificate verification.
  std::string ca_file;
  bool verify_tls = true;
};

// InvalidArgument: no url or model, a bad url, a timeout or max_tokens not
// positive.
Result<std::unique_ptr<PairVerifier>> NewLlmVerifier(const LlmVerifierOptions& options);

// The chat request body NewLlmVerifier sends for a pair (exposed for tests
// and for fakes that answer it): a system message with the instruction and
// a user message
//   Question 1: <query as a JSON string>
//   Question 2: <cached question as a JSON string>
//   Same answer (yes or no)?
// Questions are JSON-quoted, so a question cannot end its own line and
// pose as part of the instruction.
std::string LlmVerifierRequestBody(const LlmVerifierOptions& options, std::string_view query,
                                   std::string_view cached);

// Parses a chat completion answer: true only for a first choice whose
// content is "yes" (any case, surrounding spaces, quotes or final
// punctuation ignored); false for any other content. Corruption when the
// body is not a chat completion at all.
Result<bool> ParseLlmVerifierAnswer(std::string_view body);

// Routes SameAnswerIn by namespace (SemanticQuery::ns; a tenant suffix
// "@<32 hex>" is ignored): a namespace listed in `by_namespace` uses its
// verifier, or is not verified when that verifier is null; others use
// `fallback` (null: not verified).
std::shared_ptr<PairVerifier> NewNamespaceVerifier(
    std::shared_ptr<PairVerifier> fallback,
    std::map<std::string, std::shared_ptr<PairVerifier>, std::less<>> by_namespace);

struct OracleVerifierOptions {
  // Label (intent) of every question text it may be asked about.
  std::unordered_map<std::string, std::string> label_of;
  // Share of pairs answered correctly; each pair's error is a seeded,
  // deterministic draw, so a pair always gets the same answer.
  double accuracy = 1.0;
  uint64_t seed = 42;
};

// Same label: yes. NotFound for a text without a label.
std::unique_ptr<PairVerifier> NewOracleVerifier(OracleVerifierOptions options);

// "oracle" (accuracy 1) or "oracle:ACCURACY" with ACCURACY in [0, 1]; the
// labels are the caller's to fill. InvalidArgument otherwise.
Result<OracleVerifierOptions> ParseOracleSpec(std::string_view spec);

}  // namespace llmcache::semantic
