// SSE relay and replay, conversion between stream and whole answers,
// stream_options.include_usage.
#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2eStreaming : public E2eTest {};

// Whether any chunk of the stream carries a non-null usage.
bool AnyUsage(const HttpResponse& r) {
  for (const auto& e : SseData(r.body)) {
    if (e == "[DONE]") continue;
    boost::system::error_code ec;
    auto v = boost::json::parse(e, ec);
    if (ec || !v.is_object()) continue;
    const auto* u = v.as_object().if_contains("usage");
    if (u && !u->is_null()) return true;
  }
  return false;
}

// The last chunk before [DONE] is a usage chunk with no choices.
bool EndsWithUsageChunk(const HttpResponse& r) {
  auto events = SseData(r.body);
  if (events.size() < 2 || events.back() != "[DONE]") return false;
  boost::system::error_code ec;
  auto v = boost::json::parse(events[events.size() - 2], ec);
  if (ec || !v.is_object()) return false;
  const auto& o = v.as_object();
  const auto* c = o.if_contains("choices");
  const auto* u = o.if_contains("usage");
  return c && c->is_array() && c->as_array().empty() && u && u->is_object() &&
         u->as_object().contains("total_tokens");
}

TEST_F(E2eStreaming, StreamMissRelaysSseAndTheRepeatReplaysIt) {
  upstream().Config(R"({"chunk_delay_ms":5})");
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("stream");
  auto first = gw->Chat(ChatBody(p, true));
  ASSERT_EQ(first.status, 200) << first.Describe();
  EXPECT_TRUE(first.IsStream()) << first.Header("content-type");
  EXPECT_EQ(first.Cache(), "miss");
  EXPECT_TRUE(first.complete);
  EXPECT_TRUE(EndsWithDone(first.body)) << first.body;
  EXPECT_TRUE(first.Header("content-length").empty()) << "a relayed stream is chunked";
  Answer a1 = ParseAnswer(first);
  ASSERT_TRUE(a1.ok) << a1.problem;
  EXPECT_GE(a1.chunks, 3) << "the stream was not relayed as separate chunks";
  EXPECT_EQ(a1.content.rfind("echo: " + p, 0), 0u) << a1.content;
  EXPECT_EQ(a1.finish_reason, "stop");
  EXPECT_FALSE(AnyUsage(first)) << "usage leaked to a client that did not ask for it";

  auto second = gw->Chat(ChatBody(p, true));
  ASSERT_EQ(second.status, 200) << second.Describe();
  EXPECT_TRUE(second.IsStream());
  EXPECT_EQ(second.Cache(), "hit");
  EXPECT_EQ(SseData(second.body), SseData(first.body)) << "the replay differs from the relay";
  EXPECT_EQ(ContentOf(second), a1.content);

  // The stream-recorded entry answers a non-stream request.
  auto plain = gw->Chat(ChatBody(p, false));
  ASSERT_EQ(plain.status, 200) << plain.Describe();
  EXPECT_EQ(plain.Cache(), "hit");
  EXPECT_FALSE(plain.IsStream());
  auto v = plain.Json();
  ASSERT_TRUE(v.is_object()) << plain.body;
  EXPECT_EQ(v.as_object().at("object").as_string(), "chat.completion");
  Answer ap = ParseAnswer(plain);
  ASSERT_TRUE(ap.ok) << ap.problem;
  EXPECT_EQ(ap.content, a1.content);
  EXPECT_EQ(ap.id, a1.id);
  EXPECT_EQ(ap.finish_reason, "stop");
  ASSERT_TRUE(ap.usage) << "the gateway records usage of streams for the whole answer";
  EXPECT_GT(ap.usage->at("total_tokens").to_number<int64_t>(), 0);
  EXPECT_EQ(upstream().Calls(), 1);
}

// The miss is relayed while the upstream is still producing it, not
// buffered and sent at the end: when the client has its first event, the
// upstream (events 300 ms apart) must still be sending.
TEST_F(E2eStreaming, MissIsRelayedWhileTheUpstreamIsStillSending) {
  ASSERT_TRUE(upstream().Config(R"({"chunk_delay_ms":300})"));
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  int64_t upstream_in_flight = -1;
  size_t events_at_first = 0;
  auto r = HttpCall(gw->port(), "POST", "/v1/chat/completions",
                    ChatBody(UniquePrompt("live"), true), {}, 15s,
                    [&](const HttpResponse& so_far) {
                      auto events = SseData(so_far.body);
                      if (upstream_in_flight < 0 && !events.empty()) {
                        events_at_first = events.size();
                        upstream_in_flight =
                            upstream().Stats().at("in_flight").to_number<int64_t>();
                      }
                      return true;
                    });
  ASSERT_EQ(r.Cache(), "miss") << r.Describe();
  Answer a = ParseAnswer(r);
  ASSERT_TRUE(a.ok) << a.problem;
  EXPECT_EQ(upstream_in_flight, 1)
      << "the first event reached the client only after the upstream had finished ("
      << events_at_first << " of " << SseData(r.body).size()
      << " events arrived at once): the stream was buffered, not relayed live";
}

