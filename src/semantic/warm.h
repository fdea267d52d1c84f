// `llmcache warm QUERYLOG.jsonl --top N`: fills the cache before traffic
// arrives. Finds the most frequent questions of a query log (exact repeats,
// and paraphrases of each other when an embedder and the lexical guard are
// available), then sends one representative request per cluster through the
// gateway, so the gateway answers it from the upstream and caches it.
//
// Query log: one JSON object per line, either
//   - an OpenAI chat completions request body, {"model", "messages", ...}:
//     the question is the last user message (string content, or the text
//     parts of an array content); the rest of the body (system prompt,
//     earlier turns, parameters) is its context, and the body is replayed
//     as it is; or
//   - {"query": "...", "model": "...", "namespace": "..."} (model and
//     namespace optional): replayed as a one-message chat request.
// A chat body may carry "namespace" too; it is taken out of the replayed
// body and sent as the x-llmcache-namespace header. Blank lines are ignored;
// other lines are counted as skipped.
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/embedder.h"
#include "llmcache/lexical_guard.h"
#include "llmcache/status.h"
#include "semantic/embed_command.h"

namespace llmcache::semantic {

struct LoggedQuery {
  std::string text;   // the question
  std::string model;  // empty: the command's --model
  std::string ns;     // empty: the command's --namespace
  // Everything but the question that decides the cache entry (a chat
  // body's other messages and parameters, as JSON); queries are only ever
  // merged within one (model, namespace, context).
  std::string context;
  std::string body;  // the chat body to replay; empty: built from text
};

// InvalidArgument for a line of neither format or without a question.
Result<LoggedQuery> ParseQueryLogLine(std::string_view line);

// Case, spacing and trailing punctuation do not make another question:
// lowercases ASCII, collapses white space, drops trailing ?!.。？！.
std::string NormalizeQuestion(std::string_view text);

struct QueryCluster {
  LoggedQuery representative;  // its most frequent wording
  size_t count = 0;            // log lines in the cluster
  size_t variants = 0;         // distinct normalized wordings merged
};

struct ClusterOptions {
  // Cosine at or above which two wordings may merge; high on purpose: a
  // merged paraphrase is not warmed on its own.
  double min_cosine = 0.9;
  // Both needed for paraphrase clusters; either null: exact repeats only.
  // The guard has the last word over every merge (numbers, entities,
  // negation, content words), as it has over every semantic hit.
  Embedder* embedder = nullptr;
  const LexicalGuard* guard = nullptr;
};

struct ClusterResult {
  std::vector<QueryCluster> clusters;  // by count, most frequent first
  size_t distinct = 0;                 // distinct (partition, normalized text)
  // Set when embedding failed and clustering fell back to exact repeats.
  std::string embed_error;
};

// Greedy clustering: exact groups from the most frequent down, each joins
// the most similar existing cluster of its partition that passes both the
// cosine and the guard, or starts a new one. Deterministic for a given log.
ClusterResult ClusterQueries(const std::vector<LoggedQuery>& queries,
                             const ClusterOptions& options);

struct WarmOptions {
  std::string gateway_url = "http://127.0.0.1:8080/v1";
  std::string model;  // for log lines without one
  std::string ns;     // for log lines without one; empty: the gateway's default
  size_t top = 100;
  bool dry_run = false;                        // print the chosen queries, send nothing
  std::string api_key;                         // sent as a Bearer token to the gateway; empty: none
  std::chrono::milliseconds timeout{120'000};  // per request
  ClusterOptions cluster;
};

struct WarmSummary {
  size_t lines = 0;    // non-blank log lines
  size_t skipped = 0;  // unreadable lines, or without a model to use
  size_t distinct = 0;
  size_t clusters = 0;
  size_t chosen = 0;
  size_t covered = 0;         // log lines the chosen clusters stand for
  size_t filled = 0;          // answered by the upstream, now cached
  size_t already_cached = 0;  // the gateway answered from its cache
  size_t failed = 0;
};

// Reads the log, clusters, then prints the plan (dry run) or sends the
// requests one after another. Returns the exit code: 0, 1 if any request
// failed or the log cannot be read, 2 for unusable options. Progress and
// errors go to `err`, the plan and the summary to `out`.
int RunWarm(const WarmOptions& options, std::istream& log, std::ostream& out, std::ostream& err,
            WarmSummary* summary = nullptr);

// The command line: opens the log, builds the embedder (`--embedder none`
// for exact repeats only) and, when built in, the lexical guard.
struct WarmCommandOptions : WarmOptions {
  std::string log_path;
  EmbedderChoice embedder;
  bool guard = true;  // false: exact repeats only
};
int RunWarmCommand(const WarmCommandOptions& options, std::ostream& out, std::ostream& err);

}  // namespace llmcache::semantic
