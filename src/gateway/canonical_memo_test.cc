#include "gateway/canonical_memo.h"

#include <gtest/gtest.h>

#include <string>
#include <atomic>
#include <thread>
#include <vector>

namespace llmcache::gateway {
namespace {

std::string Chat(std::string_view text, std::string_view extra = "") {
  return std::string(R"({"model":"m","messages":[{"role":"user","content":")") +
         std::string(text) + "\"}]" + std::string(extra) + "}";
}

CanonicalRequest Direct(Route route, std::string_view body, const CanonicalOptions& o = {}) {
  auto r = Canonicalize(route, body, o);
  EXPECT_TRUE(r.has_value()) << body;
  return r ? *r : CanonicalRequest{};
}

void ExpectSame(const CanonicalRequest& got, const CanonicalRequest& want) {
  EXPECT_EQ(got.canonical, want.canonical);
  EXPECT_EQ(got.model, want.model);
  EXPECT_EQ(got.stream, want.stream);
  EXPECT_EQ(got.include_usage, want.include_usage);
  EXPECT_EQ(got.last_user_text, want.last_user_text);
}

TEST(CanonicalMemoTest, ReturnsWhatCanonicalizeReturnsAndRemembersIt) {
  CanonicalMemo memo;
  const std::vector<std::string> bodies = {
      Chat("hello"), Chat("hello", R"(,"temperature":0.0)"), Chat("hello", R"(,"stream":true)"),
      Chat("hello  world"), Chat("other")};
  for (int round = 0; round < 2; ++round) {
    for (const auto& b : bodies) {
      auto e = memo.Canonicalize(Route::kChat, b, {});
      ASSERT_TRUE(e.has_value());
      ExpectSame((*e)->request(), Direct(Route::kChat, b));
    }
  }
  EXPECT_EQ(memo.stats().misses, bodies.size());
  EXPECT_EQ(memo.stats().hits, bodies.size());
  EXPECT_EQ(memo.stats().entries, bodies.size());
}

TEST(CanonicalMemoTest, SameBodyUnderOtherOptionsOrRouteIsNotReused) {
  CanonicalMemo memo;
  const std::string b = Chat("a \\n  b");
  CanonicalOptions ws;
  ws.normalize_whitespace = true;
  CanonicalOptions shallow;
  shallow.max_depth = 2;
  auto plain = memo.Canonicalize(Route::kChat, b, {});
  auto norm = memo.Canonicalize(Route::kChat, b, ws);
  ASSERT_TRUE(plain && norm);
  EXPECT_NE((*plain)->request().canonical, (*norm)->request().canonical);
  ExpectSame((*norm)->request(), Direct(Route::kChat, b, ws));
  // Deeper than 2 levels: an error under these options, even though the
  // same bytes are memoized under the defaults.
  EXPECT_FALSE(memo.Canonicalize(Route::kChat, b, shallow).has_value());
  // The completions route wants a prompt: the chat entry must not answer.
  EXPECT_FALSE(memo.Canonicalize(Route::kCompletions, b, {}).has_value());
}

TEST(CanonicalMemoTest, CollidingHashesNeverShareAnEntry) {
  CanonicalMemo::Options o;
  o.shards = 1;
  o.hash = [](std::string_view) -> uint64_t { return 7; };
  CanonicalMemo memo(o);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 20; ++i) {
      const std::string b = Chat("question " + std::to_string(i % 5));
      auto e = memo.Canonicalize(Route::kChat, b, {});
      ASSERT_TRUE(e.has_value());
      ExpectSame((*e)->request(), Direct(Route::kChat, b));
    }
  }
  EXPECT_EQ(memo.stats().entries, 1u);
}

TEST(CanonicalMemoTest, KeyIsCacheKeyForEveryNamespaceAndRevision) {
  CanonicalMemo memo;
  const std::string b = Chat("key me");
  auto e = memo.Canonicalize(Route::kChat, b, {});
  ASSERT_TRUE(e.has_value());
  const std::string canonical = Direct(Route::kChat, b).canonical;
  // More pairs than the entry remembers, each asked for repeatedly.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 7; ++i) {
      const std::string ns = "ns" + std::to_string(i % 3);
      const std::string rev = i % 2 ? "sha256:abc" : "";
      EXPECT_EQ((*e)->Key(ns, rev), CacheKey({ns, rev, canonical, Route::kChat}));
    }
  }
  EXPECT_EQ((*e)->Key("a", "bc"), CacheKey({"a", "bc", canonical, Route::kChat}));
  EXPECT_EQ((*e)->Key("ab", "c"), CacheKey({"ab", "c", canonical, Route::kChat}));
  EXPECT_NE((*e)->Key("a", "bc"), (*e)->Key("ab", "c"));
}

TEST(CanonicalMemoTest, StaysWithinItsByteBoundAndSkipsLargeBodies) {
  CanonicalMemo::Options o;
  o.max_bytes = 64 << 10;
  o.shards = 4;
  o.max_body_bytes = 4 << 10;
  CanonicalMemo memo(o);
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(memo.Canonicalize(Route::kChat, Chat(std::string(300, 'x') + std::to_string(i)), {}));
    ASSERT_LE(memo.stats().bytes, o.max_bytes);
  }
  EXPECT_GT(memo.stats().entries, 10u);
  EXPECT_LT(memo.stats().entries, 500u);

  const std::string big = Chat(std::string(8 << 10, 'y'));
  const size_t before = memo.stats().entries;
  for (int i = 0; i < 2; ++i) {
    auto e = memo.Canonicalize(Route::kChat, big, {});
    ASSERT_TRUE(e.has_value());
    ExpectSame((*e)->request(), Direct(Route::kChat, big));
  }
  EXPECT_LE(memo.stats().entries, before);
}

TEST(CanonicalMemoTest, ErrorsAreReturnedEveryTimeAndNotRemembered) {
  CanonicalMemo memo;
  for (int i = 0; i < 2; ++i) {
    auto e = memo.Canonicalize(Route::kChat, R"({"model":"m","messages":[]})", {});
    ASSERT_FALSE(e.has_value());
    EXPECT_EQ(e.error().http_status, 400);
  }
  EXPECT_EQ(memo.stats().entries, 0u);
}

TEST(CanonicalMemoTest, ConcurrentCallersGetTheirOwnBodysForm) {
  CanonicalMemo::Options o;
  o.max_bytes = 32 << 10;  // small: evictions race with lookups
  o.shards = 2;
  CanonicalMemo memo(o);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 400; ++i) {
        const std::string text = "q" + std::to_string((i * 7 + t) % 40);
        const std::string b = Chat(text);
        auto e = memo.Canonicalize(Route::kChat, b, {});
        if (!e || (*e)->request().last_user_text != text ||
            (*e)->Key("n", "") != CacheKey({"n", "", (*e)->request().canonical, Route::kChat}))
          ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(memo.stats().hits, 0u);
}

}  // namespace
}  // namespace llmcache::gateway
