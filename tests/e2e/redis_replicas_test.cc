// Two `llmcache serve` replicas sharing one real redis-server: answers
// cached through one replica are hits on the other (plain and streamed),
// identical misses arriving at both at once reach the upstream once,
// killing Redis under load costs no client an error, and a Redis restarted
// on the same port is shared again.
//
// Each replica runs with a small memory tier, so what it did not cache itself
// can only come from Redis. Redis runs without persistence: a restarted
// Redis is empty, as after a crash of a cache-only deployment.
#include <unistd.h>

#include <atomic>
#include <thread>

#include "e2e/fixture.h"
#include "e2e/redis_server.h"

namespace llmcache::e2e {
namespace {

// Small enough that a replica never holds much, large enough to keep the
// few entries a test writes (so that a replica's own answers stay hot).
constexpr const char* kMemoryTierBytes = "262144";

class E2eRedisReplicas : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(redis_.Start()) << "redis-server did not start (is it on PATH?)";
    a_ = StartReplica();
    b_ = StartReplica();
    ASSERT_TRUE(a_ && b_);
  }

  std::unique_ptr<GatewayProcess> StartReplica(std::string config_yaml = {}) {
    GatewayProcessOptions po;
    po.upstream_url = upstream().url();
    po.data_dir = dir_.Sub("data-" + std::to_string(replicas_++));
    po.config_yaml = std::move(config_yaml);
    po.extra_args = {"--store", redis_.url(), "--memory-max", kMemoryTierBytes};
    auto gw = std::make_unique<GatewayProcess>(po);
    if (!gw->Start()) return nullptr;
    return gw;
  }

  // Each replica exits cleanly on SIGTERM, whatever Redis went through.
  void TearDown() override {
    for (auto* gw : {a_.get(), b_.get()}) {
      if (gw) {
        EXPECT_EQ(gw->Terminate(), 0) << "unclean exit; log:\n" << gw->Log();
      }
    }
  }

  static HttpResponse Chat(const GatewayProcess& gw, std::string_view body) {
    return Post(gw.port(), "/v1/chat/completions", body);
  }

  // llmcache_shared_flight_total{outcome} of a replica; 0 when not counted.
  static double SharedFlights(const GatewayProcess& gw, const std::string& outcome) {
    return MetricValue(Get(gw.port(), "/metrics").body, "llmcache_shared_flight_total",
                       {{"outcome", outcome}})
        .value_or(0);
  }

  TempDir dir_;
  RedisServer redis_;
  int replicas_ = 0;
  std::unique_ptr<GatewayProcess> a_, b_;
};

TEST_F(E2eRedisReplicas, AnswerCachedThroughOneReplicaIsAHitOnTheOther) {
  const std::string body = ChatBody(UniquePrompt("shared"));
  auto first = Chat(*a_, body);
  ASSERT_EQ(first.status, 200) << first.Describe();
  EXPECT_EQ(first.Cache(), "miss");
  EXPECT_GE(redis_.Integer("DBSIZE"), 1) << "replica A wrote nothing to Redis";

  auto on_b = Chat(*b_, body);
  ASSERT_EQ(on_b.status, 200) << on_b.Describe();
  EXPECT_EQ(on_b.Cache(), "hit") << "replica B did not find A's answer in Redis";
  EXPECT_EQ(on_b.body, first.body) << "the shared answer differs byte for byte";
  EXPECT_EQ(upstream().Calls(), 1);

  // And the other way round, for an answer B caches.
  const std::string other = ChatBody(UniquePrompt("shared, from B"));
  auto via_b = Chat(*b_, other);
  ASSERT_EQ(via_b.status, 200) << via_b.Describe();
  EXPECT_EQ(via_b.Cache(), "miss");
  auto on_a = Chat(*a_, other);
  EXPECT_EQ(on_a.Cache(), "hit");
  EXPECT_EQ(on_a.body, via_b.body);
  EXPECT_EQ(upstream().Calls(), 2);
}

