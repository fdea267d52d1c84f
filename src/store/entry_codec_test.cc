#include "store/entry_codec.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "common/hash.h"

namespace llmcache {
namespace {

CacheEntry FullEntry() {
  CacheEntry e;
  e.key = Sha256Hex("request");
  e.ns = "tenant-a";
  e.model = "gpt-4o-mini";
  e.route = Route::kEmbeddings;
  e.created_ms = 1'700'000'000'123;
  e.last_access_ms = 1'700'000'100'456;
  e.ttl_ms = 86'400'000;
  e.ttl_fixed = true;
  e.hit_count = 42;
  e.http_status = 200;
  e.body = R"({"object":"list","data":[{"embedding":[0.1,0.2]}]})";
  e.prompt_tokens = 7;
  e.completion_tokens = 0;
  return e;
}

CacheEntry StreamEntry() {
  CacheEntry e = FullEntry();
  e.route = Route::kChat;
  e.ttl_fixed = false;
  e.body.clear();
  e.sse_events = {R"({"choices":[{"delta":{"role":"assistant"}}]})", "",
                  std::string("\0\x01\xff", 3), "last"};
  return e;
}

std::string Encode(const CacheEntry& e) {
  std::string out;
  EXPECT_TRUE(EncodeEntry(e, &out).ok());
  return out;
}

void ExpectEqual(const CacheEntry& a, const CacheEntry& b) {
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.ns, b.ns);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.route, b.route);
  EXPECT_EQ(a.created_ms, b.created_ms);
  EXPECT_EQ(a.last_access_ms, b.last_access_ms);
  EXPECT_EQ(a.ttl_ms, b.ttl_ms);
  EXPECT_EQ(a.ttl_fixed, b.ttl_fixed);
  EXPECT_EQ(a.hit_count, b.hit_count);
  EXPECT_EQ(a.http_status, b.http_status);
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(a.sse_events, b.sse_events);
  EXPECT_EQ(a.prompt_tokens, b.prompt_tokens);
  EXPECT_EQ(a.completion_tokens, b.completion_tokens);
}

TEST(EntryCodecTest, RoundTripsABodyEntry) {
  const CacheEntry e = FullEntry();
  const std::string bytes = Encode(e);
  EXPECT_EQ(bytes.size(), EncodedEntrySize(e));
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kEntryFormatV1);
  auto back = DecodeEntry(bytes);
  ASSERT_TRUE(back) << back.error().ToString();
  ExpectEqual(*back, e);
}

TEST(EntryCodecTest, RoundTripsAStreamEntry) {
  const CacheEntry e = StreamEntry();
  auto back = DecodeEntry(Encode(e));
  ASSERT_TRUE(back);
  ExpectEqual(*back, e);
  EXPECT_TRUE(back->is_stream());
}

TEST(EntryCodecTest, RoundTripsAnEmptyEntryAndExtremeValues) {
  CacheEntry empty;
  auto back = DecodeEntry(Encode(empty));
  ASSERT_TRUE(back);
  ExpectEqual(*back, empty);

  CacheEntry e = FullEntry();
  e.created_ms = std::numeric_limits<int64_t>::min();
  e.last_access_ms = std::numeric_limits<int64_t>::max();
  e.ttl_ms = -1;
  e.hit_count = std::numeric_limits<uint32_t>::max();
  e.http_status = -7;
  e.prompt_tokens = std::numeric_limits<uint32_t>::max();
  back = DecodeEntry(Encode(e));
  ASSERT_TRUE(back);
  ExpectEqual(*back, e);
}

TEST(EntryCodecTest, AppendsToExistingBytes) {
  std::string out = "prefix";
  ASSERT_TRUE(EncodeEntry(FullEntry(), &out).ok());
  ASSERT_EQ(out.substr(0, 6), "prefix");
  auto back = DecodeEntry(std::string_view(out).substr(6));
  ASSERT_TRUE(back);
  ExpectEqual(*back, FullEntry());
}

