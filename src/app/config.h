// `llmcache serve` settings: embedded defaults, then the YAML config file,
// then command-line flags, each overriding the one before.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "gateway/gateway.h"
#include "llmcache/store.h"

namespace llmcache::app {

// A chat endpoint that answers the semantic cache's grey-band question
// ("do these two questions ask for the same answer?").
struct SemanticVerifyEndpoint {
  bool enabled = true;      // false: `semantic_verify: false` (a namespace not verified)
  std::string model;        // the chat model; required to verify
  std::string url;          // empty: the upstream's URL
  std::string api_key_env;  // empty: the upstream's key (if any)
  std::string api_key;      // resolved by FinalizeConfig
};

struct ServeConfig {
  gateway::GatewayOptions gateway;
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./llmcache-data";
  std::string upstream_api_key_env;
  // 0 < x <= 1: fraction of physical memory; > 1: bytes. Default 0.7.
  double memory_bound = 0.7;
  uint64_t disk_max_bytes = 10ull << 30;
  ExpiryOptions expiry;
  bool sync_writes = false;
  // Where entries live below the memory tier: "embedded" (RocksDB under
  // data_dir) or a redis:// / redis-sentinel:// URL (see docs/redis.md).
  std::string store = "embedded";
  std::string store_password_env;  // environment variable with the Redis password
  std::string store_key_prefix = "llmcache:";
  // The semantic cache (`--semantic on`): paraphrases of cached chat
  // questions get the cached answer. Off by default.
  bool semantic = false;
  // Cosine threshold; unset: the semantic cache's calibrated default.
  std::optional<double> semantic_threshold;
  // With a Redis store, replicas share the semantic index through this
  // stream (under store_key_prefix), trimmed to about this many changes
  // (docs/redis.md, "Semantic cache across replicas").
  std::string semantic_stream = "semantic:stream";
  uint64_t semantic_stream_max_len = 20'000;
  // `semantic_verify` (--semantic-verify-model): candidates in the grey band
  // below the threshold are checked by asking a chat model, the upstream by
  // default. Off while no model is set.
  SemanticVerifyEndpoint semantic_verify;
  std::optional<double> semantic_verify_grey_band;  // unset: the cache's default
  int64_t semantic_verify_timeout_ms = 2'000;
  // `semantic_verify: {overrule_content_words: true}`: the check also decides
  // candidates at or above the threshold that the guard refused only for
  // unmatched content words (SemanticCacheOptions::overrule_content_words).
  bool semantic_verify_overrule_content_words = false;
  // Per namespace: an endpoint of its own (what it leaves out comes from
  // semantic_verify), or enabled = false.
  std::map<std::string, SemanticVerifyEndpoint> semantic_verify_namespaces;
  // Threads that embed, search and verify; unset: 1, or 4 when some
  // namespace is verified (a check may wait on a model for its timeout).
  std::optional<int> semantic_threads;
};

// Whether semantic_verify is on anywhere (globally or for a namespace).
bool SemanticVerifyConfigured(const ServeConfig& config);

// Parses "30s", "500ms", "7d", "2h", "15m" or a bare number of seconds.
Result<int64_t> ParseDurationMs(std::string_view text);
// Parses "8MiB", "2GB", "512k", "1.5GiB" or a bare number of bytes.
Result<uint64_t> ParseBytes(std::string_view text);

// Applies a YAML config file on top of `config`.
Status LoadConfigFile(const std::string& path, ServeConfig& config);
// Resolves listen address, memory bound, environment secrets.
Status FinalizeConfig(ServeConfig& config);
// Memory bound in bytes for the hot tier.
uint64_t MemoryBoundBytes(const ServeConfig& config);
// The Redis store settings for config.store (a redis:// or
// redis-sentinel:// URL). No byte bound of its own: Redis's maxmemory
// (with allkeys-lru) bounds it, see docs/redis.md.
RedisStoreOptions RedisStoreOptionsFor(const ServeConfig& config);

}  // namespace llmcache::app
