#include "store/redis_url.h"

#include <gtest/gtest.h>

namespace llmcache {
namespace {

TEST(RedisUrlTest, PlainHostPortAndDb) {
  auto u = ParseRedisUrl("redis://cache.internal:6380/2");
  ASSERT_TRUE(u) << u.error().ToString();
  EXPECT_FALSE(u->sentinel);
  ASSERT_EQ(u->hosts.size(), 1u);
  EXPECT_EQ(u->hosts[0], (RedisHostPort{"cache.internal", 6380}));
  EXPECT_EQ(u->db, 2);
  EXPECT_TRUE(u->password.empty());
  EXPECT_TRUE(u->username.empty());
}

TEST(RedisUrlTest, DefaultsPortAndDb) {
  auto u = ParseRedisUrl("redis://127.0.0.1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->hosts[0].port, 6379);
  EXPECT_EQ(u->db, 0);
  auto s = ParseRedisUrl("redis-sentinel://10.0.0.1/main");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->hosts[0].port, 26379);
}

TEST(RedisUrlTest, PasswordForms) {
  auto u = ParseRedisUrl("redis://:s3cr%40t@h:1/0");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->password, "s3cr@t");
  EXPECT_TRUE(u->username.empty());
  auto acl = ParseRedisUrl("redis://gw:pw@h:1");
  ASSERT_TRUE(acl);
  EXPECT_EQ(acl->username, "gw");
  EXPECT_EQ(acl->password, "pw");
  auto bare = ParseRedisUrl("redis://pw@h:1");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->password, "pw");
  EXPECT_TRUE(bare->username.empty());
  EXPECT_FALSE(ParseRedisUrl("redis://:bad%zz@h:1"));
}

TEST(RedisUrlTest, Ipv6NeedsBrackets) {
  auto u = ParseRedisUrl("redis://[::1]:7000");
  ASSERT_TRUE(u) << u.error().ToString();
  EXPECT_EQ(u->hosts[0], (RedisHostPort{"::1", 7000}));
  EXPECT_FALSE(ParseRedisUrl("redis://::1:7000"));
  EXPECT_FALSE(ParseRedisUrl("redis://[::1:7000"));
}

TEST(RedisUrlTest, SentinelHostsAndMaster) {
  auto u = ParseRedisUrl("redis-sentinel://:pw@s1:26379,s2:26380,[::1]:5/mymaster/3");
  ASSERT_TRUE(u) << u.error().ToString();
  EXPECT_TRUE(u->sentinel);
  ASSERT_EQ(u->hosts.size(), 3u);
  EXPECT_EQ(u->hosts[0], (RedisHostPort{"s1", 26379}));
  EXPECT_EQ(u->hosts[1], (RedisHostPort{"s2", 26380}));
  EXPECT_EQ(u->hosts[2], (RedisHostPort{"::1", 5}));
  EXPECT_EQ(u->master_name, "mymaster");
  EXPECT_EQ(u->db, 3);
  EXPECT_EQ(u->password, "pw");
}

TEST(RedisUrlTest, RejectsMalformed) {
  for (const char* bad : {"", "http://h:1", "redis://", "redis://h:", "redis://h:0",
                          "redis://h:65536", "redis://h:12x", "redis://h:1/x", "redis://h:1/-1",
                          "redis://a:1,b:2", "redis-sentinel://h:1", "redis-sentinel://h:1/",
                          "redis-sentinel://h:1/m/", "redis-sentinel://h:1,/m", "redis://@"}) {
    EXPECT_FALSE(ParseRedisUrl(bad)) << bad;
  }
}

TEST(RedisUrlTest, ErrorsAndRedactionNeverShowThePassword) {
  auto bad = ParseRedisUrl("redis://:topsecret@h:99999");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message().find("topsecret"), std::string::npos);
  auto u = ParseRedisUrl("redis-sentinel://:topsecret@a:1,b:2/m/4");
  ASSERT_TRUE(u);
  const std::string shown = RedactedRedisUrl(*u);
  EXPECT_EQ(shown.find("topsecret"), std::string::npos);
  EXPECT_EQ(shown, "redis-sentinel://:***@a:1,b:2/m/4");
}

}  // namespace
}  // namespace llmcache
