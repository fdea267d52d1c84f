#include <gtest/gtest.h>

#include <limits>

#include "llmcache/store.h"
#include "store/expiry_internal.h"

namespace llmcache {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kT0 = 1'700'000'000'000;

CacheEntry Entry(int64_t ttl_ms, uint32_t hits = 0, bool fixed = false) {
  CacheEntry e;
  e.created_ms = kT0;
  e.last_access_ms = kT0;
  e.ttl_ms = ttl_ms;
  e.hit_count = hits;
  e.ttl_fixed = fixed;
  return e;
}

ExpiryOptions Options(int64_t idle_ms, int64_t max_extended_ms) {
  ExpiryOptions o;
  o.idle_ttl_ms = idle_ms;
  o.max_extended_ttl_ms = max_extended_ms;
  return o;
}

TEST(ExpiryTest, ZeroTtlHasNoAbsoluteExpiry) {
  EXPECT_EQ(AbsoluteExpiryMs(Entry(0), ExpiryOptions{}), kMax);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(0, 1000), ExpiryOptions{}), kMax);
  EXPECT_FALSE(IsExpired(Entry(0), Options(0, 0), kMax - 1));
}

TEST(ExpiryTest, TtlWithoutHitsEndsAtCreationPlusTtl) {
  const ExpiryOptions o = Options(0, 10'000);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(1000), o), kT0 + 1000);
  EXPECT_FALSE(IsExpired(Entry(1000), o, kT0 + 999));
  EXPECT_TRUE(IsExpired(Entry(1000), o, kT0 + 1000));
}

TEST(ExpiryTest, HitsExtendUpToTheCap) {
  const ExpiryOptions o = Options(0, 10'000);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(1000, 1), o), kT0 + 2000);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(1000, 9), o), kT0 + 10'000);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(1000, 10), o), kT0 + 10'000);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(1000, 4'000'000'000u), o), kT0 + 10'000);
}

TEST(ExpiryTest, FixedTtlIsNeverExtended) {
  const ExpiryOptions o = Options(0, 10'000);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(1000, 5, /*fixed=*/true), o), kT0 + 1000);
}

TEST(ExpiryTest, CapBelowBaseTtlKeepsBaseTtl) {
  // min(ttl*(1+h), max(ttl, cap)): a cap under the base TTL never shortens it.
  const ExpiryOptions o = Options(0, 500);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(1000, 0), o), kT0 + 1000);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(1000, 7), o), kT0 + 1000);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(1000, 7), Options(0, -5)), kT0 + 1000);
}

TEST(ExpiryTest, ProductAndSumSaturateInsteadOfOverflowing) {
  const ExpiryOptions o = Options(0, kMax);
  // ttl * (1 + hits) overflows int64: the cap (INT64_MAX) applies, and
  // created + that saturates.
  EXPECT_EQ(AbsoluteExpiryMs(Entry(kMax / 2, 3), o), kMax);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(kMax, std::numeric_limits<uint32_t>::max()), o), kMax);
  CacheEntry e = Entry(1000);
  e.created_ms = kMax - 10;
  EXPECT_EQ(AbsoluteExpiryMs(e, o), kMax);
  EXPECT_FALSE(IsExpired(e, o, kMax - 1));
}

TEST(ExpiryTest, NegativeTtlIsAlreadyOver) {
  const ExpiryOptions o = Options(0, 10'000);
  EXPECT_EQ(AbsoluteExpiryMs(Entry(-5, 3), o), kT0 - 5);
  EXPECT_TRUE(IsExpired(Entry(-5), o, kT0));
  CacheEntry e = Entry(-1);
  e.created_ms = kMin;
  EXPECT_EQ(AbsoluteExpiryMs(e, o), kMin);
}

TEST(ExpiryTest, IdleExpiryAfterIdleTtlWithoutReads) {
  const ExpiryOptions o = Options(1000, 0);
  CacheEntry e = Entry(0);
  e.last_access_ms = kT0 + 500;
  EXPECT_FALSE(IsExpired(e, o, kT0 + 1499));
  EXPECT_TRUE(IsExpired(e, o, kT0 + 1500));
  EXPECT_FALSE(IsExpired(e, Options(0, 0), kT0 + 1'000'000'000));  // idle expiry off
}

TEST(ExpiryTest, IdleCountsFromCreationWhenNeverRead) {
  const ExpiryOptions o = Options(1000, 0);
  CacheEntry e = Entry(0);
  e.last_access_ms = 0;  // never set by the producer
  EXPECT_FALSE(IsExpired(e, o, kT0 + 999));
  EXPECT_TRUE(IsExpired(e, o, kT0 + 1000));
  e.created_ms = kMin;
  e.last_access_ms = kMin;
  EXPECT_TRUE(IsExpired(e, o, kT0));  // no overflow in now - last_access
}

TEST(ExpiryTest, EitherRuleExpires) {
  const ExpiryOptions o = Options(1000, 0);
  CacheEntry e = Entry(5000, 0, true);
  e.last_access_ms = kT0 + 4500;
  EXPECT_FALSE(IsExpired(e, o, kT0 + 4999));
  EXPECT_TRUE(IsExpired(e, o, kT0 + 5000));  // TTL, though read 500 ms ago
  e.last_access_ms = kT0;
  EXPECT_TRUE(IsExpired(e, o, kT0 + 1000));  // idle, though TTL runs to 5000
}

TEST(ExpiryTest, DeadlineMatchesIsExpired) {
  const ExpiryOptions o = Options(700, 3000);
  for (uint32_t hits : {0u, 1u, 2u, 10u}) {
    for (int64_t last : {kT0, kT0 + 100, kT0 + 2500}) {
      ExpiryFields f{kT0, last, 1000, false, hits};
      const int64_t d = ExpiryDeadlineMs(f, o);
      EXPECT_FALSE(IsExpired(f, o, d - 1));
      EXPECT_TRUE(IsExpired(f, o, d));
    }
  }
}

}  // namespace
}  // namespace llmcache
