#include "gateway/canonical.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace llmcache::gateway {
namespace {

const CanonicalOptions kDefault;

CanonicalOptions Normalizing() {
  CanonicalOptions o;
  o.normalize_whitespace = true;
  return o;
}

std::string Canon(std::string_view body, Route route = Route::kChat,
                  const CanonicalOptions& opts = kDefault) {
  auto r = Canonicalize(route, body, opts);
  EXPECT_TRUE(r.has_value()) << body << " -> " << (r ? "" : r.error().message);
  return r ? r->canonical : std::string("<error>");
}

RequestError Error(std::string_view body, Route route = Route::kChat,
                   const CanonicalOptions& opts = kDefault) {
  auto r = Canonicalize(route, body, opts);
  EXPECT_FALSE(r.has_value()) << body << " -> " << (r ? r->canonical : "");
  return r ? RequestError{} : r.error();
}

std::string Key(std::string_view canonical, Route route = Route::kChat, std::string_view ns = "t",
                std::string_view rev = "") {
  return CacheKey(KeyParts{ns, rev, canonical, route});
}

constexpr std::string_view kChat = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";

TEST(CanonicalTest, SortsKeysAndRemovesWhitespace) {
  EXPECT_EQ(Canon(R"( { "messages" : [ { "content" : "hi" , "role" : "user" } ] ,
                      "model" : "m" } )"),
            R"({"messages":[{"content":"hi","role":"user"}],"model":"m"})");
  EXPECT_EQ(Canon(R"({"model":"m","b":{"z":1,"a":2,"é":3,"Z":4},"messages":[{"role":"user"}]})"),
            R"({"b":{"Z":4,"a":2,"z":1,"é":3},"messages":[{"role":"user"}],"model":"m"})");
}

TEST(CanonicalTest, KeyOrderDoesNotMatter) {
  EXPECT_EQ(Canon(R"({"model":"m","temperature":0.5,"messages":[{"role":"user","content":"x"}]})"),
            Canon(R"({"messages":[{"content":"x","role":"user"}],"temperature":0.5,"model":"m"})"));
}

TEST(CanonicalTest, ArrayOrderMatters) {
  EXPECT_NE(Canon(R"({"model":"m","messages":[{"role":"user"},{"role":"system"}]})"),
            Canon(R"({"model":"m","messages":[{"role":"system"},{"role":"user"}]})"));
}

std::string WithTemperature(std::string_view number) {
  return Canon(std::string(R"({"model":"m","messages":[{"role":"user"}],"temperature":)") +
               std::string(number) + "}");
}

TEST(CanonicalTest, NumberFormsOfOneValueAreEqual) {
  const std::string zero = WithTemperature("0");
  for (const char* n : {"0.0", "0e0", "-0.0", "-0", "0E+5", "0.000e-3"}) {
    EXPECT_EQ(WithTemperature(n), zero) << n;
  }
  EXPECT_NE(zero.find(R"("temperature":0})"), std::string::npos) << zero;
  EXPECT_EQ(WithTemperature("1e2"), WithTemperature("100"));
  EXPECT_EQ(WithTemperature("1.5e1"), WithTemperature("15"));
  EXPECT_EQ(WithTemperature("100.000"), WithTemperature("100"));
  EXPECT_EQ(WithTemperature("0.5"), WithTemperature("5e-1"));
  EXPECT_EQ(WithTemperature("0.5"), WithTemperature("0.50000"));
  EXPECT_NE(WithTemperature("1"), WithTemperature("1.5"));
  EXPECT_NE(WithTemperature("0.1"), WithTemperature("0.10000000000000002"));
}

