#include "http/sse.h"

#include <gtest/gtest.h>

namespace llmcache::http {
namespace {

std::vector<SseEvent> ParseAll(std::string_view in, size_t step) {
  SseParser p;
  std::vector<SseEvent> out;
  for (size_t i = 0; i < in.size(); i += step) EXPECT_TRUE(p.Feed(in.substr(i, step), out));
  return out;
}

TEST(SseParserTest, OpenAiStreamInAnySplit) {
  std::string in =
      "data: {\"a\":1}\n\n"
      ": keep-alive comment\n\n"
      "data: {\"b\":2}\r\n\r\n"
      "event: done\rdata: [DONE]\r\r";
  for (size_t step : {1, 2, 3, 5, 64, 1000}) {
    auto ev = ParseAll(in, step);
    ASSERT_EQ(ev.size(), 3u) << "step " << step;
    EXPECT_EQ(ev[0].data, "{\"a\":1}");
    EXPECT_EQ(ev[1].data, "{\"b\":2}");
    EXPECT_EQ(ev[2].data, "[DONE]");
    EXPECT_EQ(ev[2].event, "done");
  }
}

TEST(SseParserTest, MultiLineDataAndFieldsWithoutSpace) {
  auto ev = ParseAll("data:one\ndata: two\nid: 9\n\n", 4);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "one\ntwo");
  EXPECT_EQ(ev[0].id, "9");
}

TEST(SseParserTest, PartialEventIsReported) {
  SseParser p;
  std::vector<SseEvent> out;
  EXPECT_TRUE(p.Feed("data: {\"x\":", out));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(p.HasPartialEvent());
  EXPECT_TRUE(p.Feed("1}\n\n", out));
  EXPECT_FALSE(p.HasPartialEvent());
  ASSERT_EQ(out.size(), 1u);
}

TEST(SseParserTest, OversizedEventFails) {
  SseParser p(16);
  std::vector<SseEvent> out;
  EXPECT_FALSE(p.Feed("data: 0123456789abcdefghij\n\n", out));
  EXPECT_TRUE(p.failed());
  EXPECT_FALSE(p.Feed("data: x\n\n", out));
  EXPECT_TRUE(out.empty());
}

TEST(SseParserTest, BomSkippedAtStartEvenWhenSplit) {
  for (size_t step : {1, 2, 100}) {
    auto ev = ParseAll("\xEF\xBB\xBF" "data: x\n\n", step);
    ASSERT_EQ(ev.size(), 1u) << step;
    EXPECT_EQ(ev[0].data, "x");
  }
  // Something that only starts like a BOM is part of the first line.
  auto ev = ParseAll("\xEF" "data: y\n\ndata: z\n\n", 1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "z");
}

TEST(SseFormatTest, RoundTripsThroughParser) {
  for (std::string payload : {"{\"a\":\"b\"}", "line1\nline2", "", "[DONE]"}) {
    SseParser p;
    std::vector<SseEvent> out;
    ASSERT_TRUE(p.Feed(FormatSseData(payload), out));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].data, payload);
  }
  EXPECT_EQ(FormatSseData("x"), "data: x\n\n");
}

}  // namespace
}  // namespace llmcache::http
