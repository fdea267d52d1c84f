// Hit, miss, bypass, no-store and TTLs; canonicalization end to end.
#include <cstdio>
#include <set>

#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2eCache : public E2eTest {};

std::string Quoted(std::string_view s) { return boost::json::serialize(boost::json::value(s)); }

TEST_F(E2eCache, MissThenHitWithAgeThenBypassRefreshes) {
  auto clock = std::make_shared<ManualClock>();
  auto gw = StartGateway(Options(), StoreKind::kTiered, clock);
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("hello"));

  auto first = gw->Chat(body);
  ASSERT_EQ(first.status, 200) << first.Describe();
  EXPECT_EQ(first.Cache(), "miss");
  EXPECT_EQ(first.Header("x-llmcache-key").size(), 64u);
  EXPECT_TRUE(first.Header("age").empty()) << "a miss carries no Age";
  Answer a1 = ParseAnswer(first);
  ASSERT_TRUE(a1.ok) << a1.problem;
  EXPECT_TRUE(a1.content.starts_with("echo: hello")) << a1.content;
  EXPECT_EQ(upstream().Calls(), 1);

  auto second = gw->Chat(body);
  ASSERT_EQ(second.status, 200) << second.Describe();
  EXPECT_EQ(second.Cache(), "hit");
  EXPECT_EQ(second.body, first.body) << "a hit returns the stored body byte for byte";
  EXPECT_EQ(second.Header("x-llmcache-key"), first.Header("x-llmcache-key"));
  EXPECT_EQ(second.Header("age"), "0");

  clock->Advance(7'000);
  auto third = gw->Chat(body);
  EXPECT_EQ(third.Cache(), "hit");
  EXPECT_EQ(third.Header("age"), "7");
  EXPECT_EQ(upstream().Calls(), 1) << "hits must not reach the upstream";

  // no-cache: the upstream is asked again and its answer replaces the entry.
  auto bypass = gw->Chat(body, {{"Cache-Control", "no-cache"}});
  ASSERT_EQ(bypass.status, 200) << bypass.Describe();
  EXPECT_EQ(bypass.Cache(), "bypass");
  EXPECT_EQ(upstream().Calls(), 2);
  Answer ab = ParseAnswer(bypass);
  ASSERT_TRUE(ab.ok) << ab.problem;
  EXPECT_NE(ab.id, a1.id) << "the bypass was not answered by the upstream";
  EXPECT_EQ(ab.content, a1.content);

  auto after = gw->Chat(body);
  EXPECT_EQ(after.Cache(), "hit");
  EXPECT_EQ(ParseAnswer(after).id, ab.id) << "the bypass did not refresh the entry";
  EXPECT_EQ(after.Header("age"), "0") << "the refreshed entry is new";
  EXPECT_EQ(upstream().Calls(), 2);
}

TEST_F(E2eCache, NoStoreIsNotStoredButMayBeServed) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("no-store"));

  auto r1 = gw->Chat(body, {{"Cache-Control", "no-store"}});
  ASSERT_EQ(r1.status, 200) << r1.Describe();
  EXPECT_EQ(r1.Cache(), "miss");
  EXPECT_EQ(gw->Entries(), 0);
  auto r2 = gw->Chat(body);
  EXPECT_EQ(r2.Cache(), "miss") << "a no-store answer was stored";
  EXPECT_EQ(upstream().Calls(), 2);
  EXPECT_EQ(gw->Entries(), 1);
  auto r3 = gw->Chat(body);
  EXPECT_EQ(r3.Cache(), "hit");
  // no-store forbids storing, not reading.
  auto r4 = gw->Chat(body, {{"Cache-Control", "no-store"}});
  EXPECT_EQ(r4.Cache(), "hit");
  EXPECT_EQ(r4.body, r2.body);
  // no-cache + no-store: straight to the upstream, nothing changes.
  auto r5 = gw->Chat(body, {{"Cache-Control", "no-cache, no-store"}});
  EXPECT_EQ(r5.Cache(), "bypass");
  EXPECT_EQ(upstream().Calls(), 3);
  auto r6 = gw->Chat(body);
  EXPECT_EQ(r6.Cache(), "hit");
  EXPECT_EQ(ParseAnswer(r6).id, ParseAnswer(r2).id) << "a no-store bypass replaced the entry";
}

