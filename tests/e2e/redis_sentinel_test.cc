// Two `llmcache serve` replicas on a Sentinel-managed Redis: a real
// primary, its replica and one sentinel (quorum 1), all on free loopback
// ports. The primary is killed while clients keep both gateways busy: no
// client sees an error, and after the failover both gateways write to the
// new primary, which still holds what was cached before.
//
// Sentinel runs with shortened periods (SENTINEL DEBUG, down-after 1 s) so
// that a loaded CI machine neither stalls it in TILT mode nor leaves it
// waiting 10 s for replica state; every wait has a generous budget and no
// duration is asserted.
#include <atomic>
#include <thread>

#include "e2e/fixture.h"
#include "e2e/redis_server.h"

namespace llmcache::e2e {
namespace {

constexpr const char* kMaster = "llmcache-e2e";
// As in redis_replicas_test.cc: what a replica did not cache itself can only
// come from Redis.
constexpr const char* kMemoryTierBytes = "262144";

class E2eRedisSentinel : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(primary_.Start()) << "redis-server did not start (is it on PATH?)";
    replica_ = std::make_unique<RedisServer>(
        std::vector<std::string>{"--replicaof", "127.0.0.1", std::to_string(primary_.port())});
    ASSERT_TRUE(replica_->Start());
    // In sync before the sentinel first asks the primary about its
    // replicas, or the sentinel would learn of it only later.
    ASSERT_TRUE(WaitFor([&] { return store_test::ReplicaLinkUp(replica_->port()); }, 30s));
    sentinel_ = std::make_unique<RedisServer>(
        [primary = primary_.port()](uint16_t port, const std::string& dir) {
          return store_test::SentinelArgs(port, dir, kMaster, primary);
        });
    ASSERT_TRUE(sentinel_->Start()) << "redis-server --sentinel did not start";
    ASSERT_EQ(store_test::SpeedUpSentinel(sentinel_->port()), "");
    ASSERT_TRUE(WaitFor(
        [&] { return store_test::SentinelSeesAHealthyReplica(sentinel_->port(), kMaster); }, 30s))
        << Logs();
    a_ = StartReplica();
    b_ = StartReplica();
    ASSERT_TRUE(a_ && b_);
  }

  std::unique_ptr<GatewayProcess> StartReplica() {
    GatewayProcessOptions po;
    po.upstream_url = upstream().url();
    po.data_dir = dir_.Sub("data-" + std::to_string(replicas_++));
    po.extra_args = {
        "--store",
        "redis-sentinel://127.0.0.1:" + std::to_string(sentinel_->port()) + "/" + kMaster,
        "--memory-max", kMemoryTierBytes};
    auto gw = std::make_unique<GatewayProcess>(po);
    if (!gw->Start()) {
      ADD_FAILURE() << "gateway did not start; log:\n" << gw->Log();
      return nullptr;
    }
    return gw;
  }

  void TearDown() override {
    for (auto* gw : {a_.get(), b_.get()}) {
      if (gw) {
        EXPECT_EQ(gw->Terminate(), 0) << "unclean exit; log:\n" << gw->Log();
      }
    }
  }

  // For failure messages: what Sentinel and the replica did.
  std::string Logs() const {
    std::string out;
    if (sentinel_) {
      out += "\nsentinel log:\n" + store_test::ReadWholeFile(sentinel_->dir() + "/sentinel.log");
    }
    if (replica_) {
      out += "\nreplica log:\n" + store_test::ReadWholeFile(replica_->dir() + "/redis.log");
    }
    return out;
  }

  static HttpResponse Chat(const GatewayProcess& gw, std::string_view body) {
    return Post(gw.port(), "/v1/chat/completions", body);
  }

  // A new answer cached through `writer` is then a hit on `reader`: both
  // use the same Redis primary.
  static bool SharedBetween(const GatewayProcess& writer, const GatewayProcess& reader,
                            const std::string& tag) {
    const std::string body = ChatBody(UniquePrompt(tag));
    auto first = Chat(writer, body);
    EXPECT_EQ(first.status, 200) << first.Describe();
    auto second = Chat(reader, body);
    EXPECT_EQ(second.status, 200) << second.Describe();
    return first.Cache() == "miss" && second.Cache() == "hit" && second.body == first.body;
  }

  TempDir dir_;
  RedisServer primary_{std::vector<std::string>{"--repl-diskless-sync-delay", "0"}};
  std::unique_ptr<RedisServer> replica_, sentinel_;
  int replicas_ = 0;
  std::unique_ptr<GatewayProcess> a_, b_;
};

