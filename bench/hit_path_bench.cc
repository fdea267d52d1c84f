// In-process cost of the cache work on the exact-hit path, without HTTP:
// canonicalizing the ~1 KB chat request of the HTTP benchmarks, deriving its
// cache key, and a memory-tier lookup at 10k and 1M entries. It tells how
// much of a hit's CPU time (bench/hit_throughput.sh reports that per request)
// is the cache itself, and whether the store's lookup scales with size
// independently of the network noise that bench/scale_1m.sh sees.
//
//   build/bench/hit_path_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/hash.h"
#include "gateway/canonical.h"
#include "gateway/canonical_memo.h"
#include "llmcache/store.h"

#ifndef LLMCACHE_BENCH_TEMPLATE
#define LLMCACHE_BENCH_TEMPLATE "bench/data/chat_request.json.tmpl"
#endif

namespace {

using llmcache::CacheEntry;
using llmcache::Route;

std::string RequestBody(const std::string& id) {
  static const std::string tmpl = [] {
    std::ifstream in(LLMCACHE_BENCH_TEMPLATE);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }();
  std::string body = tmpl;
  auto pos = body.find("@@ID@@");
  if (pos != std::string::npos) body.replace(pos, 6, id);
  return body;
}

void BM_Canonicalize(benchmark::State& state) {
  const std::string body = RequestBody("hit-0");
  if (body.size() < 100) {
    state.SkipWithError("request template not found (run from the repository root)");
    return;
  }
  llmcache::gateway::CanonicalOptions opts;
  for (auto _ : state) {
    auto c = llmcache::gateway::Canonicalize(Route::kChat, body, opts);
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(body.size()));
}
BENCHMARK(BM_Canonicalize);

void BM_CacheKey(benchmark::State& state) {
  const std::string body = RequestBody("hit-0");
  auto c = llmcache::gateway::Canonicalize(Route::kChat, body, {});
  if (!c) {
    state.SkipWithError("request template not found (run from the repository root)");
    return;
  }
  for (auto _ : state) {
    auto key = llmcache::gateway::CacheKey({"default", "sha256:aaaa", c->canonical, Route::kChat});
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_CacheKey);

// What a repeated body costs instead of the two above: the memo's lookup
// (hash, full compare of the body) and its remembered key.
void BM_MemoCanonicalizeAndKey(benchmark::State& state) {
  const std::string body = RequestBody("hit-0");
  llmcache::gateway::CanonicalMemo memo;
  if (!memo.Canonicalize(Route::kChat, body, {})) {
    state.SkipWithError("request template not found (run from the repository root)");
    return;
  }
  for (auto _ : state) {
    auto e = memo.Canonicalize(Route::kChat, body, {});
    auto key = (*e)->Key("default", "sha256:aaaa");
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_MemoCanonicalizeAndKey);

// A memory tier holding N entries shaped like the HTTP benchmarks' (64-hex
// key, ~1.1 KB body); every key read once before timing, so the timed
// lookups are steady-state hits (the first hit after Insert copies the
// entry once).
struct Filled {
  std::unique_ptr<llmcache::Store> store;
  std::vector<std::string> keys;
};

Filled& FilledStore(size_t n) {
  static std::map<size_t, std::unique_ptr<Filled>> cache;
  auto& slot = cache[n];
  if (slot) return *slot;
  slot = std::make_unique<Filled>();
  llmcache::MemoryStoreOptions mo;
  mo.max_bytes = 64ull << 30;
  slot->store = llmcache::NewMemoryStore(mo);
  const std::string answer(1100, 'a');
  slot->keys.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto e = std::make_shared<CacheEntry>();
    e->key = llmcache::Sha256Hex("key-" + std::to_string(i));
    e->ns = "default";
    e->model = "llama3";
    e->created_ms = e->last_access_ms = 1'800'000'000'000;
    e->ttl_ms = 0;
    e->body = answer;
    slot->keys.push_back(e->key);
    (void)slot->store->Insert(std::move(e));
  }
  for (const auto& k : slot->keys) (void)slot->store->Lookup(k);
  return *slot;
}

void BM_MemoryLookupHit(benchmark::State& state) {
  Filled& f = FilledStore(static_cast<size_t>(state.range(0)));
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<size_t> pick(0, f.keys.size() - 1);
  for (auto _ : state) {
    auto hit = f.store->Lookup(f.keys[pick(rng)]);
    if (!hit) state.SkipWithError("lookup missed");
    benchmark::DoNotOptimize(hit);
  }
  state.counters["entries"] = double(f.keys.size());
}
BENCHMARK(BM_MemoryLookupHit)->Arg(10'000)->Arg(1'000'000)->Unit(benchmark::kNanosecond);

}  // namespace

BENCHMARK_MAIN();
