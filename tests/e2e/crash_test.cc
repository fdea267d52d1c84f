// Crash safety of the real binary: kill -9 under a write load, restart over
// the same data directory with an upstream that fails everything, and check
// that every answer a client had received is served from the cache, intact.
//
// "Received" (acknowledged): a whole answer that arrived complete, or a
// stream whose `data: [DONE]` arrived (even if the kill cut the HTTP message
// after it). The gateway stores a whole answer before sending it, and holds
// a stream's [DONE] back until the answer is stored, so each of them must
// have reached the store's write-ahead log before the kill.
#include <atomic>
#include <thread>

#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2eCrash : public E2eTest {};

struct Sent {
  std::string prompt;
  std::string body;
  bool stream = false;
  bool acked = false;
  std::string content;  // what the client received, when acked
};

TEST_F(E2eCrash, KillNineMidLoadLosesNoAcknowledgedAnswer) {
  ASSERT_TRUE(upstream().Config(R"({"latency_ms":2,"chunk_delay_ms":2})"));
  TempDir dir;
  GatewayProcessOptions po;
  po.upstream_url = upstream().url();
  po.data_dir = dir.Sub("data");
  po.threads = 2;
  auto gw = std::make_unique<GatewayProcess>(po);
  ASSERT_TRUE(gw->Start());
  const uint16_t port = gw->port();

  constexpr int kThreads = 4;
  constexpr int kAckedBeforeKill = 150;
  std::vector<std::vector<Sent>> sent(kThreads);
  std::atomic<bool> killed{false};
  std::atomic<int> acked{0};
  std::atomic<int> early_failures{0};
  std::vector<std::thread> threads;
  const std::string base = UniquePrompt("crash");
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 5000 && !killed.load(); ++k) {
        Sent s;
        s.prompt = base + " t" + std::to_string(t) + " #" + std::to_string(k);
        s.stream = k % 3 != 1;
        s.body = ChatBody(s.prompt, s.stream);
        auto r = Post(port, "/v1/chat/completions", s.body, {}, 10s);
        Answer a = ParseAnswer(r, /*require_complete=*/false);
        if (a.ok) {
          s.acked = true;
          s.content = a.content;
          acked.fetch_add(1);
        } else if (!killed.load() && early_failures.fetch_add(1) < 5) {
          ADD_FAILURE() << "a request failed before the kill: " << a.problem;
        }
        sent[t].push_back(std::move(s));
      }
    });
  }
  bool loaded = WaitFor([&] { return acked.load() >= kAckedBeforeKill; }, 60s, 5ms);
  killed.store(true);
  gw->Kill9();
  for (auto& th : threads) th.join();
  ASSERT_TRUE(loaded) << "only " << acked.load() << " answers before the deadline";
  EXPECT_EQ(early_failures.load(), 0);

  // Now only the cache can answer.
  ASSERT_TRUE(upstream().Config(R"({"fault":"500","latency_ms":0,"chunk_delay_ms":0})"));
  GatewayProcess again(po);
  ASSERT_TRUE(again.Start()) << "the gateway did not restart over its killed data dir";

  int total = 0, acked_total = 0, hits = 0, unacked_hits = 0, lost = 0;
  for (const auto& per : sent) {
    for (const auto& s : per) {
      ++total;
      acked_total += s.acked;
      auto r = Post(again.port(), "/v1/chat/completions", s.body, {}, 10s);
      if (r.Cache() == "hit") {
        ++hits;
        unacked_hits += !s.acked;
        Answer a = ParseAnswer(r);
        EXPECT_TRUE(a.ok) << "a malformed answer after the crash: " << a.problem;
        EXPECT_EQ(a.content.rfind("echo: " + s.prompt + " #", 0), 0u)
            << "a recovered answer that belongs to another request: " << a.content;
        if (s.acked) {
          EXPECT_EQ(a.content, s.content) << "the recovered answer differs from the one received";
          // The recovered entry converts to the other shape as well.
          auto other = Post(again.port(), "/v1/chat/completions", ChatBody(s.prompt, !s.stream));
          EXPECT_EQ(other.Cache(), "hit");
          EXPECT_EQ(ParseAnswer(other).content, s.content);
        }
      } else {
        EXPECT_EQ(r.status, 502) << "only the failing upstream can answer a miss: " << r.Describe();
        EXPECT_TRUE(IsOpenAiError(r));
        EXPECT_FALSE(ParseAnswer(r, false).ok);
        if (s.acked) {
          ++lost;
          if (lost <= 5)
            ADD_FAILURE() << "an acknowledged " << (s.stream ? "stream" : "answer")
                          << " was lost in the crash: " << s.prompt;
        }
      }
    }
  }
  EXPECT_EQ(lost, 0) << lost << " of " << acked_total << " acknowledged answers were lost";
  EXPECT_GE(hits, acked_total);
  RecordProperty("requests", total);
  RecordProperty("acknowledged", acked_total);
  RecordProperty("recovered_unacknowledged", unacked_hits);
  std::cerr << "crash test: " << total << " requests, " << acked_total
            << " acknowledged before the kill, " << hits << " hits after the restart ("
            << unacked_hits << " not acknowledged), " << lost << " lost\n";
  EXPECT_EQ(again.Terminate(), 0) << "unclean exit on SIGTERM; log:\n" << again.Log();
}

}  // namespace
}  // namespace llmcache::e2e
