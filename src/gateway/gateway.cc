#include "gateway/gateway.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "common/hash.h"
#include "gateway/cache_control.h"
#include "gateway/canonical.h"
#include "gateway/canonical_memo.h"
#include "gateway/model_revisions.h"
#include "gateway/single_flight.h"
#include "gateway/stream_convert.h"
#include "http/sse.h"
#include "metrics/metrics.h"

namespace llmcache::gateway {

using http::awaitable;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using http::Request;
using http::Response;
using http::ResponseWriter;

namespace {

constexpr std::string_view kCacheHeader = "x-llmcache";
constexpr std::string_view kKeyHeader = "x-llmcache-key";
constexpr std::string_view kNamespaceHeader = "x-llmcache-namespace";
constexpr std::string_view kSimilarityHeader = "x-llmcache-similarity";
constexpr std::string_view kDocHashesHeader = "x-llmcache-doc-hashes";
constexpr size_t kMaxDocHashes = 64;

// Document hashes name RAG sources; they go into logs and admin answers, so
// they are kept to a safe alphabet and size.
bool IsValidDocHash(std::string_view h) {
  if (h.empty() || h.size() > 128) return false;
  for (char ch : h) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.' &&
        ch != ':')
      return false;
  }
  return true;
}

// The documents a request's answer is built on: the x-llmcache-doc-hashes
// header (comma separated) and/or the body's extension object
// {"llmcache": {"doc_hashes": [...]}}. nullopt: malformed.
std::optional<std::vector<std::string>> ParseDocHashes(std::string_view header,
                                                       std::string_view body) {
  std::vector<std::string> out;
  auto add = [&](std::string_view h) {
    while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
    while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
    if (!IsValidDocHash(h)) return false;
    if (std::find(out.begin(), out.end(), h) == out.end()) out.emplace_back(h);
    return out.size() <= kMaxDocHashes;
  };
  while (!header.empty()) {
    size_t comma = header.find(',');
    if (!add(header.substr(0, comma))) return std::nullopt;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  if (body.find("\"llmcache\"") != std::string_view::npos) {
    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec);
    if (ec || !v.is_object()) return out;  // the canonicalizer has already accepted the body
    const auto* ext = v.as_object().if_contains("llmcache");
    if (!ext) return out;
    if (!ext->is_object()) return std::nullopt;
    const auto* docs = ext->as_object().if_contains("doc_hashes");
    if (!docs) return out;
    if (!docs->is_array()) return std::nullopt;
    for (const auto& d : docs->as_array()) {
      if (!d.is_string() || !add(d.as_string())) return std::nullopt;
    }
  }
  return out;
}

const char* RouteName(Route r) {
  switch (r) {
    case Route::kChat:
      return "chat";
    case Route::kCompletions:
      return "completions";
    case Route::kEmbeddings:
      return "embeddings";
  }
  return "unknown";
}

const char* RoutePath(Route r) {
  switch (r) {
    case Route::kChat:
      return "/chat/completions";
    case Route::kCompletions:
      return "/completions";
    case Route::kEmbeddings:
      return "/embeddings";
  }
  return "";
}

bool IsValidNamespace(std::string_view ns) {
  if (ns.empty() || ns.size() > 128) return false;
  for (char c : ns) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

// Headers that describe one hop, or that the gateway sets itself.
bool SkipWhenForwarding(std::string_view name) {
  static constexpr std::string_view kSkip[] = {"connection",
                                               "keep-alive",
                                               "te",
                                               "trailer",
                                               "transfer-encoding",
                                               "upgrade",
                                               "proxy-connection",
                                               "host",
                                               "content-length",
                                               "accept-encoding",
                                               "expect",
                                               "cache-control",
                                               "pragma",
                                               "proxy-authorization"};
  for (auto s : kSkip) {
    if (http::beast::iequals(name, s)) return true;
  }
  return name.size() >= 10 && http::beast::iequals(name.substr(0, 10), "x-llmcache");
}

bool SkipInResponse(std::string_view name) {
  static constexpr std::string_view kSkip[] = {
      "connection", "keep-alive", "transfer-encoding", "content-length",
      "date",       "server",     "trailer",           "content-encoding"};
  for (auto s : kSkip) {
    if (http::beast::iequals(name, s)) return true;
  }
  return false;
}

std::string ErrorJson(std::string_view message, std::string_view type, std::string_view code) {
  return http::MakeErrorResponse(502, message, type, {}, code).body();
}

bool IsJsonObject(std::string_view text) {
  boost::system::error_code ec;
  boost::json::monotonic_resource mr;
  auto v = boost::json::parse(text, ec, &mr);
  return !ec && v.is_object();
}

// The message of an OpenAI-style error body, for wrapping upstream errors.
std::string UpstreamErrorMessage(std::string_view body) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (auto* e = v.as_object().if_contains("error")) {
      if (e->is_object()) {
        if (auto* m = e->as_object().if_contains("message"); m && m->is_string())
          return std::string(m->as_string());
      } else if (e->is_string()) {
        return std::string(e->as_string());
      }
    }
  }
  std::string s(body.substr(0, 200));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return s;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

class Gateway::Impl {
 public:
  Impl(GatewayOptions options, std::unique_ptr<Store> store, std::shared_ptr<Clock> clock,
       UpstreamFactory factory, http::BaseUrl base)
      : options_(std::move(options)),
        store_(std::move(store)),
        clock_(clock ? std::move(clock) : SystemClock()),
        factory_(std::move(factory)),
        base_(std::move(base)),
        revisions_(ConfiguredRevisions(options_)) {
    if (options_.semantic)
      semantic_pool_ = std::make_unique<net::thread_pool>(std::max(1, options_.semantic_threads));
    RegisterMetrics();
    for (const auto& [tier, stats] : store_->TierStats()) {
      if (tier_names_.size() < kTierSlots) tier_names_.push_back(tier);
    }
    if (options_.semantic) {
      // Answers another replica invalidated leave this replica's memory
      // tier too (Redis itself was cleared by that replica).
      options_.semantic->SetRemoteRemovalListener([this](const std::vector<std::string>& keys) {
        for (const auto& k : keys) {
          if (!store_->Erase(k).ok()) store_errors_->With({"erase"}).Inc();
        }
      });
    }
  }

  ~Impl() { Stop(); }

  Status Start() {
    server_ = std::make_unique<http::Server>(
        options_.server, [this](Request& req, ResponseWriter& w) { return Handle(req, w); });
    upstreams_.resize(options_.server.threads > 0
                          ? options_.server.threads
                          : std::max(1u, std::thread::hardware_concurrency()));
    Status s = server_->Start();
    if (!s.ok()) return s;
    started_ms_ = clock_->NowMillis();
    background_ = std::thread([this] { Background(); });
    return Status::OK();
  }