TEST_F(E2eRedisReplicas, StreamCachedThroughOneReplicaReplaysOnTheOther) {
  ASSERT_TRUE(upstream().Config(R"({"chunk_delay_ms":2})"));
  const std::string prompt = UniquePrompt("shared stream");
  auto live = Chat(*a_, ChatBody(prompt, true));
  ASSERT_EQ(live.status, 200) << live.Describe();
  EXPECT_EQ(live.Cache(), "miss");
  Answer relayed = ParseAnswer(live);
  ASSERT_TRUE(relayed.ok) << relayed.problem;
  EXPECT_GE(relayed.chunks, 3);

  auto replay = Chat(*b_, ChatBody(prompt, true));
  ASSERT_EQ(replay.status, 200) << replay.Describe();
  EXPECT_TRUE(replay.IsStream());
  EXPECT_EQ(replay.Cache(), "hit");
  EXPECT_EQ(SseData(replay.body), SseData(live.body)) << "B's replay differs from A's relay";

  // The same entry answers a plain request on B too.
  auto whole = Chat(*b_, ChatBody(prompt, false));
  EXPECT_EQ(whole.Cache(), "hit");
  EXPECT_EQ(ContentOf(whole), relayed.content);
  EXPECT_EQ(upstream().Calls(), 1);
}

TEST_F(E2eRedisReplicas, KilledRedisCostsNoClientAnErrorAndARestartedOneIsSharedAgain) {
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":1})"));
  // 4 client threads, two per replica, 50 requests each. Even requests
  // repeat 15 shared prompts (hits from memory or Redis), odd ones are new
  // (misses), before and after the kill.
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  constexpr int kSharedPrompts = 15;
  constexpr int kKillAfter = 60;
  const std::string base = UniquePrompt("load");
  std::atomic<bool> killed{false};
  std::atomic<int> done{0};
  std::atomic<int> errors{0};
  std::atomic<int> new_after_kill{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const GatewayProcess& gw = t % 2 ? *b_ : *a_;
      for (int k = 0; k < kPerThread; ++k) {
        const bool fresh = k % 2 == 1;
        const std::string prompt =
            base + (fresh ? " new t" + std::to_string(t) + " #" + std::to_string(k)
                          : " shared #" + std::to_string((k * kThreads + t) % kSharedPrompts));
        const bool after_kill = killed.load();
        auto r = Chat(gw, ChatBody(prompt, k % 4 == 3));
        Answer a = ParseAnswer(r);
        const bool good = r.status == 200 && a.ok && a.content.rfind("echo: " + prompt, 0) == 0;
        if (!good && errors.fetch_add(1) < 5) {
          ADD_FAILURE() << "request " << k << " on replica " << (t % 2 ? "B" : "A")
                        << " failed: " << r.Describe() << " " << a.problem;
        }
        if (fresh && after_kill) new_after_kill.fetch_add(1);
        done.fetch_add(1);
      }
    });
  }
  const bool loaded = WaitFor([&] { return done.load() >= kKillAfter; }, 60s, 2ms);
  redis_.Kill();
  const int64_t calls_at_kill = upstream().Calls();
  killed.store(true);
  for (auto& th : threads) th.join();
  ASSERT_TRUE(loaded) << "only " << done.load() << " requests done before the deadline";
  EXPECT_EQ(done.load(), kThreads * kPerThread);
  EXPECT_EQ(errors.load(), 0) << "client-visible errors while Redis was down";
  // The load went on past the kill, and its new prompts reached the upstream.
  EXPECT_GT(new_after_kill.load(), 0);
  EXPECT_GE(upstream().Calls() - calls_at_kill, new_after_kill.load());

  // Both replicas still answer new prompts with Redis gone.
  for (auto* gw : {a_.get(), b_.get()}) {
    const std::string p = UniquePrompt("redis down");
    auto r = Chat(*gw, ChatBody(p));
    EXPECT_EQ(r.status, 200) << r.Describe();
    EXPECT_EQ(r.Cache(), "miss");
  }

  // Restarted (empty) on the same port: within the replicas' reconnect
  // backoff (at most 5 s), a new answer cached through A is a hit on B.
  ASSERT_TRUE(redis_.Restart()) << "redis-server did not restart on port " << redis_.port();
  int attempts = 0;
  const bool shared = WaitFor(
      [&] {
        const std::string body = ChatBody(UniquePrompt("after restart " + std::to_string(attempts++)));
        auto via_a = Chat(*a_, body);
        EXPECT_EQ(via_a.status, 200) << via_a.Describe();
        auto on_b = Chat(*b_, body);
        EXPECT_EQ(on_b.status, 200) << on_b.Describe();
        return on_b.Cache() == "hit" && on_b.body == via_a.body;
      },
      20s, 200ms);
  EXPECT_TRUE(shared) << "no answer was shared through the restarted Redis in " << attempts
                      << " attempts; A's log:\n"
                      << a_->Log();
  EXPECT_GE(redis_.Integer("DBSIZE"), 1);
  RecordProperty("new_prompts_after_kill", new_after_kill.load());
  RecordProperty("attempts_until_shared_again", attempts);
}

