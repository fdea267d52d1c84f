// `llmcache generate`: run a GGUF model on one prompt and print the
// continuation (text, or JSON with token ids and timings).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace llmcache::engine {

struct GenerateOptions {
  std::string model;                   // GGUF path
  std::optional<std::string> prompt;   // tokenized with the model's vocabulary (BOS per metadata)
  std::vector<int32_t> prompt_tokens;  // used as is when `prompt` is unset
  int n_predict = 32;
  float temperature = 0.0f;  // 0: greedy
  int top_k = 40;
  float top_p = 0.95f;
  uint64_t seed = 0;
  int threads = 1;
  bool ignore_eos = false;  // keep going past end-of-generation tokens
  bool json = false;
};

// Registers the `generate` subcommand with its flags bound to `options`.
CLI::App* AddGenerateCommand(CLI::App& app, GenerateOptions& options);

// Returns the process exit code; errors go to `err`.
int RunGenerate(const GenerateOptions& options, std::ostream& out, std::ostream& err);

}  // namespace llmcache::engine
