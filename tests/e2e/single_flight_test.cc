// Single-flight: identical concurrent misses make one upstream call; a
// failed leader fails its followers cleanly and stores nothing.
#include <atomic>
#include <thread>

#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2eSingleFlight : public E2eTest {
 protected:
  // requests_total by result, summed over routes and models.
  static double Requests(const TestGateway& gw, const std::string& result) {
    return MetricValue(gw.Metrics(), "llmcache_requests_total", {{"result", result}}).value_or(0);
  }
};

TEST_F(E2eSingleFlight, FiftyIdenticalRequestsMakeOneUpstreamCall) {
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":300})"));
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("fifty"));
  auto results = Concurrently(50, [&](int) { return gw->Chat(body); });

  EXPECT_EQ(upstream().Calls(), 1) << "identical concurrent misses were not coalesced";
  std::string content, id;
  int misses = 0, hits = 0;
  for (const auto& r : results) {
    ASSERT_EQ(r.status, 200) << r.Describe();
    Answer a = ParseAnswer(r);
    ASSERT_TRUE(a.ok) << a.problem;
    if (content.empty()) {
      content = a.content;
      id = a.id;
    }
    EXPECT_EQ(a.content, content);
    EXPECT_EQ(a.id, id) << "not the one upstream answer";
    misses += r.Cache() == "miss";
    hits += r.Cache() == "hit";
  }
  EXPECT_EQ(misses + hits, 50);
  double waiters = MetricValue(gw->Metrics(), "llmcache_singleflight_waiters_total").value_or(0);
  EXPECT_EQ(waiters, misses - 1) << "every miss but the leader's waited on the flight";
  EXPECT_GT(waiters, 0) << "no request waited on the flight (did they all arrive late?)";
  EXPECT_EQ(gw->Entries(), 1);
  EXPECT_EQ(upstream().Stats().at("max_in_flight").to_number<int64_t>(), 1);
}

TEST_F(E2eSingleFlight, StreamAndPlainFollowersShareOneCall) {
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":300,"chunk_delay_ms":20})"));
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("mixed");
  auto results = Concurrently(40, [&](int i) { return gw->Chat(ChatBody(p, i % 2 == 0)); });
  EXPECT_EQ(upstream().Calls(), 1);
  std::string content;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    ASSERT_EQ(r.status, 200) << r.Describe();
    EXPECT_EQ(r.IsStream(), i % 2 == 0) << r.Describe();
    if (r.IsStream()) {
      EXPECT_TRUE(EndsWithDone(r.body)) << r.Describe();
    }
    Answer a = ParseAnswer(r);
    ASSERT_TRUE(a.ok) << a.problem;
    if (content.empty()) content = a.content;
    EXPECT_EQ(a.content, content);
    EXPECT_EQ(a.finish_reason, "stop");
  }
  EXPECT_EQ(gw->Chat(ChatBody(p, true)).Cache(), "hit");
  EXPECT_EQ(upstream().Calls(), 1);
}

TEST_F(E2eSingleFlight, FollowersJoiningMidStreamGetTheWholeAnswer) {
  // A slow stream: followers arrive while the leader is already relaying.
  ASSERT_TRUE(upstream().Config(R"({"chunk_delay_ms":150})"));
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("mid-stream");
  HttpResponse leader;
  std::thread t([&] { leader = gw->Chat(ChatBody(p, true)); });
  bool in_flight = WaitFor(
      [&] { return upstream().Stats().at("in_flight").to_number<int64_t>() == 1; }, 5s, 5ms);
  auto followers = Concurrently(8, [&](int i) { return gw->Chat(ChatBody(p, i % 2 == 0)); });
  t.join();
  ASSERT_TRUE(in_flight);
  Answer al = ParseAnswer(leader);
  ASSERT_TRUE(al.ok) << al.problem;
  EXPECT_EQ(leader.Cache(), "miss");
  for (const auto& r : followers) {
    Answer a = ParseAnswer(r);
    ASSERT_TRUE(a.ok) << a.problem;
    EXPECT_EQ(a.content, al.content);
  }
  EXPECT_EQ(upstream().Calls(), 1);
}

// The leader's client goes away as soon as its stream has begun: the
// gateway keeps reading the upstream for the followers and the cache.
TEST_F(E2eSingleFlight, LeaderClientLeavingDoesNotFailFollowers) {
  ASSERT_TRUE(upstream().Config(R"({"chunk_delay_ms":100})"));
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("leader leaves");
  auto leader = HttpCall(gw->port(), "POST", "/v1/chat/completions", ChatBody(p, true), {}, 15s,
                         [](const HttpResponse&) { return false; });
  EXPECT_EQ(leader.status, 200) << leader.Describe();
  EXPECT_EQ(leader.Cache(), "miss");
  EXPECT_FALSE(leader.complete);
  auto followers = Concurrently(6, [&](int i) { return gw->Chat(ChatBody(p, i % 2 == 0)); });
  std::string content;
  for (const auto& r : followers) {
    Answer a = ParseAnswer(r);
    ASSERT_TRUE(a.ok) << a.problem;
    if (content.empty()) content = a.content;
    EXPECT_EQ(a.content, content);
  }
  EXPECT_EQ(content.rfind("echo: " + p, 0), 0u) << content;
  auto later = gw->Chat(ChatBody(p));
  EXPECT_EQ(later.Cache(), "hit") << "the answer was not stored after its first client left";
  EXPECT_EQ(upstream().Calls(), 1);
}

