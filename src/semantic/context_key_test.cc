#include "semantic/context_key.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace llmcache::semantic {
namespace {

namespace json = boost::json;

SemanticQuery Split(std::string_view body, std::string_view ns = "t", std::string_view rev = "") {
  SemanticKey key{ns, "m", rev, Route::kChat};
  return SplitRequest(json::parse(body), key, SplitOptions{});
}

constexpr char kBase[] =
    R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"How do I apply for paid leave?"}],"model":"m","temperature":0})";

TEST(ContextKey, FinalUserTextIsMatchedTheRestIsContext) {
  SemanticQuery q = Split(kBase);
  ASSERT_TRUE(q.eligible) << q.reason;
  EXPECT_EQ(q.text, "How do I apply for paid leave?");
  EXPECT_EQ(q.words, 7u);
  EXPECT_EQ(q.context_key.size(), 64u);
  // Another question in the same context: same key.
  SemanticQuery other = Split(
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"paid leave request steps"}],"model":"m","temperature":0})");
  EXPECT_EQ(other.context_key, q.context_key);
  // Fields that never change the answer do not split contexts.
  SemanticQuery with_user = Split(
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"x"}],"model":"m","temperature":0,"user":"u1","stream":true})");
  EXPECT_EQ(with_user.context_key, q.context_key);
}

TEST(ContextKey, EverythingElseChangesTheKey) {
  const std::string base = Split(kBase).context_key;
  const char* variants[] = {
      R"({"messages":[{"role":"system","content":"be verbose"},{"role":"user","content":"How do I apply for paid leave?"}],"model":"m","temperature":0})",
      R"({"messages":[{"role":"user","content":"How do I apply for paid leave?"}],"model":"m","temperature":0})",
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"How do I apply for paid leave?"}],"model":"m","temperature":0})",
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"How do I apply for paid leave?"}],"model":"m","temperature":0.7})",
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"How do I apply for paid leave?"}],"model":"m","temperature":0,"tools":[{"type":"function","function":{"name":"f"}}]})",
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"How do I apply for paid leave?"}],"model":"m","temperature":0,"tool_choice":"none"})",
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"How do I apply for paid leave?"}],"model":"m","temperature":0,"response_format":{"type":"json_object"}})",
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","name":"bob","content":"How do I apply for paid leave?"}],"model":"m","temperature":0})",
  };
  for (const char* v : variants) {
    SemanticQuery q = Split(v);
    ASSERT_TRUE(q.eligible) << v;
    EXPECT_NE(q.context_key, base) << v;
  }
  EXPECT_NE(Split(kBase, "other-ns").context_key, base);
  EXPECT_NE(Split(kBase, "t", "rev2").context_key, base);
  SemanticKey other_model{"t", "m2", "", Route::kChat};
  EXPECT_NE(SplitRequest(json::parse(kBase), other_model, {}).context_key, base);
}

TEST(ContextKey, TextPartsAreJoined) {
  SemanticQuery q = Split(
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"paid"},{"type":"text","text":"leave"}]}]})");
  ASSERT_TRUE(q.eligible) << q.reason;
  EXPECT_EQ(q.text, "paid\nleave");
}

TEST(ContextKey, UnmatchableRequestsAreExactOnly) {
  struct Case {
    const char* body;
    const char* reason;
  } cases[] = {
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})",
       "non_text"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"input_audio","input_audio":{}}]}]})",
       "non_text"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"x"}]})",
       "last_not_user"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"1","content":"x"}]})",
       "last_not_user"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi","tool_calls":[]}]})",
       "message_fields"},
      {R"({"model":"m","messages":[{"role":"user","content":"   "}]})", "empty"},
      {R"({"model":"m","messages":[{"role":"user","content":null}]})", "empty"},
      {R"({"model":"m","messages":[]})", "invalid"},
      {R"([1])", "invalid"},
  };
  for (const auto& c : cases) {
    SemanticQuery q = Split(c.body);
    EXPECT_FALSE(q.eligible) << c.body;
    EXPECT_EQ(q.reason, c.reason) << c.body;
    EXPECT_EQ(q.ns, "t");
  }
  std::string long_text(1001, 'a');
  SemanticQuery q =
      Split(R"({"model":"m","messages":[{"role":"user","content":")" + long_text + R"("}]})");
  EXPECT_EQ(q.reason, "too_long");
  SemanticKey completions{"t", "m", "", Route::kCompletions};
  EXPECT_EQ(SplitRequest(json::parse(kBase), completions, {}).reason, "route");
  SplitOptions off;
  off.enabled = false;
  EXPECT_EQ(SplitRequest(json::parse(kBase), {"t", "m", "", Route::kChat}, off).reason, "disabled");
}

TEST(ContextKey, CountsWords) {
  EXPECT_EQ(CountWords("paid leave request steps"), 4u);
  EXPECT_EQ(CountWords("  a\tb\n"), 2u);
  EXPECT_EQ(CountWords(""), 0u);
  // Japanese has no spaces: about two characters a word.
  EXPECT_EQ(CountWords("有給休暇の申請方法"), 5u);
  EXPECT_EQ(CountCodePoints("有給"), 2u);
}

}  // namespace
}  // namespace llmcache::semantic