TEST_F(E2eRedisReplicas, IdenticalMissesOnBothReplicasReachTheUpstreamOnce) {
  // Slow enough that all 40 requests arrive while the first is upstream.
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":400})"));
  constexpr int kClients = 40;
  const std::string body = ChatBody(UniquePrompt("stampede"));
  auto responses = Concurrently(kClients, [&](int i) { return Chat(i % 2 ? *b_ : *a_, body); });
  ASSERT_EQ(responses.size(), static_cast<size_t>(kClients));
  int misses = 0, hits = 0;
  for (int i = 0; i < kClients; ++i) {
    const auto& r = responses[i];
    ASSERT_EQ(r.status, 200) << "client " << i << ": " << r.Describe();
    EXPECT_EQ(r.body, responses[0].body) << "client " << i << " got another answer";
    const std::string cache = r.Cache();
    if (cache == "miss") ++misses;
    else if (cache == "hit") ++hits;
    else ADD_FAILURE() << "client " << i << ": x-llmcache " << cache;
  }
  EXPECT_EQ(upstream().Calls(), 1) << misses << " misses, " << hits << " hits";
  EXPECT_EQ(ContentOf(responses[0]).rfind("echo: ", 0), 0u);
  // One replica's leader took the lock and asked the upstream. Every client
  // of the other replica got that answer from Redis, whether its leader
  // waited for it or arrived after it was stored.
  EXPECT_EQ(SharedFlights(*a_, "leader") + SharedFlights(*b_, "leader"), 1);
  EXPECT_GE(misses, 1);
  EXPECT_GE(hits, kClients / 2);
  RecordProperty("misses", misses);
  RecordProperty("hits", hits);
  RecordProperty("waited_hits",
                 static_cast<int>(SharedFlights(*a_, "waited_hit") + SharedFlights(*b_, "waited_hit")));
}

TEST_F(E2eRedisReplicas, WaiterGivesUpAfterTheFlightTimeoutAndCallsTheUpstreamItself) {
  // Replicas that wait at most 200 ms for another replica's answer, and an
  // upstream that takes far longer than that.
  auto c = StartReplica("redis_flight_timeout: 200ms\n");
  auto d = StartReplica("redis_flight_timeout: 200ms\n");
  ASSERT_TRUE(c && d);
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":1500})"));
  const std::string body = ChatBody(UniquePrompt("slow leader"));
  HttpResponse on_c;
  std::thread leader([&] { on_c = Chat(*c, body); });
  // C's request holds the lock once the upstream has it.
  ASSERT_TRUE(WaitFor([&] { return upstream().Calls() >= 1; }, 10s, 5ms));
  auto on_d = Chat(*d, body);
  leader.join();
  ASSERT_EQ(on_c.status, 200) << on_c.Describe();
  ASSERT_EQ(on_d.status, 200) << on_d.Describe();
  EXPECT_EQ(on_d.Cache(), "miss");
  EXPECT_EQ(upstream().Calls(), 2) << "D did not call the upstream after its wait";
  EXPECT_EQ(SharedFlights(*d, "timeout"), 1);
  EXPECT_EQ(c->Terminate(), 0) << c->Log();
  EXPECT_EQ(d->Terminate(), 0) << d->Log();
}

}  // namespace
}  // namespace llmcache::e2e
