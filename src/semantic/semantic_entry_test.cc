#include "semantic/semantic_entry.h"

#include <gtest/gtest.h>

namespace llmcache::semantic {
namespace {

SemanticEntry Sample() {
  SemanticEntry e;
  e.id = 7;
  e.exact_key = "k";
  e.ns = "faq";
  e.context_key = "ctx";
  e.text = "paid leave";
  e.embedding = {0.6f, 0.8f};
  e.doc_hashes = {"d1", "d2"};
  e.created_ms = 1;
  e.last_hit_ms = 2;
  e.ttl_ms = 3;
  e.hit_count = 4;
  e.observations = {{0.8f, true}, {0.9f, false}};
  return e;
}

TEST(SemanticEntryCodec, RoundTrips) {
  SemanticEntry e = Sample();
  auto d = DecodeSemanticEntry(EncodeSemanticEntry(e));
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_EQ(d->id, 7u);
  EXPECT_EQ(d->exact_key, "k");
  EXPECT_EQ(d->text, "paid leave");
  EXPECT_EQ(d->embedding, e.embedding);
  EXPECT_EQ(d->doc_hashes, e.doc_hashes);
  EXPECT_EQ(d->ttl_ms, 3);
  EXPECT_EQ(d->hit_count, 4u);
  ASSERT_EQ(d->observations.size(), 2u);
  EXPECT_FALSE(d->observations[1].same);
}

TEST(SemanticEntryCodec, EveryFlippedByteAndTruncationIsCorruption) {
  std::string bytes = EncodeSemanticEntry(Sample());
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x20;
    EXPECT_TRUE(DecodeSemanticEntry(bad).error().IsCorruption()) << i;
  }
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeSemanticEntry(std::string_view(bytes).substr(0, n))) << n;
  }
}

TEST(SemanticMetaCodec, RoundTripsAndRejectsDamage) {
  SemanticMeta m{"use-lite", 512, 99, true, 12};
  std::string bytes = EncodeSemanticMeta(m);
  auto d = DecodeSemanticMeta(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->embedder_id, "use-lite");
  EXPECT_EQ(d->dimension, 512u);
  EXPECT_EQ(d->next_id, 99u);
  EXPECT_TRUE(d->snapshot_valid);
  EXPECT_EQ(d->snapshot_vectors, 12u);
  bytes[3] ^= 1;
  EXPECT_FALSE(DecodeSemanticMeta(bytes));
}

}  // namespace
}  // namespace llmcache::semantic
