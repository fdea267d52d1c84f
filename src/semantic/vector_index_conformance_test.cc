#include "semantic/vector_index_conformance_test.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

namespace llmcache::vector_index_test {

// Every binary that links the suite must instantiate it; one that links it
// only for the helpers need not.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VectorIndexConformanceTest);

void PrintTo(const VectorIndexConformanceParam& param, std::ostream* os) { *os << param.name; }

std::string ConformanceParamName(
    const ::testing::TestParamInfo<VectorIndexConformanceParam>& info) {
  return info.param.name;
}

VectorIndexOptions VectorIndexConformanceTest::Options(size_t dimension) const {
  VectorIndexOptions options = GetParam().options;
  options.dimension = dimension;
  return options;
}

std::unique_ptr<VectorIndex> VectorIndexConformanceTest::Make(size_t dimension) const {
  auto index = NewVectorIndex(Options(dimension));
  EXPECT_NE(index, nullptr) << "NewVectorIndex refused " << GetParam().name;
  return index;
}

std::vector<float> RandomVector(std::mt19937_64& rng, size_t dimension) {
  std::normal_distribution<float> normal;
  std::vector<float> v(dimension);
  for (float& x : v) x = normal(rng);
  return v;
}

std::vector<uint64_t> Ids(const std::vector<IndexHit>& hits) {
  std::vector<uint64_t> ids;
  for (const IndexHit& h : hits) ids.push_back(h.id);
  return ids;
}

TempPath::TempPath(const std::string& name) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "llmcache-vindex-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed for " << pattern;
  dir_ = pattern;
  path_ = (std::filesystem::path(dir_) / name).string();
}

TempPath::~TempPath() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

namespace {

float Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double{a[i]} * b[i];
    na += double{a[i]} * a[i];
    nb += double{b[i]} * b[i];
  }
  return static_cast<float>(dot / std::sqrt(na * nb));
}

std::vector<IndexHit> MustSearch(const VectorIndex& index, std::string_view partition,
                                 const std::vector<float>& query, size_t k) {
  auto hits = index.Search(partition, query, k);
  EXPECT_TRUE(hits.has_value()) << hits.error().ToString();
  return hits ? *hits : std::vector<IndexHit>{};
}

void ExpectBestFirst(const std::vector<IndexHit>& hits) {
  for (size_t i = 1; i < hits.size(); ++i) {
    EXPECT_TRUE(hits[i - 1].similarity > hits[i].similarity ||
                (hits[i - 1].similarity == hits[i].similarity && hits[i - 1].id < hits[i].id))
        << "hit " << i << " out of order";
  }
  std::set<uint64_t> distinct;
  for (const IndexHit& h : hits) EXPECT_TRUE(distinct.insert(h.id).second) << "id " << h.id;
}

TEST_P(VectorIndexConformanceTest, FindsStoredVectorsByCosine) {
  auto index = Make(8);
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->dimension(), 8u);
  EXPECT_EQ(index->size(), 0u);
  std::mt19937_64 rng(1);
  std::vector<std::vector<float>> vs;
  for (uint64_t id = 0; id < 5; ++id) {
    vs.push_back(RandomVector(rng, 8));
    ASSERT_TRUE(index->Add("p", 100 + id, vs.back()).ok());
  }
  EXPECT_EQ(index->size(), 5u);
  for (uint64_t id = 0; id < 5; ++id) {
    // Scaling a query does not change cosine.
    std::vector<float> scaled = vs[id];
    for (float& x : scaled) x *= 3.5f;
    auto hits = MustSearch(*index, "p", scaled, 5);
    ASSERT_EQ(hits.size(), 5u);
    EXPECT_EQ(hits[0].id, 100 + id);
    EXPECT_NEAR(hits[0].similarity, 1.0f, 1e-5);
    for (const IndexHit& h : hits) {
      EXPECT_NEAR(h.similarity, Cosine(vs[id], vs[h.id - 100]), 1e-5) << "id " << h.id;
    }
    ExpectBestFirst(hits);
  }
  EXPECT_GT(index->memory_bytes(), 5 * 8 * sizeof(float));
}

