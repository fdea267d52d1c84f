// The llmcache command line. Subcommands grow here: serve today; embed,
// generate, engine, warm, calibrate, eval as their modules land.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <iostream>

#include "app/config.h"
#include "engine/generate_command.h"
#include "engine/server/engine_metrics.h"
#include "engine/server/engine_upstream.h"
#include "engine/server/serve_command.h"
#include "gateway/gateway.h"
#include "llmcache/lexical_guard.h"
#include "llmcache/semantic_cache.h"
#include "semantic/calibrate.h"
#include "semantic/embed_command.h"
#include "semantic/eval.h"
#include "semantic/llm_verifier.h"
#include "semantic/redis_replication.h"
#include "semantic/warm.h"
#include "store/redis_flight.h"

namespace llmcache::app {
namespace {

// The grey-band verifier of `semantic_verify` (global and per namespace);
// null when no namespace is verified.
Result<std::shared_ptr<PairVerifier>> VerifierFor(const ServeConfig& config) {
  auto make = [&](const SemanticVerifyEndpoint& e) -> Result<std::shared_ptr<PairVerifier>> {
    semantic::LlmVerifierOptions vo;
    vo.url = e.url;
    vo.model = e.model;
    vo.api_key = e.api_key;
    vo.timeout = std::chrono::milliseconds(config.semantic_verify_timeout_ms);
    vo.ca_file = config.gateway.client.ca_file;
    vo.verify_tls = config.gateway.client.verify_tls;
    auto v = semantic::NewLlmVerifier(vo);
    if (!v) return Err(v.error());
    return std::shared_ptr<PairVerifier>(std::move(*v));
  };
  std::shared_ptr<PairVerifier> fallback;
  if (!config.semantic_verify.model.empty()) {
    auto v = make(config.semantic_verify);
    if (!v) return Err(v.error());
    fallback = std::move(*v);
  }
  std::map<std::string, std::shared_ptr<PairVerifier>, std::less<>> by_ns;
  for (const auto& [name, e] : config.semantic_verify_namespaces) {
    auto& slot = by_ns[name];
    if (!e.enabled) continue;  // stays null: not verified
    auto v = make(e);
    if (!v) return Err(v.error());
    slot = std::move(*v);
  }
  if (!fallback && std::none_of(by_ns.begin(), by_ns.end(), [](auto& kv) { return kv.second; }))
    return std::shared_ptr<PairVerifier>();
  if (by_ns.empty()) return fallback;
  return semantic::NewNamespaceVerifier(std::move(fallback), std::move(by_ns));
}

// The semantic cache under <data-dir>/semantic, with the lexical guard.
Result<std::shared_ptr<SemanticCache>> OpenSemanticCacheFor(
    const ServeConfig& config, const semantic::EmbedderChoice& choice) {
  auto embedder = semantic::MakeEmbedder(choice);
  if (!embedder) return Err(embedder.error());
  auto guard = NewLexicalGuard(LexicalGuardOptions{});
  if (!guard) return Err(guard.error());
  SemanticCacheOptions so;
  so.data_dir = (std::filesystem::path(config.data_dir) / "semantic").string();
  so.embedder = std::move(*embedder);
  so.guard = std::move(*guard);
  auto verifier = VerifierFor(config);
  if (!verifier) return Err(verifier.error());
  so.verifier = std::move(*verifier);
  if (config.semantic_verify_grey_band) so.grey_band = *config.semantic_verify_grey_band;
  so.overrule_content_words = config.semantic_verify_overrule_content_words;
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
  const std::string dir = so.data_dir, embedder_id(so.embedder->id());
  auto sem = OpenSemanticCache(std::move(so));
  if (!sem) return Err(sem.error());
  std::shared_ptr<SemanticCache> cache(std::move(*sem));
  if (config.store == "embedded") return cache;
  // Replicas on one Redis share the index through a stream (docs/redis.md).
  semantic::RedisSemanticLogOptions lo;
  lo.url = config.store;
  lo.password_env = config.store_password_env;
  lo.stream_key = config.store_key_prefix + config.semantic_stream;
  lo.max_len = config.semantic_stream_max_len;
  return semantic::ReplicateThroughRedis(std::move(cache), embedder_id, dir, std::move(lo));
}

int Serve(ServeConfig config, const std::string& config_file, const CLI::App& cmd,
          const semantic::EmbedderChoice& embedder, const engine::EngineRuntimeOptions& engine) {
  // Block the stop signals before any thread starts (RocksDB's background
  // threads, the engine's workers, the semantic replication threads): threads
  // inherit the mask, and a stop signal delivered to a thread that does not
  // block it would kill the process instead of reaching the sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

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
  if (cmd.count("--semantic-verify-model"))
    config.semantic_verify.model = flags.semantic_verify.model;
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
  if (store_health) {
    // Replicas over one Redis also coalesce identical misses through it.
    RedisFlightOptions fo;
    fo.url = config.store;
    fo.password_env = config.store_password_env;
    fo.key_prefix = config.store_key_prefix;
    auto flight = RedisFlight::Open(std::move(fo));
    if (flight) config.gateway.shared_flight = std::move(*flight);
  }
  if (config.semantic) {
    auto sem = OpenSemanticCacheFor(config, embedder);
    if (!sem) {
      // Fail open: the exact cache still serves.
      spdlog::error("semantic cache unavailable, serving exact matches only: {}",
                    sem.error().ToString());
    } else {
      config.gateway.semantic = std::move(*sem);
      // A grey-band check waits on a model (up to its timeout): more threads
      // keep the other lookups moving meanwhile.
      config.gateway.semantic_threads =
          config.semantic_threads.value_or(SemanticVerifyConfigured(config) ? 4 : 1);
    }
  }
  // serve --model: the engine in-process is the upstream (docs/engine.md).
  std::shared_ptr<engine::EngineApi> engine_api;
  gateway::Gateway::UpstreamFactory upstream_factory;
  if (!engine.model.empty()) {
    auto api = engine::OpenEngineApi(engine);
    if (!api) {
      std::cerr << "llmcache: " << api.error().ToString() << "\n";
      return 1;
    }
    engine_api = *api;
    upstream_factory = engine::MakeEngineUpstreamFactory(engine_api);
    config.gateway.register_metrics = [engine_api](metrics::Registry& r) {
      engine::RegisterEngineMetrics(r, engine_api);
    };
  }
  auto gw = gateway::Gateway::Create(config.gateway, std::move(store), nullptr, upstream_factory);
  if (!gw) {
    std::cerr << "llmcache: " << gw.error().ToString() << "\n";
    return 2;
  }

  s = (*gw)->Start();
  if (!s.ok()) {
    std::cerr << "llmcache: " << s.ToString() << "\n";
    return 1;
  }
  const auto& so = config.gateway.server;
  std::string host = so.host.find(':') != std::string::npos ? "[" + so.host + "]" : so.host;
  std::cout << "llmcache gateway listening on http://" << host << ":" << (*gw)->port() << "/v1\n"
            << "  upstream:  "
            << (engine_api ? "in-process engine, model " + engine_api->model_name()
                           : config.gateway.upstream_url)
            << "\n"
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
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: stopping", sig);
  if (engine_api) engine_api->Shutdown();  // before the event loops it reports to stop
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
  auto* upstream_flag = serve
                            ->add_option("--upstream", config.gateway.upstream_url,
                                         "Upstream base URL, like an OpenAI client's base_url")
                            ->capture_default_str();
  serve->add_option("--data-dir", config.data_dir, "Directory of the persistent store")
      ->capture_default_str();
  serve
      ->add_option("--store", config.store,
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
  serve->add_option("--semantic-verify-model", config.semantic_verify.model,
                    "Chat model asked \"same answer?\" about candidates just below the threshold "
                    "(through the upstream unless semantic_verify.url is configured)");
  llmcache::app::AddEmbedderChoiceFlags(serve, serve_embedder, "--embedder-model-dir");
  llmcache::engine::EngineRuntimeOptions serve_engine;
  serve
      ->add_option("--model", serve_engine.model,
                   "GGUF model to run in-process as the upstream (instead of --upstream)")
      ->excludes(upstream_flag);
  llmcache::engine::AddEngineRuntimeFlags(serve, serve_engine, "--engine-threads");
  llmcache::engine::EngineServeOptions engine_serve_options;
  auto* engine_serve = llmcache::engine::AddEngineServeCommand(app, engine_serve_options);

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
  eval->add_option("--seed", eval_options.seed, "Seed of the hold-out choice")
      ->capture_default_str();
  eval->add_option("--thresholds", eval_options.thresholds,
                   "Thresholds to sweep (default 0.60..0.95)");
  eval->add_option("--split", eval_options.split, "Only the tune or the test half of the families");
  eval->add_option_function<size_t>(
      "--max-inserted", [&](const size_t& v) { eval_options.max_inserted_words = v; },
      "Guard: inserted generic words tolerated");
  eval->add_option_function<double>(
      "--word-similarity", [&](const double& v) { eval_options.min_word_similarity = v; },
      "Guard: word-alignment cosine (<= 0: off)");
  eval->add_option_function<double>(
      "--loose-raise", [&](const double& v) { eval_options.loose_threshold_raise = v; },
      "Guard: extra similarity a loose pass needs");
  eval->add_option("--verifier", eval_options.verifier,
                   "oracle[:ACCURACY]: a simulated grey-band check answering from the labels");
  eval->add_option_function<double>(
      "--grey-band", [&](const double& v) { eval_options.grey_band = v; },
      "With --verifier: width of the band below θ that is checked (default 0.10)");
  eval->add_flag("--overrule-content-words", eval_options.overrule_content_words,
                 "With --verifier: it decides content-word refusals at or above θ");
  eval->add_option("--thesaurus", eval_options.thesaurus_path,
                   "Guard: a MyThes thesaurus (th_en_US_v2.dat) as an extra synonym source");
  eval->add_flag("--thesaurus-similar", eval_options.thesaurus_similar_terms,
                 "Guard: also the thesaurus' similar terms");
  llmcache::semantic::CalibrateCommandOptions calibrate_options;
  auto* calibrate = app.add_subcommand(
      "calibrate", "Pick the semantic threshold for a target false-hit rate from labelled pairs");
  calibrate
      ->add_option("pairs", calibrate_options.pairs_path,
                   "JSONL {\"a\",\"b\",\"same\",\"lang\",\"kind\"}")
      ->required();
  calibrate->add_option("--max-false-hit", calibrate_options.max_false_hit, "Target false-hit rate")
      ->capture_default_str();
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
  if (*engine_serve) {
    return llmcache::engine::RunEngineServe(engine_serve_options, std::cout, std::cerr);
  }
  if (*embed)
    return llmcache::semantic::RunEmbedCommand(embed_options, std::cin, std::cout, std::cerr);
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
  if (*serve)
    return llmcache::app::Serve(config, config_file, *serve, serve_embedder, serve_engine);
  return 0;
}
