// Sentinel discovery and failover against real processes: a primary, a
// replica and one sentinel (quorum 1) on free loopback ports.
#include "store/redis_sentinel.h"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>

#include "llmcache/store.h"
#include "store/redis_test_util.h"
#include "store/store_conformance_test.h"

namespace llmcache::store_test {
namespace {

constexpr char kMaster[] = "llmcache-test";

std::unique_ptr<RedisProcess> Sentinel(int primary_port) {
  return std::make_unique<RedisProcess>(
      "redis-server", [primary_port](int port, const std::string& dir) {
        const std::string conf = dir + "/sentinel.conf";
        std::ofstream out(conf);
        out << "port " << port << "\n"
            << "bind 127.0.0.1\n"
            << "daemonize no\n"
            << "logfile \"" << dir << "/sentinel.log\"\n"
            << "dir \"" << dir << "\"\n"
            << "sentinel monitor " << kMaster << " 127.0.0.1 " << primary_port << " 1\n"
            << "sentinel down-after-milliseconds " << kMaster << " 400\n"
            << "sentinel failover-timeout " << kMaster << " 2000\n";
        return std::vector<std::string>{conf, "--sentinel"};
      });
}

bool IsPrimary(const RedisProcess& p) {
  auto r = p.Call({"ROLE"});
  return r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
         std::string_view(r->element[0]->str, r->element[0]->len) == "master";
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
  auto primary = RedisProcess::Server();
  ASSERT_TRUE(primary->Start());
  auto replica =
      RedisProcess::Server({"--replicaof", "127.0.0.1", std::to_string(primary->port())});
  ASSERT_TRUE(replica->Start());
  // The replica must be in sync before the sentinel first asks the primary
  // about its replicas, or the sentinel would learn of it only later.
  ASSERT_TRUE(WaitFor([&] {
    auto info = replica->Call({"INFO", "replication"});
    return info && ReplyText(info).find("master_link_status:up") != std::string::npos;
  }));
  auto sentinel = Sentinel(primary->port());
  ASSERT_TRUE(sentinel->Start());
  ASSERT_TRUE(WaitFor([&] {
    auto r = sentinel->Call({"SENTINEL", "replicas", kMaster});
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
  }));

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
  auto acked = primary->Call({"WAIT", "1", "5000"});
  ASSERT_EQ(ReplyText(acked), "1");

  primary->Kill();
  EXPECT_FALSE(store.Lookup(KeyFor("before")));
  ASSERT_TRUE(WaitFor(
      [&] {
        return store.Insert(MakeEntry("after", clock->NowMillis())).ok() &&
               store.Lookup(KeyFor("before")).has_value();
      },
      30000))
      << health->detail();
  EXPECT_TRUE(IsPrimary(*replica));
  EXPECT_TRUE(store.Lookup(KeyFor("after")));
  EXPECT_FALSE(health->degraded());
}

}  // namespace
}  // namespace llmcache::store_test
