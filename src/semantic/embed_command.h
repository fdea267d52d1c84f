// `llmcache embed`: reads one text per line, writes one JSON line per text,
// {"embedding":[...]}, with the L2-normalized vector. Lines are embedded in
// batches (one Embed call per batch) but output follows input order and is
// flushed per batch, so the command also works as a pipe filter.
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "llmcache/embedder.h"

namespace llmcache::semantic {

// Which embedder a command uses, as its flags name it:
//   --embedder use-lite|openai --embedder-url URL --embedder-model NAME
//   [--embedder-api-key-env VAR] [--model-dir DIR] [--threads N]
struct EmbedderChoice {
  std::string embedder = "use-lite";  // "use-lite" or "openai"
  std::string model_dir;              // use-lite: the package directory; empty: the default
  int threads = 1;                    // use-lite
  std::string url;                    // openai: base URL, e.g. http://127.0.0.1:11434/v1
  std::string model;                  // openai: model name, e.g. nomic-embed-text
  // openai: environment variable holding the API key; empty: no key. A
  // variable, never the key itself, so keys stay out of shell history.
  std::string api_key_env;
  std::chrono::milliseconds timeout{30'000};  // openai: per request
};

// InvalidArgument for unusable choices (unknown embedder, openai without
// url or model, an api_key_env that is not set); the embedder's own load
// errors otherwise.
Result<std::unique_ptr<Embedder>> MakeEmbedder(const EmbedderChoice& choice);

struct EmbedCommandOptions : EmbedderChoice {
  size_t batch_lines = 64;  // lines per Embed call
};

// Returns the process exit code: 0 on success, 1 when embedding or writing
// fails, 2 for unusable options. Errors go to `err`.
int RunEmbedCommand(const EmbedCommandOptions& options, std::istream& in, std::ostream& out,
                    std::ostream& err);
int RunEmbedCommand(const EmbedCommandOptions& options, std::istream& in, std::ostream& out);

// The same with an embedder built by the caller (any kind).
int RunEmbedCommand(Embedder& embedder, size_t batch_lines, std::istream& in, std::ostream& out,
                    std::ostream& err);

// Appends {"embedding":[...]} (no newline); each float printed in the
// shortest form that reads back to the same float.
void AppendEmbeddingJson(const std::vector<float>& v, std::string& out);

}  // namespace llmcache::semantic
