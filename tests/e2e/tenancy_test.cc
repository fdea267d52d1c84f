// Tenant isolation: client credentials, the gateway's own upstream key,
// namespaces.
#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2eTenancy : public E2eTest {};

std::string LastAuthorization() {
  auto s = E2eTest::upstream().Stats();
  const auto& a = s.at("last_authorization");
  return a.is_string() ? std::string(a.as_string()) : std::string("<null>");
}

TEST_F(E2eTenancy, ClientCredentialsDoNotShareEntries) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("tenant"));
  Headers alice = {{"Authorization", "Bearer sk-alice"}};
  Headers bob = {{"Authorization", "Bearer sk-bob"}};

  auto a1 = gw->Chat(body, alice);
  ASSERT_EQ(a1.status, 200) << a1.Describe();
  EXPECT_EQ(a1.Cache(), "miss");
  EXPECT_EQ(LastAuthorization(), "Bearer sk-alice") << "the client's credential goes upstream";
  auto b1 = gw->Chat(body, bob);
  ASSERT_EQ(b1.status, 200) << b1.Describe();
  EXPECT_EQ(b1.Cache(), "miss") << "bob was served alice's answer";
  EXPECT_EQ(LastAuthorization(), "Bearer sk-bob");
  EXPECT_NE(ParseAnswer(b1).id, ParseAnswer(a1).id);
  EXPECT_NE(b1.Header("x-llmcache-key"), a1.Header("x-llmcache-key"));
  EXPECT_EQ(upstream().Calls(), 2);

  auto a2 = gw->Chat(body, alice);
  EXPECT_EQ(a2.Cache(), "hit");
  EXPECT_EQ(a2.body, a1.body);
  auto b2 = gw->Chat(body, bob);
  EXPECT_EQ(b2.Cache(), "hit");
  EXPECT_EQ(b2.body, b1.body);
  // No credential at all is a tenant of its own too.
  auto anon = gw->Chat(body);
  EXPECT_EQ(anon.Cache(), "miss");
  // The scheme and case of the credential are part of it.
  auto alice_lower = gw->Chat(body, {{"Authorization", "bearer sk-alice"}});
  EXPECT_EQ(alice_lower.Cache(), "miss");
  EXPECT_EQ(upstream().Calls(), 4);
}

TEST_F(E2eTenancy, GatewayKeyReplacesClientKeysWhichThenShare) {
  auto o = Options();
  o.upstream_api_key = "sk-gateway-secret";
  auto gw = StartGateway(o);
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("gateway key"));
  auto a = gw->Chat(body, {{"Authorization", "Bearer sk-alice"}});
  ASSERT_EQ(a.status, 200) << a.Describe();
  EXPECT_EQ(a.Cache(), "miss");
  auto stats = upstream().Stats();
  EXPECT_EQ(stats.at("last_authorization"), "Bearer sk-gateway-secret");
  EXPECT_EQ(boost::json::serialize(stats.at("last_headers")).find("sk-alice"), std::string::npos)
      << "the client's key reached the upstream";
  auto b = gw->Chat(body, {{"Authorization", "Bearer sk-bob"}});
  EXPECT_EQ(b.Cache(), "hit") << "with a gateway key, clients share entries";
  EXPECT_EQ(b.body, a.body);
  // Uncached routes are proxied with the gateway key too.
  auto models = gw->Get("/v1/models", {{"Authorization", "Bearer sk-alice"}});
  EXPECT_EQ(models.status, 200) << models.Describe();
  EXPECT_EQ(LastAuthorization(), "Bearer sk-gateway-secret");
  EXPECT_EQ(upstream().Calls(), 1);
}

TEST_F(E2eTenancy, NamespacesIsolateAndInvalidOnesAreRefused) {
  auto o = Options();
  o.namespaces["shared"].share_across_credentials = true;
  auto gw = StartGateway(o);
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("namespaces"));
  Headers team_a = {{"x-llmcache-namespace", "team-a"}};
  Headers team_b = {{"x-llmcache-namespace", "team-b"}};

  EXPECT_EQ(gw->Chat(body, team_a).Cache(), "miss");
  EXPECT_EQ(gw->Chat(body, team_b).Cache(), "miss");
  EXPECT_EQ(gw->Chat(body).Cache(), "miss");
  EXPECT_EQ(gw->Chat(body, team_a).Cache(), "hit");
  EXPECT_EQ(gw->Chat(body, team_b).Cache(), "hit");
  EXPECT_EQ(gw->Chat(body, {{"x-llmcache-namespace", "default"}}).Cache(), "hit")
      << "no namespace header is the namespace \"default\"";
  EXPECT_EQ(upstream().Calls(), 3);

  // A namespace that shares across credentials.
  Headers shared_alice = {{"x-llmcache-namespace", "shared"}, {"Authorization", "Bearer sk-a"}};
  Headers shared_bob = {{"x-llmcache-namespace", "shared"}, {"Authorization", "Bearer sk-b"}};
  EXPECT_EQ(gw->Chat(body, shared_alice).Cache(), "miss");
  EXPECT_EQ(gw->Chat(body, shared_bob).Cache(), "hit");
  EXPECT_EQ(upstream().Calls(), 4);

  const std::string invalid[] = {"bad namespace", "a/b", "ns\xc3\xa9", std::string(129, 'n'), "x;y"};
  for (const auto& ns : invalid) {
    auto r = gw->Chat(body, {{"x-llmcache-namespace", ns}});
    EXPECT_EQ(r.status, 400) << ns << ": " << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r)) << ns;
    EXPECT_EQ(ErrorCode(r), "invalid_namespace");
  }
  EXPECT_EQ(gw->Chat(body, {{"x-llmcache-namespace", std::string(128, 'n')}}).Cache(), "miss");
  EXPECT_EQ(upstream().Calls(), 5) << "refused requests must not reach the upstream";
}

}  // namespace
}  // namespace llmcache::e2e
