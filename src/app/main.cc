// The llmcache command line. Subcommands grow here: serve today; embed,
// generate, engine, warm, calibrate, eval as their modules land.
#include <csignal>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "app/config.h"
#include "gateway/gateway.h"
#include "semantic/embed_command.h"

namespace llmcache::app {
namespace {

int Serve(ServeConfig config, const std::string& config_file, const CLI::App& cmd) {
  // Flags win over the config file: re-apply the ones given explicitly.
  ServeConfig flags = config;
  if (!config_file.empty()) {
    Status s = LoadConfigFile(config_file, config);
    if (!s.ok()) {
      std::cerr << "llmcache: " << s.ToString() << "\n";
      return 2;
    }
  }
  if (cmd.count("--listen")) config.listen = flags.listen;
  if (cmd.count("--upstream")) config.gateway.upstream_url = flags.gateway.upstream_url;
  if (cmd.count("--data-dir")) config.data_dir = flags.data_dir;
  if (cmd.count("--upstream-api-key-env")) config.upstream_api_key_env = flags.upstream_api_key_env;
  if (cmd.count("--threads")) config.gateway.server.threads = flags.gateway.server.threads;
  if (cmd.count("--memory-max")) config.memory_bound = flags.memory_bound;
  if (cmd.count("--admin-token-env")) config.gateway.admin_token = flags.gateway.admin_token;
  Status s = FinalizeConfig(config);
  if (!s.ok()) {
    std::cerr << "llmcache: " << s.ToString() << "\n";
    return 2;
  }

  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  MemoryStoreOptions mo;
  mo.max_bytes = MemoryBoundBytes(config);
  mo.expiry = config.expiry;
  RocksDbStoreOptions ro;
  ro.path = (std::filesystem::path(config.data_dir) / "rocksdb").string();
  ro.max_disk_bytes = config.disk_max_bytes;
  ro.expiry = config.expiry;
  ro.sync_writes = config.sync_writes;
  auto disk = OpenRocksDbStore(ro);
  if (!disk) {
    std::cerr << "llmcache: cannot open the store under " << config.data_dir << ": "
              << disk.error().ToString() << "\n";
    return 1;
  }
  auto store = NewTieredStore(NewMemoryStore(mo), std::move(*disk));
  auto gw = gateway::Gateway::Create(config.gateway, std::move(store));
  if (!gw) {
    std::cerr << "llmcache: " << gw.error().ToString() << "\n";
    return 2;
  }

  // Block the stop signals before any thread starts, then wait for them here.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  s = (*gw)->Start();
  if (!s.ok()) {
    std::cerr << "llmcache: " << s.ToString() << "\n";
    return 1;
  }
  const auto& so = config.gateway.server;
  std::string host = so.host.find(':') != std::string::npos ? "[" + so.host + "]" : so.host;
  std::cout << "llmcache gateway listening on http://" << host << ":" << (*gw)->port() << "/v1\n"
            << "  upstream:  " << config.gateway.upstream_url << "\n"
            << "  data dir:  " << config.data_dir << "\n"
            << "  point an OpenAI client at base_url=http://" << host << ":" << (*gw)->port()
            << "/v1 ; metrics at /metrics\n"
            << std::flush;
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("signal {}: stopping", sig);
  (*gw)->Stop();
  return 0;
}

}  // namespace
}  // namespace llmcache::app

int main(int argc, char** argv) {
  using llmcache::app::ServeConfig;
  CLI::App app{"llmcache: a caching layer for LLM serving"};
  app.require_subcommand(1);

  ServeConfig config;
  std::string config_file;
  std::string admin_token_env;
  auto* serve = app.add_subcommand("serve", "Run the OpenAI-compatible caching gateway");
  serve->add_option("--listen", config.listen, "HOST:PORT to listen on")->capture_default_str();
  serve->add_option("--upstream", config.gateway.upstream_url,
                    "Upstream base URL, like an OpenAI client's base_url")
      ->capture_default_str();
  serve->add_option("--data-dir", config.data_dir, "Directory of the persistent store")
      ->capture_default_str();
  serve->add_option("--upstream-api-key-env", config.upstream_api_key_env,
                    "Environment variable holding the upstream API key");
  serve->add_option("--config", config_file, "YAML config file (flags override it)");
  serve->add_option("--threads", config.gateway.server.threads, "Worker threads (0: one per core)");
  serve->add_option("--memory-max", config.memory_bound,
                    "Hot-tier bound: a fraction of physical memory (<= 1) or bytes");
  serve->add_option("--admin-token-env", admin_token_env,
                    "Environment variable holding the admin API token");

  llmcache::semantic::EmbedCommandOptions embed_options;
  auto* embed = app.add_subcommand(
      "embed", "Embed one text per stdin line; writes {\"embedding\":[...]} per line");
  embed->add_option("--embedder", embed_options.embedder, "Embedder (use-lite)")
      ->capture_default_str();
  embed->add_option("--model-dir", embed_options.model_dir,
                    "use-lite model package directory (default: the one install-deps installs)");
  embed->add_option("--threads", embed_options.threads, "Threads")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  if (*embed) return llmcache::semantic::RunEmbedCommand(embed_options, std::cin, std::cout, std::cerr);
  if (!admin_token_env.empty()) {
    const char* t = std::getenv(admin_token_env.c_str());
    if (t) config.gateway.admin_token = t;
  }
  if (*serve) return llmcache::app::Serve(config, config_file, *serve);
  return 0;
}