TEST_P(VectorIndexConformanceTest, AddReplacesTheVectorOfAnId) {
  auto index = Make(4);
  ASSERT_NE(index, nullptr);
  const std::vector<float> a{1, 0, 0, 0}, b{0, 1, 0, 0}, c{0.6f, 0.8f, 0, 0};
  ASSERT_TRUE(index->Add("p", 7, a).ok());
  ASSERT_TRUE(index->Add("p", 8, c).ok());
  ASSERT_TRUE(index->Add("p", 7, b).ok());
  EXPECT_EQ(index->size(), 2u);
  auto hits = MustSearch(*index, "p", b, 10);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].id, 7u);
  EXPECT_NEAR(hits[0].similarity, 1.0f, 1e-6);
  EXPECT_EQ(hits[1].id, 8u);
  EXPECT_NEAR(hits[1].similarity, 0.8f, 1e-6);
  hits = MustSearch(*index, "p", a, 10);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].id, 8u) << "the old vector of 7 must be gone";
  EXPECT_NEAR(hits[1].similarity, 0.0f, 1e-6);
}

TEST_P(VectorIndexConformanceTest, RemoveForgetsAndAllowsReAdding) {
  auto index = Make(4);
  ASSERT_NE(index, nullptr);
  const std::vector<float> a{1, 0, 0, 0}, b{0, 1, 0, 0};
  ASSERT_TRUE(index->Add("p", 1, a).ok());
  ASSERT_TRUE(index->Add("p", 2, b).ok());
  EXPECT_TRUE(index->Remove("p", 1).ok());
  EXPECT_EQ(index->size(), 1u);
  EXPECT_EQ(Ids(MustSearch(*index, "p", a, 10)), std::vector<uint64_t>{2});
  // Absent ids and partitions are fine.
  EXPECT_TRUE(index->Remove("p", 1).ok());
  EXPECT_TRUE(index->Remove("p", 99).ok());
  EXPECT_TRUE(index->Remove("nowhere", 2).ok());
  EXPECT_EQ(index->size(), 1u);
  // The same id comes back with a new vector; a new id takes the freed place.
  ASSERT_TRUE(index->Add("p", 1, b).ok());
  ASSERT_TRUE(index->Add("p", 3, a).ok());
  EXPECT_EQ(index->size(), 3u);
  auto hits = MustSearch(*index, "p", a, 1);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].id, 3u);
  // Emptying a partition leaves nothing behind.
  for (uint64_t id : {1, 2, 3}) EXPECT_TRUE(index->Remove("p", id).ok());
  EXPECT_EQ(index->size(), 0u);
  EXPECT_TRUE(MustSearch(*index, "p", a, 10).empty());
}

TEST_P(VectorIndexConformanceTest, PartitionsAreIsolated) {
  auto index = Make(4);
  ASSERT_NE(index, nullptr);
  const std::vector<float> a{1, 0, 0, 0}, b{0, 1, 0, 0};
  // The same id in two partitions is two entries.
  ASSERT_TRUE(index->Add("tenant-a/ctx", 1, a).ok());
  ASSERT_TRUE(index->Add("tenant-b/ctx", 1, b).ok());
  ASSERT_TRUE(index->Add("tenant-b/ctx", 2, a).ok());
  ASSERT_TRUE(index->Add(std::string("with\0nul", 8), 5, a).ok());
  EXPECT_EQ(index->size(), 4u);

  auto hits = MustSearch(*index, "tenant-a/ctx", b, 10);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].id, 1u);
  EXPECT_NEAR(hits[0].similarity, 0.0f, 1e-6) << "found a vector of another partition";
  EXPECT_EQ(Ids(MustSearch(*index, "tenant-b/ctx", b, 10)), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(Ids(MustSearch(*index, std::string("with\0nul", 8), a, 10)), std::vector<uint64_t>{5});
  EXPECT_TRUE(MustSearch(*index, "with", a, 10).empty());
  EXPECT_TRUE(MustSearch(*index, "", a, 10).empty());

  ASSERT_TRUE(index->Remove("tenant-a/ctx", 1).ok());
  EXPECT_TRUE(MustSearch(*index, "tenant-a/ctx", a, 10).empty());
  EXPECT_EQ(Ids(MustSearch(*index, "tenant-b/ctx", b, 10)), (std::vector<uint64_t>{1, 2}));
}

