// The semantic cache: a paraphrase of a cached question gets the cached
// answer. It sits beside the exact store: the answer stays in the Store under
// its exact key, and a semantic entry points to that key from the question's
// embedding.
//
// What is matched: only the text of the FINAL user message. Everything else
// that can change the answer (system prompt, earlier turns, tools,
// tool_choice, response_format, sampling parameters, model, model revision,
// namespace) forms the context key, which must match exactly: a semantic hit
// never crosses contexts. The embedder id joins the index partition, and a
// change of embedder rebuilds the index (vectors are never mixed).
//
// The hit decision is layered, because cosine similarity alone cannot tell
// "paid leave" from "sick leave":
//   1. the top_k nearest entries of the partition;
//   2. a per-namespace threshold, stricter for short questions;
//   3. the LexicalGuard (numbers, entities, negation, order, content words);
//   4. optionally a PairVerifier for candidates in the grey band just below
//      the threshold, its answers cached by question pair; its outcomes teach
//      each entry its own threshold (vCache-style, bounded);
//   5. questions the embedder cannot represent (unknown_fraction above a
//      limit) never hit unless verified; by default they are exact-only.
//
// The cache also tracks the RAG documents behind every inserted answer, even
// when the question is not semantically matchable, so InvalidateDoc can name
// every exact key built on a document.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/cache_entry.h"
#include "llmcache/clock.h"
#include "llmcache/embedder.h"
#include "llmcache/lexical_guard.h"
#include "llmcache/status.h"
#include "llmcache/vector_index.h"

namespace boost::json {
class value;
}

namespace llmcache {

// The namespace as configured. To keep tenants apart the gateway appends "@"
// and 32 hex digits of the client's credential to the namespace; entries stay
// isolated by that full name, while settings (on/off, thresholds, TTL
// presets, verifier) belong to the configured name.
std::string_view ConfiguredNamespace(std::string_view ns);

// Asks something cheaper than generating the answer (an LLM's yes/no) whether
// two questions ask for the same answer. Thread-safe. An error counts as "no".
class PairVerifier {
 public:
  virtual ~PairVerifier() = default;
  virtual Result<bool> SameAnswer(std::string_view query, std::string_view cached) = 0;
  // The question asked for a namespace (SemanticQuery::ns, which may carry
  // a tenant suffix "@<hash>"); verifiers configured per namespace override
  // it.
  virtual Result<bool> SameAnswerIn(std::string_view /*ns*/, std::string_view query,
                                    std::string_view cached) {
    return SameAnswer(query, cached);
  }
  // Who answers for the namespace (e.g. model and endpoint): it joins the key
  // under which answers are remembered, so two models' answers never mix.
  // Empty: the namespace is not verified (no grey band, no learned
  // thresholds).
  virtual std::string AnswererFor(std::string_view /*ns*/) const { return "default"; }
};

// Thresholds of one namespace (cosine similarity).
struct SemanticThresholds {
  bool enabled = true;
  // Candidates at or above it may hit (after the guard). Chosen with
  // `llmcache eval` on the dev set (docs/semantic-eval.md): with use-lite and
  // the lexical guard, 0 false hits from 0.50 up, and paraphrase hits fall
  // quickly above 0.60. Low because the guard, not the cosine, separates
  // siblings ("paid" vs "sick" leave score up to 0.99); never run without it.
  double threshold = 0.60;
  // The same for questions of at most short_query_words words: short
  // questions differ in fewer words, so each word weighs more.
  double short_threshold = 0.65;
};

struct SemanticCacheOptions {
  // Directory of the cache's own RocksDB (entries) and its index snapshot;
  // the gateway passes <data-dir>/semantic. Empty: memory only.
  std::string data_dir;

  // Required. Its id() and dimension() are persisted: a different embedder
  // at the next start re-embeds the stored questions and rebuilds the index.
  std::shared_ptr<Embedder> embedder;
  // The lexical verification guard. Null turns the guard off, which only
  // `llmcache eval` should do (to measure what the guard is worth).
  std::shared_ptr<const LexicalGuard> guard;
  // Null: no grey band, no learned thresholds.
  std::shared_ptr<PairVerifier> verifier;

  // The index; dimension is set from the embedder. new_index/load_index
  // default to NewVectorIndex/LoadVectorIndex.
  VectorIndexOptions index;
  std::function<std::unique_ptr<VectorIndex>(const VectorIndexOptions&)> new_index;
  std::function<Result<std::unique_ptr<VectorIndex>>(const VectorIndexOptions&, const std::string&)>
      load_index;