  void Stop() {
    {
      std::lock_guard lock(bg_mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    if (options_.semantic) options_.semantic->SetRemoteRemovalListener(nullptr);
    bg_cv_.notify_all();
    if (background_.joinable()) background_.join();
    if (server_) server_->Stop();
    // Store calls still under way hand their results to the (stopped) event
    // loops; those must outlive the hand-over.
    pending_.WaitIdle();
    // Pool tasks finish (an Insert in progress completes) before the event
    // loops they report to are destroyed.
    if (semantic_pool_) semantic_pool_->join();
    admin_pool_.join();
    if (options_.semantic) {
      Status s = options_.semantic->Checkpoint();
      if (!s.ok()) spdlog::warn("semantic index checkpoint failed: {}", s.ToString());
    }
    // Upstream clients hold sockets of the server's io_contexts: release them
    // after the workers stopped but before the contexts are destroyed.
    upstreams_.clear();
    server_.reset();
  }

  uint16_t port() const { return server_ ? server_->port() : 0; }

 private:
  static constexpr size_t kRoutes = 3;
  static constexpr size_t kTierSlots = 4;
  // Resolved metric children of one model label (see Resolved).
  struct ModelMetrics {
    std::string label;
    std::atomic<metrics::Counter*> requests[kRoutes][3] = {};  // by Outcome
    std::atomic<metrics::Counter*> lookup_misses[kRoutes] = {};
    std::atomic<metrics::Counter*> lookup_hits[kRoutes][kTierSlots] = {};
    std::atomic<metrics::Counter*> prompt_tokens_saved{nullptr};
    std::atomic<metrics::Counter*> completion_tokens_saved{nullptr};
    std::atomic<metrics::Counter*> cost_saved{nullptr};
  };

  struct RequestContext {
    Route route;
    const char* route_name;
    // The memo's entry and its request (never null once canonicalized).
    CanonicalMemo::EntryPtr canon_entry;
    const CanonicalRequest* canon = nullptr;
    RequestCachePolicy policy;
    std::string ns;  // effective namespace
    std::string key;
    std::string model_label;
    ModelMetrics* metrics = nullptr;  // of model_label
    int64_t ttl_ms = 0;
    bool ttl_fixed = false;
    std::chrono::steady_clock::time_point start;
    // "hit", or "semantic-hit" with the similarity header's value.
    std::string_view hit_result = "hit";
    std::string similarity;
    // Set when the semantic cache takes part (lookup and/or insert).
    std::shared_ptr<SemanticQuery> semantic;
    std::vector<std::string> doc_hashes;
    // Set while this request holds the shared (cross-replica) flight lock.
    std::string shared_token;
  };

  static std::map<std::string, std::string> ConfiguredRevisions(const GatewayOptions& o) {
    std::map<std::string, std::string> m;
    for (const auto& [name, p] : o.models) {
      if (!p.revision.empty()) m[name] = p.revision;
    }
    return m;
  }

  // ---- metrics -------------------------------------------------------------

  void RegisterMetrics() {
    requests_ = &registry_.AddCounter("llmcache_requests_total",
                                      "Cacheable requests by route, model and result",
                                      {"route", "model", "result"});
    lookups_ = &registry_.AddCounter("llmcache_cache_lookups_total",
                                     "Cache lookups by route, model, tier and result",
                                     {"route", "model", "tier", "result"});
    upstream_latency_ = &registry_.AddHistogram("llmcache_upstream_duration_seconds",
                                                "Time to a complete upstream answer", {"route"});
    hit_latency_ = &registry_.AddHistogram("llmcache_hit_duration_seconds",
                                           "Time to serve a cache hit", {"route"});
    upstream_errors_ = &registry_.AddCounter("llmcache_upstream_errors_total",
                                             "Upstream failures by kind", {"kind"});
    tokens_saved_ = &registry_.AddCounter("llmcache_tokens_saved_total",
                                          "Tokens served from the cache instead of the upstream",
                                          {"model", "kind"});
    cost_saved_ =
        &registry_.AddCounter("llmcache_cost_saved_usd_total",
                              "Estimated USD saved by cache hits (config price table)", {"model"});
    waiters_ =
        &registry_.AddCounter("llmcache_singleflight_waiters_total",
                              "Requests that waited for an identical in-flight miss", {"route"});
    shared_flights_ = &registry_.AddCounter(
        "llmcache_shared_flight_total",
        "Misses coalesced across replicas, by outcome: leader (called the upstream), "
        "leader_hit / waited_hit (served another replica's answer), waited_miss, timeout, "
        "unavailable (called the upstream)",
        {"outcome"});
    store_errors_ =
        &registry_.AddCounter("llmcache_store_errors_total",
                              "Store operations that failed (the cache failed open)", {"op"});
    bad_requests_ = &registry_.AddCounter("llmcache_bad_requests_total",
                                          "Requests refused as invalid", {"reason"});
    if (options_.semantic) RegisterSemanticMetrics();
    if (options_.register_metrics) options_.register_metrics(registry_);
    if (options_.store_health) {
      registry_.AddCallbackGauge("llmcache_store_degraded",
                                 "1 while the remote store is unusable (the cache fails open)",
                                 [h = options_.store_health] { return h->degraded() ? 1.0 : 0.0; });
    }
    registry_.AddCallbackGauge("llmcache_http_connections", "Open client connections",
                               [this] { return server_ ? server_->active_connections() : 0.0; });
    auto tier_stat = [this](auto field) {
      return [this, field] {
        std::vector<metrics::CallbackSample> out;
        for (const auto& [tier, st] : store_->TierStats())
          out.push_back({{tier}, static_cast<double>(st.*field)});
        return out;
      };
    };
    registry_.AddCallbackGauge("llmcache_tier_entries", "Entries per tier", {"tier"},
                               tier_stat(&StoreStats::entries));
    registry_.AddCallbackGauge("llmcache_tier_bytes", "Bytes per tier", {"tier"},
                               tier_stat(&StoreStats::bytes));
    registry_.AddCallbackCounter("llmcache_evictions_total", "Entries evicted to respect a bound",
                                 {"tier"}, tier_stat(&StoreStats::evictions));
    registry_.AddCallbackCounter("llmcache_expirations_total", "Entries removed as expired",
                                 {"tier"}, tier_stat(&StoreStats::expirations));
    registry_.AddCallbackCounter("llmcache_corrupt_entries_dropped_total",
                                 "Entries that failed their checksum and were dropped", {"tier"},
                                 tier_stat(&StoreStats::corrupt_dropped));
  }

  void RegisterSemanticMetrics() {
    semantic_hits_ = &registry_.AddCounter("llmcache_semantic_hits_total",
                                           "Requests answered with the answer to a paraphrase");
    semantic_refusals_ = &registry_.AddCounter(
        "llmcache_semantic_refusals_total",
        "Semantic lookups without a hit, by the first reason (guard_* = the lexical guard)",
        {"reason"});
    semantic_similarity_ = &registry_.AddHistogram(
        "llmcache_semantic_hit_similarity", "Cosine similarity of semantic hits", {},
        {0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0});
    semantic_latency_ = &registry_.AddHistogram(
        "llmcache_semantic_lookup_duration_seconds",
        "Time of a semantic lookup: embedding the question, index search and guards");
    auto stat = [this](auto field) {
      return [this, field] { return static_cast<double>(options_.semantic->Stats().*field); };
    };
    registry_.AddCallbackGauge("llmcache_semantic_entries", "Answers tracked by the semantic cache",
                               stat(&SemanticCacheStats::entries));
    registry_.AddCallbackGauge("llmcache_semantic_index_size", "Questions in the vector index",
                               stat(&SemanticCacheStats::indexed));
    registry_.AddCallbackCounter("llmcache_semantic_invalidations_total",
                                 "Entries removed because a document they were built on changed",
                                 stat(&SemanticCacheStats::invalidations));
    if (options_.semantic->Stats().replicated) RegisterSemanticReplicationMetrics(stat);
    // The grey-band check (semantic_verify); all zero without a verifier.
    // Mean latency: rate(..._seconds_total) / rate(..._calls_total).
    registry_.AddCallbackCounter(
        "llmcache_semantic_verify_calls_total",
        "Grey-band checks sent to the verifier model, by answer (error: failed or timed out)",
        {"outcome"}, [this] {
          SemanticCacheStats st = options_.semantic->Stats();
          return std::vector<metrics::CallbackSample>{
              {{"yes"}, static_cast<double>(st.verifier_yes)},
              {{"no"}, static_cast<double>(st.verifier_no)},
              {{"error"}, static_cast<double>(st.verifier_errors)}};
        });
    registry_.AddCallbackCounter("llmcache_semantic_verify_memo_hits_total",
                                 "Grey-band checks answered from the remembered question pairs",
                                 stat(&SemanticCacheStats::verifier_cache_hits));
    registry_.AddCallbackCounter("llmcache_semantic_verify_seconds_total",
                                 "Time spent waiting for the verifier model",
                                 [this] { return options_.semantic->Stats().verifier_seconds; });
    registry_.AddCallbackCounter("llmcache_semantic_verified_hits_total",
                                 "Semantic hits that needed the verifier's yes",
                                 stat(&SemanticCacheStats::verified_hits));
  }

  // The semantic index shared with other replicas through a Redis stream.
  template <class Stat>
  void RegisterSemanticReplicationMetrics(const Stat& stat) {
    registry_.AddCallbackCounter("llmcache_semantic_replication_appended_total",
                                 "Semantic cache changes shared with the other replicas",
                                 stat(&SemanticCacheStats::replication_appended));
    registry_.AddCallbackCounter("llmcache_semantic_replication_applied_total",
                                 "Other replicas' semantic cache changes applied here",
                                 stat(&SemanticCacheStats::replication_applied));
    registry_.AddCallbackCounter(
        "llmcache_semantic_replication_dropped_total",
        "Changes not shared: the stream was unreachable and the queue full",
        stat(&SemanticCacheStats::replication_dropped));
    registry_.AddCallbackCounter("llmcache_semantic_replication_gaps_total",
                                 "Stream changes lost before this replica read them (trimmed or "
                                 "flushed)",
                                 stat(&SemanticCacheStats::replication_gaps));
    registry_.AddCallbackCounter("llmcache_semantic_replication_errors_total",
                                 "Failed stream reads or appends, and undecodable records",
                                 stat(&SemanticCacheStats::replication_errors));
    registry_.AddCallbackGauge("llmcache_semantic_replication_degraded",
                               "1 while the stream is unreachable (the semantic cache is local)",
                               stat(&SemanticCacheStats::replication_degraded));
  }

  // The metric children a request updates, resolved on first use (so a
  // series appears in /metrics only once it counted something) and kept, so
  // that the hot paths, a hit above all, do no label lookups.
  template <class T>
  static T& Resolved(std::atomic<T*>& slot, metrics::Family<T>& family,
                     std::initializer_list<std::string_view> labels) {
    T* child = slot.load(std::memory_order_acquire);
    if (child == nullptr) {
      child = &family.With(labels);
      slot.store(child, std::memory_order_release);
    }
    return *child;
  }

  static size_t RouteIndex(Route r) { return static_cast<size_t>(r) - 1; }
  // Tiers with their own slot in ModelMetrics (the store's, outermost first);
  // other tier names are looked up by label.
  size_t TierIndex(const char* tier) const {
    for (size_t i = 0; i < tier_names_.size(); ++i) {
      if (tier == tier_names_[i] || std::strcmp(tier, tier_names_[i]) == 0) return i;
    }
    return kTierSlots;
  }

  // Model names come from clients: bound the label set so a client cannot
  // grow the metrics without limit.
  ModelMetrics& MetricsFor(const std::string& model) {
    {
      std::shared_lock lock(labels_mu_);
      if (auto it = model_metrics_.find(model); it != model_metrics_.end()) return *it->second;
      if (model_metrics_.size() >= options_.max_model_labels) return other_metrics_;
    }
    std::unique_lock lock(labels_mu_);
    auto& slot = model_metrics_[model];
    if (!slot) {
      if (model_metrics_.size() > options_.max_model_labels) {
        model_metrics_.erase(model);
        return other_metrics_;
      }
      slot = std::make_unique<ModelMetrics>();
      slot->label = model;
    }
    return *slot;
  }

  enum Outcome { kHit, kMiss, kBypass, kOutcomes };
  static constexpr const char* kOutcomeNames[kOutcomes] = {"hit", "miss", "bypass"};
  static_assert(kOutcomes == 3, "ModelMetrics::requests has one slot per Outcome");

  ModelMetrics& MetricsOf(const RequestContext& c) {
    return c.metrics ? *c.metrics : MetricsFor(c.canon->model);
  }

  void CountRequest(const RequestContext& c, Outcome result) {
    Resolved(MetricsOf(c).requests[RouteIndex(c.route)][result], *requests_,
             {c.route_name, c.model_label, kOutcomeNames[result]})
        .Inc();
    totals_[result].fetch_add(1, std::memory_order_relaxed);
  }

  // ---- routing -------------------------------------------------------------

  awaitable<void> Handle(Request& req, ResponseWriter& w) {
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    bool post = req.method() == bhttp::verb::post;
    if (path == "/v1/chat/completions" && post)
      co_return co_await HandleCacheable(Route::kChat, req, w);
    if (path == "/v1/completions" && post)
      co_return co_await HandleCacheable(Route::kCompletions, req, w);
    if (path == "/v1/embeddings" && post)
      co_return co_await HandleCacheable(Route::kEmbeddings, req, w);
    if (path == "/healthz") {
      // A degraded store still serves (the cache fails open): 200 either way,
      // so a load balancer keeps the replica, and the body says why.
      // The semantic stream counts too: while it is down this replica neither
      // shares its semantic entries nor sees the others'.
      boost::json::object o{{"status", "ok"}};
      if (options_.store_health && options_.store_health->degraded())
        o["store"] = options_.store_health->detail();
      if (options_.semantic) {
        SemanticCacheStats s = options_.semantic->Stats();
        if (s.replicated && s.replication_degraded) o["semantic_stream"] = s.replication_detail;
      }
      if (o.size() > 1) o["status"] = "degraded";
      co_await w.Send(JsonResponse(req, 200, boost::json::serialize(o)));
      co_return;
    }
    if (path == "/metrics") {
      Response res{bhttp::status::ok, req.version()};
      res.set(bhttp::field::content_type, metrics::kContentType);
      res.body() = registry_.Serialize();
      co_await w.Send(std::move(res));
      co_return;
    }
    if (path.starts_with("/admin/")) co_return co_await HandleAdmin(req, w, path);
    if (path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/embeddings") {
      co_await w.Send(Error(req, 405, "use POST for " + std::string(path), "method_not_allowed"));
      co_return;
    }
    if (path.starts_with("/v1/")) co_return co_await Proxy(req, w, std::string(target.substr(3)));
    co_await w.Send(Error(req, 404, "no route for " + std::string(path), "not_found"));
  }

  static Response JsonResponse(const Request& req, unsigned status, std::string body) {
    Response res{static_cast<bhttp::status>(status), req.version()};
    res.set(bhttp::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    return res;
  }

  static Response Error(const Request& req, unsigned status, std::string_view message,
                        std::string_view code, std::string_view param = {},
                        std::string_view type = "invalid_request_error") {
    return http::MakeErrorResponse(status, message, type, param, code, req.version(),
                                   req.keep_alive());
  }

  const NamespacePolicy& NamespaceFor(const std::string& ns) const {
    auto it = options_.namespaces.find(ns);
    return it == options_.namespaces.end() ? options_.default_namespace : it->second;
  }

  const ModelPolicy* ModelFor(const std::string& model) const {
    auto it = options_.models.find(model);
    return it == options_.models.end() ? nullptr : &it->second;
  }

  // ---- the cache path ------------------------------------------------------

  awaitable<void> HandleCacheable(Route route, Request& req, ResponseWriter& w) {
    RequestContext c;
    c.start = std::chrono::steady_clock::now();
    c.route = route;
    c.route_name = RouteName(route);

    std::string ns(req[kNamespaceHeader]);
    if (ns.empty()) ns = "default";
    if (!IsValidNamespace(ns)) {
      bad_requests_->With({"namespace"}).Inc();
      co_await w.Send(Error(req, 400,
                            "x-llmcache-namespace must be 1-128 characters of [A-Za-z0-9._:-]",
                            "invalid_namespace", "x-llmcache-namespace"));
      co_return;
    }
    const NamespacePolicy& nsp = NamespaceFor(ns);
    CanonicalOptions copts;
    copts.normalize_whitespace = nsp.normalize_whitespace;
    auto canon = canonical_memo_.Canonicalize(route, req.body(), copts);
    if (!canon) {
      bad_requests_->With({"invalid_request"}).Inc();
      const RequestError& e = canon.error();
      co_await w.Send(Error(req, e.http_status, e.message, e.code, e.param, e.type));
      co_return;
    }
    c.canon_entry = std::move(*canon);
    c.canon = &c.canon_entry->request();
    auto policy = ParseRequestCachePolicy(req[bhttp::field::cache_control], req["x-llmcache-ttl"]);
    if (!policy) {
      bad_requests_->With({"cache_control"}).Inc();
      const RequestError& e = policy.error();
      co_await w.Send(Error(req, e.http_status, e.message, e.code, e.param, e.type));
      co_return;
    }
    c.policy = *policy;
    const ModelPolicy* mp = ModelFor(c.canon->model);
    if (!nsp.cache || (mp && !mp->cache)) c.policy.lookup = c.policy.store = false;

    // Tenancy: when the client's own credential goes upstream, it joins the
    // namespace so that no credential can read another's answers.
    std::string_view auth = req[bhttp::field::authorization];
    c.ns = ns;
    if (options_.upstream_api_key.empty() && !auth.empty() && !nsp.share_across_credentials)
      c.ns += "@" + Sha256Hex(auth).substr(0, 32);

    auto docs = ParseDocHashes(req[kDocHashesHeader], req.body());
    if (!docs) {
      bad_requests_->With({"doc_hashes"}).Inc();
      co_await w.Send(Error(req, 400,
                            "document hashes must be at most 64 strings of 1-128 characters of "
                            "[A-Za-z0-9._:-] (x-llmcache-doc-hashes or llmcache.doc_hashes)",
                            "invalid_doc_hashes", "x-llmcache-doc-hashes"));
      co_return;
    }
    c.doc_hashes = std::move(*docs);

    if (c.policy.ttl_ms) {
      c.ttl_ms = *c.policy.ttl_ms;
      c.ttl_fixed = true;
    } else if (mp && mp->ttl_ms) {
      c.ttl_ms = *mp->ttl_ms;
    } else if (nsp.ttl_ms) {
      c.ttl_ms = *nsp.ttl_ms;
    } else if (options_.semantic) {
      // The semantic cache's presets (faq, docs, news, ...) so that an
      // answer and its semantic entry expire together.
      c.ttl_ms = options_.semantic->TtlFor(ns);
    } else {
      c.ttl_ms = options_.default_ttl_ms;
    }

    std::string revision = revisions_.Get(c.canon->model);
    c.key = c.canon_entry->Key(c.ns, revision);
    c.metrics = &MetricsFor(c.canon->model);
    c.model_label = c.metrics->label;

    if (c.policy.lookup) {
      auto hit = co_await AwaitLookup(*store_, c.key, pending_);
      if (hit) {
        if (co_await ServeHit(c, req, w, *hit->entry, hit->tier)) co_return;
      } else if (!hit.error().IsNotFound() && !hit.error().IsCorruption()) {
        store_errors_->With({"lookup"}).Inc();
        spdlog::warn("cache lookup failed, serving as a miss: {}", hit.error().ToString());
      }
      Resolved(MetricsOf(c).lookup_misses[RouteIndex(c.route)], *lookups_,
               {c.route_name, c.model_label, "all", "miss"})
          .Inc();
    }

    if (options_.semantic && (c.policy.lookup || c.policy.store)) {
      c.semantic = PrepareSemantic(c, nsp, revision);
      if (c.policy.lookup && c.semantic->eligible && co_await TrySemanticHit(c, req, w)) co_return;
    }

    UpstreamRequest ureq = BuildUpstreamRequest(c, req);
    if (!c.policy.store) {
      CountRequest(c, c.policy.lookup ? kMiss : kBypass);
      co_await CallUpstream(c, req, w, ureq, nullptr);
      co_return;
    }
    auto ticket = flights_.Join(c.key);
    if (ticket.leader) {
      co_await Lead(c, req, w, ureq, ticket.flight);
      flights_.Remove(c.key, ticket.flight);
    } else {
      CountRequest(c, c.policy.lookup ? kMiss : kBypass);
      waiters_->With({c.route_name}).Inc();
      co_await Follow(c, req, w, *ticket.flight);
    }
  }

  // ---- the semantic cache ---------------------------------------------------

  std::shared_ptr<SemanticQuery> PrepareSemantic(const RequestContext& c,
                                                 const NamespacePolicy& nsp,
                                                 const std::string& revision) {
    auto q = std::make_shared<SemanticQuery>();
    q->reason = "disabled";
    if (c.route != Route::kChat || !nsp.semantic) return q;
    boost::system::error_code ec;
    auto v = boost::json::parse(c.canon->canonical, ec);
    if (ec) {
      q->reason = "invalid";
      return q;
    }
    // The effective namespace (with the credential hash) partitions the
    // index, so no tenant is matched against another's questions.
    SemanticKey key{c.ns, c.canon->model, revision, c.route};
    *q = options_.semantic->Prepare(v, key);
    return q;
  }

  // Runs on the semantic pool, so that embedding a question never holds up
  // the event loop's other connections.
  static awaitable<SemanticLookup> LookupOnPool(std::shared_ptr<SemanticCache> sem,
                                                std::shared_ptr<SemanticQuery> q) {
    co_return sem->Lookup(q.get());
  }

  // A paraphrase's answer, when the semantic cache finds one and the exact
  // entry it points to is still there. False: proceed as a miss.
  awaitable<bool> TrySemanticHit(RequestContext& c, const Request& req, ResponseWriter& w) {
    auto started = std::chrono::steady_clock::now();
    // Named first: GCC 12 may destroy temporaries of a co_await expression
    // twice, so nothing with a destructor is built inside one.
    auto lookup = LookupOnPool(options_.semantic, c.semantic);
    SemanticLookup r = co_await net::co_spawn(semantic_pool_->get_executor(), std::move(lookup),
                                              net::use_awaitable);
    semantic_latency_->With({}).Observe(std::chrono::steady_clock::now() - started);
    if (!r.hit) {
      semantic_refusals_->With({r.reason}).Inc();
      co_return false;
    }
    auto hit = co_await AwaitLookup(*store_, r.hit->exact_key, pending_);
    if (!hit) {
      if (hit.error().IsNotFound() || hit.error().IsCorruption()) {
        // The answer expired or was purged: forget the pointer to it.
        Status s = options_.semantic->Erase(r.hit->exact_key);
        if (!s.ok()) spdlog::warn("semantic erase failed: {}", s.ToString());
      } else {
        store_errors_->With({"lookup"}).Inc();
      }
      semantic_refusals_->With({"answer_gone"}).Inc();
      co_return false;
    }
    c.hit_result = "semantic-hit";
    c.similarity = fmt::format("{:.4f}", r.hit->similarity);
    if (co_await ServeHit(c, req, w, *hit->entry, hit->tier)) {
      semantic_hits_->With({}).Inc();
      semantic_similarity_->With({}).Observe(r.hit->similarity);
      co_return true;
    }
    c.hit_result = "hit";
    c.similarity.clear();
    co_return false;
  }

  // Records a stored answer in the semantic cache (and the documents behind
  // it), off the event loop; the client's answer does not wait for it.
  void RecordSemantic(const RequestContext& c) {
    if (!options_.semantic || !c.semantic) return;
    if (!c.semantic->eligible && c.doc_hashes.empty()) return;
    net::post(*semantic_pool_, [sem = options_.semantic, q = c.semantic, key = c.key,
                                docs = c.doc_hashes, ttl = c.ttl_ms] {
      Status s = sem->Insert(q.get(), key, docs, ttl);
      if (!s.ok()) spdlog::warn("semantic insert failed: {}", s.ToString());
    });
  }

  // The client's request as it goes upstream: end-to-end headers only, and
  // the gateway's own credential in place of the client's when configured.
  UpstreamRequest ForwardedRequest(const Request& req, std::string method, std::string path) {
    UpstreamRequest u;
    u.method = std::move(method);
    u.path = std::move(path);
    for (const auto& f : req) {
      std::string_view name = f.name_string();
      if (SkipWhenForwarding(name)) continue;
      if (!options_.upstream_api_key.empty() && http::beast::iequals(name, "authorization"))
        continue;
      u.headers.emplace_back(name, f.value());
    }
    if (!options_.upstream_api_key.empty())
      u.headers.emplace_back("Authorization", "Bearer " + options_.upstream_api_key);
    u.body = req.body();
    return u;
  }

  UpstreamRequest BuildUpstreamRequest(const RequestContext& c, const Request& req) {
    UpstreamRequest u = ForwardedRequest(req, "POST", RoutePath(c.route));
    // The gateway always records usage (for tokens saved), and our own
    // extension object must not reach upstreams that reject unknown fields.
    bool wants_usage = c.canon->stream && c.route != Route::kEmbeddings && !c.canon->include_usage;
    if (wants_usage || u.body.find("\"llmcache\"") != std::string::npos) {
      boost::system::error_code ec;
      auto v = boost::json::parse(u.body, ec);
      if (!ec && v.is_object()) {
        auto& o = v.as_object();
        o.erase("llmcache");
        if (wants_usage) {
          auto* so = o.if_contains("stream_options");
          if (!so || !so->is_object()) {
            o["stream_options"] = boost::json::object();
            so = o.if_contains("stream_options");
          }
          so->as_object()["include_usage"] = true;
        }
        u.body = boost::json::serialize(v);
      }
    }
    return u;
  }

  void SetCacheHeaders(bhttp::fields& h, const RequestContext& c, std::string_view result) {
    h.set(kCacheHeader, result);
    h.set(kKeyHeader, c.key);
    if (!c.similarity.empty()) h.set(kSimilarityHeader, c.similarity);
  }

  std::string FormatEvents(const std::vector<std::string>& events, bool include_usage, bool done) {
    std::string out;
    for (const auto& e : AdaptStreamForClient(events, include_usage)) http::AppendSseData(out, e);
    if (done) http::AppendSseData(out, "[DONE]");
    return out;
  }

  // Returns false when the entry cannot answer this request (it does not
  // convert); the caller then treats the request as a miss.
  awaitable<bool> ServeHit(const RequestContext& c, const Request& req, ResponseWriter& w,
                           const CacheEntry& e, const char* tier) {
    std::string age =
        std::to_string(std::max<int64_t>(0, clock_->NowMillis() - e.created_ms) / 1000);
    if (c.canon->stream) {
      std::vector<std::string> synthesized;
      const std::vector<std::string>* events = &e.sse_events;
      if (!e.is_stream()) {
        auto s = SynthesizeStream(c.route, e.body);
        if (!s) co_return false;
        synthesized = std::move(*s);
        events = &synthesized;
      }
      bhttp::response_header<> h;
      h.result(bhttp::status::ok);
      h.set(bhttp::field::content_type, "text/event-stream");
      h.set(bhttp::field::cache_control, "no-cache");
      h.set(bhttp::field::age, age);
      SetCacheHeaders(h, c, c.hit_result);
      std::string payload = FormatEvents(*events, c.canon->include_usage, true);
      RecordHit(c, e, tier);
      if (co_await w.BeginStream(std::move(h)) && co_await w.WriteChunk(payload))
        co_await w.EndStream();
    } else {
      // The body goes out straight from the stored entry, which the caller
      // keeps alive until the write completed.
      std::string assembled;
      std::string_view body = e.body;
      if (e.is_stream()) {
        auto a = AssembleFromStream(c.route, e.sse_events);
        if (!a) co_return false;
        assembled = std::move(*a);
        body = assembled;
      }
      const bool keep_alive = req.keep_alive();
      std::string head = HitHead(c, e.http_status, req.version(), keep_alive, age, body.size());
      RecordHit(c, e, tier);
      co_await w.SendPrebuilt(head, body, keep_alive);
    }
    co_return true;
  }

  // The head of a non-stream hit, written by hand: what Beast would write
  // for the same fields, without building a field list per hit.
  static std::string HitHead(const RequestContext& c, int status, unsigned version, bool keep_alive,
                             std::string_view age, size_t content_length) {
    std::string h;
    h.reserve(192 + c.key.size());
    h += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    h += std::to_string(status);
    h += ' ';
    h += std::string_view(bhttp::obsolete_reason(static_cast<bhttp::status>(status)));
    h += "\r\nContent-Type: application/json\r\nAge: ";
    h += age;
    h += "\r\n";
    h += kCacheHeader;
    h += ": ";
    h += c.hit_result;
    h += "\r\n";
    h += kKeyHeader;
    h += ": ";
    h += c.key;
    h += "\r\n";
    if (!c.similarity.empty()) {
      h += kSimilarityHeader;
      h += ": ";
      h += c.similarity;
      h += "\r\n";
    }
    if (version >= 11 && !keep_alive) h += "Connection: close\r\n";
    if (version < 11 && keep_alive) h += "Connection: keep-alive\r\n";
    h += "Content-Length: ";
    h += std::to_string(content_length);
    h += "\r\n\r\n";
    return h;
  }

  void RecordHit(const RequestContext& c, const CacheEntry& e, const char* tier) {
    CountRequest(c, kHit);
    ModelMetrics& m = MetricsOf(c);
    const size_t route = RouteIndex(c.route);
    if (size_t t = TierIndex(tier); t < kTierSlots) {
      Resolved(m.lookup_hits[route][t], *lookups_, {c.route_name, c.model_label, tier, "hit"})
          .Inc();
    } else {
      lookups_->With({c.route_name, c.model_label, tier, "hit"}).Inc();
    }
    Resolved(hit_latency_by_route_[route], *hit_latency_, {c.route_name})
        .Observe(std::chrono::steady_clock::now() - c.start);
    if (e.prompt_tokens)
      Resolved(m.prompt_tokens_saved, *tokens_saved_, {c.model_label, "prompt"})
          .Inc(uint64_t{e.prompt_tokens});
    if (e.completion_tokens)
      Resolved(m.completion_tokens_saved, *tokens_saved_, {c.model_label, "completion"})
          .Inc(uint64_t{e.completion_tokens});
    if (const ModelPolicy* mp = ModelFor(c.canon->model)) {
      double usd = (e.prompt_tokens * mp->input_usd_per_mtok +
                    e.completion_tokens * mp->output_usd_per_mtok) /
                   1e6;
      if (usd > 0) Resolved(m.cost_saved, *cost_saved_, {c.model_label}).Inc(usd);
    }
  }

  // `usage` is the answer's, when the caller already parsed it.
  std::shared_ptr<const CacheEntry> AnswerEntry(const RequestContext& c, unsigned status,
                                                std::string body, std::vector<std::string> events,
                                                const Usage* usage = nullptr) {
    auto e = std::make_shared<CacheEntry>();
    e->key = c.key;
    e->ns = c.ns;
    e->model = c.canon->model;
    e->route = c.route;
    e->created_ms = e->last_access_ms = clock_->NowMillis();
    e->ttl_ms = c.ttl_ms;
    e->ttl_fixed = c.ttl_fixed;
    e->http_status = static_cast<int>(status);
    Usage u = usage ? *usage : events.empty() ? ExtractUsage(body) : ExtractUsageFromStream(events);
    e->prompt_tokens = u.prompt_tokens;
    e->completion_tokens = u.completion_tokens;
    e->body = std::move(body);
    e->sse_events = std::move(events);
    return e;
  }

  // Completes once the store has the answer (or failed: counted and logged,
  // never the client's problem), so that a client that saw the whole answer
  // can count on it being stored. Then lets other replicas' waiters go.
  awaitable<void> Store(RequestContext& c, const std::shared_ptr<const CacheEntry>& entry) {
    Status s = co_await AwaitInsert(*store_, entry, pending_);
    ReleaseShared(c);
    if (!s.ok()) {
      store_errors_->With({"insert"}).Inc();
      spdlog::warn("cache insert failed: {}", s.ToString());
      co_return;
    }
    RecordSemantic(c);
  }

  // Drops this request's shared flight lock. Not awaited: a lost release
  // only keeps the other replicas waiting until the lock expires or their
  // wait times out.
  void ReleaseShared(RequestContext& c) {
    if (c.shared_token.empty()) return;
    options_.shared_flight->ReleaseAsync(c.key, c.shared_token, [](const Status&) {});
    c.shared_token.clear();
  }

  // ---- single-flight ---------------------------------------------------------

  // The local leader of a miss. With a shared flight (replicas over one
  // Redis), it first makes sure that no other replica is asking the upstream
  // the same question: if one is, it waits for that answer and serves it.
  awaitable<void> Lead(RequestContext& c, const Request& req, ResponseWriter& w,
                       const UpstreamRequest& ureq, std::shared_ptr<Flight> flight) {
    // Not `a && co_await f()` in the condition: GCC 12 miscompiles a co_await
    // in a branch that is not taken (SIGILL/SIGSEGV on resume).
    bool served = false;
    if (options_.shared_flight && c.policy.lookup)
      served = co_await ServeFromSharedFlight(c, req, w, *flight);
    if (served) co_return;
    CountRequest(c, c.policy.lookup ? kMiss : kBypass);
    co_await CallUpstream(c, req, w, ureq, flight);
    ReleaseShared(c);  // when the answer was not stored (upstream error)
  }

  // True when the request was answered from the store after all, as a hit,
  // and the local followers with it. False: call the upstream (holding the
  // shared lock when c.shared_token is set). Fails open: when the lock
  // cannot be asked about, the answer is false at once.
  awaitable<bool> ServeFromSharedFlight(RequestContext& c, const Request& req, ResponseWriter& w,
                                        Flight& flight) {
    SharedFlight& shared = *options_.shared_flight;
    auto claim = co_await AwaitClaim(shared, c.key, pending_);
    if (!claim) {
      shared_flights_->With({"unavailable"}).Inc();
      co_return false;
    }
    const bool leader = claim->leader;
    if (leader) {
      c.shared_token = std::move(claim->token);
    } else {
      Status waited =
          co_await WaitForSharedLeader(shared, c.key, options_.shared_flight_timeout_ms, pending_);
      if (!waited.ok()) {
        shared_flights_->With({waited.code() == StatusCode::kTimeout ? "timeout" : "unavailable"})
            .Inc();
        co_return false;
      }
    }
    // A leader looks again too: another replica may have stored the answer
    // and dropped its lock between this replica's lookup and its claim.
    auto hit = co_await AwaitLookup(*store_, c.key, pending_);
    if (!hit || !co_await ServeHit(c, req, w, *hit->entry, hit->tier)) {
      shared_flights_->With({leader ? "leader" : "waited_miss"}).Inc();
      co_return false;
    }
    shared_flights_->With({leader ? "leader_hit" : "waited_hit"}).Inc();
    ReleaseShared(c);
    const CacheEntry& e = *hit->entry;
    if (e.is_stream()) {
      flight.SetHead(static_cast<unsigned>(e.http_status), "text/event-stream", true);
      flight.AppendEvents(e.sse_events);
      flight.Finish({}, /*from_cache=*/true);
    } else {
      flight.SetHead(static_cast<unsigned>(e.http_status), "application/json", false);
      flight.Finish(e.body, /*from_cache=*/true);
    }
    co_return true;
  }

  Upstream& UpstreamFor(int worker, net::any_io_executor ex) {
    auto& slot = upstreams_[worker];
    if (!slot) {
      if (factory_) {
        slot = factory_(ex);
      } else {
        slot = std::make_unique<http::HttpClient>(ex, base_, options_.client, tls_);
      }
    }
    return *slot;
  }

  // Receives the upstream answer for a leader (or an uncoalesced request):
  // relays it to the client live and records it for the cache and for the
  // followers. Keeps reading when the client goes away, so that followers
  // and the cache still get the answer.
  class LeaderSink final : public UpstreamSink {
   public:
    LeaderSink(Impl& gw, RequestContext& c, ResponseWriter& w, const Request& req, Flight* flight)
        : gw_(gw), c_(c), w_(w), req_(req), flight_(flight) {}

    awaitable<bool> OnHead(unsigned status, const HeaderList& headers) override {
      status_ = status;
      headers_ = headers;
      for (const auto& [k, v] : headers) {
        if (http::beast::iequals(k, "content-type")) content_type_ = v;
      }
      sse_ = status / 100 == 2 && content_type_.starts_with("text/event-stream");
      if (sse_) {
        if (flight_) flight_->SetHead(status, content_type_, true);
        bhttp::response_header<> h;
        h.result(status);
        CopyHeaders(h);
        gw_.SetCacheHeaders(h, c_, c_.policy.lookup ? "miss" : "bypass");
        client_ok_ = co_await w_.BeginStream(std::move(h));
      }
      co_return true;
    }

    awaitable<bool> OnBody(std::string_view piece) override {
      if (!sse_) {
        body_.append(piece);
        co_return true;
      }
      std::vector<http::SseEvent> events;
      if (!parser_.Feed(piece, events)) invalid_ = true;
      std::vector<std::string> fresh;
      for (auto& ev : events) {
        if (ev.data == "[DONE]") {
          done_seen_ = true;
          continue;
        }
        if (done_seen_ || !IsJsonObject(ev.data)) invalid_ = true;
        fresh.push_back(std::move(ev.data));
      }
      if (flight_) flight_->AppendEvents(fresh);
      // [DONE] is held back until the answer is stored (CallUpstream).
      if (client_ok_ && !fresh.empty()) {
        client_ok_ = co_await w_.WriteChunk(gw_.FormatEvents(fresh, c_.canon->include_usage, false));
      }
      recorded_.insert(recorded_.end(), std::make_move_iterator(fresh.begin()),
                       std::make_move_iterator(fresh.end()));
      co_return true;
    }

    void CopyHeaders(bhttp::fields& h) const {
      for (const auto& [k, v] : headers_) {
        if (!SkipInResponse(k)) h.set(k, v);
      }
    }

    // What followers relay along with the body (content type aside): what a
    // client needs to act on an error such as a 429's Retry-After.
    Flight::Headers RelayHeaders() const {
      Flight::Headers out;
      for (const auto& [k, v] : headers_) {
        if (!SkipInResponse(k) && !http::beast::iequals(k, "content-type")) out.emplace_back(k, v);
      }
      return out;
    }

    Impl& gw_;
    RequestContext& c_;
    ResponseWriter& w_;
    const Request& req_;
    Flight* flight_;
    unsigned status_ = 0;
    HeaderList headers_;
    std::string content_type_;
    bool sse_ = false;
    bool client_ok_ = false;
    bool done_seen_ = false;
    bool invalid_ = false;
    http::SseParser parser_;
    std::string body_;
    std::vector<std::string> recorded_;
  };

  awaitable<void> CallUpstream(RequestContext& c, const Request& req, ResponseWriter& w,
                               const UpstreamRequest& ureq, std::shared_ptr<Flight> flight) {
    LeaderSink sink(*this, c, w, req, flight.get());
    auto ex = co_await net::this_coro::executor;
    auto t0 = std::chrono::steady_clock::now();
    Status s = co_await UpstreamFor(w.worker(), ex).Send(ureq, sink);
    Resolved(upstream_latency_by_route_[RouteIndex(c.route)], *upstream_latency_, {c.route_name})
        .Observe(std::chrono::steady_clock::now() - t0);
    const char* result = c.policy.lookup ? "miss" : "bypass";

    auto fail = [&](unsigned status, std::string message,
                    std::string_view code) -> awaitable<void> {
      std::string body = ErrorJson(message, "upstream_error", code);
      if (flight) flight->Fail(status, body);
      if (sink.sse_) {
        w.AbortStream();
      } else if (!w.sent()) {
        Response res = Error(req, status, message, code, {}, "upstream_error");
        SetCacheHeaders(res.base(), c, result);
        co_await w.Send(std::move(res));
      }
    };

    if (!s.ok()) {
      bool timeout = s.code() == StatusCode::kTimeout;
      bool connect = s.code() == StatusCode::kUnavailable;
      upstream_errors_->With({timeout ? "timeout" : connect ? "connect" : "bad_response"}).Inc();
      co_await fail(
          timeout ? 504 : 502,
          std::string(timeout ? "upstream timed out: " : "upstream failed: ") + s.message(),
          timeout ? "upstream_timeout" : "upstream_unavailable");
      co_return;
    }

    if (sink.sse_) {
      bool complete = sink.done_seen_ && !sink.invalid_ && !sink.parser_.HasPartialEvent();
      if (!complete) {
        upstream_errors_->With({"bad_response"}).Inc();
        co_await fail(502, "upstream stream ended before [DONE]", "upstream_incomplete_stream");
        co_return;
      }
      if (c.policy.store) {
        auto entry = AnswerEntry(c, sink.status_, {}, sink.recorded_);
        co_await Store(c, entry);
      }
      if (flight) flight->Finish({});
      // Only now the client sees [DONE]: a client that saw it can count on
      // the entry being in the store (as for whole answers, stored before
      // they are sent).
      if (sink.client_ok_ && co_await w.WriteChunk(FormatEvents({}, c.canon->include_usage, true)))
        co_await w.EndStream();
      co_return;
    }

    unsigned status = sink.status_;
    if (status >= 500) {
      upstream_errors_->With({"status_5xx"}).Inc();
      co_await fail(502,
                    "upstream returned HTTP " + std::to_string(status) + ": " +
                        UpstreamErrorMessage(sink.body_),
                    "upstream_error");
      co_return;
    }
    bool ok = status / 100 == 2;
    std::optional<Usage> usage;
    if (ok) usage = ParseAnswerUsage(sink.body_);  // the answer's only parse
    if (ok && !usage) {
      upstream_errors_->With({"bad_response"}).Inc();
      co_await fail(502, "upstream returned an invalid response (not a JSON object)",
                    "upstream_bad_response");
      co_return;
    }
    if (ok && c.policy.store) {
      auto entry = AnswerEntry(c, status, sink.body_, {}, &*usage);
      co_await Store(c, entry);
    }
    if (flight) {
      flight->SetHead(status, sink.content_type_, false, sink.RelayHeaders());
      flight->Finish(sink.body_);
    }
    if (ok && c.canon->stream) {
      // Asked for a stream, got a whole answer: stream it anyway.
      co_await SendAsStream(c, w, sink.body_, c.policy.lookup ? "miss" : "bypass");
      co_return;
    }
    Response res{static_cast<bhttp::status>(status), req.version()};
    sink.CopyHeaders(res.base());
    if (sink.content_type_.empty()) res.set(bhttp::field::content_type, "application/json");
    SetCacheHeaders(res.base(), c, result);
    res.keep_alive(req.keep_alive());
    res.body() = std::move(sink.body_);
    co_await w.Send(std::move(res));
  }

  awaitable<void> SendAsStream(const RequestContext& c, ResponseWriter& w, const std::string& body,
                               std::string_view result) {
    auto events = SynthesizeStream(c.route, body);
    if (!events) {
      co_await w.Send(
          http::MakeErrorResponse(502, "cannot stream the upstream answer: " + events.error(),
                                  "upstream_error", {}, "upstream_bad_response"));
      co_return;
    }
    bhttp::response_header<> h;
    h.result(bhttp::status::ok);
    h.set(bhttp::field::content_type, "text/event-stream");
    SetCacheHeaders(h, c, result);
    if (co_await w.BeginStream(std::move(h)) &&
        co_await w.WriteChunk(FormatEvents(*events, c.canon->include_usage, true)))
      co_await w.EndStream();
  }

  // A follower answers from the leader's flight, converting between stream
  // and whole answers as its own request asks.
  awaitable<void> Follow(RequestContext& c, const Request& req, ResponseWriter& w, Flight& flight) {
    size_t seen = 0;
    Flight::View v = co_await flight.Next(seen, c.canon->stream);
    const char* result = v.from_cache ? "hit" : c.policy.lookup ? "miss" : "bypass";
    auto send_plain = [&](unsigned status, std::string body) -> awaitable<void> {
      Response res{static_cast<bhttp::status>(status), req.version()};
      // The leader's client got the upstream's headers; so do its followers
      // (unless the answer is the gateway's own 502).
      if (status == v.status) {
        for (const auto& [k, val] : v.headers) res.set(k, val);
      }
      res.set(bhttp::field::content_type, "application/json");
      SetCacheHeaders(res.base(), c, result);
      res.keep_alive(req.keep_alive());
      res.body() = std::move(body);
      co_await w.Send(std::move(res));
    };
    // Nothing has been written yet: a flight that already failed is answered
    // with its plain error, whatever the follower asked for.
    if (v.state == Flight::State::kFailed) {
      co_await send_plain(v.status, std::move(v.body));
      co_return;
    }
    if (!c.canon->stream) {
      // Only the final state is returned to a non-stream follower.
      if (v.stream && v.status / 100 == 2) {
        auto body = AssembleFromStream(c.route, v.events);
        if (!body) {
          co_await send_plain(502, ErrorJson("cannot assemble the upstream stream",
                                             "upstream_error", "upstream_bad_response"));
          co_return;
        }
        co_await send_plain(v.status, std::move(*body));
      } else {
        co_await send_plain(v.status, std::move(v.body));
      }
      co_return;
    }
    if (!v.stream) {
      // The leader got a whole answer (or an error); the flight has ended.
      if (v.status / 100 == 2) {
        co_await SendAsStream(c, w, v.body, result);
      } else {
        co_await send_plain(v.status, std::move(v.body));
      }
      co_return;
    }
    bhttp::response_header<> h;
    h.result(v.status);
    h.set(bhttp::field::content_type, v.content_type);
    SetCacheHeaders(h, c, result);
    if (!co_await w.BeginStream(std::move(h))) co_return;
    while (true) {
      bool done = v.state == Flight::State::kDone;
      if (v.state == Flight::State::kFailed) {
        w.AbortStream();
        co_return;
      }
      if ((!v.events.empty() || done) &&
          !co_await w.WriteChunk(FormatEvents(v.events, c.canon->include_usage, done)))
        co_return;
      if (done) {
        co_await w.EndStream();
        co_return;
      }
      v = co_await flight.Next(seen, true);
    }
  }

  // ---- uncached routes -----------------------------------------------------

  awaitable<void> Proxy(Request& req, ResponseWriter& w, std::string path) {
    UpstreamRequest u = ForwardedRequest(req, std::string(req.method_string()), std::move(path));

    struct RelaySink final : UpstreamSink {
      ResponseWriter& w;
      bool ok = true;
      bool started = false;
      explicit RelaySink(ResponseWriter& writer) : w(writer) {}
      awaitable<bool> OnHead(unsigned status, const HeaderList& headers) override {
        bhttp::response_header<> h;
        h.result(status);
        for (const auto& [k, v] : headers) {
          if (!SkipInResponse(k)) h.set(k, v);
        }
        h.set(kCacheHeader, "bypass");
        started = true;
        ok = co_await w.BeginStream(std::move(h));
        co_return ok;
      }
      awaitable<bool> OnBody(std::string_view piece) override {
        ok = co_await w.WriteChunk(piece);
        co_return ok;
      }
    } sink(w);
    auto ex = co_await net::this_coro::executor;
    Status s = co_await UpstreamFor(w.worker(), ex).Send(u, sink);
    if (s.ok()) {
      co_await w.EndStream();
    } else if (sink.started) {
      w.AbortStream();
    } else {
      bool timeout = s.code() == StatusCode::kTimeout;
      upstream_errors_->With({timeout ? "timeout" : "connect"}).Inc();
      co_await w.Send(Error(req, timeout ? 504 : 502, "upstream failed: " + s.message(),
                            timeout ? "upstream_timeout" : "upstream_unavailable", {},
                            "upstream_error"));
    }
  }

  // ---- admin ---------------------------------------------------------------

  awaitable<void> HandleAdmin(Request& req, ResponseWriter& w, std::string_view path) {
    if (options_.admin_token.empty()) {
      co_await w.Send(Error(req, 403, "the admin API is disabled: set admin_token in the config",
                            "admin_disabled", {}, "permission_error"));
      co_return;
    }
    std::string_view auth = req[bhttp::field::authorization];
    constexpr std::string_view kBearer = "Bearer ";
    if (!auth.starts_with(kBearer) ||
        !ConstantTimeEquals(auth.substr(kBearer.size()), options_.admin_token)) {
      co_await w.Send(
          Error(req, 401, "admin token required", "unauthorized", {}, "authentication_error"));
      co_return;
    }
    if (path == "/admin/stats" && req.method() == bhttp::verb::get) {
      co_await w.Send(JsonResponse(req, 200, StatsJson()));
      co_return;
    }
    // A purge scans the store and an invalidation erases many keys, over the
    // network with Redis: both run on the admin thread, not the event loop
    // that other requests share.
    Response (Impl::*work)(const Request&) = nullptr;
    if (path == "/admin/purge" && req.method() == bhttp::verb::post) work = &Impl::Purge;
    if (path == "/admin/invalidate" && req.method() == bhttp::verb::post) work = &Impl::Invalidate;
    if (work) {
      auto job = AdminJob([this, &req, work] { return (this->*work)(req); });
      Response res =
          co_await net::co_spawn(admin_pool_.get_executor(), std::move(job), net::use_awaitable);
      co_await w.Send(std::move(res));
      co_return;
    }
    co_await w.Send(Error(req, 404, "no admin route " + std::string(path), "not_found"));
  }

  static awaitable<Response> AdminJob(std::function<Response()> work) { co_return work(); }

  std::string StatsJson() {
    boost::json::object o;
    boost::json::array tiers;
    for (const auto& [name, st] : store_->TierStats()) {
      tiers.push_back({{"tier", name},
                       {"entries", st.entries},
                       {"bytes", st.bytes},
                       {"evictions", st.evictions},
                       {"expirations", st.expirations},
                       {"corrupt_dropped", st.corrupt_dropped}});
    }
    o["tiers"] = std::move(tiers);
    boost::json::object req;
    for (int r = 0; r < kOutcomes; ++r) req[kOutcomeNames[r]] = totals_[r].load();
    uint64_t hits = totals_[kHit].load(), misses = totals_[kMiss].load();
    o["requests"] = std::move(req);
    o["hit_ratio"] = hits + misses ? double(hits) / double(hits + misses) : 0.0;
    o["in_flight"] = flights_.size();
    o["uptime_seconds"] = (clock_->NowMillis() - started_ms_) / 1000;
    o["upstream"] = options_.upstream_url;
    boost::json::object revs;
    for (const auto& [m, r] : revisions_.Snapshot()) revs[m] = r;
    o["model_revisions"] = std::move(revs);
    return boost::json::serialize(o);
  }

  Response Purge(const Request& req) {
    boost::system::error_code ec;
    auto v = boost::json::parse(req.body(), ec);
    if (ec || !v.is_object())
      return Error(req, 400, "body must be a JSON object with namespace, model or key",
                   "invalid_json");
    const auto& o = v.as_object();
    auto field = [&](const char* name) -> std::optional<std::string> {
      const auto* f = o.if_contains(name);
      if (!f || !f->is_string()) return std::nullopt;
      return std::string(f->as_string());
    };
    auto ns = field("namespace"), model = field("model"), key = field("key");
    if (!ns && !model && !key)
      return Error(req, 400, "name at least one of namespace, model, key (strings)",
                   "missing_filter");
    uint64_t purged = 0;
    if (key && !ns && !model) {
      // A key alone: erase it directly, no scan.
      auto hit = store_->Lookup(*key);
      if (hit && store_->Erase(*key).ok()) purged = 1;
    } else {
      auto r = store_->EraseIf([&](const CacheEntry& e) {
        if (key && e.key != *key) return false;
        if (model && e.model != *model) return false;
        // A namespace covers its per-credential partitions ("ns@hash").
        if (ns && e.ns != *ns &&
            !(e.ns.size() > ns->size() && e.ns.starts_with(*ns) && e.ns[ns->size()] == '@'))
          return false;
        return true;
      });
      if (!r) {
        store_errors_->With({"purge"}).Inc();
        return Error(req, 500, "purge failed: " + r.error().ToString(), "store_error", {},
                     "server_error");
      }
      purged = *r;
    }
    return JsonResponse(req, 200, "{\"purged\":" + std::to_string(purged) + "}");
  }

  // Removes every answer built on a document: {"doc_hash": "..."}.
  Response Invalidate(const Request& req) {
    boost::system::error_code ec;
    auto v = boost::json::parse(req.body(), ec);
    const boost::json::value* h = nullptr;
    if (!ec && v.is_object()) h = v.as_object().if_contains("doc_hash");
    if (!h || !h->is_string() || !IsValidDocHash(h->as_string()))
      return Error(req, 400,
                   "body must be {\"doc_hash\": \"...\"}, 1-128 characters of [A-Za-z0-9._:-]",
                   "invalid_doc_hash", "doc_hash");
    if (!options_.semantic)
      return Error(req, 409,
                   "document tracking is off: the gateway runs without its semantic cache",
                   "doc_tracking_disabled", {}, "invalid_request_error");
    auto keys = options_.semantic->InvalidateDoc(h->as_string());
    if (!keys) {
      store_errors_->With({"invalidate"}).Inc();
      return Error(req, 500, "invalidation failed: " + keys.error().ToString(), "store_error", {},
                   "server_error");
    }
    uint64_t erased = 0;
    for (const auto& k : *keys) {
      if (store_->Erase(k).ok())
        ++erased;
      else
        store_errors_->With({"erase"}).Inc();
    }
    boost::json::object o{
        {"doc_hash", h->as_string()}, {"invalidated", keys->size()}, {"erased", erased}};
    return JsonResponse(req, 200, boost::json::serialize(o));
  }

  void MaintainSemantic() {
    auto r = options_.semantic->Maintain();
    if (!r) {
      store_errors_->With({"semantic_maintain"}).Inc();
      spdlog::warn("semantic cache maintenance failed: {}", r.error().ToString());
      return;
    }
    for (const auto& k : r->erase_exact_keys) {
      if (!store_->Erase(k).ok()) store_errors_->With({"erase"}).Inc();
    }
  }

  // ---- background ----------------------------------------------------------

  // Store maintenance and model-revision polling, on a thread of their own so
  // that a slow upstream or a long sweep never delays a request.
  void Background() {
    net::io_context ctx;
    std::unique_ptr<Upstream> root;
    std::string tags_path = "/api/tags";
    if (options_.detect_model_revisions && !factory_) {
      http::BaseUrl root_url = base_;
      // Ollama serves /api/tags beside /v1.
      if (root_url.base_path.ends_with("/v1"))
        root_url.base_path.resize(root_url.base_path.size() - 3);
      http::ClientOptions co = options_.client;
      co.read_timeout = std::chrono::seconds(5);
      co.connect_retries = 0;
      root = std::make_unique<http::HttpClient>(ctx.get_executor(), root_url, co, tls_);
    }
    int64_t next_poll = 0, next_maintain = clock_->NowMillis() + options_.maintenance_interval_ms;
    bool tags_supported = true;
    while (true) {
      int64_t now = clock_->NowMillis();
      if (root && now >= next_poll) {
        auto fut = net::co_spawn(ctx, revisions_.Refresh(*root, tags_path), net::use_future);
        ctx.restart();
        ctx.run();
        Status s = fut.get();
        if (!s.ok() && tags_supported) {
          spdlog::info("model revision detection: {}", s.ToString());
        }
        tags_supported = s.ok();
        // An upstream without digests is asked again, but rarely.
        next_poll =
            now + (tags_supported ? options_.revision_poll_ms : options_.revision_poll_ms * 8);
      }
      if (now >= next_maintain) {
        Status s = store_->Maintain();
        if (!s.ok()) {
          store_errors_->With({"maintain"}).Inc();
          spdlog::warn("store maintenance failed: {}", s.ToString());
        }
        if (options_.semantic) MaintainSemantic();
        next_maintain = now + options_.maintenance_interval_ms;
      }
      std::unique_lock lock(bg_mu_);
      int64_t wait = std::max<int64_t>(
          10, std::min(root ? next_poll : INT64_MAX, next_maintain) - clock_->NowMillis());
      bg_cv_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(wait, 1000)),
                      [this] { return stopping_; });
      if (stopping_) break;
    }
  }

 public:
  // Fetches model revisions once, before serving, so the first requests
  // already key on them.
  void InitialRevisionPoll() {
    if (!options_.detect_model_revisions || factory_) return;
    net::io_context ctx;
    http::BaseUrl root_url = base_;
    if (root_url.base_path.ends_with("/v1"))
      root_url.base_path.resize(root_url.base_path.size() - 3);
    http::ClientOptions co = options_.client;
    co.read_timeout = std::chrono::seconds(2);
    co.connect_timeout = std::chrono::seconds(2);
    co.connect_retries = 0;
    http::HttpClient client(ctx.get_executor(), root_url, co, tls_);
    auto fut = net::co_spawn(ctx, revisions_.Refresh(client, "/api/tags"), net::use_future);
    ctx.run();
    Status s = fut.get();
    if (s.ok()) spdlog::info("model revisions detected from {}/api/tags", root_url.ToString());
  }

  std::shared_ptr<net::ssl::context> tls_;

 private:
  GatewayOptions options_;
  std::unique_ptr<llmcache::Store> store_;
  std::shared_ptr<Clock> clock_;
  UpstreamFactory factory_;
  http::BaseUrl base_;
  ModelRevisions revisions_;
  // Repeated bodies (the hits) skip the JSON parse, canonical form and SHA-256.
  CanonicalMemo canonical_memo_;
  FlightTable flights_;
  PendingCalls pending_;
  std::unique_ptr<http::Server> server_;
  std::vector<std::unique_ptr<Upstream>> upstreams_;
  int64_t started_ms_ = 0;

  metrics::Registry registry_;
  metrics::Family<metrics::Counter>* requests_;
  metrics::Family<metrics::Counter>* lookups_;
  metrics::Family<metrics::Histogram>* upstream_latency_;
  metrics::Family<metrics::Histogram>* hit_latency_;
  metrics::Family<metrics::Counter>* upstream_errors_;
  metrics::Family<metrics::Counter>* tokens_saved_;
  metrics::Family<metrics::Counter>* cost_saved_;
  metrics::Family<metrics::Counter>* waiters_;
  metrics::Family<metrics::Counter>* shared_flights_;
  metrics::Family<metrics::Counter>* store_errors_;
  metrics::Family<metrics::Counter>* bad_requests_;
  metrics::Family<metrics::Counter>* semantic_hits_ = nullptr;
  metrics::Family<metrics::Counter>* semantic_refusals_ = nullptr;
  metrics::Family<metrics::Histogram>* semantic_similarity_ = nullptr;
  metrics::Family<metrics::Histogram>* semantic_latency_ = nullptr;
  std::unique_ptr<net::thread_pool> semantic_pool_;
  // One thread: admin calls are rare, and one at a time keeps purges from
  // competing with each other.
  net::thread_pool admin_pool_{1};
  std::atomic<metrics::Histogram*> hit_latency_by_route_[kRoutes] = {};
  std::atomic<metrics::Histogram*> upstream_latency_by_route_[kRoutes] = {};
  std::vector<const char*> tier_names_;  // at most kTierSlots
  std::shared_mutex labels_mu_;
  std::unordered_map<std::string, std::unique_ptr<ModelMetrics>> model_metrics_;
  ModelMetrics other_metrics_{"other"};
  std::atomic<uint64_t> totals_[kOutcomes] = {};

  std::thread background_;
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool stopping_ = false;
};

Result<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options,
                                                 std::unique_ptr<Store> store,
                                                 std::shared_ptr<Clock> clock,
                                                 UpstreamFactory upstream_factory) {
  if (!store) return Err(Status::InvalidArgument("a store is required"));
  auto base = http::ParseBaseUrl(options.upstream_url);
  if (!base) return Err(base.error());
  auto tls = http::MakeTlsContext(options.client);
  if (!tls) return Err(tls.error());
  auto impl = std::make_unique<Impl>(std::move(options), std::move(store), std::move(clock),
                                     std::move(upstream_factory), std::move(*base));
  impl->tls_ = std::move(*tls);
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gateway::~Gateway() = default;

Status Gateway::Start() {
  impl_->InitialRevisionPoll();
  return impl_->Start();
}
void Gateway::Stop() { impl_->Stop(); }
uint16_t Gateway::port() const { return impl_->port(); }

}  // namespace llmcache::gateway
