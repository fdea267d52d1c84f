#include "semantic/warm.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>
#include <sstream>

#include "semantic/fake_http_test_util.h"

namespace llmcache::semantic {
namespace {

namespace json = boost::json;
using testing::FakeAnswer;
using testing::FakeHttpServer;
using testing::SeenRequest;

TEST(WarmParseTest, QueryLines) {
  auto q =
      ParseQueryLogLine(R"({"query":"How do I reset my password?","model":"m","namespace":"faq"})");
  ASSERT_TRUE(q.has_value()) << q.error().ToString();
  EXPECT_EQ(q->text, "How do I reset my password?");
  EXPECT_EQ(q->model, "m");
  EXPECT_EQ(q->ns, "faq");
  EXPECT_TRUE(q->body.empty());
  q = ParseQueryLogLine(R"({"query":"hi"})");
  ASSERT_TRUE(q.has_value());
  EXPECT_TRUE(q->model.empty() && q->ns.empty());
  EXPECT_FALSE(ParseQueryLogLine(R"({"query":""})").has_value());
  EXPECT_FALSE(ParseQueryLogLine(R"({"query":42})").has_value());
  EXPECT_FALSE(ParseQueryLogLine("not json").has_value());
  EXPECT_FALSE(ParseQueryLogLine("[1,2]").has_value());
}

TEST(WarmParseTest, ChatBodies) {
  auto a = ParseQueryLogLine(
      R"({"model":"m","namespace":"hr","messages":[{"role":"system","content":"Be brief."},)"
      R"({"role":"user","content":[{"type":"text","text":"paid leave?"}]}],"temperature":0})");
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  EXPECT_EQ(a->text, "paid leave?");
  EXPECT_EQ(a->model, "m");
  EXPECT_EQ(a->ns, "hr");
  EXPECT_EQ(a->body.find("namespace"), std::string::npos) << "travels as a header, not in the body";
  EXPECT_NE(a->body.find("paid leave?"), std::string::npos);
  EXPECT_EQ(a->context.find("paid leave?"), std::string::npos) << "the question is not context";
  EXPECT_NE(a->context.find("Be brief."), std::string::npos);

  // Same question under another system prompt: another context.
  auto b =
      ParseQueryLogLine(R"({"model":"m","messages":[{"role":"system","content":"Be verbose."},)"
                        R"({"role":"user","content":"paid leave?"}],"temperature":0})");
  ASSERT_TRUE(b.has_value());
  EXPECT_NE(a->context, b->context);

  EXPECT_FALSE(ParseQueryLogLine(R"({"model":"m","messages":[]})").has_value());
  EXPECT_FALSE(
      ParseQueryLogLine(
          R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})")
          .has_value())
      << "the last message must be the question";
  EXPECT_FALSE(
      ParseQueryLogLine(
          R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})")
          .has_value())
      << "non-text parts cannot be clustered by text";
}

TEST(WarmParseTest, NormalizeQuestion) {
  EXPECT_EQ(NormalizeQuestion("  How do I   Reset my password?? "), "how do i reset my password");
  EXPECT_EQ(NormalizeQuestion("有給休暇の申請方法は？"), "有給休暇の申請方法は");
  EXPECT_EQ(NormalizeQuestion("終わり。"), "終わり");
  EXPECT_EQ(NormalizeQuestion("USD to EUR"), "usd to eur");
  EXPECT_NE(NormalizeQuestion("USD to EUR"), NormalizeQuestion("EUR to USD"));
}

LoggedQuery Q(std::string text, std::string ns = "faq", std::string model = "m") {
  LoggedQuery q;
  q.text = std::move(text);
  q.model = std::move(model);
  q.ns = std::move(ns);
  return q;
}

TEST(WarmClusterTest, ExactRepeatsOnlyWithoutEmbedderOrGuard) {
  std::vector<LoggedQuery> log = {Q("Reset password?"),      Q("reset   password"),
                                  Q("paid leave"),           Q("Reset password"),
                                  Q("reset password", "hr"), Q("how to take paid vacation")};
  ClusterResult r = ClusterQueries(log, {});
  EXPECT_EQ(r.distinct, 4u);
  ASSERT_EQ(r.clusters.size(), 4u);
  EXPECT_EQ(r.clusters[0].representative.text, "Reset password?") << "most frequent first";
  EXPECT_EQ(r.clusters[0].count, 3u);
  EXPECT_EQ(r.clusters[0].variants, 1u);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(r.clusters[i].count, 1u);
  // Ties keep log order: deterministic.
  EXPECT_EQ(r.clusters[1].representative.text, "paid leave");
  EXPECT_EQ(r.clusters[2].representative.ns, "hr") << "namespaces never merge";
}