  // Defaults chosen with `llmcache eval` / `llmcache calibrate` on the dev set
  // (docs/semantic-eval.md): at most 1 % false hits is the hard limit.
  SemanticThresholds thresholds;
  // Overrides per namespace.
  std::map<std::string, SemanticThresholds, std::less<>> namespace_thresholds;
  size_t short_query_words = 5;
  // Candidates retrieved from the index per lookup.
  size_t top_k = 5;
  // With a verifier: candidates in [threshold - grey_band, threshold) are
  // asked about. 0 disables the band.
  double grey_band = 0.10;
  // With a verifier: a candidate at or above its threshold that the guard
  // refused only for unmatched content words (GuardVerdict::overrulable;
  // never numbers, names, negation or order) is asked about instead, and the
  // verifier decides. Its answers do not move learned thresholds (those
  // describe candidates that passed the guard). Off by default: it trades
  // verifier calls and the verifier's own errors for hits
  // (docs/semantic-eval.md).
  bool overrule_content_words = false;
  // Share of a verified-correct candidate population above the entry's own
  // threshold that may be wrong: bounds how far learned thresholds may fall.
  double target_error_rate = 0.01;
  // With a verifier, accepted candidates are verified anyway with this
  // probability, so that entries whose threshold is too low are found.
  double explore_rate = 0.0;
  uint64_t seed = 42;
  // Verifier answers remembered (question pair -> yes/no).
  size_t verifier_cache_entries = 100'000;

  // Questions whose embedder unknown_fraction is above this (e.g. Japanese
  // with use-lite) are not represented well enough to be matched by vector;
  // without a verifier (or with verify_unrepresentable off) they are
  // exact-only.
  double max_unknown_fraction = 0.25;
  bool verify_unrepresentable = false;
  // Longer final messages are exact-only (an embedding of a long text says
  // little about its details). Counted in Unicode code points.
  size_t max_query_chars = 1000;

  // TTL of entries by namespace; others get default_ttl_ms. The gateway may
  // use TtlFor(ns) for the exact entry too, so both expire together.
  int64_t default_ttl_ms = 24LL * 3600 * 1000;
  std::map<std::string, int64_t, std::less<>> namespace_ttl_ms = {
      {"faq", 7LL * 24 * 3600 * 1000},
      {"docs", 24LL * 3600 * 1000},
      {"news", 2LL * 3600 * 1000},
  };
  // Least recently hit entries are evicted past this many.
  size_t max_entries = 1'000'000;

  std::shared_ptr<Clock> clock;  // null: SystemClock()
};

// What separates answers beside the request body.
struct SemanticKey {
  std::string_view ns;
  std::string_view model;
  std::string_view model_revision;
  Route route = Route::kChat;
};

// A request split into the matched text and its context (see Prepare).
struct SemanticQuery {
  std::string ns;
  // False: exact matching only; `reason` says why ("route", "disabled",
  // "last_not_user", "message_fields", "non_text", "empty", "too_long",
  // "invalid").
  bool eligible = false;
  std::string reason;
  std::string text;         // the final user message's text
  std::string context_key;  // hex SHA-256 of everything else
  size_t words = 0;
  // Filled by the first Lookup (or by the caller, e.g. eval, batching) and
  // reused by Insert, so a miss embeds the question once.
  std::shared_ptr<const EmbeddingInfo> embedding;
};

struct SemanticHit {
  std::string exact_key;
  float similarity = 0;
  uint64_t entry_id = 0;
  bool verified = false;  // a PairVerifier said yes
};

struct SemanticLookup {
  std::optional<SemanticHit> hit;
  // Without a hit: the stable word for the refusal metric, the first that
  // applied: the SemanticQuery reason, "embedder_error", "unrepresentable",
  // "no_candidate", "below_threshold", "guard_<GuardVerdict::reason>",
  // "verifier", "verifier_error".
  std::string reason;
  // Every refused candidate: (entry id, reason), for logs and eval.
  std::vector<std::pair<uint64_t, std::string>> refused;
};

// Per-call overrides, for `llmcache eval`.
struct SemanticLookupOverrides {
  std::optional<double> threshold;
  std::optional<double> short_threshold;
  bool use_guard = true;
  bool use_verifier = true;
  // False: a dry run; no hit counts, access times or learned state change.
  bool record = true;
};

struct SemanticCacheStats {
  uint64_t entries = 0;  // tracked answers (including exact-only ones)
  uint64_t indexed = 0;  // entries with a vector in the index
  uint64_t lookups = 0;
  uint64_t hits = 0;
  uint64_t verified_hits = 0;
  uint64_t inserts = 0;
  uint64_t evictions = 0;
  uint64_t expirations = 0;
  uint64_t invalidations = 0;  // entries removed by InvalidateDoc
  uint64_t verifier_calls = 0;
  uint64_t verifier_cache_hits = 0;
  // Of verifier_calls: the answers, and the seconds spent waiting for them.
  uint64_t verifier_yes = 0;
  uint64_t verifier_no = 0;
  uint64_t verifier_errors = 0;
  double verifier_seconds = 0;
  std::map<std::string, uint64_t> refusals;  // by SemanticLookup::reason
  // Similarity of hits: counts per bucket [0.5 + 0.05 i, 0.5 + 0.05 (i+1)),
  // bucket 0 also takes anything below 0.5, the last one 1.0.
  std::vector<uint64_t> hit_similarity_buckets = std::vector<uint64_t>(10, 0);
  double hit_similarity_sum = 0;

