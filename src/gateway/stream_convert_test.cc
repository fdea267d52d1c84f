#include "gateway/stream_convert.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>
#include <vector>

namespace llmcache::gateway {
namespace {

namespace json = boost::json;

// The same JSON in Boost's serialization, so tests can compare strings.
std::string Norm(std::string_view s) { return json::serialize(json::parse(s)); }

std::string Assemble(Route route, const std::vector<std::string>& events) {
  auto r = AssembleFromStream(route, events);
  EXPECT_TRUE(r.has_value()) << r.error();
  return r.value_or("<error>");
}

std::vector<std::string> Synthesize(Route route, std::string_view body) {
  auto r = SynthesizeStream(route, body);
  EXPECT_TRUE(r.has_value()) << r.error();
  return r.value_or(std::vector<std::string>{});
}

// A realistic OpenAI stream: two parallel tool calls, then a usage chunk.
const std::vector<std::string> kToolCallStream = {
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}],"usage":null})",
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"loc"}}]},"logprobs":null,"finish_reason":null}],"usage":null})",
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ation\": \"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null})",
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null})",
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]},"logprobs":null,"finish_reason":null}],"usage":null})",
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null})",
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":40,"total_tokens":122,"prompt_tokens_details":{"cached_tokens":0}}})",
};

TEST(AssembleTest, ToolCallStream) {
  EXPECT_EQ(
      Assemble(Route::kChat, kToolCallStream),
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,)"
      R"("tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather",)"
      R"("arguments":"{\"location\": \"Paris\"}"}},{"id":"call_b","type":"function",)"
      R"("function":{"name":"get_time","arguments":"{}"}}]},"logprobs":null,)"
      R"("finish_reason":"tool_calls"}],"usage":{"prompt_tokens":82,"completion_tokens":40,)"
      R"("total_tokens":122,"prompt_tokens_details":{"cached_tokens":0}},)"
      R"("system_fingerprint":"fp_1"})");
}

TEST(AssembleTest, TextStreamWithTwoChoicesOutOfOrder) {
  const std::vector<std::string> events = {
      R"({"id":"c","object":"chat.completion.chunk","created":5,"model":"llama3","choices":[{"index":1,"delta":{"role":"assistant","content":""},"finish_reason":null}]})",
      R"({"id":"c","object":"chat.completion.chunk","created":5,"model":"llama3","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]})",
      R"({"id":"c","object":"chat.completion.chunk","created":5,"model":"llama3","choices":[{"index":1,"delta":{"content":"Bye"},"finish_reason":null}]})",
      R"({"id":"c","object":"chat.completion.chunk","created":5,"model":"llama3","choices":[{"index":0,"delta":{"content":"lo \u00e9"},"finish_reason":null}]})",
      R"({"id":"c","object":"chat.completion.chunk","created":5,"model":"llama3","choices":[{"index":0,"delta":{},"finish_reason":"stop"},{"index":1,"delta":{},"finish_reason":"length"}]})",
  };
  EXPECT_EQ(Assemble(Route::kChat, events),
            R"({"id":"c","object":"chat.completion","created":5,"model":"llama3","choices":[)"
            R"({"index":0,"message":{"role":"assistant","content":"Hello é"},"logprobs":null,)"
            R"("finish_reason":"stop"},)"
            R"({"index":1,"message":{"role":"assistant","content":"Bye"},"logprobs":null,)"
            R"("finish_reason":"length"}]})");
}