TEST_F(E2eRedisSentinel, GatewaysFollowTheNewPrimaryAfterFailoverWithoutClientErrors) {
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":1})"));
  // Cached through A before the failover, read on B from Redis.
  const std::string before = ChatBody(UniquePrompt("before failover"));
  auto cached = Chat(*a_, before);
  ASSERT_EQ(cached.status, 200) << cached.Describe();
  ASSERT_EQ(cached.Cache(), "miss");
  auto on_b = Chat(*b_, before);
  ASSERT_EQ(on_b.Cache(), "hit") << on_b.Describe();
  // Replication is asynchronous: only what the replica has survives.
  ASSERT_TRUE(store_test::ReplicaCaughtUp(primary_.port(), replica_->port(), 30000));

  // Bounded load on both gateways (two client threads each, paced, at most
  // kMaxPerThread requests or until the failover is over): even requests
  // repeat a few shared prompts (hits), odd ones are new (misses).
  constexpr int kThreads = 4;
  constexpr int kMaxPerThread = 1500;
  constexpr int kSharedPrompts = 10;
  const std::string base = UniquePrompt("load");
  std::atomic<bool> stop{false};
  std::atomic<int> done{0}, errors{0}, while_down{0};
  std::atomic<bool> primary_down{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const GatewayProcess& gw = t % 2 ? *b_ : *a_;
      for (int k = 0; k < kMaxPerThread && !stop.load(); ++k) {
        const std::string prompt =
            base + (k % 2 ? " new t" + std::to_string(t) + " #" + std::to_string(k)
                          : " shared #" + std::to_string((k / 2 + t) % kSharedPrompts));
        const bool down = primary_down.load();
        auto r = Chat(gw, ChatBody(prompt, k % 4 == 3));
        Answer a = ParseAnswer(r);
        const bool good = r.status == 200 && a.ok && a.content.rfind("echo: " + prompt, 0) == 0;
        if (!good && errors.fetch_add(1) < 5) {
          ADD_FAILURE() << "request " << k << " on gateway " << (t % 2 ? "B" : "A")
                        << " failed: " << r.Describe() << " " << a.problem;
        }
        if (down) while_down.fetch_add(1);
        done.fetch_add(1);
        std::this_thread::sleep_for(10ms);
      }
    });
  }
  const bool loaded = WaitFor([&] { return done.load() >= 40; }, 60s, 5ms);
  primary_.Kill();
  primary_down.store(true);

  // Sentinel promotes the replica; then each gateway finds it within its
  // reconnect backoff. A new answer cached through B is a hit on A and one
  // cached through A a hit on B: both write to the new primary.
  const bool promoted = WaitFor([&] { return store_test::IsPrimary(replica_->port()); }, 90s, 50ms);
  int attempts = 0;
  const bool b_to_a =
      promoted &&
      WaitFor(
          [&] { return SharedBetween(*b_, *a_, "after failover " + std::to_string(attempts++)); },
          60s, 200ms);
  const bool a_to_b =
      b_to_a &&
      WaitFor(
          [&] { return SharedBetween(*a_, *b_, "after failover " + std::to_string(attempts++)); },
          60s, 200ms);
  stop.store(true);
  for (auto& th : threads) th.join();

  ASSERT_TRUE(loaded) << "only " << done.load() << " requests done before the deadline";
  EXPECT_EQ(errors.load(), 0) << "client-visible errors during the failover";
  EXPECT_GT(while_down.load(), 0) << "the load did not run across the failover";
  ASSERT_TRUE(promoted) << "Sentinel did not promote the replica" << Logs();
  EXPECT_TRUE(b_to_a) << "an answer cached through B after the failover is no hit on A in "
                      << attempts << " attempts; A's log:\n"
                      << a_->Log() << "\nB's log:\n"
                      << b_->Log() << Logs();
  EXPECT_TRUE(a_to_b) << "an answer cached through A after the failover is no hit on B";

  // The answer cached before the failover is on the new primary: a third
  // gateway, whose memory tier is empty, finds it there.
  auto c = StartReplica();
  ASSERT_TRUE(c);
  auto on_c = Chat(*c, before);
  EXPECT_EQ(on_c.status, 200) << on_c.Describe();
  EXPECT_EQ(on_c.Cache(), "hit") << "the answer cached before the failover was lost";
  EXPECT_EQ(on_c.body, cached.body);
  EXPECT_EQ(Chat(*a_, before).Cache(), "hit");
  EXPECT_EQ(Chat(*b_, before).Cache(), "hit");
  // Both gateways report a healthy store again.
  for (auto* gw : {a_.get(), b_.get(), c.get()}) {
    EXPECT_TRUE(WaitFor([&] { return Get(gw->port(), "/healthz").body == R"({"status":"ok"})"; },
                        30s, 100ms))
        << Get(gw->port(), "/healthz").Describe();
  }
  EXPECT_EQ(c->Terminate(), 0) << c->Log();
  RecordProperty("requests", done.load());
  RecordProperty("requests_while_primary_down", while_down.load());
  RecordProperty("attempts_until_shared_again", attempts);
}

}  // namespace
}  // namespace llmcache::e2e