TEST_P(VectorIndexConformanceTest, TopKIsOrderedAndBounded) {
  constexpr size_t kDim = 16, kCount = 300;
  auto index = Make(kDim);
  ASSERT_NE(index, nullptr);
  std::mt19937_64 rng(2);
  std::vector<std::vector<float>> vs;
  for (uint64_t id = 0; id < kCount; ++id) {
    vs.push_back(RandomVector(rng, kDim));
    ASSERT_TRUE(index->Add("p", id, vs.back()).ok());
  }
  const bool exact = Options(kDim).kind == "brute-force" || Options(kDim).exact_below > kCount;
  for (int q = 0; q < 20; ++q) {
    const auto query = RandomVector(rng, kDim);
    auto hits = MustSearch(*index, "p", query, 10);
    ASSERT_EQ(hits.size(), 10u);
    ExpectBestFirst(hits);
    std::vector<IndexHit> expected;
    for (uint64_t id = 0; id < kCount; ++id) expected.push_back({id, Cosine(query, vs[id])});
    std::sort(expected.begin(), expected.end(),
              [](const IndexHit& a, const IndexHit& b) { return a.similarity > b.similarity; });
    for (const IndexHit& h : hits) EXPECT_NEAR(h.similarity, Cosine(query, vs[h.id]), 1e-5);
    if (exact) {
      expected.resize(10);
      EXPECT_EQ(Ids(hits), Ids(expected)) << "query " << q;
    }
  }
  EXPECT_EQ(MustSearch(*index, "p", vs[0], kCount + 50).size(), kCount);
  EXPECT_TRUE(MustSearch(*index, "p", vs[0], 0).empty());
}

