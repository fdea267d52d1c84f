// The engine's commands: `llmcache engine serve` (the OpenAI API over HTTP)
// and the engine flags `llmcache serve --model` shares with it.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>

#include "engine/server/engine_api.h"
#include "llmcache/status.h"

namespace CLI {
class App;
}

namespace llmcache::engine {

struct EngineRuntimeOptions {
  std::string model;          // GGUF path
  std::string model_name;     // empty: the file name without .gguf
  uint32_t n_ctx = 0;         // context per sequence; 0: min(4096, the model's training context)
  int threads = 0;            // compute threads; 0: one per hardware thread
  std::string chat_template;  // empty: the model's own (see EngineApiOptions)
  uint32_t max_sequences = 8;  // requests decoded together
  uint64_t kv_ram_mb = 512;    // RAM for KV blocks, shared by running requests and the prefix cache
  std::string kv_disk_dir;     // empty: no disk tier for evicted prefix blocks
  uint64_t kv_disk_mb = 4096;
};

// Loads the model and starts the backend (OpenEngineBackend) behind the API.
Result<std::shared_ptr<EngineApi>> OpenEngineApi(const EngineRuntimeOptions& options);

// The engine flags. `threads_flag` differs: `serve` has its own --threads.
CLI::App* AddEngineRuntimeFlags(CLI::App* cmd, EngineRuntimeOptions& options,
                                const std::string& threads_flag);

struct EngineServeOptions {
  EngineRuntimeOptions engine;
  std::string listen = "127.0.0.1:8081";  // HOST:PORT; port 0 picks a free one
  int http_threads = 2;                   // event loops; compute has its own threads
};

// Registers `engine` with its subcommand `serve`; returns `serve`.
CLI::App* AddEngineServeCommand(CLI::App& app, EngineServeOptions& options);

// Serves until SIGINT or SIGTERM; returns the exit code. Prints
// "llmcache engine listening on http://HOST:PORT/v1" once the port is open.
int RunEngineServe(const EngineServeOptions& options, std::ostream& out, std::ostream& err);

}  // namespace llmcache::engine
