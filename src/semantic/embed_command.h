// `llmcache embed`: reads one text per line, writes one JSON line per text,
// {"embedding":[...]}, with the L2-normalized vector. Lines are embedded in
// batches (one Embed call per batch) but output follows input order and is
// flushed per batch, so the command also works as a pipe filter.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

#include "llmcache/embedder.h"

namespace llmcache::semantic {

struct EmbedCommandOptions {
  std::string embedder = "use-lite";  // only "use-lite" is built in here
  std::string model_dir;              // use-lite: the package directory; empty: the default
  int threads = 1;
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