TEST_P(VectorIndexConformanceTest, WrongDimensionIsRefused) {
  auto index = Make(4);
  ASSERT_NE(index, nullptr);
  const std::vector<float> three{1, 2, 3}, five{1, 2, 3, 4, 5}, none;
  for (const auto* v : {&three, &five, &none}) {
    EXPECT_EQ(index->Add("p", 1, *v).code(), StatusCode::kInvalidArgument);
    auto hits = index->Search("p", *v, 3);
    ASSERT_FALSE(hits.has_value());
    EXPECT_EQ(hits.error().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(index->size(), 0u);
}

TEST_P(VectorIndexConformanceTest, NonFiniteAndZeroVectorsAreRefused) {
  auto index = Make(4);
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->Add("p", 1, std::vector<float>{1, 1, 0, 0}).ok());
  const float nan = std::nanf(""), inf = INFINITY;
  const std::vector<std::vector<float>> bad{
      {nan, 0, 0, 1}, {0, inf, 0, 1}, {0, 0, -inf, 1}, {0, 0, 0, 0}};
  for (const auto& v : bad) {
    EXPECT_EQ(index->Add("p", 2, v).code(), StatusCode::kInvalidArgument) << v[0];
    EXPECT_EQ(index->Add("q", 2, v).code(), StatusCode::kInvalidArgument) << v[0];
    auto hits = index->Search("p", v, 3);
    ASSERT_FALSE(hits.has_value());
    EXPECT_EQ(hits.error().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(index->size(), 1u);
  // Huge but finite values are fine: only the direction counts.
  const float big = 3e38f;
  EXPECT_TRUE(index->Add("p", 3, std::vector<float>{0, 0, big, big}).ok());
  EXPECT_NEAR(MustSearch(*index, "p", {0, 0, 1, 1}, 1).at(0).similarity, 1.0f, 1e-6);
  EXPECT_TRUE(index->Remove("p", 3).ok());
  EXPECT_EQ(Ids(MustSearch(*index, "p", {1, 0, 0, 0}, 5)), std::vector<uint64_t>{1});
  EXPECT_TRUE(MustSearch(*index, "q", {1, 0, 0, 0}, 5).empty());
}

// Builds an index with several partitions, replacements and removals.
void Populate(VectorIndex& index, size_t dimension, size_t per_partition) {
  std::mt19937_64 rng(3);
  for (int p = 0; p < 3; ++p) {
    const std::string name = "partition-" + std::to_string(p);
    for (uint64_t id = 0; id < per_partition; ++id) {
      ASSERT_TRUE(index.Add(name, id, RandomVector(rng, dimension)).ok());
    }
    for (uint64_t id = 0; id < per_partition; id += 5) ASSERT_TRUE(index.Remove(name, id).ok());
    for (uint64_t id = 1; id < per_partition; id += 7) {
      ASSERT_TRUE(index.Add(name, id, RandomVector(rng, dimension)).ok());
    }
    for (uint64_t id = 0; id < per_partition / 10; ++id) {
      ASSERT_TRUE(index.Add(name, 1000 + id, RandomVector(rng, dimension)).ok());
    }
  }
}

TEST_P(VectorIndexConformanceTest, SaveAndLoadRoundTrip) {
  constexpr size_t kDim = 12;
  auto index = Make(kDim);
  ASSERT_NE(index, nullptr);
  Populate(*index, kDim, 150);
  TempPath file("index.snapshot");
  ASSERT_TRUE(index->Save(file.path()).ok());
  // Only the snapshot is left in the directory (no temporary file).
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(file.dir()),
                          std::filesystem::directory_iterator()),
            1);

  auto loaded = LoadVectorIndex(Options(kDim), file.path());
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  VectorIndex& copy = **loaded;
  EXPECT_STREQ(copy.Name(), index->Name());
  EXPECT_EQ(copy.size(), index->size());
  std::mt19937_64 rng(4);
  for (int q = 0; q < 20; ++q) {
    const auto query = RandomVector(rng, kDim);
    for (const char* p : {"partition-0", "partition-1", "partition-2", "absent"}) {
      auto want = MustSearch(*index, p, query, 7);
      auto got = MustSearch(copy, p, query, 7);
      ASSERT_EQ(Ids(got), Ids(want)) << p;
      for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].similarity, want[i].similarity);
    }
  }
  // The loaded index is a working index.
  const auto v = RandomVector(rng, kDim);
  ASSERT_TRUE(copy.Add("partition-0", 5000, v).ok());
  EXPECT_EQ(MustSearch(copy, "partition-0", v, 1)[0].id, 5000u);
  ASSERT_TRUE(copy.Remove("partition-0", 5000).ok());
  EXPECT_EQ(copy.size(), index->size());

  // Saving again replaces the file.
  ASSERT_TRUE(index->Remove("partition-1", 1).ok());
  ASSERT_TRUE(index->Save(file.path()).ok());
  auto reloaded = LoadVectorIndex(Options(kDim), file.path());
  ASSERT_TRUE(reloaded.has_value()) << reloaded.error().ToString();
  EXPECT_EQ((*reloaded)->size(), index->size());
}

TEST_P(VectorIndexConformanceTest, EmptyIndexRoundTrips) {
  auto index = Make(3);
  ASSERT_NE(index, nullptr);
  TempPath file("empty.snapshot");
  ASSERT_TRUE(index->Save(file.path()).ok());
  auto loaded = LoadVectorIndex(Options(3), file.path());
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->size(), 0u);
}