TEST(CanonicalTest, NumberSpelling) {
  EXPECT_NE(WithTemperature("1e2").find(R"("temperature":100})"), std::string::npos);
  EXPECT_NE(WithTemperature("0.25").find(R"("temperature":0.25})"), std::string::npos);
  EXPECT_NE(WithTemperature("1e22").find(R"("temperature":1e+22})"), std::string::npos);
  EXPECT_NE(WithTemperature("-1E-7").find(R"("temperature":-1e-07})"), std::string::npos);
  // Integral doubles that fit 64 bits become integers; larger stay doubles.
  EXPECT_NE(WithTemperature("1.8e19").find(R"("temperature":18000000000000000000})"),
            std::string::npos);
  EXPECT_NE(WithTemperature("1.9e19").find(R"("temperature":1.9e+19})"), std::string::npos);
  // Underflow is zero; overflow is rejected.
  EXPECT_EQ(WithTemperature("1e-400"), WithTemperature("0"));
  auto e = Error(R"({"model":"m","messages":[{"role":"user"}],"temperature":1e400})");
  EXPECT_EQ(e.http_status, 400);
}

TEST(CanonicalTest, BigIntegersStayExact) {
  std::string body = R"({"model":"m","messages":[{"role":"user"}],"seed":)";
  const std::string a = Canon(body + "9007199254740993}");
  const std::string b = Canon(body + "9007199254740992}");
  EXPECT_NE(a, b);
  EXPECT_NE(a.find("9007199254740993"), std::string::npos);
  EXPECT_NE(Canon(body + "9223372036854775807}").find("9223372036854775807"), std::string::npos);
  EXPECT_NE(Canon(body + "-9223372036854775808}").find("-9223372036854775808"), std::string::npos);
  EXPECT_NE(Canon(body + "18446744073709551615}").find("18446744073709551615"), std::string::npos);
  EXPECT_NE(Canon(body + "18446744073709551614}"), Canon(body + "18446744073709551615}"));
  // Beyond uint64, Boost.JSON gives a double; it is written as one.
  EXPECT_NE(Canon(body + "100000000000000000000000}").find("1e+23"), std::string::npos);
}

TEST(CanonicalTest, StringEscapeFormsAreEqual) {
  auto with_content = [](std::string_view c) {
    return Canon(std::string(R"({"model":"m","messages":[{"role":"user","content":")") +
                 std::string(c) + "\"}]}");
  };
  EXPECT_EQ(with_content(R"(\u0041)"), with_content("A"));
  EXPECT_EQ(with_content(R"(a\/b)"), with_content("a/b"));
  EXPECT_EQ(with_content(R"(\u00e9)"), with_content("é"));
  EXPECT_EQ(with_content(R"(\ud83d\ude00)"), with_content("😀"));
  EXPECT_EQ(with_content(R"(\n)"), with_content(R"(\u000A)"));
  EXPECT_NE(with_content(R"(\n)").find(R"(\u000a)"), std::string::npos);
  EXPECT_NE(with_content(R"(\u0022)").find(R"(\")"), std::string::npos);
  EXPECT_NE(with_content(R"(\\)").find(R"(\\)"), std::string::npos);
  EXPECT_NE(with_content(R"(\u0000)").find(R"(\u0000)"), std::string::npos);
  EXPECT_NE(with_content(R"(\u0000)"), with_content(""));
  // Keys are unescaped and sorted too.
  EXPECT_EQ(Canon(R"({"mod\u0065l":"m","messages":[{"role":"user"}]})"),
            Canon(R"({"model":"m","messages":[{"role":"user"}]})"));
}

TEST(CanonicalTest, ParsesRequestFields) {
  auto r = Canonicalize(Route::kChat,
                        R"({"model":"gpt-x","stream":true,"stream_options":{"include_usage":true},
                            "messages":[{"role":"system","content":"s"},
                                        {"role":"user","content":"what?"}]})",
                        kDefault);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->model, "gpt-x");
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->last_user_text, "what?");
  auto plain = Canonicalize(Route::kChat, kChat, kDefault);
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE(plain->stream);
  EXPECT_FALSE(plain->include_usage);
}