// Each response of a failed flight is an error or a broken stream, never a
// complete answer, and none hangs.
void ExpectFailedCleanly(const HttpResponse& r, bool stream) {
  EXPECT_EQ(r.error.find("timeout"), std::string::npos) << "hung: " << r.Describe();
  EXPECT_FALSE(ParseAnswer(r).ok) << "a failed flight produced an answer: " << r.Describe();
  if (r.status == 200) {
    EXPECT_TRUE(stream && r.IsStream()) << r.Describe();
    EXPECT_FALSE(r.complete) << "a broken stream must not end cleanly: " << r.Describe();
    EXPECT_FALSE(EndsWithDone(r.body)) << r.Describe();
  } else {
    EXPECT_GE(r.status, 500) << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r) || (stream && !r.complete)) << r.Describe();
  }
}

// The fault applies to every call while the flight is failing, so that a
// request that arrives late (and leads a flight of its own) fails too: what
// is checked does not depend on timing. Every miss either waited on a flight
// or called the upstream itself.
void ExpectConsistentFlights(const TestGateway& gw, int64_t upstream_calls) {
  std::string m = gw.Metrics();
  double misses = MetricValue(m, "llmcache_requests_total", {{"result", "miss"}}).value_or(0);
  double waiters = MetricValue(m, "llmcache_singleflight_waiters_total").value_or(0);
  EXPECT_GT(waiters, 0) << "no request followed the failing leader";
  EXPECT_EQ(misses - waiters, upstream_calls) << m;
}

TEST_F(E2eSingleFlight, FailedLeaderFailsFollowersAndStoresNothing) {
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":500,"fault":"500"})"));
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("failed leader");
  auto results = Concurrently(20, [&](int i) {
    return Post(gw->port(), "/v1/chat/completions", ChatBody(p, i % 2 == 0), {}, 5s);
  });
  for (size_t i = 0; i < results.size(); ++i) {
    ExpectFailedCleanly(results[i], i % 2 == 0);
    EXPECT_EQ(results[i].status, 502) << results[i].Describe();
  }
  int64_t calls = upstream().Calls();
  EXPECT_GE(calls, 1);
  ExpectConsistentFlights(*gw, calls);
  EXPECT_EQ(gw->Entries(), 0);
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":0,"fault":null})"));
  auto next = gw->Chat(ChatBody(p));
  EXPECT_EQ(next.status, 200) << next.Describe();
  EXPECT_EQ(next.Cache(), "miss");
  EXPECT_EQ(upstream().Calls(), calls + 1) << "the failed answer was cached";
}

TEST_F(E2eSingleFlight, FollowersOfARateLimitedLeaderGetItsRetryAfter) {
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":500,"fault":"429"})"));
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("rate limited leader");
  auto results = Concurrently(
      10, [&](int) { return Post(gw->port(), "/v1/chat/completions", ChatBody(p), {}, 5s); });
  for (const auto& r : results) {
    EXPECT_EQ(r.status, 429) << r.Describe();
    EXPECT_EQ(r.Header("retry-after"), "1") << r.Describe();
  }
  ExpectConsistentFlights(*gw, upstream().Calls());
  EXPECT_EQ(gw->Entries(), 0);
}

TEST_F(E2eSingleFlight, BrokenLeaderStreamFailsFollowersAndStoresNothing) {
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":500,"fault":"break_stream"})"));
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("broken leader");
  // The leader is a stream (sent first); followers of both kinds join it.
  HttpResponse leader;
  std::thread t(
      [&] { leader = Post(gw->port(), "/v1/chat/completions", ChatBody(p, true), {}, 5s); });
  bool leading = WaitFor([&] { return upstream().Calls() == 1; }, 5s, 5ms);
  auto results = Concurrently(16, [&](int i) {
    return Post(gw->port(), "/v1/chat/completions", ChatBody(p, i % 2 == 0), {}, 5s);
  });
  t.join();
  ASSERT_TRUE(leading);
  ExpectFailedCleanly(leader, true);
  EXPECT_EQ(leader.status, 200) << "the leader's stream had started";
  for (size_t i = 0; i < results.size(); ++i) {
    ExpectFailedCleanly(results[i], i % 2 == 0);
    if (i % 2 == 1) {
      EXPECT_EQ(results[i].status, 502) << results[i].Describe();
    }
  }
  int64_t calls = upstream().Calls();
  ExpectConsistentFlights(*gw, calls);
  EXPECT_EQ(gw->Entries(), 0);
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":0,"fault":null})"));
  auto next = gw->Chat(ChatBody(p, true));
  EXPECT_EQ(next.Cache(), "miss");
  EXPECT_TRUE(ParseAnswer(next).ok) << next.Describe();
  EXPECT_EQ(upstream().Calls(), calls + 1);
}

}  // namespace
}  // namespace llmcache::e2e
