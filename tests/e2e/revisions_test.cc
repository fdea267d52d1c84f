// A model revision change (the upstream's /api/tags digest) makes new keys,
// so the old model's answers are never served for the new one; a configured
// revision overrides detection.
#include "e2e/fixture.h"

namespace llmcache::e2e {
namespace {

class E2eRevisions : public E2eTest {
 protected:
  static std::string DetectedRevision(const TestGateway& gw, const std::string& model) {
    auto s = gw.AdminStats();
    const auto* revs = s.if_contains("model_revisions");
    if (!revs || !revs->is_object()) return {};
    const auto* r = revs->as_object().if_contains(model);
    return r && r->is_string() ? std::string(r->as_string()) : std::string();
  }
};

const std::string kOldDigest = "sha256:" + std::string(64, 'a');
const std::string kNewDigest = "sha256:bbbbbb" + std::string(58, '1');
const std::string kNewRev = " rev:bbbbbb";  // what the fake appends for kNewDigest

TEST_F(E2eRevisions, DigestChangeMakesNewKeysAndNeverServesTheOldAnswer) {
  auto o = Options();
  o.detect_model_revisions = true;
  o.revision_poll_ms = 100;
  auto gw = StartGateway(o, StoreKind::kMemory);
  ASSERT_TRUE(gw);
  EXPECT_EQ(DetectedRevision(*gw, "llama3:latest"), kOldDigest) << "the initial poll did not run";
  std::string prompt = UniquePrompt("revision");
  std::string body = ChatBody(prompt);
  auto first = gw->Chat(body);
  ASSERT_EQ(first.Cache(), "miss") << first.Describe();
  std::string old_content = ContentOf(first);
  EXPECT_EQ(old_content.find(" rev:"), std::string::npos);
  EXPECT_EQ(gw->Chat(body).Cache(), "hit");

  ASSERT_TRUE(upstream().Config(R"({"digests":{"llama3":")" + kNewDigest + R"("}})"));
  // Until the gateway polls, the old entry may still be served; the first
  // miss must be the new model's answer, and from then on only that.
  HttpResponse miss;
  bool changed = WaitFor(
      [&] {
        auto r = gw->Chat(body);
        if (r.status != 200) {
          ADD_FAILURE() << r.Describe();
          return true;
        }
        std::string content = ContentOf(r);
        if (r.Cache() == "hit") {
          EXPECT_EQ(content, old_content) << "a hit served something else";
          return false;
        }
        miss = r;
        return true;
      },
      5s, 50ms);
  ASSERT_TRUE(changed) << "the digest change was not picked up within 5 s";
  ASSERT_EQ(miss.Cache(), "miss");
  std::string new_content = ContentOf(miss);
  EXPECT_NE(new_content.find(kNewRev), std::string::npos) << new_content;
  EXPECT_NE(miss.Header("x-llmcache-key"), first.Header("x-llmcache-key"));
  EXPECT_EQ(DetectedRevision(*gw, "llama3:latest"), kNewDigest);
  for (int i = 0; i < 5; ++i) {
    auto r = gw->Chat(body);
    EXPECT_EQ(r.Cache(), "hit");
    EXPECT_EQ(ContentOf(r), new_content) << "the old model's answer came back";
  }
  // A stream of the same request: the new answer too.
  auto s = gw->Chat(ChatBody(prompt, true));
  EXPECT_EQ(s.Cache(), "hit");
  EXPECT_EQ(ContentOf(s), new_content);

  // Changing back is a change too: the old entry is reachable again.
  ASSERT_TRUE(upstream().Config(R"({"digests":{"llama3":")" + kOldDigest + R"("}})"));
  ASSERT_TRUE(WaitFor([&] { return DetectedRevision(*gw, "llama3:latest") == kOldDigest; }, 5s));
  auto back = gw->Chat(body);
  EXPECT_EQ(back.Cache(), "hit");
  EXPECT_EQ(ContentOf(back), old_content);
  EXPECT_EQ(upstream().Calls(), 2);
}

TEST_F(E2eRevisions, ConfiguredRevisionOverridesDetection) {
  auto o = Options();
  o.detect_model_revisions = true;
  o.revision_poll_ms = 100;
  o.models["test-model"].revision = "pinned-r1";
  auto gw = StartGateway(o, StoreKind::kMemory);
  ASSERT_TRUE(gw);
  std::string pinned = ChatBody(UniquePrompt("pinned"), false, "test-model");
  std::string detected = ChatBody(UniquePrompt("detected"), false, "llama3");
  auto p1 = gw->Chat(pinned);
  auto d1 = gw->Chat(detected);
  ASSERT_EQ(p1.Cache(), "miss") << p1.Describe();
  ASSERT_EQ(d1.Cache(), "miss") << d1.Describe();
  EXPECT_EQ(DetectedRevision(*gw, "test-model"), "pinned-r1");

  ASSERT_TRUE(upstream().Config(R"({"digests":{"llama3":")" + kNewDigest +
                                R"(","test-model":")" + kNewDigest + R"("}})"));
  // llama3's revision shows that the gateway has polled since the change.
  ASSERT_TRUE(WaitFor([&] { return DetectedRevision(*gw, "llama3:latest") == kNewDigest; }, 5s))
      << "the digest change was not picked up within 5 s";
  EXPECT_EQ(DetectedRevision(*gw, "test-model"), "pinned-r1");

  auto p2 = gw->Chat(pinned);
  EXPECT_EQ(p2.Cache(), "hit") << "a configured revision must not follow the upstream digest";
  EXPECT_EQ(p2.Header("x-llmcache-key"), p1.Header("x-llmcache-key"));
  EXPECT_EQ(p2.body, p1.body);
  auto d2 = gw->Chat(detected);
  EXPECT_EQ(d2.Cache(), "miss");
  EXPECT_NE(ContentOf(d2).find(kNewRev), std::string::npos);
  EXPECT_EQ(upstream().Calls(), 3);
}

}  // namespace
}  // namespace llmcache::e2e