TEST_F(E2eStreaming, WholeAnswerServesAStream) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("plain first");
  auto plain = gw->Chat(ChatBody(p));
  ASSERT_EQ(plain.Cache(), "miss") << plain.Describe();
  Answer ap = ParseAnswer(plain);
  ASSERT_TRUE(ap.ok) << ap.problem;

  auto streamed = gw->Chat(ChatBody(p, true));
  ASSERT_EQ(streamed.status, 200) << streamed.Describe();
  EXPECT_EQ(streamed.Cache(), "hit");
  EXPECT_TRUE(streamed.IsStream());
  EXPECT_TRUE(EndsWithDone(streamed.body));
  Answer as = ParseAnswer(streamed);
  ASSERT_TRUE(as.ok) << as.problem;
  EXPECT_EQ(as.content, ap.content);
  EXPECT_EQ(as.finish_reason, "stop");
  EXPECT_FALSE(AnyUsage(streamed));
  EXPECT_EQ(upstream().Calls(), 1);
}

TEST_F(E2eStreaming, IncludeUsageSemantics) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  const std::string usage_opt = R"({"stream_options":{"include_usage":true}})";

  // 1. Asked for: the usage chunk ends the stream, on the miss and on hits.
  std::string p = UniquePrompt("usage");
  auto first = gw->Chat(ChatBody(p, true, "llama3", usage_opt));
  ASSERT_EQ(first.Cache(), "miss") << first.Describe();
  EXPECT_TRUE(EndsWithUsageChunk(first)) << first.body;
  Answer a1 = ParseAnswer(first);
  ASSERT_TRUE(a1.ok && a1.usage) << a1.problem;

  auto without = gw->Chat(ChatBody(p, true));
  EXPECT_EQ(without.Cache(), "hit") << "stream_options is not part of the key";
  EXPECT_FALSE(AnyUsage(without)) << without.body;
  EXPECT_EQ(ContentOf(without), a1.content);

  auto again = gw->Chat(ChatBody(p, true, "llama3", usage_opt));
  EXPECT_EQ(again.Cache(), "hit");
  EXPECT_TRUE(EndsWithUsageChunk(again)) << again.body;
  Answer a2 = ParseAnswer(again);
  ASSERT_TRUE(a2.ok && a2.usage) << a2.problem;
  EXPECT_EQ(boost::json::serialize(*a2.usage), boost::json::serialize(*a1.usage));

  // 2. Not asked for: the client sees none, but the gateway asked the
  // upstream for it, so a later client that wants it gets it from the cache.
  std::string q = UniquePrompt("no usage");
  auto plain_stream = gw->Chat(ChatBody(q, true));
  ASSERT_EQ(plain_stream.Cache(), "miss") << plain_stream.Describe();
  EXPECT_FALSE(AnyUsage(plain_stream)) << plain_stream.body;
  auto stats = upstream().Stats();
  const auto& sent = stats.at("last_body").as_object();
  ASSERT_TRUE(sent.contains("stream_options")) << boost::json::serialize(sent);
  EXPECT_EQ(sent.at("stream_options").at("include_usage"), true);
  auto wants = gw->Chat(ChatBody(q, true, "llama3", usage_opt));
  EXPECT_EQ(wants.Cache(), "hit");
  EXPECT_TRUE(EndsWithUsageChunk(wants)) << wants.body;
  auto whole = gw->Chat(ChatBody(q));
  EXPECT_EQ(whole.Cache(), "hit");
  Answer aw = ParseAnswer(whole);
  ASSERT_TRUE(aw.ok) << aw.problem;
  EXPECT_TRUE(aw.usage) << whole.body;

  // 3. A whole answer replayed as a stream with include_usage.
  std::string r = UniquePrompt("whole then usage");
  auto w = gw->Chat(ChatBody(r));
  ASSERT_EQ(w.Cache(), "miss");
  auto ws = gw->Chat(ChatBody(r, true, "llama3", usage_opt));
  EXPECT_EQ(ws.Cache(), "hit");
  EXPECT_TRUE(EndsWithUsageChunk(ws)) << ws.body;
  Answer aws = ParseAnswer(ws);
  ASSERT_TRUE(aws.ok && aws.usage) << aws.problem;
  EXPECT_EQ(boost::json::serialize(*aws.usage), boost::json::serialize(*ParseAnswer(w).usage));
  EXPECT_EQ(upstream().Calls(), 3);
}

TEST_F(E2eStreaming, LegacyCompletionsStreamAndWhole) {
  auto gw = StartGateway();
  ASSERT_TRUE(gw);
  std::string p = UniquePrompt("legacy");
  auto s = gw->Post("/v1/completions", CompletionBody(p, true));
  ASSERT_EQ(s.status, 200) << s.Describe();
  EXPECT_EQ(s.Cache(), "miss");
  EXPECT_TRUE(EndsWithDone(s.body));
  Answer as = ParseAnswer(s);
  ASSERT_TRUE(as.ok) << as.problem;
  auto w = gw->Post("/v1/completions", CompletionBody(p));
  EXPECT_EQ(w.Cache(), "hit");
  Answer aw = ParseAnswer(w);
  ASSERT_TRUE(aw.ok) << aw.problem;
  EXPECT_EQ(aw.content, as.content);
  EXPECT_EQ(w.Json().at("object").as_string(), "text_completion");
  EXPECT_EQ(upstream().Calls("/v1/completions"), 1);
}

}  // namespace
}  // namespace llmcache::e2e
