// Entries survive a restart of the gateway over the same data directory.
#include <thread>

#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2ePersistence : public E2eTest {};

double TierHits(const TestGateway& gw, const std::string& tier) {
  return MetricValue(gw.Metrics(), "llmcache_cache_lookups_total",
                     {{"tier", tier}, {"result", "hit"}})
      .value_or(0);
}

TEST_F(E2ePersistence, RestartServesFromRocksDbThenMemory) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  struct Case {
    std::string target, body;
    HttpResponse first;
  };
  std::vector<Case> cases = {
      {"/v1/chat/completions", ChatBody(UniquePrompt("persist plain")), {}},
      {"/v1/chat/completions", ChatBody(UniquePrompt("persist stream"), true), {}},
      {"/v1/completions", CompletionBody(UniquePrompt("persist legacy")), {}},
      {"/v1/embeddings", R"({"model":"llama3","input":")" + UniquePrompt("persist embed") + "\"}", {}},
  };
  for (auto& c : cases) {
    c.first = gw->Post(c.target, c.body);
    ASSERT_EQ(c.first.status, 200) << c.first.Describe();
    ASSERT_EQ(c.first.Cache(), "miss");
  }
  EXPECT_EQ(gw->Entries("rocksdb"), 4);
  int64_t calls = upstream().ModelCalls();

  ASSERT_TRUE(gw->Restart());
  EXPECT_EQ(gw->Entries("rocksdb"), 4) << "the persistent tier lost entries";
  EXPECT_EQ(gw->Entries("memory"), 0) << "a new process starts with a cold memory tier";
  for (const auto& c : cases) {
    auto r = gw->Post(c.target, c.body);
    ASSERT_EQ(r.status, 200) << r.Describe();
    EXPECT_EQ(r.Cache(), "hit") << c.body;
    if (r.IsStream()) {
      EXPECT_EQ(SseData(r.body), SseData(c.first.body));
    } else {
      EXPECT_EQ(r.Json(), c.first.Json());
    }
  }
  EXPECT_EQ(TierHits(*gw, "rocksdb"), 4);
  EXPECT_EQ(TierHits(*gw, "memory"), 0);
  EXPECT_EQ(gw->Entries("memory"), 4) << "hits below were not promoted";

  for (const auto& c : cases) EXPECT_EQ(gw->Post(c.target, c.body).Cache(), "hit");
  EXPECT_EQ(TierHits(*gw, "memory"), 4);
  EXPECT_EQ(TierHits(*gw, "rocksdb"), 4);
  EXPECT_EQ(upstream().ModelCalls(), calls) << "a restart sent requests upstream again";

  // And once more, after a second restart with hits in between.
  ASSERT_TRUE(gw->Restart());
  for (const auto& c : cases) EXPECT_EQ(gw->Post(c.target, c.body).Cache(), "hit");
  EXPECT_EQ(upstream().ModelCalls(), calls);
}

TEST_F(E2ePersistence, MemoryOnlyStoreStartsEmpty) {
  auto gw = StartGateway(Options(), StoreKind::kMemory);
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("memory only"));
  EXPECT_EQ(gw->Chat(body).Cache(), "miss");
  EXPECT_EQ(gw->Chat(body).Cache(), "hit");
  ASSERT_TRUE(gw->Restart());
  EXPECT_EQ(gw->Chat(body).Cache(), "miss");
  EXPECT_EQ(upstream().Calls(), 2);
}

// Stopping the gateway while a leader waits on a hanging upstream and
// followers wait on its flight: the clients see closed connections, the
// gateway shuts down cleanly, and a new one over the same directory works.
TEST_F(E2ePersistence, StopWithRequestsInFlight) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  ASSERT_TRUE(upstream().Config(R"({"fault":"hang"})"));
  std::string p = UniquePrompt("in flight at stop");
  uint16_t port = gw->port();
  std::vector<HttpResponse> results(6);
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      results[i] = Post(port, "/v1/chat/completions", ChatBody(p, i % 2 == 0), {}, 10s);
    });
  }
  ASSERT_TRUE(WaitFor([&] { return upstream().Calls() == 1; }, 5s));
  // Let the followers join the flight.
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(gw->Metrics(), "llmcache_singleflight_waiters_total").value_or(0) == 5;
      },
      5s));
  gw->Stop();
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    EXPECT_FALSE(ParseAnswer(r).ok) << r.Describe();
    EXPECT_EQ(r.error.find("timeout"), std::string::npos) << "hung: " << r.Describe();
  }
  ASSERT_TRUE(upstream().Config(R"({"fault":null})"));
  ASSERT_TRUE(gw->Start());
  auto r = gw->Chat(ChatBody(p));
  EXPECT_EQ(r.Cache(), "miss") << r.Describe();
  EXPECT_EQ(gw->Chat(ChatBody(p)).Cache(), "hit");
}

}  // namespace
}  // namespace llmcache::e2e
