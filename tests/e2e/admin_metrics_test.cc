// The admin API (auth, stats, purge) and the Prometheus metrics.
#include <cmath>

#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2eAdmin : public E2eTest {};
class E2eMetrics : public E2eTest {};

HttpResponse Purge(const TestGateway& gw, std::string_view body) {
  return Post(gw.port(), "/admin/purge", body, {{"Authorization", "Bearer e2e-admin-token"}});
}

int64_t Purged(const HttpResponse& r) {
  auto v = r.Json();
  if (r.status != 200 || !v.is_object() || !v.as_object().contains("purged")) {
    ADD_FAILURE() << "purge failed: " << r.Describe();
    return -1;
  }
  return v.at("purged").to_number<int64_t>();
}

TEST_F(E2eAdmin, DisabledWithoutATokenAndAuthenticatedWithOne) {
  auto o = Options();
  o.admin_token.clear();
  auto off = StartGateway(o);
  ASSERT_TRUE(off);
  for (const Headers& h : {Headers{}, Headers{{"Authorization", "Bearer anything"}},
                           Headers{{"Authorization", "Bearer "}}}) {
    auto r = off->Get("/admin/stats", h);
    EXPECT_EQ(r.status, 403) << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r));
    auto p = Post(off->port(), "/admin/purge", R"({"namespace":"default"})", h);
    EXPECT_EQ(p.status, 403) << p.Describe();
  }
  off.reset();

  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  const Headers wrong[] = {
      {},
      {{"Authorization", "Bearer wrong-token"}},
      {{"Authorization", "Bearer e2e-admin-toke"}},
      {{"Authorization", "Bearer e2e-admin-token2"}},
      {{"Authorization", "Basic e2e-admin-token"}},
      {{"Authorization", "e2e-admin-token"}},
  };
  for (const auto& h : wrong) {
    auto r = gw->Get("/admin/stats", h);
    EXPECT_EQ(r.status, 401) << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r));
    auto p = Post(gw->port(), "/admin/purge", R"({"namespace":"default"})", h);
    EXPECT_EQ(p.status, 401) << p.Describe();
  }
  auto ok = gw->Get("/admin/stats", {{"Authorization", "Bearer e2e-admin-token"}});
  EXPECT_EQ(ok.status, 200) << ok.Describe();
  auto nope = gw->Get("/admin/nope", {{"Authorization", "Bearer e2e-admin-token"}});
  EXPECT_EQ(nope.status, 404);
  EXPECT_TRUE(IsOpenAiError(nope));
}

TEST_F(E2eAdmin, StatsReportTiersAndRequests) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("stats"));
  ASSERT_EQ(gw->Chat(body).Cache(), "miss");
  ASSERT_EQ(gw->Chat(body).Cache(), "hit");
  ASSERT_EQ(gw->Chat(body).Cache(), "hit");
  ASSERT_EQ(gw->Chat(body, {{"Cache-Control", "no-cache"}}).Cache(), "bypass");
  auto s = gw->AdminStats();
  ASSERT_TRUE(s.contains("tiers") && s.at("tiers").is_array()) << boost::json::serialize(s);
  std::vector<std::string> names;
  for (const auto& t : s.at("tiers").as_array()) {
    names.emplace_back(t.at("tier").as_string());
    EXPECT_EQ(t.at("entries").to_number<int64_t>(), 1) << boost::json::serialize(t);
    EXPECT_GT(t.at("bytes").to_number<int64_t>(), 0);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"memory", "rocksdb"}));
  const auto& req = s.at("requests").as_object();
  EXPECT_EQ(req.at("miss").to_number<int64_t>(), 1);
  EXPECT_EQ(req.at("hit").to_number<int64_t>(), 2);
  EXPECT_EQ(req.at("bypass").to_number<int64_t>(), 1);
  EXPECT_NEAR(s.at("hit_ratio").to_number<double>(), 2.0 / 3.0, 1e-9);
  // The leader leaves its flight just after answering: a moment later.
  EXPECT_TRUE(WaitFor([&] { return gw->AdminStats().at("in_flight").to_number<int64_t>() == 0; }, 5s))
      << "a finished flight stayed in the table";
  EXPECT_EQ(s.at("upstream"), boost::json::value(upstream().url()));
}

