// The caching gateway: OpenAI-compatible routes in front of an upstream, with
// the exact response cache, single-flight, metrics and the admin API.
//
// Data flows one way: HTTP in -> canonical request -> cache lookup ->
// upstream (coalesced) -> cache insert -> HTTP out. The cache fails open: a
// store error is counted and the request proceeds as a miss.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "http/client.h"
#include "http/server.h"
#include "llmcache/clock.h"
#include "llmcache/semantic_cache.h"
#include "llmcache/shared_flight.h"
#include "llmcache/store.h"
#include "llmcache/upstream.h"

namespace llmcache::metrics {
class Registry;
}

namespace llmcache::gateway {

// Settings that may differ per namespace (the x-llmcache-namespace header).
struct NamespacePolicy {
  bool cache = true;              // false: every request is a bypass
  std::optional<int64_t> ttl_ms;  // default TTL for new entries
  // Entries are isolated per client credential when clients pass their own
  // Authorization through; true shares them across credentials.
  bool share_across_credentials = false;
  bool normalize_whitespace = false;
  // With GatewayOptions::semantic set: false keeps this namespace exact-only.
  bool semantic = true;
  // The namespace's own similarity threshold (read when the semantic cache
  // is built); unset: the global one.
  std::optional<double> semantic_threshold;
};

// Settings that may differ per model.
struct ModelPolicy {
  bool cache = true;
  std::optional<int64_t> ttl_ms;
  // Joins the cache key; overrides the revision detected from the upstream.
  std::string revision;
  // Price in USD per million tokens, for the money-saved metric.
  double input_usd_per_mtok = 0;
  double output_usd_per_mtok = 0;
};

struct GatewayOptions {
  http::ServerOptions server;
  std::string upstream_url = "http://127.0.0.1:11434/v1";
  // When set, replaces the client's Authorization towards the upstream
  // ("Bearer <key>"); clients then share entries within a namespace.
  std::string upstream_api_key;
  http::ClientOptions client;

  // TTL of new entries unless the request, namespace or model says
  // otherwise; extended by hits up to ExpiryOptions::max_extended_ttl_ms.
  int64_t default_ttl_ms = 24LL * 3600 * 1000;
  NamespacePolicy default_namespace;
  std::map<std::string, NamespacePolicy> namespaces;
  std::map<std::string, ModelPolicy> models;

  // Ollama-style digest detection through <upstream root>/api/tags.
  bool detect_model_revisions = true;
  int64_t revision_poll_ms = 15'000;
  int64_t maintenance_interval_ms = 30'000;

  // Admin routes are refused unless this is set and presented as
  // "Authorization: Bearer <token>".
  std::string admin_token;

  // The semantic cache; null: exact matching only. A chat request that
  // misses the exact cache may be answered with the answer to a paraphrase
  // (x-llmcache: semantic-hit); every stored chat answer is recorded in it,
  // with the RAG documents it was built on (for /admin/invalidate).
  std::shared_ptr<SemanticCache> semantic;
  // Threads that embed questions and search the index, so that no event loop
  // waits on the model.
  int semantic_threads = 1;

  // Health of a remote store (Redis), reported on /healthz and /metrics;
  // null for the embedded store.
  std::shared_ptr<const StoreHealth> store_health;
  // Coalesces identical misses across replicas that share the store (a
  // Redis lock, see docs/redis.md); null: each process coalesces its own.
  std::shared_ptr<SharedFlight> shared_flight;
  // How long a replica waits for another replica's answer to the same miss
  // before it calls the upstream itself.
  int64_t shared_flight_timeout_ms = 5000;

  // Distinct model names tracked as metric labels; later ones become "other".
  size_t max_model_labels = 64;
  // Adds metric families to the gateway's registry (served on /metrics), such
  // as the in-process engine's (`serve --model`); called once, at Create.
  std::function<void(metrics::Registry&)> register_metrics;
};

class Gateway {
 public:
  // Makes the upstream for one worker thread; tests and the in-process
  // engine inject their own. Default: an HttpClient to options.upstream_url.
  using UpstreamFactory = std::function<std::unique_ptr<Upstream>(http::net::any_io_executor)>;

  static Result<std::unique_ptr<Gateway>> Create(GatewayOptions options,
                                                 std::unique_ptr<Store> store,
                                                 std::shared_ptr<Clock> clock = nullptr,
                                                 UpstreamFactory upstream_factory = nullptr);
  ~Gateway();

  // Listens, then starts maintenance and revision polling. Returns once the
  // port accepts connections.
  Status Start();
  void Stop();
  uint16_t port() const;

  class Impl;

 private:
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmcache::gateway