// Vectors chosen by the test; texts it does not know fail the call.
class TableEmbedder final : public Embedder {
 public:
  explicit TableEmbedder(std::map<std::string, std::vector<float>> table)
      : table_(std::move(table)) {}
  size_t dimension() const override { return 2; }
  std::string_view id() const override { return "table"; }
  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) override {
    std::vector<std::vector<float>> out;
    for (const std::string& t : texts) {
      auto it = table_.find(t);
      if (it == table_.end()) return Err(Status::Unavailable("no vector for " + t));
      out.push_back(it->second);
    }
    return out;
  }

 private:
  std::map<std::string, std::vector<float>> table_;
};

// Refuses pairs where one side says "sick" and the other does not.
class SickGuard final : public LexicalGuard {
 public:
  GuardVerdict Check(std::string_view a, std::string_view b) const override {
    const bool sa = a.find("sick") != std::string_view::npos;
    const bool sb = b.find("sick") != std::string_view::npos;
    if (sa != sb) return {false, "content_word", "sick"};
    return {true, "", ""};
  }
};

TEST(WarmClusterTest, ParaphrasesMergeOnlyAboveTheCosineAndPastTheGuard) {
  TableEmbedder embedder({{"paid leave", {1, 0}},
                          {"how to take paid vacation", {0.95f, 0.3122f}},
                          {"sick leave", {0.99f, 0.1411f}},  // close, but the guard refuses
                          {"weather", {0, 1}},
                          {"reset password", {0.6f, 0.8f}}});
  SickGuard guard;
  std::vector<LoggedQuery> log = {
      Q("paid leave"),    Q("paid leave"), Q("how to take paid vacation"),
      Q("sick leave"),    Q("weather"),    Q("reset password"),
      Q("reset password")};
  ClusterOptions o;
  o.embedder = &embedder;
  o.guard = &guard;
  o.min_cosine = 0.9;
  ClusterResult r = ClusterQueries(log, o);
  EXPECT_TRUE(r.embed_error.empty()) << r.embed_error;
  EXPECT_EQ(r.distinct, 5u);
  ASSERT_EQ(r.clusters.size(), 4u);
  EXPECT_EQ(r.clusters[0].representative.text, "paid leave");
  EXPECT_EQ(r.clusters[0].count, 3u);
  EXPECT_EQ(r.clusters[0].variants, 2u);
  EXPECT_EQ(r.clusters[1].representative.text, "reset password");
  std::set<std::string> singles = {r.clusters[2].representative.text,
                                   r.clusters[3].representative.text};
  EXPECT_EQ(singles, (std::set<std::string>{"sick leave", "weather"}));

  // A stricter cosine keeps the paraphrase apart.
  o.min_cosine = 0.99;
  EXPECT_EQ(ClusterQueries(log, o).clusters.size(), 5u);
  // No guard: exact repeats only, whatever the embeddings say.
  o.min_cosine = 0.5;
  o.guard = nullptr;
  EXPECT_EQ(ClusterQueries(log, o).clusters.size(), 5u);
}

TEST(WarmClusterTest, EmbedderFailureFallsBackToExactRepeats) {
  TableEmbedder embedder({});  // knows no text
  SickGuard guard;
  ClusterOptions o;
  o.embedder = &embedder;
  o.guard = &guard;
  ClusterResult r = ClusterQueries({Q("a"), Q("b"), Q("a")}, o);
  EXPECT_NE(r.embed_error.find("no vector"), std::string::npos);
  ASSERT_EQ(r.clusters.size(), 2u);
  EXPECT_EQ(r.clusters[0].count, 2u);
}

// A stand-in gateway: the first request for a body is a miss (filled from
// the "upstream"), a repeat is a hit; questions containing "boom" fail.
class FakeGateway {
 public:
  FakeGateway()
      : server_([this](const SeenRequest& r) -> FakeAnswer {
          if (r.body.find("boom") != std::string::npos) {
            return {502, R"({"error":{"message":"upstream exploded"}})"};
          }
          std::lock_guard lock(mu_);
          const bool hit = !cached_.insert(r.ns + "|" + r.body).second;
          return {200,
                  R"({"choices":[{"message":{"content":"ok"}}]})",
                  {{"x-llmcache", hit ? "hit" : "miss"}}};
        }) {}
  FakeHttpServer& server() { return server_; }

 private:
  std::mutex mu_;
  std::set<std::string> cached_;
  FakeHttpServer server_;
};

