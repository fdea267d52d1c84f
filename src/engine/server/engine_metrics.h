// The engine's Prometheus metrics (`llmcache_engine_*`): requests, tokens,
// the prefix cache in tokens and the KV blocks of its RAM and disk tiers.
// Every family is a callback that reads EngineApi::stats() when scraped, so
// the engine's hot loop only bumps its own atomics. `llmcache engine serve`
// registers them in its own registry, `llmcache serve --model` in the
// gateway's (GatewayOptions::register_metrics); docs/engine.md lists them.
#pragma once

#include <memory>

#include "engine/server/engine_api.h"
#include "metrics/metrics.h"

namespace llmcache::engine {

// The prefix-cache and disk-tier families are registered only when the
// backend has them (the serial backend has neither). Registering twice in
// one registry aborts (callback families are unique).
void RegisterEngineMetrics(metrics::Registry& registry, std::shared_ptr<EngineApi> api);

}  // namespace llmcache::engine
