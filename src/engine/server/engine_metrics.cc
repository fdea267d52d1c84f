#include "engine/server/engine_metrics.h"

#include <string>
#include <utility>
#include <vector>

namespace llmcache::engine {

namespace {

using metrics::CallbackSample;

// One scrape reads the stats once per family: each read is a few atomic
// loads and the disk tier's mutex, far below a scrape's cost.
class Families {
 public:
  Families(metrics::Registry& registry, std::shared_ptr<EngineApi> api)
      : registry_(registry), api_(std::move(api)) {}

  template <class Field>
  void Counter(const char* name, const char* help, Field field) {
    registry_.AddCallbackCounter(
        name, help, [api = api_, field] { return static_cast<double>(field(api->stats())); });
  }
  template <class Field>
  void Gauge(const char* name, const char* help, Field field) {
    registry_.AddCallbackGauge(
        name, help, [api = api_, field] { return static_cast<double>(field(api->stats())); });
  }
  // A family with one label; `samples` maps the stats to (label value, value).
  template <class Samples>
  void Labelled(bool counter, const char* name, const char* help, const char* label,
                Samples samples) {
    metrics::CallbackFn fn = [api = api_, samples] {
      std::vector<CallbackSample> out;
      for (auto& [value, number] : samples(api->stats())) {
        out.push_back({{std::string(value)}, static_cast<double>(number)});
      }
      return out;
    };
    if (counter) {
      registry_.AddCallbackCounter(name, help, {label}, std::move(fn));
    } else {
      registry_.AddCallbackGauge(name, help, {label}, std::move(fn));
    }
  }

 private:
  metrics::Registry& registry_;
  std::shared_ptr<EngineApi> api_;
};

using Pairs = std::vector<std::pair<const char*, uint64_t>>;

// The prefix cache's part of the stats; zeros when the backend has none.
const PrefixCacheStats& Prefix(const EngineStats& s) {
  static const PrefixCacheStats kNone;
  return s.prefix_cache ? *s.prefix_cache : kNone;
}

}  // namespace

void RegisterEngineMetrics(metrics::Registry& registry, std::shared_ptr<EngineApi> api) {
  const EngineStats now = api->stats();
  Families f(registry, api);
  f.Labelled(true, "llmcache_engine_requests_total",
             "Engine requests that ended, by result (stop: an end-of-generation token or a "
             "stop string, length, error, cancelled: the client left)",
             "result", [](const EngineStats& s) {
               return Pairs{
                   {"stop", s.finished[static_cast<size_t>(FinishReason::kStop)]},
                   {"length", s.finished[static_cast<size_t>(FinishReason::kLength)]},
                   {"cancelled", s.finished[static_cast<size_t>(FinishReason::kCancelled)]},
                   {"error", s.failed}};
             });
  f.Gauge("llmcache_engine_requests_running", "Requests being computed (prefill or decode)",
          [](const EngineStats& s) { return s.running; });
  f.Gauge("llmcache_engine_requests_waiting", "Requests queued for the engine",
          [](const EngineStats& s) { return s.waiting; });
  f.Counter("llmcache_engine_prompt_tokens_total",
            "Prompt tokens of the requests the engine started (cached ones included)",
            [](const EngineStats& s) { return s.prompt_tokens; });
  f.Counter("llmcache_engine_generated_tokens_total", "Tokens the engine generated",
            [](const EngineStats& s) { return s.generated_tokens; });
  if (!now.prefix_cache) return;

  f.Counter("llmcache_engine_prefix_cache_queried_tokens_total",
            "Prompt tokens looked up in the prefix cache",
            [](const EngineStats& s) { return Prefix(s).query_tokens; });
  f.Counter("llmcache_engine_prefix_cache_hit_tokens_total",
            "Prompt tokens whose KV came from the prefix cache (RAM or disk), not computed",
            [](const EngineStats& s) { return Prefix(s).hit_tokens; });
  f.Labelled(true, "llmcache_engine_prefix_cache_tier_hit_tokens_total",
             "Prefix-cache hit tokens by the tier they came from (ram, disk)", "tier",
             [](const EngineStats& s) {
               const PrefixCacheStats& p = Prefix(s);
               return Pairs{{"ram", p.hit_tokens - p.disk_hit_tokens}, {"disk", p.disk_hit_tokens}};
             });
  f.Labelled(false, "llmcache_engine_kv_ram_blocks",
             "KV blocks of the RAM pool by state (used: by running requests; cached: "
             "unreferenced prefix blocks kept for reuse; free)",
             "state", [](const EngineStats& s) {
               const PrefixCacheStats& p = Prefix(s);
               return Pairs{{"used", p.used_blocks},
                            {"cached", p.cached_blocks},
                            {"free", p.total_blocks - p.used_blocks - p.cached_blocks}};
             });
  f.Counter("llmcache_engine_kv_ram_evicted_blocks_total",
            "Cached prefix blocks whose RAM was reused for new KV",
            [](const EngineStats& s) { return Prefix(s).evicted_blocks; });
  if (!now.disk_tier) return;

  f.Gauge("llmcache_engine_kv_disk_blocks", "Prefix blocks in the disk tier",
          [](const EngineStats& s) { return Prefix(s).disk.blocks; });
  f.Gauge("llmcache_engine_kv_disk_bytes", "Bytes of the disk tier's block files",
          [](const EngineStats& s) { return Prefix(s).disk.bytes; });
  f.Counter("llmcache_engine_kv_disk_stored_blocks_total",
            "Blocks written to the disk tier (evicted from RAM, or at shutdown)",
            [](const EngineStats& s) { return Prefix(s).disk.stored; });
  f.Counter("llmcache_engine_kv_disk_loaded_blocks_total",
            "Blocks read back from the disk tier and verified",
            [](const EngineStats& s) { return Prefix(s).disk.loaded; });
  f.Counter("llmcache_engine_kv_disk_corrupt_blocks_dropped_total",
            "Disk-tier blocks that failed a check, deleted and recomputed",
            [](const EngineStats& s) { return Prefix(s).disk.corrupt_dropped; });
  f.Counter("llmcache_engine_kv_disk_evicted_blocks_total",
            "Disk-tier blocks deleted to stay within the disk budget",
            [](const EngineStats& s) { return Prefix(s).disk.evicted; });
}

}  // namespace llmcache::engine