const char* kLog = R"({"query":"How do I reset my password?","namespace":"faq"})"
                   "\n"
                   R"({"query":"how do i reset my password","namespace":"faq"})"
                   "\n"
                   R"({"query":"How do I reset my password?","namespace":"faq"})"
                   "\n"
                   "\n"
                   R"({"model":"gpt-x","messages":[{"role":"user","content":"paid leave steps"}]})"
                   "\n"
                   R"({"model":"gpt-x","messages":[{"role":"user","content":"paid leave steps"}]})"
                   "\n"
                   R"({"query":"boom question"})"
                   "\n"
                   R"({"query":"boom question"})"
                   "\n"
                   R"({"query":"rare question"})"
                   "\n"
                   "garbage line\n";

TEST(WarmRunTest, SendsTheTopClustersThroughTheGateway) {
  FakeGateway gateway;
  WarmOptions o;
  o.gateway_url = gateway.server().base_url();
  o.model = "default-model";
  o.top = 3;
  o.api_key = "sk-gw";
  std::istringstream log(kLog);
  std::ostringstream out, err;
  WarmSummary s;
  EXPECT_EQ(RunWarm(o, log, out, err, &s), 1) << "one request failed";
  EXPECT_EQ(s.lines, 9u);
  EXPECT_EQ(s.skipped, 1u);
  EXPECT_EQ(s.distinct, 4u);
  EXPECT_EQ(s.chosen, 3u);
  EXPECT_EQ(s.covered, 7u);
  EXPECT_EQ(s.filled, 2u);
  EXPECT_EQ(s.already_cached, 0u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_NE(err.str().find("upstream exploded"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("line 10 skipped"), std::string::npos) << err.str();
  EXPECT_NE(out.str().find("2 filled, 0 already cached, 1 failed"), std::string::npos) << out.str();

  const auto seen = gateway.server().seen();
  ASSERT_EQ(seen.size(), 3u) << "one request per chosen cluster, the rare one left out";
  EXPECT_EQ(seen[0].target, "/v1/chat/completions");
  EXPECT_EQ(seen[0].ns, "faq");
  EXPECT_EQ(seen[0].authorization, "Bearer sk-gw");
  json::value first = json::parse(seen[0].body);
  EXPECT_EQ(first.at("model").as_string(), "default-model") << "--model fills in";
  EXPECT_EQ(first.at("messages").as_array()[0].at("content").as_string(),
            "How do I reset my password?");
  json::value chat = json::parse(seen[1].body);
  EXPECT_EQ(chat.at("model").as_string(), "gpt-x") << "a logged chat body is replayed as is";
  EXPECT_TRUE(seen[1].ns.empty());

  // A second run finds everything that worked already cached.
  std::istringstream again(kLog);
  out.str("");
  err.str("");
  EXPECT_EQ(RunWarm(o, again, out, err, &s), 1);
  EXPECT_EQ(s.filled, 0u);
  EXPECT_EQ(s.already_cached, 2u);
  EXPECT_EQ(s.failed, 1u);
}

TEST(WarmRunTest, DryRunPrintsThePlanAndSendsNothing) {
  FakeGateway gateway;
  WarmOptions o;
  o.gateway_url = gateway.server().base_url();
  o.top = 2;
  o.dry_run = true;  // no --model: lines without one are skipped
  std::istringstream log(kLog);
  std::ostringstream out, err;
  WarmSummary s;
  EXPECT_EQ(RunWarm(o, log, out, err, &s), 0) << err.str();
  EXPECT_EQ(gateway.server().count(), 0u);
  EXPECT_EQ(s.skipped, 7u);
  EXPECT_NE(out.str().find("2\t1\tgpt-x\t\tpaid leave steps\n"), std::string::npos) << out.str();
  EXPECT_NE(err.str().find("no model"), std::string::npos);
}

TEST(WarmRunTest, UnreachableGatewayCountsFailures) {
  std::string url;
  {
    url = FakeHttpServer([](const SeenRequest&) { return FakeAnswer{}; }).base_url();
  }
  WarmOptions o;
  o.gateway_url = url;
  o.model = "m";
  std::istringstream log(R"({"query":"q"})");
  std::ostringstream out, err;
  WarmSummary s;
  EXPECT_EQ(RunWarm(o, log, out, err, &s), 1);
  EXPECT_EQ(s.failed, 1u);
  o.gateway_url = "not a url";
  EXPECT_EQ(RunWarm(o, log, out, err), 2);
}

}  // namespace
}  // namespace llmcache::semantic