TEST_F(E2eAdmin, PurgeByKeyModelAndNamespace) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  struct E {
    std::string body;
    Headers headers;
    std::string key;
  };
  auto ns = [](const char* n) { return Headers{{"x-llmcache-namespace", n}}; };
  std::vector<E> e = {
      /*0*/ {ChatBody(UniquePrompt("a1")), ns("purge-a"), {}},
      /*1*/ {ChatBody(UniquePrompt("a2"), true), ns("purge-a"), {}},
      /*2*/ {ChatBody(UniquePrompt("a3"), false, "gpt-4o-mini"), ns("purge-a"), {}},
      /*3*/ {ChatBody(UniquePrompt("b1")), ns("purge-b"), {}},
      /*4*/ {ChatBody(UniquePrompt("a-cred")),
             {{"x-llmcache-namespace", "purge-a"}, {"Authorization", "Bearer sk-tenant"}}, {}},
      /*5*/ {ChatBody(UniquePrompt("d1")), {}, {}},
      /*6*/ {ChatBody(UniquePrompt("d2"), false, "test-model"), {}, {}},
      /*7*/ {ChatBody(UniquePrompt("ab")), ns("purge-ab"), {}},  // shares a prefix with purge-a
  };
  for (auto& x : e) {
    auto r = gw->Chat(x.body, x.headers);
    ASSERT_EQ(r.Cache(), "miss") << r.Describe();
    x.key = r.Header("x-llmcache-key");
  }
  EXPECT_EQ(gw->Entries("memory"), 8);
  EXPECT_EQ(gw->Entries("rocksdb"), 8);
  auto is_hit = [&](size_t i) { return gw->Chat(e[i].body, e[i].headers).Cache() == "hit"; };

  // Refused purges change nothing.
  EXPECT_EQ(Purge(*gw, "not json").status, 400);
  EXPECT_EQ(Purge(*gw, "{}").status, 400);
  EXPECT_EQ(Purge(*gw, R"({"namespace":7})").status, 400);
  EXPECT_EQ(gw->Get("/admin/purge", {{"Authorization", "Bearer e2e-admin-token"}}).status, 404);
  EXPECT_EQ(gw->Entries(), 8);

  // By key.
  EXPECT_EQ(Purged(Purge(*gw, R"({"key":")" + e[5].key + R"("})")), 1);
  EXPECT_EQ(Purged(Purge(*gw, R"({"key":")" + e[5].key + R"("})")), 0) << "already gone";
  EXPECT_EQ(Purged(Purge(*gw, R"({"key":"0000"})")), 0);
  EXPECT_EQ(gw->Entries("memory"), 7);
  EXPECT_EQ(gw->Entries("rocksdb"), 7);
  // By model.
  EXPECT_EQ(Purged(Purge(*gw, R"({"model":"gpt-4o-mini"})")), 1);
  // Namespace and model together: both must match.
  EXPECT_EQ(Purged(Purge(*gw, R"({"namespace":"purge-b","model":"test-model"})")), 0);
  // By namespace, including its per-credential partition, not purge-ab.
  EXPECT_EQ(Purged(Purge(*gw, R"({"namespace":"purge-a"})")), 3);
  EXPECT_EQ(gw->Entries("memory"), 3);
  EXPECT_EQ(gw->Entries("rocksdb"), 3);

  // What stays is still served (checked before the misses re-store).
  EXPECT_TRUE(is_hit(3));
  EXPECT_TRUE(is_hit(6));
  EXPECT_TRUE(is_hit(7));
  int64_t calls = upstream().Calls();
  for (size_t i : {0, 1, 2, 4, 5}) EXPECT_FALSE(is_hit(i)) << "entry " << i << " survived its purge";
  EXPECT_EQ(upstream().Calls(), calls + 5);
}