TEST_P(VectorIndexConformanceTest, DimensionMismatchOnLoadIsRefused) {
  auto index = Make(6);
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->Add("p", 1, std::vector<float>(6, 1.0f)).ok());
  TempPath file("index.snapshot");
  ASSERT_TRUE(index->Save(file.path()).ok());
  auto loaded = LoadVectorIndex(Options(8), file.path());
  ASSERT_FALSE(loaded.has_value());
  EXPECT_EQ(loaded.error().code(), StatusCode::kInvalidArgument) << loaded.error().ToString();
}

TEST_P(VectorIndexConformanceTest, DamagedSnapshotIsRefused) {
  constexpr size_t kDim = 8;
  auto index = Make(kDim);
  ASSERT_NE(index, nullptr);
  Populate(*index, kDim, 40);
  TempPath file("index.snapshot");
  ASSERT_TRUE(index->Save(file.path()).ok());
  const std::string good = ReadFile(file.path());
  ASSERT_GT(good.size(), 100u);
  const std::string damaged_path = file.path() + ".damaged";

  auto expect_refused = [&](const std::string& bytes, const std::string& what) {
    WriteFile(damaged_path, bytes);
    auto loaded = LoadVectorIndex(Options(kDim), damaged_path);
    ASSERT_FALSE(loaded.has_value()) << what;
    // Header fields that name the dimension or kind read as a mismatch;
    // everything else is corruption.
    EXPECT_TRUE(loaded.error().code() == StatusCode::kCorruption ||
                loaded.error().code() == StatusCode::kInvalidArgument)
        << what << ": " << loaded.error().ToString();
  };
  // Every cut and flip in the header and first records, then about 150 of
  // each over the rest (each load of a graph snapshot allocates its graphs).
  const size_t step = std::max<size_t>(1, good.size() / 150);
  for (size_t n = 0; n < good.size(); n += (n < 64 ? 1 : step)) {
    expect_refused(good.substr(0, n), "truncated to " + std::to_string(n));
  }
  expect_refused(good.substr(0, good.size() - 1), "last byte cut");
  expect_refused(good + "x", "a byte appended");
  // The checksum catches what the structure does not.
  for (size_t pos = 0; pos < good.size(); pos += (pos < 64 ? 1 : step + 1)) {
    std::string bad = good;
    bad[pos] ^= 0x10;
    expect_refused(bad, "bit flipped at " + std::to_string(pos));
  }
  expect_refused(std::string(good.size(), '\0'), "zeros");
  expect_refused("not a snapshot at all, just some text that is long enough", "text");

  auto missing = LoadVectorIndex(Options(kDim), file.path() + ".missing");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), StatusCode::kIOError);
  // The good file still loads.
  EXPECT_TRUE(LoadVectorIndex(Options(kDim), file.path()).has_value());
}

TEST_P(VectorIndexConformanceTest, SaveToAnUnwritablePlaceFails) {
  auto index = Make(3);
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->Add("p", 1, std::vector<float>{1, 2, 3}).ok());
  TempPath file("x");
  Status s = index->Save(file.dir() + "/no/such/dir/index.snapshot");
  EXPECT_EQ(s.code(), StatusCode::kIOError) << s.ToString();
}