TEST(CanonicalTest, LastUserText) {
  auto text = [](std::string_view body, Route route = Route::kChat) {
    auto r = Canonicalize(route, body, kDefault);
    EXPECT_TRUE(r.has_value());
    return r ? r->last_user_text : "";
  };
  EXPECT_EQ(text(R"({"model":"m","messages":[{"role":"user","content":"a"},
                    {"role":"assistant","content":"b"}]})"),
            "");
  EXPECT_EQ(text(R"({"model":"m","messages":[{"role":"user","content":[
                    {"type":"text","text":"look"},
                    {"type":"image_url","image_url":{"url":"http://x"}},
                    {"type":"text","text":"here"}]}]})"),
            "look\nhere");
  EXPECT_EQ(text(R"({"model":"m","prompt":"once upon"})", Route::kCompletions), "once upon");
  EXPECT_EQ(text(R"({"model":"m","prompt":["a","b"]})", Route::kCompletions), "");
  EXPECT_EQ(text(R"({"model":"m","input":"x"})", Route::kEmbeddings), "");
}

TEST(CanonicalTest, VolatileFieldsDoNotChangeTheKey) {
  const std::string base = Canon(kChat);
  for (const char* extra : {
           R"("user":"alice")",
           R"("stream":true)",
           R"("stream":false)",
           R"("stream":null)",
           R"("stream_options":{"include_usage":true})",
           R"("metadata":{"trace":"abc"})",
           R"("request_id":"req-1")",
           R"("store":true)",
           R"("llmcache":{"ttl":5,"anything":[1,2]})",
       }) {
    std::string body = std::string(kChat.substr(0, kChat.size() - 1)) + "," + extra + "}";
    EXPECT_EQ(Canon(body), base) << extra;
  }
}