TEST_F(E2eCache, RequestTtlAndMaxAgeExpireWithTheClock) {
  auto clock = std::make_shared<ManualClock>();
  auto gw = StartGateway(Options(), StoreKind::kTiered, clock);
  ASSERT_TRUE(gw);
  std::string ttl_body = ChatBody(UniquePrompt("ttl header"));
  std::string max_age_body = ChatBody(UniquePrompt("max-age"));
  std::string default_body = ChatBody(UniquePrompt("default ttl"));

  EXPECT_EQ(gw->Chat(ttl_body, {{"x-llmcache-ttl", "60"}}).Cache(), "miss");
  EXPECT_EQ(gw->Chat(max_age_body, {{"Cache-Control", "max-age=10"}}).Cache(), "miss");
  EXPECT_EQ(gw->Chat(default_body).Cache(), "miss");
  EXPECT_EQ(upstream().Calls(), 3);

  clock->Advance(5'000);
  EXPECT_EQ(gw->Chat(ttl_body).Cache(), "hit");
  EXPECT_EQ(gw->Chat(max_age_body).Cache(), "hit");
  clock->Advance(6'000);  // 11 s: past max-age=10 (hits do not extend a client TTL)
  EXPECT_EQ(gw->Chat(max_age_body).Cache(), "miss");
  EXPECT_EQ(gw->Chat(ttl_body).Cache(), "hit");
  clock->Advance(50'000);  // 61 s: past x-llmcache-ttl: 60
  EXPECT_EQ(gw->Chat(ttl_body).Cache(), "miss");
  EXPECT_EQ(gw->Chat(default_body).Cache(), "hit") << "the default TTL is a day";
  EXPECT_EQ(upstream().Calls(), 5);

  // x-llmcache-ttl wins over max-age; ttl 0 means neither read nor store.
  std::string both = ChatBody(UniquePrompt("both"));
  EXPECT_EQ(gw->Chat(both, {{"x-llmcache-ttl", "100"}, {"Cache-Control", "max-age=1"}}).Cache(), "miss");
  clock->Advance(50'000);
  EXPECT_EQ(gw->Chat(both).Cache(), "hit");
  auto zero = gw->Chat(both, {{"x-llmcache-ttl", "0"}});
  EXPECT_EQ(zero.Cache(), "bypass");
  EXPECT_EQ(gw->Chat(both).Cache(), "hit");
}

TEST_F(E2eCache, NamespaceAndModelPolicies) {
  auto clock = std::make_shared<ManualClock>();
  auto o = Options();
  o.namespaces["uncached"].cache = false;
  o.namespaces["short"].ttl_ms = 10'000;
  o.models["test-model"].cache = false;
  o.models["gpt-4o-mini"].ttl_ms = 20'000;
  auto gw = StartGateway(o, StoreKind::kTiered, clock);
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("policies");
  Headers uncached = {{"x-llmcache-namespace", "uncached"}};
  Headers short_ttl = {{"x-llmcache-namespace", "short"}};

  // cache: false -> every request is a bypass and nothing is stored.
  EXPECT_EQ(gw->Chat(ChatBody(p), uncached).Cache(), "bypass");
  EXPECT_EQ(gw->Chat(ChatBody(p), uncached).Cache(), "bypass");
  EXPECT_EQ(gw->Chat(ChatBody(p, false, "test-model")).Cache(), "bypass");
  EXPECT_EQ(gw->Chat(ChatBody(p, false, "test-model")).Cache(), "bypass");
  EXPECT_EQ(gw->Entries(), 0);
  EXPECT_EQ(upstream().Calls(), 4);

  // TTLs: namespace 10 s, model 20 s, default a day.
  EXPECT_EQ(gw->Chat(ChatBody(p), short_ttl).Cache(), "miss");
  EXPECT_EQ(gw->Chat(ChatBody(p, false, "gpt-4o-mini")).Cache(), "miss");
  EXPECT_EQ(gw->Chat(ChatBody(p)).Cache(), "miss");
  clock->Advance(11'000);
  EXPECT_EQ(gw->Chat(ChatBody(p), short_ttl).Cache(), "miss") << "namespace TTL not applied";
  EXPECT_EQ(gw->Chat(ChatBody(p, false, "gpt-4o-mini")).Cache(), "hit");
  clock->Advance(30'000);  // hits extend a server TTL (x2 after one hit): 41 s > 40 s
  EXPECT_EQ(gw->Chat(ChatBody(p, false, "gpt-4o-mini")).Cache(), "miss") << "model TTL not applied";
  EXPECT_EQ(gw->Chat(ChatBody(p)).Cache(), "hit");
  EXPECT_EQ(upstream().Calls(), 9);
}

TEST_F(E2eCache, CanonicallyEqualRequestsShareAnEntry) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("canonical");
  std::string base = R"({"model":"llama3","messages":[{"role":"user","content":)" + Quoted(p) +
                     R"(}],"temperature":0.7})";
  auto first = gw->Chat(base);
  ASSERT_EQ(first.status, 200) << first.Describe();
  ASSERT_EQ(first.Cache(), "miss");
  std::string content = ContentOf(first);

  // The first character of the prompt as a \u escape.
  char esc[8];
  std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned char>(p[0]));
  std::string escaped = "\"" + std::string(esc) + Quoted(p).substr(2);
  const std::string same[] = {
      // key order and whitespace
      "{ \"temperature\" : 0.70 ,\n \"messages\" : [ { \"content\" : " + Quoted(p) +
          " , \"role\" : \"user\" } ] ,\t\"model\":\"llama3\" }",
      // number spellings
      R"({"model":"llama3","messages":[{"role":"user","content":)" + Quoted(p) +
          R"(}],"temperature":7e-1})",
      R"({"model":"llama3","messages":[{"role":"user","content":)" + Quoted(p) +
          R"(}],"temperature":0.700000})",
      // string escapes
      R"({"model":"llama3","messages":[{"role":"user","content":)" + escaped +
          R"(}],"temperature":0.7})",
      // fields that do not change the answer
      R"({"model":"llama3","user":"someone","stream":false,"messages":[{"role":"user","content":)" +
          Quoted(p) + R"(}],"temperature":0.7})",
  };
  for (const auto& body : same) {
    auto r = gw->Chat(body);
    ASSERT_EQ(r.status, 200) << body << "\n" << r.Describe();
    EXPECT_EQ(r.Cache(), "hit") << body;
    EXPECT_EQ(r.Header("x-llmcache-key"), first.Header("x-llmcache-key")) << body;
    EXPECT_EQ(ContentOf(r), content);
  }
  EXPECT_EQ(upstream().Calls(), 1);

  struct Different {
    std::string body;
    Headers headers;
  };
  const Different different[] = {
      {R"({"model":"llama3","messages":[{"role":"user","content":)" + Quoted(p) +
           R"(}],"temperature":0.8})",
       {}},
      {R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":)" + Quoted(p) +
           R"(}],"temperature":0.7})",
       {}},
      {R"({"model":"llama3","messages":[{"role":"user","content":)" + Quoted(p) + R"(}]})", {}},
      {R"({"model":"llama3","messages":[{"role":"user","content":)" + Quoted(p + " ") +
           R"(}],"temperature":0.7})",
       {}},
      {base, {{"x-llmcache-namespace", "canon-other"}}},
  };
  int64_t calls = 1;
  std::set<std::string> keys = {first.Header("x-llmcache-key")};
  for (const auto& d : different) {
    auto r = gw->Chat(d.body, d.headers);
    ASSERT_EQ(r.status, 200) << d.body << "\n" << r.Describe();
    EXPECT_EQ(r.Cache(), "miss") << d.body;
    EXPECT_TRUE(keys.insert(r.Header("x-llmcache-key")).second) << "key reused: " << d.body;
    EXPECT_EQ(upstream().Calls(), ++calls);
    // ... and each of them is then a hit on its own.
    EXPECT_EQ(gw->Chat(d.body, d.headers).Cache(), "hit") << d.body;
  }
  EXPECT_EQ(upstream().Calls(), calls);
}

}  // namespace
}  // namespace llmcache::e2e