  // Across gateway replicas (a cache replicated through a shared log, e.g.
  // a Redis stream; all zero otherwise): changes this replica appended and
  // remote changes it applied, changes lost while the log was unreachable
  // (queue full), gaps (the log was trimmed past this replica or lost),
  // failed log calls, and whether the log is unreachable right now (then
  // replication_detail names the log and the last error, for /healthz).
  bool replicated = false;
  uint64_t replication_appended = 0;
  uint64_t replication_applied = 0;
  uint64_t replication_dropped = 0;
  uint64_t replication_gaps = 0;
  uint64_t replication_errors = 0;
  bool replication_degraded = false;
  std::string replication_detail;
};

struct SemanticMaintainResult {
  uint64_t expired = 0;
  uint64_t evicted = 0;
  // Exact keys of removed entries that were built on documents: the gateway
  // erases them from the Store, so no document-bound answer outlives the
  // tracking that would invalidate it.
  std::vector<std::string> erase_exact_keys;
};

// Thread-safe: every method may be called from any thread.
class SemanticCache {
 public:
  virtual ~SemanticCache() = default;

  // Splits a canonical chat request (the parsed CanonicalRequest::canonical)
  // into the final user message's text and the context key. Never fails: a
  // request that cannot be matched semantically comes back not eligible.
  virtual SemanticQuery Prepare(const boost::json::value& request,
                                const SemanticKey& key) const = 0;

  // The layered decision. Never an error: anything that goes wrong is a miss
  // with a reason. Fills query->embedding.
  virtual SemanticLookup Lookup(SemanticQuery* query,
                                const SemanticLookupOverrides& overrides = {}) = 0;

  // Records the answer stored under exact_key for this query: a semantic
  // entry when the query is eligible, else only its documents. Replaces a
  // previous entry of the same exact key. ttl_ms 0: TtlFor(query.ns).
  // An embedder failure still tracks the documents and returns OK.
  virtual Status Insert(SemanticQuery* query, std::string_view exact_key,
                        std::span<const std::string> doc_hashes, int64_t ttl_ms = 0) = 0;

  // Removes every entry built on the document; returns their exact keys
  // (which the gateway erases from the Store).
  virtual Result<std::vector<std::string>> InvalidateDoc(std::string_view doc_hash) = 0;

  // The exact entry is gone (expired, purged): drop the pointer to it.
  virtual Status Erase(std::string_view exact_key) = 0;

  // Expires entries, enforces max_entries and flushes access times.
  virtual Result<SemanticMaintainResult> Maintain() = 0;

  virtual int64_t TtlFor(std::string_view ns) const = 0;
  virtual SemanticCacheStats Stats() const = 0;

  // Writes the index snapshot so the next start need not rebuild it. The
  // destructor does not; entries are durable without it.
  virtual Status Checkpoint() = 0;

  // Receives the exact keys that a change made elsewhere (another replica's
  // document invalidation) removed from this cache, so that the caller drops
  // them from tiers only it holds (the gateway's memory tier). Called on a
  // background thread; after SetRemoteRemovalListener(nullptr) returns it is
  // never called again. A cache that changes only through its own calls
  // never calls it.
  using RemoteRemovalListener = std::function<void(const std::vector<std::string>& exact_keys)>;
  virtual void SetRemoteRemovalListener(RemoteRemovalListener listener) { (void)listener; }
};

// Opens (or creates) the cache under options.data_dir, reloading the index
// snapshot or rebuilding it from the entries (corrupt snapshot, embedder or
// dimension changed, unclean shutdown); every rebuild is logged.
// InvalidArgument: no embedder. IOError: the database cannot be opened.
Result<std::unique_ptr<SemanticCache>> OpenSemanticCache(SemanticCacheOptions options);

}  // namespace llmcache