// Every field that may change the answer must change the key, including
// fields we know nothing about.
TEST(CanonicalTest, AnswerChangingFieldsChangeTheKey) {
  struct Case {
    Route route;
    const char* a;
    const char* b;
  };
  const Case cases[] = {
      {Route::kChat, R"("model":"m")", R"("model":"m2")"},
      {Route::kChat, R"("messages":[{"role":"user","content":"hi"}])",
       R"("messages":[{"role":"user","content":"hi!"}])"},
      {Route::kChat, R"("messages":[{"role":"user","content":"hi"}])",
       R"("messages":[{"role":"system","content":"hi"}])"},
      {Route::kCompletions, R"("prompt":"a")", R"("prompt":"b")"},
      {Route::kCompletions, R"("prompt":"a")", R"("prompt":["a"])"},
      {Route::kEmbeddings, R"("input":"a")", R"("input":["a"])"},
      {Route::kChat, R"("x":0)", R"("tools":[{"type":"function","function":{"name":"f"}}])"},
      {Route::kChat, R"("tool_choice":"auto")", R"("tool_choice":"none")"},
      {Route::kChat, R"("x":0)", R"("functions":[{"name":"f"}])"},
      {Route::kChat, R"("function_call":"auto")", R"("function_call":"none")"},
      {Route::kChat, R"("response_format":{"type":"text"})",
       R"("response_format":{"type":"json_object"})"},
      {Route::kChat, R"("temperature":0)", R"("temperature":0.7)"},
      {Route::kChat, R"("x":0)", R"("temperature":1)"},     // absent != default
      {Route::kChat, R"("temperature":null)", R"("x":0)"},  // null != absent
      {Route::kChat, R"("top_p":1)", R"("top_p":0.9)"},
      {Route::kChat, R"("max_tokens":10)", R"("max_tokens":11)"},
      {Route::kChat, R"("max_completion_tokens":10)", R"("max_completion_tokens":11)"},
      {Route::kChat, R"("max_tokens":10)", R"("max_completion_tokens":10)"},
      {Route::kChat, R"("stop":"\n")", R"("stop":["\n"])"},
      {Route::kChat, R"("seed":1)", R"("seed":2)"},
      {Route::kChat, R"("n":1)", R"("n":2)"},
      {Route::kChat, R"("logit_bias":{"1":1})", R"("logit_bias":{"1":2})"},
      {Route::kChat, R"("frequency_penalty":0)", R"("frequency_penalty":0.5)"},
      {Route::kChat, R"("presence_penalty":0)", R"("presence_penalty":0.5)"},
      {Route::kChat, R"("logprobs":false)", R"("logprobs":true)"},
      {Route::kChat, R"("top_logprobs":1)", R"("top_logprobs":2)"},
      {Route::kCompletions, R"("suffix":"a")", R"("suffix":"b")"},
      {Route::kCompletions, R"("echo":false)", R"("echo":true)"},
      {Route::kCompletions, R"("best_of":1)", R"("best_of":2)"},
      {Route::kCompletions, R"("logprobs":1)", R"("logprobs":2)"},
      {Route::kEmbeddings, R"("encoding_format":"float")", R"("encoding_format":"base64")"},
      {Route::kEmbeddings, R"("dimensions":256)", R"("dimensions":512)"},
      {Route::kChat, R"("parallel_tool_calls":true)", R"("parallel_tool_calls":false)"},
      {Route::kChat, R"("reasoning_effort":"low")", R"("reasoning_effort":"high")"},
      {Route::kChat, R"("service_tier":"auto")", R"("service_tier":"flex")"},
      {Route::kChat, R"("x":0)", R"("some_future_field":0)"},
      {Route::kChat, R"("x":0)", R"("x":false)"},
      {Route::kChat, R"("x":"1")", R"("x":1)"},
      {Route::kChat, R"("x":{"user":1})", R"("x":{})"},  // only top-level fields are volatile
  };
  // The body is the case's fields plus whatever required field they lack.
  auto body = [](Route route, std::string_view fields) {
    std::string b = "{" + std::string(fields);
    auto add = [&](std::string_view name, std::string_view field) {
      if (fields.find("\"" + std::string(name) + "\":") == std::string_view::npos) {
        b += ",";
        b += field;
      }
    };
    add("model", R"("model":"m")");
    if (route == Route::kChat) add("messages", R"("messages":[{"role":"user","content":"hi"}])");
    if (route == Route::kCompletions) add("prompt", R"("prompt":"a")");
    if (route == Route::kEmbeddings) add("input", R"("input":"a")");
    return b + "}";
  };
  for (const Case& c : cases) {
    const std::string a = body(c.route, c.a), b = body(c.route, c.b);
    auto ra = Canonicalize(c.route, a, kDefault);
    auto rb = Canonicalize(c.route, b, kDefault);
    ASSERT_TRUE(ra.has_value()) << a << ": " << ra.error().message;
    ASSERT_TRUE(rb.has_value()) << b << ": " << rb.error().message;
    EXPECT_NE(Key(ra->canonical, c.route), Key(rb->canonical, c.route)) << a << " vs " << b;
  }
}

