// The behaviour every Store implementation must show, as one parameterised
// GoogleTest suite. The TEST_Ps live in store_conformance_test.cc, built as
// the OBJECT library llmcache_store_conformance; a test binary instantiates
// them for its store by linking that library
// (target_link_libraries(my_test PRIVATE llmcache_store_conformance)) and
// writing, in any of its test files, inside namespace llmcache::store_test
// (the macro cannot take a qualified suite name):
//
//   StoreUnderTest MakeRedis(const StoreTestConfig& config) { ... }
//   INSTANTIATE_TEST_SUITE_P(Redis, StoreConformanceTest,
//       ::testing::Values(StoreConformanceParam{"redis", MakeRedis}),
//       ConformanceParamName);
//
// store_conformance_instances_test.cc does this for memory, rocksdb, tiered.
//
// What a factory must honour:
// - a fresh, empty store per call (tests never share state);
// - config.clock as the store's only clock (tests move time, never sleep);
// - config.expiry as the expiry options;
// - config.max_bytes as the byte bound. Entries in the bound tests have
//   20 KB bodies and the bound is 3.5 of them: a store that counts up to
//   ~500 bytes of overhead per entry and evicts down to 90% of the bound
//   (as RocksDB does) still keeps exactly 3.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "llmcache/cache_entry.h"
#include "llmcache/clock.h"
#include "llmcache/store.h"

namespace llmcache::store_test {

struct StoreTestConfig {
  uint64_t max_bytes = 64ull << 20;
  ExpiryOptions expiry;
  std::shared_ptr<ManualClock> clock;
};

struct StoreUnderTest {
  std::unique_ptr<Store> store;
  // Runs after the store is destroyed (e.g. removes its directory). May be
  // empty.
  std::function<void()> cleanup;
};

using StoreFactory = std::function<StoreUnderTest(const StoreTestConfig&)>;

struct StoreConformanceParam {
  std::string name;  // letters, digits and '_' only: it becomes the test name
  StoreFactory factory;
};
void PrintTo(const StoreConformanceParam& param, std::ostream* os);
std::string ConformanceParamName(const ::testing::TestParamInfo<StoreConformanceParam>& info);

class StoreConformanceTest : public ::testing::TestWithParam<StoreConformanceParam> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Destroys the current store and builds a fresh, empty one from config
  // (its clock is replaced by this test's clock).
  void Recreate(StoreTestConfig config);

  Store& store() { return *sut_.store; }
  ManualClock& clock() { return *clock_; }
  int64_t now() const { return clock_->NowMillis(); }

 private:
  void Destroy();

  std::shared_ptr<ManualClock> clock_;
  StoreUnderTest sut_;
};

// Helpers shared by the suite and store-specific tests.

// A realistic key: the lowercase hex SHA-256 of name.
std::string KeyFor(std::string_view name);

// A complete non-stream chat entry for `name`, created and last read at
// now_ms, with no TTL, in namespace ns for model. The body is JSON that names
// `name` and is padded to body_bytes.
std::shared_ptr<CacheEntry> MakeEntry(std::string_view name, int64_t now_ms,
                                      size_t body_bytes = 128, std::string ns = "tenant-a",
                                      std::string model = "gpt-4o-mini");

// A fresh directory under the system temp directory, removed (recursively)
// on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace llmcache::store_test
