// The llmcache command line. Subcommands grow here: serve today; embed,
// generate, engine, warm, calibrate, eval as their modules land.
#include <csignal>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "app/config.h"
#include "gateway/gateway.h"
#include "llmcache/lexical_guard.h"
#include "llmcache/semantic_cache.h"
#include "engine/generate_command.h"
#include "semantic/embed_command.h"
#include "semantic/warm.h"
#include "semantic/eval.h"
#include "semantic/calibrate.h"

namespace llmcache::app {
namespace {

// The semantic cache under <data-dir>/semantic, with the lexical guard.
Result<std::shared_ptr<SemanticCache>> OpenSemanticCacheFor(const ServeConfig& config,
                                                            const semantic::EmbedderChoice& choice) {
  auto embedder = semantic::MakeEmbedder(choice);
  if (!embedder) return Err(embedder.error());
  auto guard = NewLexicalGuard(LexicalGuardOptions{});
  if (!guard) return Err(guard.error());
  SemanticCacheOptions so;
  so.data_dir = (std::filesystem::path(config.data_dir) / "semantic").string();
  so.embedder = std::move(*embedder);
  so.guard = std::move(*guard);
  if (config.semantic_threshold) {
    // A stricter (or looser) global threshold moves the short-query one along.
    double shift = so.thresholds.short_threshold - so.thresholds.threshold;
    so.thresholds.threshold = *config.semantic_threshold;
    so.thresholds.short_threshold = std::min(1.0, *config.semantic_threshold + shift);
  }
  so.default_ttl_ms = config.gateway.default_ttl_ms;
  for (const auto& [name, ns] : config.gateway.namespaces) {
    SemanticThresholds t = so.thresholds;
    t.enabled = ns.semantic;
    if (ns.semantic_threshold) {
      double shift = t.short_threshold - t.threshold;
      t.threshold = *ns.semantic_threshold;
      t.short_threshold = std::min(1.0, *ns.semantic_threshold + shift);
    }
    so.namespace_thresholds[name] = t;
  }
  auto sem = OpenSemanticCache(std::move(so));
  if (!sem) return Err(sem.error());
  return std::shared_ptr<SemanticCache>(std::move(*sem));
}

int Serve(ServeConfig config, const std::string& config_file, const CLI::App& cmd,
          const semantic::EmbedderChoice& embedder) {
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
  if (cmd.count("--store")) config.store = flags.store;
  if (cmd.count("--store-password-env")) config.store_password_env = flags.store_password_env;
  if (cmd.count("--upstream-api-key-env")) config.upstream_api_key_env = flags.upstream_api_key_env;
  if (cmd.count("--threads")) config.gateway.server.threads = flags.gateway.server.threads;
  if (cmd.count("--memory-max")) config.memory_bound = flags.memory_bound;
  if (cmd.count("--admin-token-env")) config.gateway.admin_token = flags.gateway.admin_token;
  if (cmd.count("--semantic")) config.semantic = flags.semantic;
  if (cmd.count("--semantic-threshold")) config.semantic_threshold = flags.semantic_threshold;
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
  // Set for a Redis store: its degraded state (for /healthz and metrics).
  std::shared_ptr<const StoreHealth> store_health;
  auto disk = config.store == "embedded"
                  ? OpenRocksDbStore(ro)
                  : OpenRedisStore(RedisStoreOptionsFor(config), &store_health);
  if (store_health && store_health->degraded()) {
    spdlog::warn("redis store unreachable at start, serving without it until it answers: {}",
                 store_health->detail());
  }
  if (!disk) {
    std::cerr << "llmcache: cannot open the store under " << config.data_dir << ": "
              << disk.error().ToString() << "\n";
    return 1;
  }
  auto store = NewTieredStore(NewMemoryStore(mo), std::move(*disk));
  config.gateway.store_health = store_health;
  if (config.semantic) {
    auto sem = OpenSemanticCacheFor(config, embedder);
    if (!sem) {
      // Fail open: the exact cache still serves.
      spdlog::error("semantic cache unavailable, serving exact matches only: {}",
                    sem.error().ToString());
    } else {
      config.gateway.semantic = std::move(*sem);
    }
  }
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
            << "  store:     "
            << (store_health ? "redis, " + store_health->detail() : std::string("embedded")) << "\n"
            << "  semantic:  "
            << (config.gateway.semantic ? "on (" + embedder.embedder + ")" : std::string("off"))
            << "\n"
            << "  point an OpenAI client at base_url=http://" << host << ":" << (*gw)->port()
            << "/v1 ; metrics at /metrics\n"
            << std::flush;
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("signal {}: stopping", sig);
  (*gw)->Stop();
  return 0;
}

// The embedder flags of every command that embeds. `serve` has its own
// --threads, so its use-lite directory flag is --embedder-model-dir.
void AddEmbedderChoiceFlags(CLI::App* cmd, semantic::EmbedderChoice& e,
                            const std::string& model_dir_flag) {
  cmd->add_option("--embedder", e.embedder, "Embedder: use-lite (in-process) or openai")
      ->capture_default_str();
  cmd->add_option("--embedder-url", e.url,
                  "openai: base URL of an OpenAI-compatible /embeddings endpoint");
  cmd->add_option("--embedder-model", e.model, "openai: embedding model name");
  cmd->add_option("--embedder-api-key-env", e.api_key_env,
                  "openai: environment variable holding the API key");
  cmd->add_option(model_dir_flag, e.model_dir,
                  "use-lite model package directory (default: the one install-deps installs)");
}

// The embedder flags `embed` and `warm` share.
void AddEmbedderFlags(CLI::App* cmd, semantic::EmbedderChoice& e) {
  AddEmbedderChoiceFlags(cmd, e, "--model-dir");
  cmd->add_option("--threads", e.threads, "use-lite threads")->capture_default_str();
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
  serve->add_option("--store", config.store,
                    "Store below the memory tier: embedded, redis://[:PASSWORD@]HOST:PORT[/DB] or "
                    "redis-sentinel://HOST:PORT,HOST:PORT/MASTER_NAME")
      ->capture_default_str();
  serve->add_option("--store-password-env", config.store_password_env,
                    "Environment variable holding the Redis password");
  serve->add_option("--upstream-api-key-env", config.upstream_api_key_env,
                    "Environment variable holding the upstream API key");
  serve->add_option("--config", config_file, "YAML config file (flags override it)");
  serve->add_option("--threads", config.gateway.server.threads, "Worker threads (0: one per core)");
  serve->add_option("--memory-max", config.memory_bound,
                    "Hot-tier bound: a fraction of physical memory (<= 1) or bytes");
  serve->add_option("--admin-token-env", admin_token_env,
                    "Environment variable holding the admin API token");
  llmcache::semantic::EmbedderChoice serve_embedder;
  serve->add_option("--semantic", config.semantic,
                    "on: answer paraphrases of cached chat questions (semantic cache)");
  serve->add_option("--semantic-threshold", config.semantic_threshold,
                    "Cosine similarity a paraphrase needs (default: calibrated, see "
                    "docs/semantic-eval.md)");
  llmcache::app::AddEmbedderChoiceFlags(serve, serve_embedder, "--embedder-model-dir");

  llmcache::engine::GenerateOptions generate_options;
  auto* generate = llmcache::engine::AddGenerateCommand(app, generate_options);

  llmcache::semantic::EmbedCommandOptions embed_options;
  auto* embed = app.add_subcommand(
      "embed", "Embed one text per stdin line; writes {\"embedding\":[...]} per line");
  llmcache::app::AddEmbedderFlags(embed, embed_options);

  llmcache::semantic::WarmCommandOptions warm_options;
  auto* warm = app.add_subcommand(
      "warm", "Pre-fill the cache with the most frequent questions of a query log");
  warm->add_option("querylog", warm_options.log_path,
                   "JSONL query log: chat request bodies or {\"query\",\"model\",\"namespace\"}")
      ->required();
  warm->add_option("--top", warm_options.top, "Clusters to send")->capture_default_str();
  warm->add_option("--gateway", warm_options.gateway_url, "Gateway base URL")
      ->capture_default_str();
  warm->add_option("--namespace", warm_options.ns, "Namespace for lines without one");
  warm->add_option("--model", warm_options.model, "Model for lines without one");
  warm->add_flag("--dry-run", warm_options.dry_run, "Print the chosen questions, send nothing");
  warm->add_option("--min-cosine", warm_options.cluster.min_cosine,
                   "Cosine at which paraphrases may cluster (the lexical guard decides too)")
      ->capture_default_str();
  std::string warm_api_key_env;
  warm->add_option("--api-key-env", warm_api_key_env,
                   "Environment variable holding the key sent to the gateway");
  // `--embedder none` clusters exact repeats only.
  llmcache::app::AddEmbedderFlags(warm, warm_options.embedder);

  llmcache::semantic::EvalCommandOptions eval_options;
  auto* eval = app.add_subcommand(
      "eval", "Semantic cache quality on a labelled set: hit and false-hit rates per threshold");
  eval->add_option("set", eval_options.set_path, "JSONL {\"text\",\"intent\",\"family\",\"lang\"}")
      ->required();
  eval->add_option("--model-dir", eval_options.model_dir, "use-lite model package directory");
  eval->add_option("--holdout", eval_options.holdout_fraction, "Share of intents held out")
      ->capture_default_str();
  eval->add_option("--seed", eval_options.seed, "Seed of the hold-out choice")->capture_default_str();
  eval->add_option("--thresholds", eval_options.thresholds, "Thresholds to sweep (default 0.60..0.95)");
  llmcache::semantic::CalibrateCommandOptions calibrate_options;
  auto* calibrate = app.add_subcommand(
      "calibrate", "Pick the semantic threshold for a target false-hit rate from labelled pairs");
  calibrate->add_option("pairs", calibrate_options.pairs_path,
                        "JSONL {\"a\",\"b\",\"same\",\"lang\",\"kind\"}")
      ->required();
  calibrate->add_option("--max-false-hit", calibrate_options.max_false_hit,
                        "Target false-hit rate")->capture_default_str();
  calibrate->add_option("--model-dir", calibrate_options.model_dir,
                        "use-lite model package directory");
  for (auto* cmd : {eval, calibrate}) {
    cmd->add_flag("--no-guard{false}", cmd == eval ? eval_options.guard : calibrate_options.guard,
                  "Without the lexical guard");
  }

  CLI11_PARSE(app, argc, argv);
  if (*eval) return llmcache::semantic::RunEvalCommand(eval_options, std::cout, std::cerr);
  if (*calibrate) {
    return llmcache::semantic::RunCalibrateCommand(calibrate_options, std::cout, std::cerr);
  }
  if (*generate) return llmcache::engine::RunGenerate(generate_options, std::cout, std::cerr);
  if (*embed) return llmcache::semantic::RunEmbedCommand(embed_options, std::cin, std::cout, std::cerr);
  if (*warm) {
    if (!warm_api_key_env.empty()) {
      const char* k = std::getenv(warm_api_key_env.c_str());
      if (k) warm_options.api_key = k;
    }
    return llmcache::semantic::RunWarmCommand(warm_options, std::cout, std::cerr);
  }
  if (!admin_token_env.empty()) {
    const char* t = std::getenv(admin_token_env.c_str());
    if (t) config.gateway.admin_token = t;
  }
  if (*serve) return llmcache::app::Serve(config, config_file, *serve, serve_embedder);
  return 0;
}