TEST(EntryCodecTest, EveryFlippedByteIsCorruption) {
  for (const CacheEntry& e : {FullEntry(), StreamEntry()}) {
    const std::string good = Encode(e);
    for (size_t i = 0; i < good.size(); ++i) {
      for (uint8_t mask : {0x01, 0x80, 0xff}) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ mask);
        auto r = DecodeEntry(bad);
        ASSERT_FALSE(r) << "byte " << i << " mask " << int{mask};
        EXPECT_TRUE(r.error().IsCorruption());
      }
    }
  }
}

TEST(EntryCodecTest, EveryTruncationIsCorruption) {
  for (const CacheEntry& e : {FullEntry(), StreamEntry()}) {
    const std::string good = Encode(e);
    for (size_t len = 0; len < good.size(); ++len) {
      auto r = DecodeEntry(std::string_view(good).substr(0, len));
      ASSERT_FALSE(r) << "length " << len;
      EXPECT_TRUE(r.error().IsCorruption());
    }
  }
}

TEST(EntryCodecTest, TrailingBytesAreCorruption) {
  std::string bytes = Encode(FullEntry());
  bytes.push_back('x');
  auto r = DecodeEntry(bytes);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsCorruption());
}

// Rewrites the checksum so that only the structural checks stand between a
// forged input and the decoder.
std::string Reseal(std::string bytes) {
  const uint64_t sum = Xxh3(std::string_view(bytes).substr(0, bytes.size() - 8));
  for (size_t i = 0; i < 8; ++i)
    bytes[bytes.size() - 8 + i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  return bytes;
}

void PutU32At(std::string* s, size_t pos, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) (*s)[pos + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

TEST(EntryCodecTest, ForgedLengthsWithValidChecksumAreCorruption) {
  const CacheEntry e = StreamEntry();
  const std::string good = Encode(e);
  constexpr size_t kKeyLenAt = 3 + 24 + 16;
  // Key length far beyond the input: must not read past or allocate it.
  std::string bad = good;
  PutU32At(&bad, kKeyLenAt, 0xfffffff0u);
  auto r = DecodeEntry(Reseal(bad));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsCorruption());

  // Event count of 2^32-1: must not reserve billions of strings.
  const size_t events_at =
      kKeyLenAt + 4 * 4 + e.key.size() + e.ns.size() + e.model.size() + e.body.size();
  bad = good;
  PutU32At(&bad, events_at, 0xffffffffu);
  r = DecodeEntry(Reseal(bad));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsCorruption());

  // One event fewer than encoded leaves trailing bytes.
  bad = good;
  PutU32At(&bad, events_at, static_cast<uint32_t>(e.sse_events.size() - 1));
  r = DecodeEntry(Reseal(bad));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().IsCorruption());
}

TEST(EntryCodecTest, UnknownVersionRouteOrFlagsAreCorruption) {
  const std::string good = Encode(FullEntry());
  for (auto [pos, value] : {std::pair<size_t, char>{0, 0x01},
                            {0, static_cast<char>(0xC2)},
                            {1, 0},
                            {1, 4},
                            {2, 2},
                            {2, static_cast<char>(0x81)}}) {
    std::string bad = good;
    bad[pos] = value;
    auto r = DecodeEntry(Reseal(bad));
    ASSERT_FALSE(r) << "pos " << pos << " value " << int{value};
    EXPECT_TRUE(r.error().IsCorruption());
  }
}

TEST(EntryCodecTest, GarbageNeverDecodes) {
  // Deterministic pseudo-random inputs of many sizes.
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 2000; ++i) {
    std::string junk(static_cast<size_t>(i % 300), '\0');
    for (auto& c : junk) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      c = static_cast<char>(state >> 56);
    }
    if (!junk.empty()) junk[0] = static_cast<char>(kEntryFormatV1);
    EXPECT_FALSE(DecodeEntry(junk));
  }
}

}  // namespace
}  // namespace llmcache
