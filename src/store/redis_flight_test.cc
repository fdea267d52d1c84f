#include "store/redis_flight.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_test_util.h"

namespace llmcache::store_test {
namespace {

// The async calls, waited for (the test's thread is no event loop).
Result<SharedFlight::Claim> ClaimNow(SharedFlight& f, std::string_view key) {
  std::promise<Result<SharedFlight::Claim>> p;
  f.TryLeadAsync(key, [&p](Result<SharedFlight::Claim> c) { p.set_value(std::move(c)); });
  return p.get_future().get();
}
Result<bool> HeldNow(SharedFlight& f, std::string_view key) {
  std::promise<Result<bool>> p;
  f.HeldAsync(key, [&p](Result<bool> h) { p.set_value(std::move(h)); });
  return p.get_future().get();
}
Status ReleaseNow(SharedFlight& f, std::string_view key, std::string_view token) {
  std::promise<Status> p;
  f.ReleaseAsync(key, token, [&p](Status s) { p.set_value(std::move(s)); });
  return p.get_future().get();
}

class RedisFlightTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = RedisProcess::Server();
    ASSERT_TRUE(server_->Start());
  }
  std::unique_ptr<RedisFlight> Open(int64_t lock_ttl_ms = 30000) {
    RedisFlightOptions o;
    o.url = server_->url();
    o.key_prefix = "flight:";
    o.lock_ttl_ms = lock_ttl_ms;
    auto f = RedisFlight::Open(o);
    if (!f) {
      ADD_FAILURE() << f.error().ToString();
      return nullptr;
    }
    return std::move(*f);
  }
  std::unique_ptr<RedisProcess> server_;
};

TEST_F(RedisFlightTest, FirstClaimLeadsOthersFollowUntilReleased) {
  auto a = Open();
  auto b = Open();  // another replica
  ASSERT_TRUE(a && b);
  auto lead = a->TryLead("k");
  ASSERT_TRUE(lead) << lead.error().ToString();
  EXPECT_TRUE(lead->leader);
  EXPECT_FALSE(lead->token.empty());
  auto follow = b->TryLead("k");
  ASSERT_TRUE(follow);
  EXPECT_FALSE(follow->leader);
  auto other_key = b->TryLead("other");
  ASSERT_TRUE(other_key);
  EXPECT_TRUE(other_key->leader);

  EXPECT_EQ(b->Wait("k", 20).code(), StatusCode::kTimeout);
  std::thread leader([&] { EXPECT_TRUE(a->Release("k", lead->token).ok()); });
  EXPECT_TRUE(b->Wait("k", 10000).ok());
  leader.join();
  auto next = b->TryLead("k");
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->leader);
}

TEST_F(RedisFlightTest, ReleaseWithAnotherTokenLeavesTheLock) {
  auto a = Open();
  ASSERT_TRUE(a);
  auto lead = a->TryLead("k");
  ASSERT_TRUE(lead && lead->leader);
  ASSERT_TRUE(a->Release("k", "not-the-token").ok());
  auto again = a->TryLead("k");
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->leader);
  ASSERT_TRUE(a->Release("k", lead->token).ok());
  EXPECT_TRUE(a->Wait("k", 0).ok());
}

TEST_F(RedisFlightTest, ExpiredLockOfAVanishedLeaderFreesTheKey) {
  auto a = Open(/*lock_ttl_ms=*/100);
  ASSERT_TRUE(a);
  auto lead = a->TryLead("k");
  ASSERT_TRUE(lead && lead->leader);
  // The leader never releases; waiters are freed by the lock's TTL.
  EXPECT_TRUE(a->Wait("k", 10000).ok());
  auto next = a->TryLead("k");
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->leader);
  // The first leader's late release must not drop the new leader's lock.
  ASSERT_TRUE(a->Release("k", lead->token).ok());
  auto third = a->TryLead("k");
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->leader);
}

TEST_F(RedisFlightTest, ConcurrentClaimsOnTwoReplicasElectOneLeader) {
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a && b);
  std::atomic<int> leaders{0}, followers{0}, errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 40; ++i) {
    threads.emplace_back([&, i] {
      auto claim = (i % 2 ? a : b)->TryLead("hot");
      if (!claim)
        ++errors;
      else if (claim->leader)
        ++leaders;
      else
        ++followers;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(leaders.load(), 1);
  EXPECT_EQ(followers.load(), 39);
}

TEST_F(RedisFlightTest, RedisDownIsUnavailableNotAHang) {
  auto a = Open();
  ASSERT_TRUE(a);
  server_->Kill();
  auto claim = a->TryLead("k");
  ASSERT_FALSE(claim);
  EXPECT_EQ(claim.error().code(), StatusCode::kUnavailable);
  EXPECT_EQ(a->Wait("k", 10000).code(), StatusCode::kUnavailable);
}

TEST_F(RedisFlightTest, AsyncCallsShareTheLocksOfTheBlockingOnes) {
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a && b);
  auto lead = ClaimNow(*a, "k");
  ASSERT_TRUE(lead) << lead.error().ToString();
  EXPECT_TRUE(lead->leader);
  EXPECT_FALSE(lead->token.empty());
  auto blocking = b->TryLead("k");
  ASSERT_TRUE(blocking);
  EXPECT_FALSE(blocking->leader);
  auto follow = ClaimNow(*b, "k");
  ASSERT_TRUE(follow);
  EXPECT_FALSE(follow->leader);
  EXPECT_TRUE(follow->token.empty());

  auto held = HeldNow(*b, "k");
  ASSERT_TRUE(held);
  EXPECT_TRUE(*held);
  ASSERT_TRUE(ReleaseNow(*b, "k", "not-the-token").ok());
  EXPECT_TRUE(*HeldNow(*b, "k")) << "a foreign token released the lock";
  ASSERT_TRUE(ReleaseNow(*a, "k", lead->token).ok());
  held = HeldNow(*b, "k");
  ASSERT_TRUE(held);
  EXPECT_FALSE(*held);
  EXPECT_TRUE(b->Wait("k", 0).ok());
}

TEST_F(RedisFlightTest, ConcurrentAsyncClaimsOnTwoReplicasElectOneLeader) {
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a && b);
  std::atomic<int> leaders{0}, followers{0}, errors{0}, answered{0};
  std::promise<void> all;
  constexpr int kClaims = 40;
  for (int i = 0; i < kClaims; ++i) {
    (i % 2 ? *a : *b).TryLeadAsync("hot", [&](Result<SharedFlight::Claim> c) {
      if (!c)
        ++errors;
      else if (c->leader)
        ++leaders;
      else
        ++followers;
      if (++answered == kClaims) all.set_value();
    });
  }
  all.get_future().get();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(leaders.load(), 1);
  EXPECT_EQ(followers.load(), kClaims - 1);
}

TEST_F(RedisFlightTest, AsyncCallsFailFastWithUnavailableWhenRedisIsDown) {
  auto a = Open();
  ASSERT_TRUE(a);
  ASSERT_TRUE(ClaimNow(*a, "warm-up"));  // the async link is up
  server_->Kill();
  auto claim = ClaimNow(*a, "k");
  ASSERT_FALSE(claim);
  EXPECT_EQ(claim.error().code(), StatusCode::kUnavailable);
  auto held = HeldNow(*a, "k");
  ASSERT_FALSE(held);
  EXPECT_EQ(held.error().code(), StatusCode::kUnavailable);
  EXPECT_EQ(ReleaseNow(*a, "k", "t").code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace llmcache::store_test
