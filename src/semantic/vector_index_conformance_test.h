// The behaviour every VectorIndex implementation must show, as one
// parameterised GoogleTest suite. The TEST_Ps live in
// vector_index_conformance_test.cc, built as the OBJECT library
// llmcache_vector_index_conformance; a test binary instantiates them by
// linking that library and writing, inside namespace
// llmcache::vector_index_test:
//
//   INSTANTIATE_TEST_SUITE_P(Mine, VectorIndexConformanceTest,
//       ::testing::Values(VectorIndexConformanceParam{"mine", options}),
//       ConformanceParamName);
//
// vector_index_test.cc does this for brute-force and hnsw (with and without
// exact scans of small partitions).
//
// What an implementation must honour: every index is made with
// NewVectorIndex(options) and reloaded with LoadVectorIndex(options, path),
// where the suite sets options.dimension per test and keeps everything else
// from the parameter.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "llmcache/vector_index.h"

namespace llmcache::vector_index_test {

struct VectorIndexConformanceParam {
  std::string name;  // letters, digits and '_' only: it becomes the test name
  VectorIndexOptions options;
  // Approximate implementations: the least recall@1 against exact search on
  // the suite's random data set.
  double min_recall_at_1 = 0.98;
};
void PrintTo(const VectorIndexConformanceParam& param, std::ostream* os);
std::string ConformanceParamName(const ::testing::TestParamInfo<VectorIndexConformanceParam>& info);

class VectorIndexConformanceTest : public ::testing::TestWithParam<VectorIndexConformanceParam> {
 protected:
  VectorIndexOptions Options(size_t dimension) const;
  // A fresh, empty index of the parameter's kind.
  std::unique_ptr<VectorIndex> Make(size_t dimension) const;
};

// Helpers shared by the suite and implementation-specific tests.

// A Gaussian random vector (not normalized).
std::vector<float> RandomVector(std::mt19937_64& rng, size_t dimension);
// The ids of hits, in order.
std::vector<uint64_t> Ids(const std::vector<IndexHit>& hits);

// A path in a fresh directory under the system temp directory, removed
// (recursively) on destruction.
class TempPath {
 public:
  explicit TempPath(const std::string& name);
  ~TempPath();
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;
  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string path_;
};

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& bytes);

}  // namespace llmcache::vector_index_test
