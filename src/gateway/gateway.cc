#include "gateway/gateway.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <shared_mutex>
#include <thread>
#include <unordered_set>

#include "common/hash.h"
#include "gateway/cache_control.h"
#include "gateway/canonical.h"
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
    RegisterMetrics();
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
    bg_cv_.notify_all();
    if (background_.joinable()) background_.join();
    if (server_) server_->Stop();
    // Upstream clients hold sockets of the server's io_contexts: release them
    // after the workers stopped but before the contexts are destroyed.
    upstreams_.clear();
    server_.reset();
  }

  uint16_t port() const { return server_ ? server_->port() : 0; }

 private:
  struct RequestContext {
    Route route;
    const char* route_name;
    CanonicalRequest canon;
    RequestCachePolicy policy;
    std::string ns;  // effective namespace
    std::string key;
    std::string model_label;
    int64_t ttl_ms = 0;
    bool ttl_fixed = false;
    std::chrono::steady_clock::time_point start;
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
    store_errors_ =
        &registry_.AddCounter("llmcache_store_errors_total",
                              "Store operations that failed (the cache failed open)", {"op"});
    bad_requests_ = &registry_.AddCounter("llmcache_bad_requests_total",
                                          "Requests refused as invalid", {"reason"});
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

  // Model names come from clients: bound the label set so a client cannot
  // grow the metrics without limit.
  std::string ModelLabel(const std::string& model) {
    {
      std::shared_lock lock(labels_mu_);
      if (model_labels_.count(model)) return model;
      if (model_labels_.size() >= options_.max_model_labels) return "other";
    }
    std::unique_lock lock(labels_mu_);
    if (model_labels_.size() >= options_.max_model_labels && !model_labels_.count(model))
      return "other";
    model_labels_.insert(model);
    return model;
  }

  enum Outcome { kHit, kMiss, kBypass, kOutcomes };
  static constexpr const char* kOutcomeNames[kOutcomes] = {"hit", "miss", "bypass"};

  void CountRequest(const RequestContext& c, Outcome result) {
    requests_->With({c.route_name, c.model_label, kOutcomeNames[result]}).Inc();
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
      co_await w.Send(JsonResponse(req, 200, R"({"status":"ok"})"));
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
    auto canon = Canonicalize(route, req.body(), copts);
    if (!canon) {
      bad_requests_->With({"invalid_request"}).Inc();
      const RequestError& e = canon.error();
      co_await w.Send(Error(req, e.http_status, e.message, e.code, e.param, e.type));
      co_return;
    }
    c.canon = std::move(*canon);
    auto policy = ParseRequestCachePolicy(req[bhttp::field::cache_control], req["x-llmcache-ttl"]);
    if (!policy) {
      bad_requests_->With({"cache_control"}).Inc();
      const RequestError& e = policy.error();
      co_await w.Send(Error(req, e.http_status, e.message, e.code, e.param, e.type));
      co_return;
    }
    c.policy = *policy;
    const ModelPolicy* mp = ModelFor(c.canon.model);
    if (!nsp.cache || (mp && !mp->cache)) c.policy.lookup = c.policy.store = false;

    // Tenancy: when the client's own credential goes upstream, it joins the
    // namespace so that no credential can read another's answers.
    std::string_view auth = req[bhttp::field::authorization];
    c.ns = ns;
    if (options_.upstream_api_key.empty() && !auth.empty() && !nsp.share_across_credentials)
      c.ns += "@" + Sha256Hex(auth).substr(0, 32);

    if (c.policy.ttl_ms) {
      c.ttl_ms = *c.policy.ttl_ms;
      c.ttl_fixed = true;
    } else if (mp && mp->ttl_ms) {
      c.ttl_ms = *mp->ttl_ms;
    } else if (nsp.ttl_ms) {
      c.ttl_ms = *nsp.ttl_ms;
    } else {
      c.ttl_ms = options_.default_ttl_ms;
    }

    std::string revision = revisions_.Get(c.canon.model);
    c.key = CacheKey({c.ns, revision, c.canon.canonical, route});
    c.model_label = ModelLabel(c.canon.model);

    if (c.policy.lookup) {
      auto hit = store_->Lookup(c.key);
      if (hit) {
        if (co_await ServeHit(c, req, w, *hit->entry, hit->tier)) co_return;
      } else if (!hit.error().IsNotFound() && !hit.error().IsCorruption()) {
        store_errors_->With({"lookup"}).Inc();
        spdlog::warn("cache lookup failed, serving as a miss: {}", hit.error().ToString());
      }
      lookups_->With({c.route_name, c.model_label, "all", "miss"}).Inc();
    }

    UpstreamRequest ureq = BuildUpstreamRequest(c, req);
    if (!c.policy.store) {
      CountRequest(c, c.policy.lookup ? kMiss : kBypass);
      co_await CallUpstream(c, req, w, ureq, nullptr);
      co_return;
    }
    auto ticket = flights_.Join(c.key);
    if (ticket.leader) {
      CountRequest(c, c.policy.lookup ? kMiss : kBypass);
      co_await CallUpstream(c, req, w, ureq, ticket.flight);
      flights_.Remove(c.key, ticket.flight);
    } else {
      CountRequest(c, c.policy.lookup ? kMiss : kBypass);
      waiters_->With({c.route_name}).Inc();
      co_await Follow(c, req, w, *ticket.flight);
    }
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
    bool wants_usage = c.canon.stream && c.route != Route::kEmbeddings && !c.canon.include_usage;
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
    if (c.canon.stream) {
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
      SetCacheHeaders(h, c, "hit");
      std::string payload = FormatEvents(*events, c.canon.include_usage, true);
      RecordHit(c, e, tier);
      if (co_await w.BeginStream(std::move(h)) && co_await w.WriteChunk(payload))
        co_await w.EndStream();
    } else {
      std::string body;
      if (e.is_stream()) {
        auto a = AssembleFromStream(c.route, e.sse_events);
        if (!a) co_return false;
        body = std::move(*a);
      } else {
        body = e.body;
      }
      Response res{static_cast<bhttp::status>(e.http_status), req.version()};
      res.set(bhttp::field::content_type, "application/json");
      res.set(bhttp::field::age, age);
      SetCacheHeaders(res.base(), c, "hit");
      res.keep_alive(req.keep_alive());
      res.body() = std::move(body);
      RecordHit(c, e, tier);
      co_await w.Send(std::move(res));
    }
    co_return true;
  }

  void RecordHit(const RequestContext& c, const CacheEntry& e, const char* tier) {
    CountRequest(c, kHit);
    lookups_->With({c.route_name, c.model_label, tier, "hit"}).Inc();
    hit_latency_->With({c.route_name}).Observe(std::chrono::steady_clock::now() - c.start);
    if (e.prompt_tokens)
      tokens_saved_->With({c.model_label, "prompt"}).Inc(uint64_t{e.prompt_tokens});
    if (e.completion_tokens)
      tokens_saved_->With({c.model_label, "completion"}).Inc(uint64_t{e.completion_tokens});
    if (const ModelPolicy* mp = ModelFor(c.canon.model)) {
      double usd = (e.prompt_tokens * mp->input_usd_per_mtok +
                    e.completion_tokens * mp->output_usd_per_mtok) /
                   1e6;
      if (usd > 0) cost_saved_->With({c.model_label}).Inc(usd);
    }
  }

  void Store(const RequestContext& c, unsigned status, std::string body,
             std::vector<std::string> events) {
    auto e = std::make_shared<CacheEntry>();
    e->key = c.key;
    e->ns = c.ns;
    e->model = c.canon.model;
    e->route = c.route;
    e->created_ms = e->last_access_ms = clock_->NowMillis();
    e->ttl_ms = c.ttl_ms;
    e->ttl_fixed = c.ttl_fixed;
    e->http_status = static_cast<int>(status);
    Usage u = events.empty() ? ExtractUsage(body) : ExtractUsageFromStream(events);
    e->prompt_tokens = u.prompt_tokens;
    e->completion_tokens = u.completion_tokens;
    e->body = std::move(body);
    e->sse_events = std::move(events);
    Status s = store_->Insert(std::move(e));
    if (!s.ok()) {
      store_errors_->With({"insert"}).Inc();
      spdlog::warn("cache insert failed: {}", s.ToString());
    }
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
        client_ok_ =
            co_await w_.WriteChunk(gw_.FormatEvents(fresh, c_.canon.include_usage, false));
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
    upstream_latency_->With({c.route_name}).Observe(std::chrono::steady_clock::now() - t0);
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
      if (c.policy.store) Store(c, sink.status_, {}, sink.recorded_);
      if (flight) flight->Finish({});
      // Only now the client sees [DONE]: a client that saw it can count on
      // the entry being in the store (as for whole answers, stored before
      // they are sent).
      if (sink.client_ok_ && co_await w.WriteChunk(FormatEvents({}, c.canon.include_usage, true)))
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
    if (ok && !IsJsonObject(sink.body_)) {
      upstream_errors_->With({"bad_response"}).Inc();
      co_await fail(502, "upstream returned an invalid response (not a JSON object)",
                    "upstream_bad_response");
      co_return;
    }
    if (ok && c.policy.store) Store(c, status, sink.body_, {});
    if (flight) {
      flight->SetHead(status, sink.content_type_, false);
      flight->Finish(sink.body_);
    }
    if (ok && c.canon.stream) {
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
        co_await w.WriteChunk(FormatEvents(*events, c.canon.include_usage, true)))
      co_await w.EndStream();
  }

  // A follower answers from the leader's flight, converting between stream
  // and whole answers as its own request asks.
  awaitable<void> Follow(RequestContext& c, const Request& req, ResponseWriter& w, Flight& flight) {
    const char* result = c.policy.lookup ? "miss" : "bypass";
    size_t seen = 0;
    Flight::View v = co_await flight.Next(seen, c.canon.stream);
    auto send_plain = [&](unsigned status, std::string body) -> awaitable<void> {
      Response res{static_cast<bhttp::status>(status), req.version()};
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
    if (!c.canon.stream) {
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
          !co_await w.WriteChunk(FormatEvents(v.events, c.canon.include_usage, done)))
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
    if (path == "/admin/purge" && req.method() == bhttp::verb::post) {
      co_await w.Send(Purge(req));
      co_return;
    }
    co_await w.Send(Error(req, 404, "no admin route " + std::string(path), "not_found"));
  }

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
  FlightTable flights_;
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
  metrics::Family<metrics::Counter>* store_errors_;
  metrics::Family<metrics::Counter>* bad_requests_;
  std::shared_mutex labels_mu_;
  std::unordered_set<std::string> model_labels_;
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
