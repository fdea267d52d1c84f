#include "gateway/cache_control.h"

#include <gtest/gtest.h>

namespace llmcache::gateway {
namespace {

RequestCachePolicy Policy(std::string_view cc, std::string_view ttl = "") {
  auto r = ParseRequestCachePolicy(cc, ttl);
  EXPECT_TRUE(r.has_value()) << cc << " / " << ttl;
  return r.value_or(RequestCachePolicy{});
}

TEST(CacheControlTest, EmptyHeadersGiveDefaults) {
  RequestCachePolicy p = Policy("");
  EXPECT_TRUE(p.lookup);
  EXPECT_TRUE(p.store);
  EXPECT_FALSE(p.ttl_ms.has_value());
  p = Policy("  ", " ");
  EXPECT_TRUE(p.lookup);
  EXPECT_TRUE(p.store);
  EXPECT_FALSE(p.ttl_ms.has_value());
}

TEST(CacheControlTest, Directives) {
  RequestCachePolicy p = Policy("no-cache");
  EXPECT_FALSE(p.lookup);
  EXPECT_TRUE(p.store);
  p = Policy("no-store");
  EXPECT_TRUE(p.lookup);
  EXPECT_FALSE(p.store);
  p = Policy("No-Cache, NO-STORE");
  EXPECT_FALSE(p.lookup);
  EXPECT_FALSE(p.store);
  p = Policy("max-age=60");
  EXPECT_TRUE(p.lookup);
  EXPECT_TRUE(p.store);
  EXPECT_EQ(p.ttl_ms, 60000);
  p = Policy(" \tMAX-AGE = 60 ,no-store");
  EXPECT_EQ(p.ttl_ms, 60000);
  EXPECT_FALSE(p.store);
  EXPECT_EQ(Policy("max-age=\"120\"").ttl_ms, 120000);
  EXPECT_EQ(Policy("private, max-age=5, must-revalidate").ttl_ms, 5000);
  EXPECT_EQ(Policy(",,max-age=5,,").ttl_ms, 5000);
}

TEST(CacheControlTest, UnknownDirectivesAreIgnored) {
  RequestCachePolicy p = Policy("foo, bar=\"a, no-cache\", baz=1");
  EXPECT_TRUE(p.lookup);  // no-cache inside a quoted value is not a directive
  EXPECT_TRUE(p.store);
  EXPECT_FALSE(p.ttl_ms.has_value());
  EXPECT_FALSE(Policy("no-cachex").lookup == false);
  EXPECT_FALSE(Policy("x-no-store").store == false);
}

TEST(CacheControlTest, MalformedMaxAgeIsIgnored) {
  for (const char* cc : {"max-age", "max-age=", "max-age=abc", "max-age=-1", "max-age=1.5",
                         "max-age=\"12", "max-age=1 2", "max-age=0x10", "max-age=+5"}) {
    RequestCachePolicy p = Policy(cc);
    EXPECT_FALSE(p.ttl_ms.has_value()) << cc;
    EXPECT_TRUE(p.lookup) << cc;
    EXPECT_TRUE(p.store) << cc;
  }
  // A malformed directive does not hide the following ones.
  EXPECT_FALSE(Policy("max-age=1 2, no-store").store);
}

TEST(CacheControlTest, SmallestMaxAgeWins) {
  EXPECT_EQ(Policy("max-age=60, max-age=30").ttl_ms, 30000);
  EXPECT_EQ(Policy("max-age=30, max-age=bad").ttl_ms, 30000);
}

TEST(CacheControlTest, MaxAgeZeroMeansNeitherLookupNorStore) {
  RequestCachePolicy p = Policy("max-age=0");
  EXPECT_FALSE(p.lookup);
  EXPECT_FALSE(p.store);
  EXPECT_FALSE(p.ttl_ms.has_value());
}

TEST(CacheControlTest, TtlHeader) {
  EXPECT_EQ(Policy("", "90").ttl_ms, 90000);
  EXPECT_EQ(Policy("", " 90\t").ttl_ms, 90000);
  // Wins over max-age, both ways.
  EXPECT_EQ(Policy("max-age=10", "90").ttl_ms, 90000);
  RequestCachePolicy p = Policy("max-age=0", "90");
  EXPECT_EQ(p.ttl_ms, 90000);
  EXPECT_TRUE(p.lookup);
  EXPECT_TRUE(p.store);
  p = Policy("max-age=60", "0");
  EXPECT_FALSE(p.ttl_ms.has_value());
  EXPECT_FALSE(p.lookup);
  EXPECT_FALSE(p.store);
  // Independent of no-cache / no-store.
  p = Policy("no-cache", "5");
  EXPECT_FALSE(p.lookup);
  EXPECT_EQ(p.ttl_ms, 5000);
}

TEST(CacheControlTest, MalformedTtlHeaderIsAnError) {
  for (const char* ttl : {"abc", "-1", "1.5", "1s", "1 2", "+3", "0x1", "\xff"}) {
    auto r = ParseRequestCachePolicy("", ttl);
    ASSERT_FALSE(r.has_value()) << ttl;
    EXPECT_EQ(r.error().http_status, 400);
    EXPECT_EQ(r.error().type, "invalid_request_error");
    EXPECT_EQ(r.error().param, "x-llmcache-ttl");
    EXPECT_NE(r.error().message.find("x-llmcache-ttl"), std::string::npos);
    // The message stays printable ASCII whatever the header held.
    for (char c : r.error().message) EXPECT_TRUE(c >= 0x20 && c < 0x7f);
  }
}

TEST(CacheControlTest, AbsurdValuesAreCapped) {
  const int64_t cap_ms = kMaxRequestTtlSeconds * 1000;
  EXPECT_EQ(Policy("max-age=999999999999999999999999999").ttl_ms, cap_ms);
  EXPECT_EQ(Policy("", "999999999999999999999999999999").ttl_ms, cap_ms);
  EXPECT_EQ(Policy("", "315360000").ttl_ms, cap_ms);
  EXPECT_EQ(Policy("", "315359999").ttl_ms, cap_ms - 1000);
  EXPECT_EQ(Policy("max-age=00000000000000000000000000007").ttl_ms, 7000);
}

}  // namespace
}  // namespace llmcache::gateway