TEST_F(E2eMetrics, CountersMatchWhatTheTestDid) {
  auto o = Options();
  o.models["llama3"].input_usd_per_mtok = 3.0;
  o.models["llama3"].output_usd_per_mtok = 15.0;
  auto gw = StartGateway(o);
  ASSERT_TRUE(gw);
  std::string b1 = ChatBody(UniquePrompt("metrics one"));
  std::string b2 = ChatBody(UniquePrompt("metrics two words more"), true);
  std::string b3 = ChatBody(UniquePrompt("metrics unpriced"), false, "test-model");

  auto m1 = gw->Chat(b1);
  auto m2 = gw->Chat(b2);
  auto m3 = gw->Chat(b3);
  for (const auto* r : {&m1, &m2, &m3}) ASSERT_EQ(r->Cache(), "miss") << r->Describe();
  // The usage of the two llama3 entries, as the upstream reported it. The
  // stream's usage is not shown to this client: take it from a hit that
  // asks for it (which counts as a hit too).
  Answer a1 = ParseAnswer(m1);
  ASSERT_TRUE(a1.usage);
  auto u2r = gw->Chat(ChatBody(UniquePrompt("metrics two words more"), true, "llama3",
                               R"({"stream_options":{"include_usage":true}})"));
  ASSERT_EQ(u2r.Cache(), "hit");
  Answer a2 = ParseAnswer(u2r);
  ASSERT_TRUE(a2.usage) << u2r.body;
  auto tok = [](const Answer& a, const char* k) { return a.usage->at(k).to_number<double>(); };

  // Hits: b1 x2, b2 x1 more (2 in all), b3 x1; one bypass of b1.
  ASSERT_EQ(gw->Chat(b1).Cache(), "hit");
  ASSERT_EQ(gw->Chat(b1).Cache(), "hit");
  ASSERT_EQ(gw->Chat(b2).Cache(), "hit");
  ASSERT_EQ(gw->Chat(b3).Cache(), "hit");
  ASSERT_EQ(gw->Chat(b1, {{"Cache-Control", "no-cache"}}).Cache(), "bypass");
  ASSERT_EQ(gw->Chat("{bad").status, 400);

  std::string m = gw->Metrics();
  auto req = [&](const char* model, const char* result) {
    return MetricValue(m, "llmcache_requests_total",
                       {{"route", "chat"}, {"model", model}, {"result", result}});
  };
  EXPECT_EQ(req("llama3", "miss"), 2) << m;
  EXPECT_EQ(req("llama3", "hit"), 4);
  EXPECT_EQ(req("llama3", "bypass"), 1);
  EXPECT_EQ(req("test-model", "miss"), 1);
  EXPECT_EQ(req("test-model", "hit"), 1);
  EXPECT_EQ(MetricValue(m, "llmcache_requests_total", {{"result", "hit"}}), 5);
  EXPECT_EQ(MetricValue(m, "llmcache_cache_lookups_total", {{"tier", "memory"}, {"result", "hit"}}), 5);
  EXPECT_EQ(MetricValue(m, "llmcache_tier_entries", {{"tier", "memory"}}), 3);
  EXPECT_EQ(MetricValue(m, "llmcache_tier_entries", {{"tier", "rocksdb"}}), 3);
  EXPECT_GT(MetricValue(m, "llmcache_tier_bytes", {{"tier", "rocksdb"}}).value_or(0), 0);
  EXPECT_EQ(MetricValue(m, "llmcache_bad_requests_total", {{"reason", "invalid_request"}}), 1);

  // Tokens saved: per hit, the entry's usage.
  double prompt = 2 * tok(a1, "prompt_tokens") + 2 * tok(a2, "prompt_tokens");
  double completion = 2 * tok(a1, "completion_tokens") + 2 * tok(a2, "completion_tokens");
  EXPECT_EQ(MetricValue(m, "llmcache_tokens_saved_total", {{"model", "llama3"}, {"kind", "prompt"}}),
            prompt);
  EXPECT_EQ(MetricValue(m, "llmcache_tokens_saved_total",
                        {{"model", "llama3"}, {"kind", "completion"}}),
            completion);
  EXPECT_GT(MetricValue(m, "llmcache_tokens_saved_total", {{"model", "test-model"}}).value_or(0), 0);
  // Money saved: only where a price is configured.
  double usd = (prompt * 3.0 + completion * 15.0) / 1e6;
  auto cost = MetricValue(m, "llmcache_cost_saved_usd_total", {{"model", "llama3"}});
  ASSERT_TRUE(cost) << m;
  EXPECT_NEAR(*cost, usd, 1e-12);
  EXPECT_FALSE(MetricValue(m, "llmcache_cost_saved_usd_total", {{"model", "test-model"}}));
  // Histograms observed one sample per upstream call and per hit.
  EXPECT_EQ(MetricValue(m, "llmcache_upstream_duration_seconds_count"), 4);
  EXPECT_EQ(MetricValue(m, "llmcache_hit_duration_seconds_count"), 5);
}

TEST_F(E2eMetrics, UpstreamErrorsAndWaitersAreCounted) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  ASSERT_TRUE(upstream().Config(R"({"fault":"500","fault_count":1})"));
  EXPECT_EQ(gw->Chat(ChatBody(UniquePrompt("err"))).status, 502);
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":300})"));
  std::string body = ChatBody(UniquePrompt("waiters"));
  auto rs = Concurrently(10, [&](int) { return gw->Chat(body); });
  for (const auto& r : rs) EXPECT_EQ(r.status, 200) << r.Describe();
  std::string m = gw->Metrics();
  EXPECT_EQ(MetricValue(m, "llmcache_upstream_errors_total", {{"kind", "status_5xx"}}), 1) << m;
  double misses = MetricValue(m, "llmcache_requests_total", {{"result", "miss"}}).value_or(0);
  EXPECT_EQ(MetricValue(m, "llmcache_singleflight_waiters_total").value_or(0), misses - 2);
  EXPECT_TRUE(m.find("# TYPE llmcache_requests_total counter") != std::string::npos);
  EXPECT_TRUE(m.find("llmcache_http_connections") != std::string::npos);
}

}  // namespace
}  // namespace llmcache::e2e
