// Sentinel discovery and failover against real processes: a primary, a
// replica and one sentinel (quorum 1) on free loopback ports.
#include "store/redis_sentinel.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "llmcache/store.h"
#include "store/redis_test_util.h"
#include "store/store_conformance_test.h"

namespace llmcache::store_test {
namespace {

constexpr char kMaster[] = "llmcache-test";

std::unique_ptr<RedisProcess> Sentinel(int primary_port) {
  return std::make_unique<RedisProcess>("redis-server",
                                        [primary_port](int port, const std::string& dir) {
                                          return SentinelArgs(port, dir, kMaster, primary_port);
                                        });
}

TEST(RedisSentinelTest, DiscoverPrimaryAsksTheSentinelsInOrder) {
  auto primary = RedisProcess::Server();
  ASSERT_TRUE(primary->Start());
  auto sentinel = Sentinel(primary->port());
  ASSERT_TRUE(sentinel->Start());
  const RedisHostPort dead{"127.0.0.1", FreeLoopbackPort()};
  const RedisHostPort live{"127.0.0.1", sentinel->port()};
  auto found = DiscoverPrimary({dead, live}, kMaster, 500);
  ASSERT_TRUE(found) << found.error().ToString();
  EXPECT_EQ(*found, (RedisHostPort{"127.0.0.1", primary->port()}));
  auto unknown = DiscoverPrimary({live}, "no-such-master", 500);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(DiscoverPrimary({dead}, kMaster, 500));
}

TEST(RedisSentinelTest, StoreFollowsTheNewPrimaryAfterFailover) {
  // Without the delay the replica's first sync waits 5 s for more replicas.
  auto primary = RedisProcess::Server({"--repl-diskless-sync-delay", "0"});
  ASSERT_TRUE(primary->Start());
  auto replica =
      RedisProcess::Server({"--replicaof", "127.0.0.1", std::to_string(primary->port())});
  ASSERT_TRUE(replica->Start());
  // The replica must be in sync before the sentinel first asks the primary
  // about its replicas, or the sentinel would learn of it only later.
  ASSERT_TRUE(WaitFor([&] { return ReplicaLinkUp(replica->port()); }));
  auto sentinel = Sentinel(primary->port());
  ASSERT_TRUE(sentinel->Start());
  ASSERT_EQ(SpeedUpSentinel(sentinel->port()), "");
  ASSERT_TRUE(WaitFor([&] { return SentinelSeesAHealthyReplica(sentinel->port(), kMaster); }));

  RedisStoreOptions o;
  o.url = "redis-sentinel://127.0.0.1:" + std::to_string(FreeLoopbackPort()) +
          ",127.0.0.1:" + std::to_string(sentinel->port()) + "/" + kMaster;
  o.key_prefix = "failover:";
  o.backoff_initial_ms = 20;
  o.backoff_max_ms = 200;
  auto clock = std::make_shared<ManualClock>();
  o.clock = clock;
  std::shared_ptr<const StoreHealth> health;
  auto opened = OpenRedisStore(o, &health);
  ASSERT_TRUE(opened) << opened.error().ToString();
  Store& store = **opened;
  ASSERT_TRUE(store.Insert(MakeEntry("before", clock->NowMillis())).ok());
  ASSERT_TRUE(store.Lookup(KeyFor("before")));
  // A write the replica has not yet received would be lost in the failover.
  ASSERT_TRUE(ReplicaCaughtUp(primary->port(), replica->port()));

  primary->Kill();
  EXPECT_FALSE(store.Lookup(KeyFor("before")));
  ASSERT_TRUE(WaitFor(
      [&] {
        return store.Insert(MakeEntry("after", clock->NowMillis())).ok() &&
               store.Lookup(KeyFor("before")).has_value();
      },
      60000))
      << health->detail() << "\nsentinel log:\n"
      << ReadWholeFile(sentinel->dir() + "/sentinel.log") << "\nreplica log:\n"
      << ReadWholeFile(replica->dir() + "/redis.log");
  EXPECT_TRUE(IsPrimary(replica->port()));
  EXPECT_TRUE(store.Lookup(KeyFor("after")));
  EXPECT_FALSE(health->degraded());
}

}  // namespace
}  // namespace llmcache::store_test
