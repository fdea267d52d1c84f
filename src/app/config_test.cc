#include "app/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace llmcache::app {
namespace {

TEST(ConfigTest, ParsesDurations) {
  EXPECT_EQ(*ParseDurationMs("30s"), 30'000);
  EXPECT_EQ(*ParseDurationMs("500ms"), 500);
  EXPECT_EQ(*ParseDurationMs("7d"), 7LL * 86'400'000);
  EXPECT_EQ(*ParseDurationMs("2h"), 7'200'000);
  EXPECT_EQ(*ParseDurationMs("90"), 90'000);
  EXPECT_FALSE(ParseDurationMs("soon").has_value());
  EXPECT_FALSE(ParseDurationMs("3 fortnights").has_value());
}

TEST(ConfigTest, ParsesSizes) {
  EXPECT_EQ(*ParseBytes("8MiB"), 8ull << 20);
  EXPECT_EQ(*ParseBytes("2GB"), 2'000'000'000ull);
  EXPECT_EQ(*ParseBytes("1.5GiB"), 3ull << 29);
  EXPECT_EQ(*ParseBytes("4096"), 4096u);
  EXPECT_FALSE(ParseBytes("lots").has_value());
}

TEST(ConfigTest, LoadsNamespacesModelsAndLimits) {
  std::string path = ::testing::TempDir() + "/llmcache_config_test.yaml";
  std::ofstream(path) << R"(
listen: 127.0.0.1:9999
upstream: https://api.example.com/v1
ttl: 12h
idle_ttl: 3d
max_body: 1MiB
memory_max: 0.5
admin_token: secret
namespaces:
  faq: {ttl: 7d, normalize_whitespace: true}
  news: {ttl: 2h, cache: false}
models:
  gpt-4o-mini: {revision: "2024-07-18", input_usd_per_mtok: 0.15, output_usd_per_mtok: 0.6}
)";
  ServeConfig c;
  ASSERT_TRUE(LoadConfigFile(path, c).ok());
  ASSERT_TRUE(FinalizeConfig(c).ok());
  EXPECT_EQ(c.gateway.server.port, 9999);
  EXPECT_EQ(c.gateway.upstream_url, "https://api.example.com/v1");
  EXPECT_EQ(c.gateway.default_ttl_ms, 12 * 3'600'000);
  EXPECT_EQ(c.expiry.idle_ttl_ms, 3 * 86'400'000);
  EXPECT_EQ(c.gateway.server.max_body_bytes, 1u << 20);
  EXPECT_DOUBLE_EQ(c.memory_bound, 0.5);
  EXPECT_EQ(c.gateway.admin_token, "secret");
  EXPECT_EQ(*c.gateway.namespaces["faq"].ttl_ms, 7 * 86'400'000);
  EXPECT_TRUE(c.gateway.namespaces["faq"].normalize_whitespace);
  EXPECT_FALSE(c.gateway.namespaces["news"].cache);
  EXPECT_EQ(c.gateway.models["gpt-4o-mini"].revision, "2024-07-18");
  EXPECT_DOUBLE_EQ(c.gateway.models["gpt-4o-mini"].output_usd_per_mtok, 0.6);
  std::remove(path.c_str());
}

TEST(ConfigTest, ExampleConfigInDocsLoads) {
  ServeConfig c;
  Status s = LoadConfigFile(std::string(LLMCACHE_SOURCE_DIR) + "/docs/llmcache.example.yaml", c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*c.gateway.namespaces["news"].ttl_ms, 2 * 3'600'000);
  EXPECT_FALSE(c.gateway.namespaces["private"].cache);
  EXPECT_FALSE(c.gateway.namespaces["legal"].semantic);
  EXPECT_DOUBLE_EQ(*c.gateway.namespaces["support"].semantic_threshold, 0.7);
}

TEST(ConfigTest, SemanticSettingsAndTheirBounds) {
  std::string path = ::testing::TempDir() + "/llmcache_config_semantic.yaml";
  std::ofstream(path) << "semantic: on\nsemantic_threshold: 0.8\n"
                         "namespaces:\n  faq: {semantic_threshold: 0.9}\n  legal: {semantic: off}\n";
  ServeConfig c;
  ASSERT_TRUE(LoadConfigFile(path, c).ok());
  EXPECT_TRUE(c.semantic);
  EXPECT_DOUBLE_EQ(*c.semantic_threshold, 0.8);
  EXPECT_DOUBLE_EQ(*c.gateway.namespaces["faq"].semantic_threshold, 0.9);
  EXPECT_FALSE(c.gateway.namespaces["legal"].semantic);
  EXPECT_TRUE(FinalizeConfig(c).ok());

  c.semantic_threshold = 1.5;
  EXPECT_FALSE(FinalizeConfig(c).ok()) << "a cosine threshold above 1 can never hit";
  c.semantic_threshold = 0.8;
  c.gateway.namespaces["faq"].semantic_threshold = 0;
  EXPECT_FALSE(FinalizeConfig(c).ok()) << "a threshold of 0 would answer anything";
  std::remove(path.c_str());
}

TEST(ConfigTest, RejectsUnknownSettingsAndBadValues) {
  std::string path = ::testing::TempDir() + "/llmcache_config_bad.yaml";
  std::ofstream(path) << "ttl_typo: 3\n";
  ServeConfig c;
  EXPECT_FALSE(LoadConfigFile(path, c).ok());
  std::ofstream(path) << "ttl: forever\n";
  EXPECT_FALSE(LoadConfigFile(path, c).ok());
  std::remove(path.c_str());
  ServeConfig d;
  d.listen = "nope";
  EXPECT_FALSE(FinalizeConfig(d).ok());
  d.listen = "127.0.0.1:8080";
  d.upstream_api_key_env = "LLMCACHE_TEST_SURELY_UNSET_VAR";
  EXPECT_FALSE(FinalizeConfig(d).ok());
}

TEST(ConfigTest, StoreIsEmbeddedOrARedisUrl) {
  std::string path = ::testing::TempDir() + "/llmcache_config_store.yaml";
  std::ofstream(path) << "store: redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/cache\n"
                         "store_password_env: REDIS_PASSWORD\n"
                         "store_key_prefix: \"gw:\"\n";
  ServeConfig c;
  ASSERT_TRUE(LoadConfigFile(path, c).ok());
  std::remove(path.c_str());
  EXPECT_EQ(c.store, "redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/cache");
  EXPECT_EQ(c.store_password_env, "REDIS_PASSWORD");
  EXPECT_EQ(c.store_key_prefix, "gw:");
  EXPECT_TRUE(FinalizeConfig(c).ok());

  ServeConfig d;
  EXPECT_EQ(d.store, "embedded");
  EXPECT_TRUE(FinalizeConfig(d).ok());
  d.store = "redis://127.0.0.1:6379/1";
  EXPECT_TRUE(FinalizeConfig(d).ok());
  d.store = "redis://127.0.0.1:notaport";
  EXPECT_FALSE(FinalizeConfig(d).ok());
  d.store = "memcached://127.0.0.1";
  EXPECT_FALSE(FinalizeConfig(d).ok());
}

TEST(ConfigTest, SemanticVerifyGlobalAndPerNamespace) {
  std::string path = ::testing::TempDir() + "/llmcache_config_verify.yaml";
  std::ofstream(path) << "upstream: http://127.0.0.1:9/v1\n"
                         "semantic: on\n"
                         "semantic_verify: {model: judge, grey_band: 0.2, timeout: 500ms,"
                         " overrule_content_words: true}\n"
                         "namespaces:\n"
                         "  legal: {semantic_verify: false}\n"
                         "  faq:\n"
                         "    ttl: 7d\n"
                         "    semantic_verify: {model: big-judge, url: http://127.0.0.1:7/v1,"
                         " api_key_env: LLMCACHE_TEST_VERIFY_KEY}\n";
  ServeConfig c;
  Status s = LoadConfigFile(path, c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.semantic_verify.model, "judge");
  EXPECT_DOUBLE_EQ(*c.semantic_verify_grey_band, 0.2);
  EXPECT_EQ(c.semantic_verify_timeout_ms, 500);
  EXPECT_TRUE(c.semantic_verify_overrule_content_words);
  EXPECT_FALSE(c.semantic_verify_namespaces["legal"].enabled);
  EXPECT_EQ(*c.gateway.namespaces["faq"].ttl_ms, 7 * 86'400'000) << "other settings still apply";

  // The namespace's key must be in the environment.
  ::unsetenv("LLMCACHE_TEST_VERIFY_KEY");
  EXPECT_FALSE(FinalizeConfig(c).ok());
  ::setenv("LLMCACHE_TEST_VERIFY_KEY", "sk-faq", 1);
  c.upstream_api_key_env = "LLMCACHE_TEST_UPSTREAM_KEY";
  ::setenv("LLMCACHE_TEST_UPSTREAM_KEY", "sk-upstream", 1);
  s = FinalizeConfig(c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  // The global check goes to the upstream with the upstream's key.
  EXPECT_EQ(c.semantic_verify.url, "http://127.0.0.1:9/v1");
  EXPECT_EQ(c.semantic_verify.api_key, "sk-upstream");
  const SemanticVerifyEndpoint& faq = c.semantic_verify_namespaces["faq"];
  EXPECT_EQ(faq.model, "big-judge");
  EXPECT_EQ(faq.url, "http://127.0.0.1:7/v1");
  EXPECT_EQ(faq.api_key, "sk-faq");
  ::unsetenv("LLMCACHE_TEST_VERIFY_KEY");
  ::unsetenv("LLMCACHE_TEST_UPSTREAM_KEY");

  // A namespace that turns the check on needs a model from somewhere.
  ServeConfig d;
  d.semantic_verify_namespaces["faq"] = SemanticVerifyEndpoint{};
  EXPECT_FALSE(FinalizeConfig(d).ok());
  d.semantic_verify_namespaces.clear();
  d.semantic_verify_grey_band = 1.0;
  EXPECT_FALSE(FinalizeConfig(d).ok()) << "the band must leave a threshold";
  d.semantic_verify_grey_band.reset();
  d.semantic_threads = 0;
  EXPECT_FALSE(FinalizeConfig(d).ok());
  d.semantic_threads = 4;
  EXPECT_TRUE(FinalizeConfig(d).ok());
  EXPECT_FALSE(SemanticVerifyConfigured(d));
  EXPECT_TRUE(SemanticVerifyConfigured(c));

  std::ofstream(path) << "namespaces:\n  faq: {semantic_verify: {model: m, grey_band: 0.3}}\n";
  EXPECT_FALSE(LoadConfigFile(path, d).ok()) << "the band is global";
  std::remove(path.c_str());
}

}  // namespace
}  // namespace llmcache::app