TEST(AssembleTest, ReasoningLogprobsAndLegacyFunctionCall) {
  const std::vector<std::string> events = {
      R"({"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Think"},"logprobs":{"content":[{"token":"a","logprob":-0.5}]},"finish_reason":null,"stop_reason":null}]})",
      R"({"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"ing","function_call":{"name":"f","arguments":"{\"a\""}},"logprobs":{"content":[{"token":"b","logprob":-0.25}]},"finish_reason":null}]})",
      R"({"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"function_call":{"arguments":":1}"}},"logprobs":null,"finish_reason":"function_call","stop_reason":42}]})",
  };
  const std::string out = Assemble(Route::kChat, events);
  EXPECT_EQ(out, Norm(R"({"id":"c","object":"chat.completion","created":5,"model":"m","choices":[
      {"index":0,"message":{"role":"assistant","content":null,"reasoning_content":"Thinking",
       "function_call":{"name":"f","arguments":"{\"a\":1}"}},
       "logprobs":{"content":[{"token":"a","logprob":-0.5},{"token":"b","logprob":-0.25}]},
       "finish_reason":"function_call","stop_reason":42}]})"));
}

TEST(AssembleTest, Completions) {
  const std::vector<std::string> events = {
      R"({"id":"cmpl-1","object":"text_completion","created":9,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"Once","index":0,"logprobs":null,"finish_reason":null}]})",
      R"({"id":"cmpl-1","object":"text_completion","created":9,"model":"gpt-3.5-turbo-instruct","choices":[{"text":" upon","index":0,"logprobs":null,"finish_reason":null}]})",
      R"({"id":"cmpl-1","object":"text_completion","created":9,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}]})",
      R"({"id":"cmpl-1","object":"text_completion","created":9,"model":"gpt-3.5-turbo-instruct","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
  };
  EXPECT_EQ(Assemble(Route::kCompletions, events),
            R"({"id":"cmpl-1","object":"text_completion","created":9,)"
            R"("model":"gpt-3.5-turbo-instruct","choices":[{"text":"Once upon","index":0,)"
            R"("logprobs":null,"finish_reason":"length"}],)"
            R"("usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
}

TEST(AssembleTest, Errors) {
  EXPECT_FALSE(AssembleFromStream(Route::kEmbeddings, {R"({"object":"list"})"}).has_value());
  EXPECT_FALSE(AssembleFromStream(Route::kChat, {}).has_value());
  EXPECT_FALSE(AssembleFromStream(Route::kChat, {"not json"}).has_value());
  EXPECT_FALSE(AssembleFromStream(Route::kChat, {"[1]"}).has_value());
  EXPECT_FALSE(AssembleFromStream(Route::kChat, {R"({"error":{"message":"boom"}})"}).has_value());
  EXPECT_FALSE(AssembleFromStream(Route::kChat, {R"({"object":"text_completion","choices":[]})"})
                   .has_value());
  EXPECT_FALSE(AssembleFromStream(Route::kChat, {R"({"choices":{}})"}).has_value());
  EXPECT_FALSE(AssembleFromStream(Route::kChat, {R"({"choices":[{"index":-1}]})"}).has_value());
  EXPECT_FALSE(
      AssembleFromStream(Route::kChat, {R"({"choices":[{"delta":{"content":1}}]})"}).has_value());
  EXPECT_FALSE(AssembleFromStream(Route::kChat, {R"({"choices":[{"delta":{"content":"a"}}]})",
                                                 R"({"choices":[{"delta":{"content":[1]}}]})"})
                   .has_value());
  EXPECT_FALSE(AssembleFromStream(Route::kChat, {R"({"choices":[],"usage":5})"}).has_value());
  EXPECT_FALSE(AssembleFromStream(
                   Route::kChat,
                   {R"({"choices":[{"delta":{"tool_calls":[{"function":{"arguments":7}}]}}]})"})
                   .has_value());
}

// --- Synthesize ------------------------------------------------------------

const char kChatBody[] =
    R"({"id":"chatcmpl-9","object":"chat.completion","created":1700000001,"model":"gpt-4o",)"
    R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hello there!","refusal":null},)"
    R"("logprobs":null,"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12},)"
    R"("system_fingerprint":"fp_9"})";