TEST(CanonicalTest, CacheKeyParts) {
  const std::string c = Canon(kChat);
  const std::string k = Key(c);
  EXPECT_EQ(k.size(), 64u);
  EXPECT_EQ(k.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(k, Key(c));
  EXPECT_NE(k, Key(c, Route::kCompletions));
  EXPECT_NE(k, Key(c, Route::kChat, "other-tenant"));
  EXPECT_NE(k, Key(c, Route::kChat, "t", "rev2"));
  // Length prefixes keep part boundaries unambiguous.
  EXPECT_NE(Key(c, Route::kChat, "ab", "c"), Key(c, Route::kChat, "a", "bc"));
  EXPECT_NE(Key("x", Route::kChat, "t", "ab"), Key("bx", Route::kChat, "t", "a"));
  EXPECT_EQ(FastKeyHash(k), FastKeyHash(Key(c)));
  EXPECT_NE(FastKeyHash(k), FastKeyHash(Key(c, Route::kEmbeddings)));
}

TEST(CanonicalTest, WhitespaceNormalization) {
  const char* a = R"({"model":"m","messages":[{"role":"user","content":"  hello \n\t world  "}]})";
  const char* b = R"({"model":"m","messages":[{"role":"user","content":"hello world"}]})";
  // U+00A0, U+3000 and U+2028 count as whitespace.
  const char* c =
      R"({"model":"m","messages":[{"role":"user","content":"hello\u00a0\u3000\u2028world"}]})";
  EXPECT_NE(Canon(a), Canon(b));  // off by default
  EXPECT_EQ(Canon(a, Route::kChat, Normalizing()), Canon(b, Route::kChat, Normalizing()));
  EXPECT_EQ(Canon(c, Route::kChat, Normalizing()), Canon(b, Route::kChat, Normalizing()));
  auto r = Canonicalize(Route::kChat, a, Normalizing());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->last_user_text, "hello world");
  // Zero-width space is not whitespace.
  EXPECT_NE(Canon(R"({"model":"m","messages":[{"role":"user","content":"a\u200bb"}]})",
                  Route::kChat, Normalizing()),
            Canon(R"({"model":"m","messages":[{"role":"user","content":"a b"}]})", Route::kChat,
                  Normalizing()));
  // Text parts are normalized, other parts and other fields are not.
  EXPECT_EQ(
      Canon(
          R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":" x  y "}]}]})",
          Route::kChat, Normalizing()),
      R"({"messages":[{"content":[{"text":"x y","type":"text"}],"role":"user"}],"model":"m"})");
  EXPECT_EQ(
      Canon(
          R"({"model":"m","messages":[{"role":"user","content":[{"type":"image","text":" x  y "}]}]})",
          Route::kChat, Normalizing()),
      R"({"messages":[{"content":[{"text":" x  y ","type":"image"}],"role":"user"}],"model":"m"})");
  EXPECT_EQ(Canon(R"({"model":"m","stop":" a  ","messages":[{"role":"user","content":"   "}]})",
                  Route::kChat, Normalizing()),
            R"({"messages":[{"content":"","role":"user"}],"model":"m","stop":" a  "})");
  // Completions prompts (string and array of strings); embeddings never.
  EXPECT_EQ(Canon(R"({"model":"m","prompt":" a  b"})", Route::kCompletions, Normalizing()),
            R"({"model":"m","prompt":"a b"})");
  EXPECT_EQ(Canon(R"({"model":"m","prompt":[" a  b","c "]})", Route::kCompletions, Normalizing()),
            R"({"model":"m","prompt":["a b","c"]})");
  EXPECT_EQ(Canon(R"({"model":"m","input":" a  b"})", Route::kEmbeddings, Normalizing()),
            R"({"input":" a  b","model":"m"})");
}

TEST(CanonicalTest, CanonicalIsAFixedPoint) {
  for (const char* body : {
           R"({"model":"m","messages":[{"role":"user","content":"é \u0001 \"q\" \\ 😀"}],
               "temperature":0.1,"seed":9007199254740993,"big":1e300,"tiny":5e-324,
               "neg":-0.0,"x":[[],{},null,true,false,""],"stream":true})",
       }) {
    for (bool norm : {false, true}) {
      CanonicalOptions o;
      o.normalize_whitespace = norm;
      const std::string once = Canon(body, Route::kChat, o);
      EXPECT_EQ(Canon(once, Route::kChat, o), once);
    }
  }
}

// --- Errors -----------------------------------------------------------------

