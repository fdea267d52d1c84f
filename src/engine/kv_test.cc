// The pieces of the prefix KV cache on their own: block hashes, the block
// manager's states (free, cached, in use) and the disk tier's files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "engine/disk_tier.h"
#include "engine/kv_hash.h"
#include "engine/prefix_cache.h"

namespace llmcache::engine {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("llmcache-kv-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

TEST(KvHashTest, ChainDependsOnParentTokensAndKeys) {
  const std::vector<int32_t> a = {1, 2, 3, 4};
  const std::vector<int32_t> b = {1, 2, 3, 5};
  const BlockHash keys = RequestKeys({1, 2}, "");
  const BlockHash salted = RequestKeys({1, 2}, "tenant-b");
  const BlockHash h = ChainBlockHash({}, a, keys);
  EXPECT_EQ(h, ChainBlockHash({}, a, keys));
  EXPECT_NE(h, ChainBlockHash({}, b, keys));
  EXPECT_NE(h, ChainBlockHash({}, a, salted));
  EXPECT_NE(h, ChainBlockHash(h, a, keys));
  EXPECT_NE(keys, RequestKeys({1, 3}, ""));

  BlockHash back;
  ASSERT_TRUE(FromHex(ToHex(h), &back));
  EXPECT_EQ(back, h);
  EXPECT_EQ(ToHex(h).size(), 32u);
  EXPECT_FALSE(FromHex("xyz", &back));
  EXPECT_FALSE(FromHex(std::string(32, 'g'), &back));
}

ModelConfig TinyConfig() {
  ModelConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_head_kv = 1;
  c.head_dim = 4;
  c.n_embd = 8;
  return c;
}

// Fills a block with a pattern derived from `seed` and checks it back.
void Fill(KvBlockPool& pool, uint32_t block, uint16_t seed) {
  std::vector<uint8_t> bytes(pool.block_bytes());
  std::iota(bytes.begin(), bytes.end(), static_cast<uint8_t>(seed));
  pool.CopyIn(block, bytes);
}
bool Holds(const KvBlockPool& pool, uint32_t block, uint16_t seed) {
  std::vector<uint8_t> want(pool.block_bytes()), got(pool.block_bytes());
  std::iota(want.begin(), want.end(), static_cast<uint8_t>(seed));
  pool.CopyOut(block, got);
  return want == got;
}

BlockHash H(uint64_t i) { return ChainBlockHash({}, std::vector<int32_t>{int32_t(i)}, {}); }

TEST(KvBlockPoolTest, KAndVOfEachLayerAreSeparateRows) {
  KvBlockPool pool(TinyConfig(), 3, 4);
  EXPECT_EQ(pool.block_bytes(), 2u * 2 * 4 * 4 * sizeof(uint16_t));
  pool.k(1, 0, 0)[0] = 7;
  pool.v(1, 0, 0)[0] = 9;
  pool.k(1, 1, 3)[3] = 11;
  EXPECT_NE(pool.k(1, 0, 0), pool.v(1, 0, 0));
  std::vector<uint8_t> bytes(pool.block_bytes());
  pool.CopyOut(1, bytes);
  pool.CopyIn(2, bytes);
  EXPECT_EQ(pool.k(2, 0, 0)[0], 7);
  EXPECT_EQ(pool.v(2, 0, 0)[0], 9);
  EXPECT_EQ(pool.k(2, 1, 3)[3], 11);
}

TEST(KvBlockManagerTest, RefcountsCachedBlocksAndLruEviction) {
  KvBlockPool pool(TinyConfig(), 3, 4);
  KvBlockManager m(&pool, nullptr);
  auto a = m.Allocate(), b = m.Allocate(), c = m.Allocate();
  ASSERT_TRUE(a && b && c);
  EXPECT_FALSE(m.Allocate().has_value());  // all in use
  EXPECT_EQ(m.stats().used_blocks, 3u);
  m.Publish(*a, H(1));
  m.Publish(*b, H(2));
  // A second holder of the same block: released once, still in use.
  EXPECT_EQ(m.Acquire(H(1)), a);
  m.Release(*a);
  EXPECT_EQ(m.stats().used_blocks, 3u);
  m.Release(*b);  // cached first: evicted first
  m.Release(*a);
  m.Release(*c);  // no hash: plain free
  EXPECT_EQ(m.stats().used_blocks, 0u);
  EXPECT_EQ(m.stats().cached_blocks, 2u);
  EXPECT_EQ(m.available(), 3u);

  EXPECT_EQ(m.Allocate(), c);  // free before evicting anything
  EXPECT_EQ(m.Allocate(), b);  // least recently released cached block
  EXPECT_EQ(m.stats().evicted_blocks, 1u);
  EXPECT_FALSE(m.Acquire(H(2)).has_value());  // its hash went with it
  EXPECT_EQ(m.Acquire(H(1)), a);
  for (uint32_t x : {*a, *b, *c}) m.Release(x);
  EXPECT_EQ(m.stats().used_blocks, 0u);
}

TEST(KvBlockManagerTest, FirstPublisherOfAHashStaysTheCachedCopy) {
  KvBlockPool pool(TinyConfig(), 2, 4);
  KvBlockManager m(&pool, nullptr);
  auto a = m.Allocate(), b = m.Allocate();
  m.Publish(*a, H(5));
  m.Publish(*b, H(5));
  m.Release(*b);
  m.Release(*a);
  EXPECT_EQ(m.stats().cached_blocks, 1u);
  EXPECT_EQ(m.Acquire(H(5)), a);
  m.Release(*a);
}

TEST(KvBlockManagerTest, EvictedBlocksComeBackFromDisk) {
  const fs::path dir = TempDir("manager");
  auto disk = DiskTier::Open({dir.string(), 1 << 20});
  ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
  KvBlockPool pool(TinyConfig(), 2, 4);
  KvBlockManager m(&pool, disk->get());
  auto a = m.Allocate();
  Fill(pool, *a, 3);
  m.Publish(*a, H(1));
  m.Release(*a);
  auto x = m.Allocate(), y = m.Allocate();  // the second evicts (and spills) a
  ASSERT_TRUE(x && y);
  EXPECT_EQ(m.stats().spilled_blocks, 1u);
  Fill(pool, *y, 200);  // overwrite the RAM copy
  m.Release(*x);
  auto back = m.Acquire(H(1));
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(Holds(pool, *back, 3));
  EXPECT_EQ(m.stats().disk_hit_tokens, 4u);
  m.Release(*back);
  m.Release(*y);
  EXPECT_EQ(m.stats().used_blocks, 0u);
  fs::remove_all(dir);
}

TEST(DiskTierTest, RoundTripRestartAndCorruption) {
  const fs::path dir = TempDir("tier");
  std::vector<uint8_t> block(1000), out(1000);
  std::iota(block.begin(), block.end(), 0);
  {
    auto tier = DiskTier::Open({dir.string(), 1 << 20});
    ASSERT_TRUE(tier.has_value());
    EXPECT_TRUE((*tier)->Load(H(1), out).IsNotFound());
    ASSERT_TRUE((*tier)->Store(H(1), block).ok());
    ASSERT_TRUE((*tier)->Store(H(2), block).ok());
    ASSERT_TRUE((*tier)->Store(H(3), block).ok());
    ASSERT_TRUE((*tier)->Load(H(1), out).ok());
    EXPECT_EQ(out, block);
  }
  std::ofstream(dir / "leftover.kvb.tmp") << "half a write";
  auto tier = DiskTier::Open({dir.string(), 1 << 20});
  ASSERT_TRUE(tier.has_value());
  EXPECT_EQ((*tier)->stats().blocks, 3u);
  EXPECT_FALSE(fs::exists(dir / "leftover.kvb.tmp"));
  std::fill(out.begin(), out.end(), 0);
  ASSERT_TRUE((*tier)->Load(H(2), out).ok());
  EXPECT_EQ(out, block);

  {  // one flipped payload bit
    std::fstream f((*tier)->PathOf(H(1)), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c;
    f.get(c);
    f.seekp(100);
    f.put(static_cast<char>(c ^ 4));
  }
  EXPECT_TRUE((*tier)->Load(H(1), out).IsCorruption());
  EXPECT_FALSE(fs::exists((*tier)->PathOf(H(1))));
  EXPECT_FALSE((*tier)->Contains(H(1)));
  fs::resize_file((*tier)->PathOf(H(3)), 500);  // truncated
  EXPECT_TRUE((*tier)->Load(H(3), out).IsCorruption());
  EXPECT_TRUE((*tier)->Load(H(2), std::span<uint8_t>(out).first(999)).IsCorruption());  // size
  EXPECT_EQ((*tier)->stats().corrupt_dropped, 3u);
  EXPECT_EQ((*tier)->stats().blocks, 0u);
  fs::remove_all(dir);
}

TEST(DiskTierTest, BudgetEvictsLeastRecentlyUsed) {
  const fs::path dir = TempDir("budget");
  std::vector<uint8_t> block(1000), out(1000);
  // Room for two files of 48 + 1000 bytes.
  auto tier = DiskTier::Open({dir.string(), 2200});
  ASSERT_TRUE(tier.has_value());
  ASSERT_TRUE((*tier)->Store(H(1), block).ok());
  ASSERT_TRUE((*tier)->Store(H(2), block).ok());
  ASSERT_TRUE((*tier)->Load(H(1), out).ok());  // 2 is now the older
  ASSERT_TRUE((*tier)->Store(H(3), block).ok());
  EXPECT_TRUE((*tier)->Contains(H(1)));
  EXPECT_FALSE((*tier)->Contains(H(2)));
  EXPECT_FALSE(fs::exists((*tier)->PathOf(H(2))));
  EXPECT_TRUE((*tier)->Contains(H(3)));
  EXPECT_EQ((*tier)->stats().evicted, 1u);
  EXPECT_LE((*tier)->stats().bytes, 2200u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace llmcache::engine