// Bounded: a fixed number of operations per thread, then the final state is
// checked against what the writers did.
TEST_P(VectorIndexConformanceTest, ConcurrentReadersAndWriters) {
  constexpr size_t kDim = 16;
  constexpr int kWriters = 2, kReaders = 2, kOps = 600;
  auto index = Make(kDim);
  ASSERT_NE(index, nullptr);
  std::atomic<int> failures{0};
  std::atomic<bool> writers_done{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(100 + w);
      for (int op = 0; op < kOps; ++op) {
        // Each writer owns its ids; all share partition "shared".
        const uint64_t id = static_cast<uint64_t>(w) * 1'000'000 + op;
        const std::string own = "own-" + std::to_string(w) + "-" + std::to_string(op % 3);
        if (!index->Add("shared", id, RandomVector(rng, kDim)).ok()) ++failures;
        if (!index->Add(own, id, RandomVector(rng, kDim)).ok()) ++failures;
        if (op % 3 == 0 && !index->Remove("shared", id).ok()) ++failures;
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(200 + r);
      for (int op = 0; op < kOps || !writers_done.load(); ++op) {
        const std::string partition =
            op % 2 ? "shared"
                   : "own-" + std::to_string(op % kWriters) + "-" + std::to_string(op % 3);
        auto hits = index->Search(partition, RandomVector(rng, kDim), 5);
        if (!hits) {
          ++failures;
          continue;
        }
        for (size_t i = 0; i < hits->size(); ++i) {
          const IndexHit& h = (*hits)[i];
          if (!(h.similarity >= -1.001f && h.similarity <= 1.001f)) ++failures;
          if (i > 0 && (*hits)[i - 1].similarity < h.similarity) ++failures;
        }
        if (op > 100 * kOps) break;  // bound even if writers stall
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  writers_done = true;
  for (size_t t = kWriters; t < threads.size(); ++t) threads[t].join();
  EXPECT_EQ(failures.load(), 0);
  const size_t shared = kWriters * (kOps - (kOps + 2) / 3);
  EXPECT_EQ(index->size(), shared + kWriters * kOps);
  std::mt19937_64 rng(5);
  EXPECT_EQ(MustSearch(*index, "shared", RandomVector(rng, kDim), 10000).size(), shared);
}

TEST_P(VectorIndexConformanceTest, RecallAgainstExactSearch) {
  constexpr size_t kDim = 32, kCount = 2000, kQueries = 200;
  auto index = Make(kDim);
  VectorIndexOptions exact_options = Options(kDim);
  exact_options.kind = "brute-force";
  auto exact = NewVectorIndex(exact_options);
  ASSERT_NE(index, nullptr);
  ASSERT_NE(exact, nullptr);
  std::mt19937_64 rng(6);
  for (uint64_t id = 0; id < kCount; ++id) {
    const auto v = RandomVector(rng, kDim);
    ASSERT_TRUE(index->Add("p", id, v).ok());
    ASSERT_TRUE(exact->Add("p", id, v).ok());
  }
  auto recall_at_1 = [&] {
    std::mt19937_64 qrng(7);
    size_t agree = 0;
    for (size_t q = 0; q < kQueries; ++q) {
      const auto query = RandomVector(qrng, kDim);
      auto got = MustSearch(*index, "p", query, 1);
      auto want = MustSearch(*exact, "p", query, 1);
      if (!got.empty() && !want.empty() && got[0].id == want[0].id) ++agree;
    }
    return static_cast<double>(agree) / kQueries;
  };
  const double fresh = recall_at_1();
  EXPECT_GE(fresh, GetParam().min_recall_at_1);
  // Churn: a third removed, as many new ids added (into the freed places).
  for (uint64_t id = 0; id < kCount; id += 3) {
    ASSERT_TRUE(index->Remove("p", id).ok());
    ASSERT_TRUE(exact->Remove("p", id).ok());
  }
  for (uint64_t id = kCount; id < kCount + kCount / 3; ++id) {
    const auto v = RandomVector(rng, kDim);
    ASSERT_TRUE(index->Add("p", id, v).ok());
    ASSERT_TRUE(exact->Add("p", id, v).ok());
  }
  EXPECT_EQ(index->size(), exact->size());
  const double churned = recall_at_1();
  EXPECT_GE(churned, GetParam().min_recall_at_1);
  RecordProperty("recall_at_1", std::to_string(fresh) + " " + std::to_string(churned));
  std::printf("recall@1 %.3f, after churn %.3f\n", fresh, churned);
}

}  // namespace
}  // namespace llmcache::vector_index_test
