// Measures MemoryStore hit latency with many entries (default 1,000,000).
// Usage: memory_store_bench [entries] [body_bytes] [threads]
// Prints ns per Lookup; asserts nothing (timings depend on the machine).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/hash.h"
#include "llmcache/store.h"

namespace {

using Clock = std::chrono::steady_clock;

double NsPer(Clock::duration d, uint64_t n) {
  return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const int entries = argc > 1 ? std::atoi(argv[1]) : 1'000'000;
  const int body_bytes = argc > 2 ? std::atoi(argv[2]) : 256;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  if (entries <= 0 || body_bytes < 0 || threads <= 0) {
    std::fprintf(stderr, "usage: %s [entries] [body_bytes] [threads]\n", argv[0]);
    return 2;
  }

  llmcache::MemoryStoreOptions options;
  options.max_bytes = 64ull << 30;  // no eviction: measure lookups only
  auto store = llmcache::NewMemoryStore(options);
  const int64_t now = llmcache::SystemClock()->NowMillis();
  std::vector<std::string> keys;
  keys.reserve(entries);
  const auto load_start = Clock::now();
  for (int i = 0; i < entries; ++i) {
    auto e = std::make_shared<llmcache::CacheEntry>();
    e->key = llmcache::Sha256Hex(std::to_string(i));
    e->ns = "tenant";
    e->model = "gpt-4o-mini";
    e->created_ms = e->last_access_ms = now;
    e->body.assign(body_bytes, 'x');
    keys.push_back(e->key);
    if (!store->Insert(std::move(e)).ok()) return 1;
  }
  std::printf("insert: %.0f ns/op (%d entries, %d-byte bodies)\n",
              NsPer(Clock::now() - load_start, entries), entries, body_bytes);

  // Random order defeats the CPU caches as production traffic would.
  std::vector<uint32_t> order(entries);
  for (int i = 0; i < entries; ++i) order[i] = static_cast<uint32_t>(i);
  uint64_t x = 88172645463325252ull;
  for (int i = entries - 1; i > 0; --i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::swap(order[i], order[x % (i + 1)]);
  }

  for (int pass = 0; pass < 2; ++pass) {  // pass 0 includes each entry's one-time copy
    const auto start = Clock::now();
    uint64_t hits = 0;
    for (uint32_t i : order) hits += store->Lookup(keys[i]).has_value() ? 1 : 0;
    std::printf("lookup pass %d, 1 thread: %.0f ns/hit (%llu hits)\n", pass,
                NsPer(Clock::now() - start, entries), static_cast<unsigned long long>(hits));
  }

  {
    // A skewed workload: 10,000 hot keys, mostly cache-resident.
    const int hot_keys = std::min(entries, 10'000);
    const int reads = 1'000'000;
    const auto start = Clock::now();
    uint64_t hits = 0;
    for (int i = 0; i < reads; ++i)
      hits += store->Lookup(keys[order[i % hot_keys]]).has_value() ? 1 : 0;
    std::printf("lookup of %d hot keys, 1 thread: %.0f ns/hit (%llu hits)\n", hot_keys,
                NsPer(Clock::now() - start, reads), static_cast<unsigned long long>(hits));
  }

  std::atomic<uint64_t> total{0};
  std::vector<std::thread> pool;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      uint64_t hits = 0;
      for (int i = t; i < entries; i += threads) hits += store->Lookup(keys[order[i]]).has_value();
      total += hits;
    });
  }
  for (auto& th : pool) th.join();
  std::printf("lookup, %d threads: %.0f ns/hit wall (%llu hits)\n", threads,
              NsPer(Clock::now() - start, entries), static_cast<unsigned long long>(total.load()));

  // Every reader of one hot key at once: the copy-on-shared path.
  const std::string hot = keys[0];
  pool.clear();
  const int hot_reads = 200'000;
  const auto hot_start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      std::vector<std::shared_ptr<const llmcache::CacheEntry>> held;  // readers still serving
      for (int i = 0; i < hot_reads / threads; ++i) {
        auto h = store->Lookup(hot);
        if (h) held.push_back(h->entry);
        if (held.size() > 8) held.erase(held.begin());
      }
    });
  }
  for (auto& th : pool) th.join();
  std::printf("hot key, %d threads, snapshots held: %.0f ns/hit wall\n", threads,
              NsPer(Clock::now() - hot_start, hot_reads));
  return 0;
}