TEST(CanonicalErrorTest, InvalidJsonNamesThePosition) {
  RequestError e = Error("{\"model\":\"m\",\n \"messages\": [}");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_NE(e.message.find("line 2"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("byte offset"), std::string::npos) << e.message;
  Error("");
  Error("{\"model\":\"m\"} trailing");
  Error("{\"model\":\"m\",}");                                                // no trailing commas
  Error("{\"model\":\"m\" /* c */}");                                         // no comments
  Error(R"({"model":"m","messages":[{"role":"user","content":"\ud800"}]})");  // lone surrogate
  Error(R"({"model":"m","t":NaN})");
  Error(R"({"model":"m","t":01})");
}

TEST(CanonicalErrorTest, TopLevelMustBeAnObject) {
  for (const char* body : {"[]", "1", "\"x\"", "null", "true"}) {
    RequestError e = Error(body);
    EXPECT_NE(e.message.find("expected an object"), std::string::npos) << e.message;
  }
}

TEST(CanonicalErrorTest, InvalidUtf8) {
  for (std::string bad : {std::string("\xff"), std::string("\xc3"), std::string("\xc0\xaf"),
                          std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80")}) {
    std::string body = R"({"model":"m","messages":[{"role":"user","content":")" + bad + "\"}]}";
    RequestError e = Error(body);
    EXPECT_NE(e.message.find("UTF-8"), std::string::npos) << e.message;
  }
  // Valid multi-byte UTF-8 passes.
  Canon(R"({"model":"m","messages":[{"role":"user","content":"ünï😀"}]})");
}

TEST(CanonicalErrorTest, DepthLimit) {
  auto nested = [](int depth) {
    // The top-level object is level 1.
    std::string inner;
    for (int k = 0; k < depth - 1; ++k) inner += "[";
    for (int k = 0; k < depth - 1; ++k) inner += "]";
    return R"({"model":"m","messages":[{"role":"user"}],"x":)" + inner + "}";
  };
  Canon(nested(64));
  RequestError e = Error(nested(65));
  EXPECT_EQ(e.message, "JSON nesting exceeds 64 levels");
  CanonicalOptions shallow;
  shallow.max_depth = 3;
  Canon(R"({"model":"m","messages":[{"role":"user"}]})", Route::kChat, shallow);
  EXPECT_EQ(
      Error(R"({"model":"m","messages":[{"role":"user","c":[]}]})", Route::kChat, shallow).message,
      "JSON nesting exceeds 3 levels");
}

TEST(CanonicalErrorTest, DuplicateKeysAreRejected) {
  RequestError e = Error(R"({"model":"m","model":"m","messages":[{"role":"user"}]})");
  EXPECT_NE(e.message.find("duplicate key 'model'"), std::string::npos) << e.message;
  Error(R"({"model":"m","messages":[{"role":"user","role":"system"}]})");
  // Spellings that unescape to the same key are duplicates too.
  Error(R"({"model":"m","mod\u0065l":"m","messages":[{"role":"user"}]})");
}

struct ParamCase {
  Route route;
  const char* body;
  const char* param;
};

TEST(CanonicalErrorTest, ValidationNamesTheParam) {
  const ParamCase cases[] = {
      {Route::kChat, R"({"messages":[{"role":"user"}]})", "model"},
      {Route::kChat, R"({"model":5,"messages":[{"role":"user"}]})", "model"},
      {Route::kChat, R"({"model":"","messages":[{"role":"user"}]})", "model"},
      {Route::kChat, R"({"model":null,"messages":[{"role":"user"}]})", "model"},
      {Route::kChat, R"({"model":"m"})", "messages"},
      {Route::kChat, R"({"model":"m","messages":{}})", "messages"},
      {Route::kChat, R"({"model":"m","messages":[]})", "messages"},
      {Route::kChat, R"({"model":"m","messages":["hi"]})", "messages[0]"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"},{"content":"x"}]})",
       "messages[1].role"},
      {Route::kChat, R"({"model":"m","messages":[{"role":1}]})", "messages[0].role"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"stream":"yes"})", "stream"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"stream":1})", "stream"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"stream_options":true})",
       "stream_options"},
      {Route::kChat,
       R"({"model":"m","messages":[{"role":"user"}],"stream_options":{"include_usage":"y"}})",
       "stream_options.include_usage"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"n":1.5})", "n"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"n":"2"})", "n"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"max_tokens":"10"})",
       "max_tokens"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"max_tokens":10.5})",
       "max_tokens"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"max_completion_tokens":[]})",
       "max_completion_tokens"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"temperature":"0.5"})",
       "temperature"},
      {Route::kChat, R"({"model":"m","messages":[{"role":"user"}],"top_p":true})", "top_p"},
      {Route::kCompletions, R"({"model":"m"})", "prompt"},
      {Route::kCompletions, R"({"model":"m","prompt":5})", "prompt"},
      {Route::kCompletions, R"({"model":"m","prompt":null})", "prompt"},
      {Route::kCompletions, R"({"model":"m","prompt":["a",1]})", "prompt"},
      {Route::kCompletions, R"({"model":"m","prompt":[1,"a"]})", "prompt"},
      {Route::kCompletions, R"({"model":"m","prompt":[[1],["a"]]})", "prompt"},
      {Route::kCompletions, R"({"model":"m","prompt":[1.5]})", "prompt"},
      {Route::kCompletions, R"({"model":"m","prompt":[{}]})", "prompt"},
      {Route::kEmbeddings, R"({"model":"m"})", "input"},
      {Route::kEmbeddings, R"({"model":"m","input":{"a":1}})", "input"},
      {Route::kEmbeddings, R"({"model":"m","input":"x","stream":true})", "stream"},
  };
  for (const ParamCase& c : cases) {
    RequestError e = Error(c.body, c.route);
    EXPECT_EQ(e.http_status, 400) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
    EXPECT_FALSE(e.message.empty());
  }
}