TEST(SynthesizeTest, ChatChunksLookLikeOpenAI) {
  const std::vector<std::string> chunks = Synthesize(Route::kChat, kChatBody);
  const std::string head =
      R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1700000001,"model":"gpt-4o",)"
      R"("system_fingerprint":"fp_9",)";
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0], head + R"("choices":[{"index":0,"delta":{"role":"assistant","content":"",)"
                              R"("refusal":null},"logprobs":null,"finish_reason":null}]})");
  EXPECT_EQ(chunks[1], head + R"("choices":[{"index":0,"delta":{"content":"Hello there!"},)"
                              R"("logprobs":null,"finish_reason":null}]})");
  EXPECT_EQ(chunks[2], head + R"("choices":[{"index":0,"delta":{},"logprobs":null,)"
                              R"("finish_reason":"stop"}]})");
  EXPECT_EQ(chunks[3], head + R"("choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,)"
                              R"("total_tokens":12}})");
}

TEST(SynthesizeTest, ChatRoundTrip) {
  EXPECT_EQ(Assemble(Route::kChat, Synthesize(Route::kChat, kChatBody)), kChatBody);
}

TEST(SynthesizeTest, ToolCallRoundTrip) {
  const std::string body = Assemble(Route::kChat, kToolCallStream);
  const std::vector<std::string> chunks = Synthesize(Route::kChat, body);
  // open, two tool calls, close, usage
  ASSERT_EQ(chunks.size(), 5u);
  EXPECT_NE(chunks[0].find(R"("delta":{"role":"assistant","content":null,"refusal":null})"),
            std::string::npos)
      << chunks[0];
  EXPECT_NE(chunks[2].find(R"("tool_calls":[{"index":1,"id":"call_b","type":"function",)"
                           R"("function":{"name":"get_time","arguments":"{}"}}])"),
            std::string::npos)
      << chunks[2];
  EXPECT_EQ(Assemble(Route::kChat, chunks), body);
}

TEST(SynthesizeTest, LogprobsAndExtrasRoundTrip) {
  const std::string body = Norm(R"({"id":"x","object":"chat.completion","created":1,"model":"m",
      "choices":[
        {"index":0,"message":{"role":"assistant","content":"ab","reasoning":"why","annotations":[]},
         "logprobs":{"content":[{"token":"a","logprob":-0.1234567890123,"bytes":[97],"top_logprobs":[]},
                                {"token":"b","logprob":-3.3e-7,"bytes":[98],"top_logprobs":[]}],
                     "refusal":null},
         "finish_reason":"stop","stop_reason":null},
        {"index":1,"message":{"role":"assistant","content":""},"logprobs":null,"finish_reason":"length"}]})");
  const std::string out = Assemble(Route::kChat, Synthesize(Route::kChat, body));
  EXPECT_EQ(out, body);
}

TEST(SynthesizeTest, CompletionsRoundTrip) {
  const std::string body =
      Norm(R"({"id":"cmpl-2","object":"text_completion","created":3,"model":"m",
      "choices":[{"text":"\n\nThis is indeed a test","index":0,
                  "logprobs":{"tokens":["\n","This"],"token_logprobs":[-0.5,-1.25],
                              "top_logprobs":null,"text_offset":[0,1]},
                  "finish_reason":"length"}],
      "usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}})");
  const std::vector<std::string> chunks = Synthesize(Route::kCompletions, body);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_NE(chunks[0].find(R"("object":"text_completion")"), std::string::npos);
  EXPECT_EQ(Assemble(Route::kCompletions, chunks), body);
}

TEST(SynthesizeTest, NoUsageNoUsageChunk) {
  const char body[] =
      R"({"id":"a","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"x"},"finish_reason":"stop"}]})";
  const auto chunks = Synthesize(Route::kChat, body);
  ASSERT_EQ(chunks.size(), 3u);
  for (const auto& c : chunks) EXPECT_EQ(c.find("usage"), std::string::npos) << c;
}

