#include "engine/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace llmcache::engine {
namespace {

TEST(ThreadPoolTest, CoversEveryIndexOnceInGrainAlignedChunks) {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n : {0u, 1u, 7u, 64u, 1000u}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> misaligned{0};
      pool.ParallelFor(n, 16, [&](size_t b, size_t e) {
        if (b % 16 != 0) ++misaligned;
        for (size_t i = b; i < e; ++i) ++hits[i];
      });
      for (size_t i = 0; i < n; ++i)
        EXPECT_EQ(hits[i].load(), 1) << threads << " " << n << " " << i;
      EXPECT_EQ(misaligned.load(), 0);
    }
  }
}

TEST(ThreadPoolTest, ReusableManyTimes) {
  ThreadPool pool(3);
  std::atomic<size_t> total{0};
  for (int round = 0; round < 200; ++round) {
    pool.ParallelFor(100, 1, [&](size_t b, size_t e) { total += e - b; });
  }
  EXPECT_EQ(total.load(), 200u * 100u);
}

}  // namespace
}  // namespace llmcache::engine
