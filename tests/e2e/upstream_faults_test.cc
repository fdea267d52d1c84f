// Upstream failures become OpenAI-style errors (or broken streams), and
// nothing is stored: the next identical request goes to the upstream again.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2eUpstreamFaults : public E2eTest {
 protected:
  // The request fails as `check` says; then, with the fault gone, the same
  // request is a miss answered by the upstream, and then a hit.
  void ExpectNotStored(TestGateway& gw, const std::string& body, int64_t calls_before,
                       int64_t entries_before = 0) {
    EXPECT_EQ(gw.Entries("memory"), entries_before);
    EXPECT_EQ(gw.Entries("rocksdb"), entries_before);
    ASSERT_TRUE(upstream().Config(R"({"fault":null})"));
    auto again = gw.Chat(body);
    EXPECT_EQ(again.status, 200) << again.Describe();
    EXPECT_EQ(again.Cache(), "miss") << "a failed answer was stored";
    EXPECT_TRUE(ParseAnswer(again).ok) << again.Describe();
    EXPECT_EQ(upstream().Calls(), calls_before + 1);
    EXPECT_EQ(gw.Chat(body).Cache(), "hit");
  }
};

// A loopback port with no listener: bound (so that nothing else gets it,
// not even as the ephemeral port of a connecting socket, which could then
// connect to itself) but never listening, so connections are refused.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port_ = ntohs(a.sin_port);
  }
  ~RefusingPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST_F(E2eUpstreamFaults, UpstreamDownIs502) {
  RefusingPort down;
  ASSERT_NE(down.port(), 0);
  auto o = DefaultGatewayOptions("http://127.0.0.1:" + std::to_string(down.port()) + "/v1");
  o.client.connect_retries = 1;
  auto gw = StartGateway(o);
  ASSERT_TRUE(gw);
  for (bool stream : {false, true}) {
    auto r = gw->Chat(ChatBody(UniquePrompt("down"), stream));
    EXPECT_EQ(r.status, 502) << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r));
    EXPECT_EQ(ErrorCode(r), "upstream_unavailable");
    EXPECT_EQ(r.Cache(), "miss");
  }
  EXPECT_EQ(gw->Entries(), 0);
  EXPECT_EQ(gw->Get("/v1/models").status, 502) << "proxied routes fail alike";
  auto metrics = gw->Metrics();
  EXPECT_EQ(MetricValue(metrics, "llmcache_upstream_errors_total", {{"kind", "connect"}}), 3);
  EXPECT_EQ(gw->Get("/healthz").status, 200);
}

TEST_F(E2eUpstreamFaults, TimeoutIs504) {
  auto o = Options();
  o.client.read_timeout = 400ms;
  auto gw = StartGateway(o);
  ASSERT_TRUE(gw);
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "plain");
    upstream().Reset();
    std::string body = ChatBody(UniquePrompt(std::string("hang") + (stream ? " stream" : "")), stream);
    ASSERT_TRUE(upstream().Config(R"({"fault":"hang"})"));
    auto r = gw->Chat(body);
    EXPECT_EQ(r.status, 504) << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r));
    EXPECT_EQ(ErrorCode(r), "upstream_timeout");
    ExpectNotStored(*gw, body, 1, stream ? 1 : 0);
  }
}

TEST_F(E2eUpstreamFaults, ServerErrorIs502) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "plain");
    upstream().Reset();
    std::string body = ChatBody(UniquePrompt(std::string("500") + (stream ? " stream" : "")), stream);
    ASSERT_TRUE(upstream().Config(R"({"fault":"500"})"));
    auto r = gw->Chat(body);
    EXPECT_EQ(r.status, 502) << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r));
    EXPECT_NE(r.body.find("500"), std::string::npos) << "the upstream status is not reported";
    ExpectNotStored(*gw, body, 1, stream ? 1 : 0);
  }
}

TEST_F(E2eUpstreamFaults, GarbageAnswerIs502) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "plain");
    upstream().Reset();
    std::string body = ChatBody(UniquePrompt(std::string("garbage") + (stream ? " stream" : "")), stream);
    ASSERT_TRUE(upstream().Config(R"({"fault":"garbage"})"));
    auto r = gw->Chat(body);
    EXPECT_EQ(r.status, 502) << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r));
    EXPECT_EQ(ErrorCode(r), "upstream_bad_response");
    ExpectNotStored(*gw, body, 1, stream ? 1 : 0);
  }
}

TEST_F(E2eUpstreamFaults, ClosedConnectionIs502) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("close"));
  ASSERT_TRUE(upstream().Config(R"({"fault":"close"})"));
  auto r = gw->Chat(body);
  EXPECT_EQ(r.status, 502) << r.Describe();
  EXPECT_TRUE(IsOpenAiError(r));
  int64_t calls = upstream().Calls();
  EXPECT_GE(calls, 1);
  ExpectNotStored(*gw, body, calls);
}

TEST_F(E2eUpstreamFaults, BrokenStreamReachesTheClientBroken) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("break"), true);
  ASSERT_TRUE(upstream().Config(R"({"fault":"break_stream"})"));
  auto r = gw->Chat(body);
  EXPECT_EQ(r.status, 200) << "the stream had started: " << r.Describe();
  EXPECT_TRUE(r.IsStream());
  EXPECT_FALSE(r.complete) << "a broken upstream stream must not end cleanly";
  EXPECT_FALSE(EndsWithDone(r.body));
  EXPECT_GE(SseData(r.body).size(), 1u) << "the events before the break were relayed: " << r.Describe();
  ExpectNotStored(*gw, body, 1);

  // A whole answer cut short is a 502.
  upstream().Reset();
  std::string plain = ChatBody(UniquePrompt("break plain"));
  ASSERT_TRUE(upstream().Config(R"({"fault":"break_stream"})"));
  auto rp = gw->Chat(plain);
  EXPECT_EQ(rp.status, 502) << rp.Describe();
  EXPECT_TRUE(IsOpenAiError(rp));
  ExpectNotStored(*gw, plain, 1, 1);
}

TEST_F(E2eUpstreamFaults, MalformedStreamEventIsNotStored) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string body = ChatBody(UniquePrompt("bad json stream"), true);
  ASSERT_TRUE(upstream().Config(R"({"fault":"bad_json_stream"})"));
  auto r = gw->Chat(body);
  EXPECT_FALSE(ParseAnswer(r).ok) << "a malformed stream was passed off as complete";
  EXPECT_FALSE(EndsWithDone(r.body)) << r.Describe();
  ExpectNotStored(*gw, body, 1);
}

TEST_F(E2eUpstreamFaults, RateLimitIsRelayedAs429) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "plain");
    upstream().Reset();
    std::string body = ChatBody(UniquePrompt(std::string("429") + (stream ? " stream" : "")), stream);
    ASSERT_TRUE(upstream().Config(R"({"fault":"429"})"));
    auto r = gw->Chat(body);
    EXPECT_EQ(r.status, 429) << r.Describe();
    EXPECT_TRUE(IsOpenAiError(r));
    EXPECT_EQ(ErrorCode(r), "rate_limit_exceeded") << "the upstream's error is relayed";
    EXPECT_EQ(r.Header("retry-after"), "1");
    ExpectNotStored(*gw, body, 1, stream ? 1 : 0);
  }
}

}  // namespace
}  // namespace llmcache::e2e