TEST(SynthesizeTest, Errors) {
  EXPECT_FALSE(SynthesizeStream(Route::kEmbeddings, R"({"object":"list","data":[]})").has_value());
  EXPECT_FALSE(SynthesizeStream(Route::kChat, "").has_value());
  EXPECT_FALSE(SynthesizeStream(Route::kChat, "{").has_value());
  EXPECT_FALSE(SynthesizeStream(Route::kChat, R"({"error":{"message":"x"}})").has_value());
  EXPECT_FALSE(
      SynthesizeStream(Route::kChat, R"({"object":"text_completion","choices":[]})").has_value());
  EXPECT_FALSE(SynthesizeStream(Route::kChat, R"({"choices":[{"index":0}]})").has_value());
  EXPECT_FALSE(
      SynthesizeStream(Route::kChat, R"({"choices":[{"message":{"content":[1]}}]})").has_value());
  EXPECT_FALSE(SynthesizeStream(Route::kCompletions, R"({"choices":[{"text":5}]})").has_value());
}

// --- Adapt / usage -----------------------------------------------------------

TEST(AdaptStreamTest, DropsUsageUnlessAskedFor) {
  const std::vector<std::string> events = {
      R"({"id":"a","choices":[{"index":0,"delta":{"content":"usage"}}],"usage":null})",
      R"({"id":"a","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}})",
      R"({"id":"a","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}})",
  };
  EXPECT_EQ(AdaptStreamForClient(events, true), events);
  const std::vector<std::string> out = AdaptStreamForClient(events, false);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], events[0]);  // usage:null is left alone, byte for byte
  EXPECT_EQ(out[1], R"({"id":"a","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})");
}

TEST(AdaptStreamTest, PassesThroughWhatItCannotParse) {
  const std::vector<std::string> events = {R"({"usage": {"x": )", "plain"};
  EXPECT_EQ(AdaptStreamForClient(events, false), events);
}

TEST(AdaptStreamTest, ToolCallStreamWithoutUsage) {
  const std::vector<std::string> out = AdaptStreamForClient(kToolCallStream, false);
  ASSERT_EQ(out.size(), kToolCallStream.size() - 1);
  for (size_t k = 0; k < out.size(); ++k) EXPECT_EQ(out[k], kToolCallStream[k]);
}

TEST(UsageTest, ExtractUsage) {
  Usage u = ExtractUsage(kChatBody);
  EXPECT_TRUE(u.present);
  EXPECT_EQ(u.prompt_tokens, 9u);
  EXPECT_EQ(u.completion_tokens, 3u);
  u = ExtractUsage(R"({"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}})");
  EXPECT_TRUE(u.present);
  EXPECT_EQ(u.prompt_tokens, 8u);
  EXPECT_EQ(u.completion_tokens, 0u);
  u = ExtractUsage(R"({"usage":{"prompt_tokens":99999999999,"completion_tokens":-3}})");
  EXPECT_EQ(u.prompt_tokens, 0xffffffffu);
  EXPECT_EQ(u.completion_tokens, 0u);
  EXPECT_FALSE(ExtractUsage(R"({"usage":null})").present);
  EXPECT_FALSE(ExtractUsage(R"({"id":"x"})").present);
  EXPECT_FALSE(ExtractUsage("garbage").present);
  EXPECT_FALSE(ExtractUsage("").present);
}

TEST(UsageTest, ExtractUsageFromStream) {
  Usage u = ExtractUsageFromStream(kToolCallStream);
  EXPECT_TRUE(u.present);
  EXPECT_EQ(u.prompt_tokens, 82u);
  EXPECT_EQ(u.completion_tokens, 40u);
  EXPECT_FALSE(ExtractUsageFromStream({R"({"usage":null})", "x"}).present);
  EXPECT_FALSE(ExtractUsageFromStream({}).present);
}

}  // namespace
}  // namespace llmcache::gateway
