// Runs the store conformance suite against the memory, RocksDB and tiered
// stores.
#include <utility>

#include "llmcache/store.h"
#include "store/store_conformance_test.h"

namespace llmcache::store_test {
namespace {

StoreUnderTest MakeMemory(const StoreTestConfig& config) {
  MemoryStoreOptions options;
  options.max_bytes = config.max_bytes;
  options.expiry = config.expiry;
  options.clock = config.clock;
  return {NewMemoryStore(std::move(options)), nullptr};
}

StoreUnderTest MakeRocksDb(const StoreTestConfig& config) {
  auto dir = std::make_shared<TempDir>();
  RocksDbStoreOptions options;
  options.path = dir->path();
  options.max_disk_bytes = config.max_bytes;
  options.expiry = config.expiry;
  options.clock = config.clock;
  auto store = OpenRocksDbStore(std::move(options));
  if (!store) {
    ADD_FAILURE() << "OpenRocksDbStore: " << store.error().ToString();
    return {nullptr, nullptr};
  }
  return {std::move(*store), [dir]() mutable { dir.reset(); }};
}

// Both tiers get the same bound, so the tiered store as a whole behaves like
// one store with that bound.
StoreUnderTest MakeTiered(const StoreTestConfig& config) {
  StoreUnderTest persistent = MakeRocksDb(config);
  if (!persistent.store) return persistent;
  StoreUnderTest memory = MakeMemory(config);
  return {NewTieredStore(std::move(memory.store), std::move(persistent.store)),
          std::move(persistent.cleanup)};
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformanceTest,
                         ::testing::Values(StoreConformanceParam{"memory", MakeMemory},
                                           StoreConformanceParam{"rocksdb", MakeRocksDb},
                                           StoreConformanceParam{"tiered", MakeTiered}),
                         ConformanceParamName);

}  // namespace
}  // namespace llmcache::store_test
