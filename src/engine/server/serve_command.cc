#include "engine/server/serve_command.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <ostream>
#include <thread>

#include "engine/server/engine_server.h"
#include "engine/server/open_backend.h"

namespace llmcache::engine {

Result<std::shared_ptr<EngineApi>> OpenEngineApi(const EngineRuntimeOptions& o) {
  auto opened = Model::Open(o.model);
  if (!opened) return Err(opened.error());
  std::shared_ptr<const Model> model = std::move(*opened);
  uint32_t n_ctx = o.n_ctx;
  if (n_ctx == 0) {
    const uint32_t train = model->config().n_ctx_train;
    n_ctx = train == 0 ? 4096 : std::min<uint32_t>(4096, train);
  }
  const int threads = o.threads > 0
                          ? o.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto backend = OpenEngineBackend(*model, {.n_ctx = n_ctx,
                                            .threads = threads,
                                            .max_sequences = o.max_sequences,
                                            .kv_ram_bytes = o.kv_ram_mb << 20,
                                            .kv_disk_dir = o.kv_disk_dir,
                                            .kv_disk_bytes = o.kv_disk_mb << 20});
  if (!backend) return Err(backend.error());
  EngineApiOptions api;
  api.model_name =
      o.model_name.empty() ? std::filesystem::path(o.model).stem().string() : o.model_name;
  api.chat_template = o.chat_template;
  return EngineApi::Create(std::move(model), std::move(*backend), std::move(api));
}

CLI::App* AddEngineRuntimeFlags(CLI::App* cmd, EngineRuntimeOptions& o,
                                const std::string& threads_flag) {
  cmd->add_option("--model-name", o.model_name,
                  "Model id in /v1/models and in answers (default: the file name)");
  cmd->add_option("--n-ctx", o.n_ctx,
                  "Context per request in tokens (default: min(4096, the model's))");
  cmd->add_option(threads_flag, o.threads, "Compute threads (default: one per core)")
      ->check(CLI::Range(0, 256));
  cmd->add_option("--chat-template", o.chat_template,
                  "Chat template name (chatml, llama3, mistral-v7, ...) instead of the model's");
  cmd->add_option("--max-sequences", o.max_sequences, "Requests decoded together")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--kv-ram-mb", o.kv_ram_mb,
                  "RAM for KV blocks: running requests and the prefix cache (MiB)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("--kv-disk-dir", o.kv_disk_dir,
                  "Directory of the prefix cache's disk tier (default: none)");
  cmd->add_option("--kv-disk-mb", o.kv_disk_mb, "Bound of the disk tier (MiB)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30))
      ->capture_default_str();
  return cmd;
}

CLI::App* AddEngineServeCommand(CLI::App& app, EngineServeOptions& o) {
  auto* engine = app.add_subcommand("engine", "The CPU inference engine");
  engine->require_subcommand(1);
  auto* serve = engine->add_subcommand(
      "serve", "Serve a GGUF model over an OpenAI-compatible API (/v1/chat/completions, ...)");
  serve->add_option("--model", o.engine.model, "GGUF model file")->required();
  serve->add_option("--listen", o.listen, "HOST:PORT to listen on")->capture_default_str();
  serve->add_option("--http-threads", o.http_threads, "Event-loop threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  AddEngineRuntimeFlags(serve, o.engine, "--threads");
  return serve;
}

int RunEngineServe(const EngineServeOptions& o, std::ostream& out, std::ostream& err) {
  http::ServerOptions so;
  const auto colon = o.listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    try {
      port = std::stoi(o.listen.substr(colon + 1));
    } catch (const std::exception&) {
    }
  }
  if (port < 0 || port > 65535) {
    err << "engine serve: --listen must be HOST:PORT, got " << o.listen << "\n";
    return 2;
  }
  so.host = o.listen.substr(0, colon);
  if (so.host.size() >= 2 && so.host.front() == '[' && so.host.back() == ']') {
    so.host = so.host.substr(1, so.host.size() - 2);
  }
  so.port = static_cast<uint16_t>(port);
  so.threads = o.http_threads;

  // Block the stop signals before any thread starts (the engine's workers
  // start with the API), then wait for them here: a thread that does not
  // block them could take one and kill the process instead.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto api = OpenEngineApi(o.engine);
  if (!api) {
    err << "engine serve: " << api.error().ToString() << "\n";
    return 1;
  }

  EngineServer server(*api, so);
  Status s = server.Start();
  if (!s.ok()) {
    err << "engine serve: " << s.ToString() << "\n";
    return 1;
  }
  const std::string host = so.host.find(':') != std::string::npos ? "[" + so.host + "]" : so.host;
  out << "llmcache engine listening on http://" << host << ":" << server.port() << "/v1\n"
      << "  model: " << (*api)->model_name() << " (" << o.engine.model << "), context "
      << (*api)->n_ctx() << " tokens\n"
      << std::flush;
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("signal {}: stopping", sig);
  server.Stop();
  return 0;
}

}  // namespace llmcache::engine
