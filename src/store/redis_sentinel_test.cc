// Sentinel discovery and failover against real processes: a primary, a
// replica and one sentinel (quorum 1) on free loopback ports.
#include "store/redis_sentinel.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
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
            << "sentinel down-after-milliseconds " << kMaster << " 1000\n"
            << "sentinel failover-timeout " << kMaster << " 2000\n";
        return std::vector<std::string>{conf, "--sentinel"};
      });
}

// Sentinel's timings are for production: a scheduling stall of more than
// 2 s on a loaded CI machine puts it in TILT mode, where it does nothing
// for 30 s, and replica state is refreshed only every 10 s. Shorter
// periods keep the test's failover within its budget.
void SpeedUpSentinel(const RedisProcess& sentinel) {
  auto r = sentinel.Call({"SENTINEL", "DEBUG", "tilt-period", "1000", "info-period", "1000"});
  ASSERT_TRUE(r && r->type != REDIS_REPLY_ERROR) << ReplyText(r);
}

// The replica as the sentinel sees it: a field of SENTINEL REPLICAS.
std::string ReplicaField(const RedisProcess& sentinel, std::string_view field) {
  auto r = sentinel.Call({"SENTINEL", "replicas", kMaster});
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 1) return "";
  const redisReply* fields = r->element[0];
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    if (std::string_view(fields->element[i]->str, fields->element[i]->len) == field) {
      return std::string(fields->element[i + 1]->str, fields->element[i + 1]->len);
    }
  }
  return "";
}

// A numeric field of INFO replication, or -1.
int64_t ReplicationOffset(const RedisProcess& p, const std::string& field) {
  const std::string info = ReplyText(p.Call({"INFO", "replication"}));
  const auto at = info.find(field + ":");
  if (at == std::string::npos) return -1;
  return std::strtoll(info.c_str() + at + field.size() + 1, nullptr, 10);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
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
  // Without the delay the replica's first sync waits 5 s for more replicas.
  auto primary = RedisProcess::Server({"--repl-diskless-sync-delay", "0"});
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
  SpeedUpSentinel(*sentinel);
  // A replica the sentinel has not yet heard from itself (flags other than
  // plain "slave", or no link to the primary in its INFO) is not a failover
  // candidate: the failover would abort and retry only later.
  ASSERT_TRUE(WaitFor([&] {
    return ReplicaField(*sentinel, "flags") == "slave" &&
           ReplicaField(*sentinel, "master-link-status") == "ok";
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
  // Replication is asynchronous: a write the replica has not yet received
  // is lost in the failover. (WAIT cannot tell, as it only covers writes made
  // on its own connection.)
  const int64_t written = ReplicationOffset(*primary, "master_repl_offset");
  ASSERT_GT(written, 0);
  ASSERT_TRUE(WaitFor([&] { return ReplicationOffset(*replica, "slave_repl_offset") >= written; }));

  primary->Kill();
  EXPECT_FALSE(store.Lookup(KeyFor("before")));
  ASSERT_TRUE(WaitFor(
      [&] {
        return store.Insert(MakeEntry("after", clock->NowMillis())).ok() &&
               store.Lookup(KeyFor("before")).has_value();
      },
      60000))
      << health->detail() << "\nsentinel log:\n"
      << ReadFile(sentinel->dir() + "/sentinel.log") << "\nreplica log:\n"
      << ReadFile(replica->dir() + "/redis.log");
  EXPECT_TRUE(IsPrimary(*replica));
  EXPECT_TRUE(store.Lookup(KeyFor("after")));
  EXPECT_FALSE(health->degraded());
}

}  // namespace
}  // namespace llmcache::store_test