TEST(CanonicalErrorTest, AcceptedShapes) {
  Canon(R"({"model":"m","messages":[{"role":"user"}],"stream":null,"n":null,"temperature":null})");
  Canon(R"({"model":"m","messages":[{"role":"user"}],"n":2.0,"max_tokens":1e3,"temperature":1})");
  Canon(R"({"model":"m","prompt":[]})", Route::kCompletions);
  Canon(R"({"model":"m","prompt":["a","b"]})", Route::kCompletions);
  Canon(R"({"model":"m","prompt":[1,2,3]})", Route::kCompletions);
  Canon(R"({"model":"m","prompt":[[1,2],[3]]})", Route::kCompletions);
  Canon(R"({"model":"m","input":[[1,2],[]]})", Route::kEmbeddings);
  Canon(R"({"model":"m","input":"x","stream":false})", Route::kEmbeddings);
}

TEST(CanonicalErrorTest, ErrorJson) {
  RequestError e = Error(R"({"model":"m"})");
  EXPECT_EQ(RequestErrorJson(e), R"({"error":{"message":"Missing required parameter: 'messages'.",)"
                                 R"("type":"invalid_request_error","param":"messages",)"
                                 R"("code":"missing_required_parameter"}})");
  RequestError plain;
  plain.message = "a \"quoted\"\n";
  EXPECT_EQ(RequestErrorJson(plain),
            R"({"error":{"message":"a \"quoted\"\u000a","type":"invalid_request_error",)"
            R"("param":null,"code":null}})");
}

TEST(CanonicalTest, LargeRequest) {
  std::string body = R"({"model":"m","messages":[)";
  for (int k = 0; k < 2000; ++k) {
    if (k) body += ",";
    body += R"({"role":"user","content":"message number )" + std::to_string(k) + R"( \u00e9"})";
  }
  body += "]}";
  const std::string c = Canon(body);
  EXPECT_EQ(Canon(c), c);
  EXPECT_NE(c.find("message number 1999 é"), std::string::npos);
}

}  // namespace
}  // namespace llmcache::gateway
