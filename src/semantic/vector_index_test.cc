// Runs the vector index conformance suite against brute-force and hnsw, and
// the tests that only concern one of them (the hnsw graph's life cycle, its
// snapshot blocks).
#include "llmcache/vector_index.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/hash.h"
#include "semantic/vector_index_conformance_test.h"
#include "semantic/vector_index_impl.h"

namespace llmcache::vector_index_test {
namespace {

VectorIndexOptions Kind(std::string kind, size_t exact_below = 1024) {
  VectorIndexOptions options;
  options.kind = std::move(kind);
  options.exact_below = exact_below;
  return options;
}

INSTANTIATE_TEST_SUITE_P(
    All, VectorIndexConformanceTest,
    ::testing::Values(VectorIndexConformanceParam{"brute_force", Kind("brute-force")},
                      // Every partition a graph, even of one vector.
                      VectorIndexConformanceParam{"hnsw_graph", Kind("hnsw", 0)},
                      // Partitions switch between exact scans and graphs as they grow and
                      // shrink.
                      VectorIndexConformanceParam{"hnsw_switching", Kind("hnsw", 64)},
                      // The default: the suite's small partitions stay exact.
                      VectorIndexConformanceParam{"hnsw_default", Kind("hnsw")}),
    ConformanceParamName);

TEST(VectorIndexFactoryTest, UnknownKindOrZeroDimensionIsRefused) {
  EXPECT_EQ(NewVectorIndex(Kind("faiss")), nullptr);
  VectorIndexOptions zero = Kind("hnsw");
  zero.dimension = 0;
  EXPECT_EQ(NewVectorIndex(zero), nullptr);
  auto loaded = LoadVectorIndex(Kind("faiss"), "unused");
  ASSERT_FALSE(loaded.has_value());
  EXPECT_EQ(loaded.error().code(), StatusCode::kInvalidArgument);
  EXPECT_STREQ(NewVectorIndex(Kind("hnsw"))->Name(), "hnsw");
  EXPECT_STREQ(NewVectorIndex(Kind("brute-force"))->Name(), "brute-force");
}

TEST(VectorIndexSnapshotTest, AnotherKindIsRefused) {
  VectorIndexOptions exact = Kind("brute-force");
  exact.dimension = 4;
  auto index = NewVectorIndex(exact);
  ASSERT_TRUE(index->Add("p", 1, std::vector<float>{1, 2, 3, 4}).ok());
  TempPath file("index.snapshot");
  ASSERT_TRUE(index->Save(file.path()).ok());
  VectorIndexOptions hnsw = Kind("hnsw");
  hnsw.dimension = 4;
  auto loaded = LoadVectorIndex(hnsw, file.path());
  ASSERT_FALSE(loaded.has_value());
  EXPECT_EQ(loaded.error().code(), StatusCode::kInvalidArgument);
}

// A damaged file whose checksum was recomputed (a writer bug, or a crafted
// file) must still be refused or loaded as a working index: the loader checks
// the structure (counts, graph links, levels, ids) before anything uses it.
TEST(VectorIndexSnapshotTest, StructuralDamageBehindAValidChecksumIsSafe) {
  VectorIndexOptions options = Kind("hnsw", 0);
  options.dimension = 4;
  options.hnsw_m = 4;
  auto index = NewVectorIndex(options);
  std::mt19937_64 rng(9);
  for (uint64_t id = 0; id < 40; ++id) {
    ASSERT_TRUE(index->Add("p", id, RandomVector(rng, 4)).ok());
  }
  ASSERT_TRUE(index->Remove("p", 3).ok());
  TempPath file("index.snapshot");
  ASSERT_TRUE(index->Save(file.path()).ok());
  const std::string good = ReadFile(file.path());
  const size_t payload = good.size() - sizeof(uint64_t);

  const std::string damaged = file.path() + ".damaged";
  size_t refused = 0, loaded_ok = 0;
  // Every byte of the header and the first records, then a sample.
  for (size_t pos = 0; pos < payload; pos += (pos < 400 ? 1 : 3)) {
    for (uint8_t mask : {uint8_t{0xff}, uint8_t{0x01}}) {
      std::string bad = good;
      bad[pos] = static_cast<char>(bad[pos] ^ mask);
      const uint64_t sum = Xxh3(bad.data(), payload, 0);
      std::memcpy(bad.data() + payload, &sum, sizeof sum);
      WriteFile(damaged, bad);
      auto loaded = LoadVectorIndex(options, damaged);
      if (!loaded) {
        ++refused;
        continue;
      }
      ++loaded_ok;
      // Whatever was accepted must be searchable and writable.
      auto hits = (*loaded)->Search("p", RandomVector(rng, 4), 5);
      EXPECT_TRUE(hits.has_value());
      EXPECT_TRUE((*loaded)->Add("p", 1000, RandomVector(rng, 4)).ok());
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(loaded_ok, 0u);  // e.g. a changed vector value is still a valid file
}

// Without reuse of deleted graph slots, churn would grow the graph forever.
TEST(HnswIndexTest, SearchBeamWidensAsTheGraphGrows) {
  EXPECT_EQ(vindex::HnswSearchBeam(0, 64), 64u);
  EXPECT_EQ(vindex::HnswSearchBeam(500'000, 64), 64u);
  EXPECT_EQ(vindex::HnswSearchBeam(500'001, 64), 128u);
  EXPECT_EQ(vindex::HnswSearchBeam(1'000'000, 64), 128u);
  EXPECT_EQ(vindex::HnswSearchBeam(1'000'001, 64), 256u);
  EXPECT_EQ(vindex::HnswSearchBeam(4'000'000, 32), 256u);
}

TEST(HnswIndexTest, ChurnReusesDeletedSlots) {
  VectorIndexOptions options = Kind("hnsw", 0);
  options.dimension = 16;
  auto index = NewVectorIndex(options);
  std::mt19937_64 rng(10);
  for (uint64_t id = 0; id < 500; ++id) {
    ASSERT_TRUE(index->Add("p", id, RandomVector(rng, 16)).ok());
  }
  const size_t before = index->memory_bytes();
  for (int round = 0; round < 4; ++round) {
    for (uint64_t id = 0; id < 250; ++id) {
      const uint64_t old_id = round * 1000 + id * 2;
      ASSERT_TRUE(index->Remove("p", round == 0 ? id * 2 : old_id).ok());
      ASSERT_TRUE(index->Add("p", (round + 1) * 1000 + id * 2, RandomVector(rng, 16)).ok());
    }
  }
  EXPECT_EQ(index->size(), 500u);
  EXPECT_LE(index->memory_bytes(), before + before / 10);
  // The relabelled slots answer under their new ids.
  auto v = RandomVector(rng, 16);
  ASSERT_TRUE(index->Add("p", 4242, v).ok());
  auto hits = index->Search("p", v, 1);
  ASSERT_TRUE(hits.has_value());
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_EQ((*hits)[0].id, 4242u);
}

// A partition gets its graph at exact_below and drops it below half of it;
// across both switches every stored vector stays findable, and a snapshot
// taken in either state loads.
TEST(HnswIndexTest, PartitionsSwitchBetweenExactAndGraph) {
  VectorIndexOptions options = Kind("hnsw", 100);
  options.dimension = 8;
  auto index = NewVectorIndex(options);
  std::mt19937_64 rng(11);
  std::vector<std::vector<float>> vs;
  auto check_all_found = [&](uint64_t first, uint64_t last) {
    for (uint64_t id = first; id < last; ++id) {
      auto hits = index->Search("p", vs[id], 1);
      ASSERT_TRUE(hits.has_value());
      ASSERT_EQ(hits->size(), 1u);
      EXPECT_EQ((*hits)[0].id, id);
    }
  };
  for (uint64_t id = 0; id < 300; ++id) {
    vs.push_back(RandomVector(rng, 8));
    ASSERT_TRUE(index->Add("p", id, vs.back()).ok());
  }
  const size_t graph_bytes = index->memory_bytes();
  check_all_found(0, 300);
  TempPath file("index.snapshot");
  ASSERT_TRUE(index->Save(file.path()).ok());
  // A smaller exact_below at load time leaves saved graphs as they are; a
  // larger one too (the graph is kept until the partition shrinks).
  VectorIndexOptions other = options;
  other.exact_below = 10'000;
  auto loaded = LoadVectorIndex(other, file.path());
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->size(), 300u);

  for (uint64_t id = 0; id < 260; ++id) ASSERT_TRUE(index->Remove("p", id).ok());
  EXPECT_LT(index->memory_bytes(), graph_bytes / 2) << "the graph was not dropped";
  check_all_found(260, 300);
  ASSERT_TRUE(index->Save(file.path()).ok());
  // A flat partition larger than exact_below gets its graph on load.
  other.exact_below = 10;
  loaded = LoadVectorIndex(other, file.path());
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->size(), 40u);
  auto hits = (*loaded)->Search("p", vs[270], 1);
  ASSERT_TRUE(hits.has_value());
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_EQ((*hits)[0].id, 270u);
}

}  // namespace
}  // namespace llmcache::vector_index_test
