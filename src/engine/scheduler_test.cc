// BatchedEngine end to end on a small random-weight model: prefix-cache hits
// (RAM and disk) and batching give exactly the tokens and logits of a cold
// Session run; eviction, salts, restarts, corruption, cancellation and
// refcounts.
#include "engine/scheduler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <set>

#include "engine/kv_hash.h"
#include "engine/sampling.h"
#include "engine/test_model.h"
#include "engine/test_util.h"

namespace llmcache::engine {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;
  Result<CompletionUsage> usage = Err(Status::Internal("not finished"));
};

class BatchedEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(enginetest::VocabDir())) return;
    model_ = Load(11).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  static std::unique_ptr<Model> Load(uint64_t seed) {
    TestModelOptions o;
    o.vocab_path = (enginetest::VocabDir() / "ggml-vocab-llama-spm.gguf").string();
    o.type = TestModelType::kQ8_0;
    o.n_layer = 2;
    o.n_embd = 128;
    o.n_head = 4;
    o.n_head_kv = 2;
    o.n_ff = 256;
    o.weight_scale = 0.1f;  // less flat logits: varied greedy tokens
    o.seed = seed;
    const std::string path =
        (fs::temp_directory_path() / ("llmcache-kv-model-" + std::to_string(::getpid()) + ".gguf"))
            .string();
    EXPECT_TRUE(WriteTestModel(o, path).ok());
    auto m = Model::Open(path);
    fs::remove(path);
    EXPECT_TRUE(m.has_value()) << m.error().ToString();
    return m.has_value() ? std::move(*m) : nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << "vocab GGUFs missing (run scripts/install-deps)";
  }

  static std::vector<int32_t> Prompt(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<int32_t> p(n);
    for (auto& t : p) t = static_cast<int32_t>(3 + rng() % 31000);
    return p;
  }

  BatchedEngineOptions Options(uint32_t n_ctx, uint32_t ram_blocks, std::string disk = {}) {
    BatchedEngineOptions o;
    o.n_ctx = n_ctx;
    o.block_tokens = 16;
    o.ram_budget_bytes = ram_blocks * KvBlockPool::BlockBytes(model_->config(), 16);
    o.disk_dir = std::move(disk);
    o.threads = 2;
    o.ignore_eos = true;  // the reference below does not stop either
    return o;
  }

  // The reference: a plain Session, greedy.
  Outcome Alone(const std::vector<int32_t>& prompt, uint32_t n) {
    ThreadPool pool(1);
    Session s(*model_, &pool, {.n_ctx = static_cast<uint32_t>(prompt.size() + n)});
    Outcome out;
    std::vector<int32_t> next = prompt;
    for (uint32_t i = 0; i < n; ++i) {
      auto logits = s.Eval(next);
      EXPECT_TRUE(logits.has_value());
      out.logits.emplace_back(logits->begin(), logits->end());
      out.tokens.push_back(ArgMax(*logits));
      next = {out.tokens.back()};
    }
    return out;
  }

  static CompletionRequest Request(std::vector<int32_t> prompt, uint32_t max_tokens,
                                   std::string salt = {}, std::vector<int32_t> stop = {}) {
    CompletionRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.cache_salt = std::move(salt);
    r.stop_tokens = std::move(stop);
    return r;
  }
  static std::future<Outcome> Start(BatchedEngine& e, CompletionRequest r, int cancel_after = -1) {
    auto state = std::make_shared<std::pair<Outcome, std::promise<Outcome>>>();
    auto fut = state->second.get_future();
    CompletionCallbacks cb;
    cb.on_token = [state, cancel_after](int32_t t) {
      state->first.tokens.push_back(t);
      return cancel_after < 0 || static_cast<int>(state->first.tokens.size()) < cancel_after;
    };
    cb.on_done = [state](Result<CompletionUsage> u) {
      state->first.usage = std::move(u);
      state->second.set_value(std::move(state->first));
    };
    e.Submit(std::move(r), std::move(cb), [state](std::span<const float> l) {
      state->first.logits.emplace_back(l.begin(), l.end());
    });
    return fut;
  }
  static Outcome Run(BatchedEngine& e, const std::vector<int32_t>& prompt, uint32_t n,
                     std::string salt = {}) {
    return Start(e, Request(prompt, n, std::move(salt))).get();
  }
  static void ExpectSame(const Outcome& got, const Outcome& want) {
    ASSERT_TRUE(got.usage.has_value()) << got.usage.error().ToString();
    EXPECT_EQ(got.tokens, want.tokens);
    ASSERT_EQ(got.logits.size(), want.logits.size());
    for (size_t i = 0; i < want.logits.size(); ++i) {
      EXPECT_TRUE(got.logits[i] == want.logits[i]) << "logits of step " << i << " differ";
    }
  }
  static std::string TempDir(const std::string& name) {
    const fs::path p =
        fs::temp_directory_path() / ("llmcache-kvdisk-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(p);
    return p.string();
  }

  static Model* model_;
};
Model* BatchedEngineTest::model_ = nullptr;

TEST_F(BatchedEngineTest, NextTurnReusesPromptAndDecodedBlocksBitIdentically) {
  auto engine = BatchedEngine::Create(*model_, Options(256, 64));
  ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
  BatchedEngine& e = **engine;
  const std::vector<int32_t> turn1 = Prompt(37, 1);
  const Outcome a = Run(e, turn1, 12);
  ExpectSame(a, Alone(turn1, 12));
  EXPECT_EQ(a.usage->cached_tokens, 0u);
  EXPECT_EQ(a.usage->prompt_tokens, 37u);
  EXPECT_EQ(a.usage->completion_tokens, 12u);
  EXPECT_EQ(a.usage->finish, FinishReason::kLength);
  EXPECT_GT(std::set<int32_t>(a.tokens.begin(), a.tokens.end()).size(), 1u)
      << "degenerate output proves little";

  // Turn 2 = turn 1 + its answer + a new message. Turn 1 computed KV for
  // 37 + 11 positions: three full blocks, the third filled while decoding.
  std::vector<int32_t> turn2 = turn1;
  turn2.insert(turn2.end(), a.tokens.begin(), a.tokens.end());
  const std::vector<int32_t> more = Prompt(20, 2);
  turn2.insert(turn2.end(), more.begin(), more.end());
  const Outcome b = Run(e, turn2, 12);
  ExpectSame(b, Alone(turn2, 12));
  EXPECT_EQ(b.usage->cached_tokens, 48u);

  const PrefixCacheStats s = e.prefix_stats();
  EXPECT_EQ(s.query_tokens, 37u + turn2.size());
  EXPECT_EQ(s.hit_tokens, 48u);
  EXPECT_EQ(s.used_blocks, 0u) << "a block reference leaked";
  EXPECT_GT(s.cached_blocks, 0u);
}

TEST_F(BatchedEngineTest, SmallRamBudgetEvictsLeastRecentlyUsedBlocks) {
  // Room for exactly one sequence of n_ctx = 128 tokens: 8 blocks.
  auto engine = BatchedEngine::Create(*model_, Options(128, 8));
  ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
  BatchedEngine& e = **engine;
  const std::vector<int32_t> pa = Prompt(70, 3), pb = Prompt(70, 4);
  const Outcome want_a = Alone(pa, 8);
  ExpectSame(Run(e, pa, 8), want_a);        // KV for 77 positions: 4 full blocks + 1
  ExpectSame(Run(e, pb, 8), Alone(pb, 8));  // needs 5 blocks: evicts a's tail block
  EXPECT_EQ(e.prefix_stats().evicted_blocks, 1u);
  const Outcome again = Run(e, pa, 8);
  ExpectSame(again, want_a);
  EXPECT_EQ(again.usage->cached_tokens, 48u);  // blocks 0-2 survived, block 3 did not
  EXPECT_EQ(e.prefix_stats().used_blocks, 0u);
  EXPECT_FALSE(BatchedEngine::Create(*model_, Options(128, 7)).has_value());
}

TEST_F(BatchedEngineTest, DifferentCacheSaltsNeverShareBlocks) {
  auto engine = BatchedEngine::Create(*model_, Options(128, 32));
  ASSERT_TRUE(engine.has_value());
  BatchedEngine& e = **engine;
  const std::vector<int32_t> p = Prompt(50, 5);
  const Outcome want = Alone(p, 4);
  const Outcome a = Run(e, p, 4, "tenant-a");
  const Outcome b = Run(e, p, 4, "tenant-b");
  const Outcome none = Run(e, p, 4);
  const Outcome a2 = Run(e, p, 4, "tenant-a");
  for (const Outcome* o : {&a, &b, &none, &a2}) ExpectSame(*o, want);
  EXPECT_EQ(a.usage->cached_tokens, 0u);
  EXPECT_EQ(b.usage->cached_tokens, 0u);
  EXPECT_EQ(none.usage->cached_tokens, 0u);
  EXPECT_EQ(a2.usage->cached_tokens, 48u);
}

TEST_F(BatchedEngineTest, DiskTierRoundTripRestartAndCorruption) {
  const std::string dir = TempDir("tier");
  const std::vector<int32_t> pa = Prompt(70, 6), pb = Prompt(70, 7);
  const Outcome want_a = Alone(pa, 8);
  {
    auto engine = BatchedEngine::Create(*model_, Options(128, 8, dir));
    ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
    BatchedEngine& e = **engine;
    ExpectSame(Run(e, pa, 8), want_a);
    Run(e, pb, 8);  // evicts a's block 3 to disk
    EXPECT_EQ(e.prefix_stats().spilled_blocks, 1u);
    const Outcome again = Run(e, pa, 8);
    ExpectSame(again, want_a);
    EXPECT_EQ(again.usage->cached_tokens, 64u);
    EXPECT_EQ(e.prefix_stats().disk_hit_tokens, 16u);
  }  // shutdown writes the cached blocks
  {
    auto engine = BatchedEngine::Create(*model_, Options(128, 8, dir));
    ASSERT_TRUE(engine.has_value());
    BatchedEngine& e = **engine;
    EXPECT_GE(e.prefix_stats().disk.blocks, 8u);
    const Outcome restarted = Run(e, pa, 8);
    ExpectSame(restarted, want_a);
    EXPECT_EQ(restarted.usage->cached_tokens, 64u);
    EXPECT_EQ(e.prefix_stats().disk_hit_tokens, 64u);
  }
  // Flip one payload byte of every block file: all are dropped, none used.
  for (const auto& f : fs::directory_iterator(dir)) {
    std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(200);
    char c;
    io.get(c);
    io.seekp(200);
    io.put(static_cast<char>(c ^ 1));
  }
  {
    auto engine = BatchedEngine::Create(*model_, Options(128, 8, dir));
    ASSERT_TRUE(engine.has_value());
    BatchedEngine& e = **engine;
    const Outcome corrupt = Run(e, pa, 8);
    ExpectSame(corrupt, want_a);
    EXPECT_EQ(corrupt.usage->cached_tokens, 0u);
    EXPECT_EQ(e.prefix_stats().disk.corrupt_dropped, 1u);  // the chain stops at the first bad block
    EXPECT_EQ(e.prefix_stats().used_blocks, 0u);
  }
  fs::remove_all(dir);
}

TEST_F(BatchedEngineTest, ConcurrentRequestsGiveEachOnesOwnTokens) {
  BatchedEngineOptions o = Options(128, 80);
  o.max_sequences = 8;
  o.prefill_chunk_tokens = 24;  // several steps of chunked prefill beside decoding
  auto engine = BatchedEngine::Create(*model_, o);
  ASSERT_TRUE(engine.has_value());
  BatchedEngine& e = **engine;
  constexpr int kRequests = 10;  // two wait in the queue for a free slot
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < kRequests; ++i) prompts.push_back(Prompt(5 + 7 * i, 100 + i));
  prompts[3] = prompts[2];  // an identical prompt computed at the same time
  std::vector<std::future<Outcome>> futures;
  for (int i = 0; i < kRequests; ++i) {
    futures.push_back(Start(e, Request(prompts[i], 16)));
  }
  for (int i = 0; i < kRequests; ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    ExpectSame(futures[i].get(), Alone(prompts[i], 16));
  }
  EXPECT_EQ(e.prefix_stats().used_blocks, 0u);
}

TEST_F(BatchedEngineTest, CancellationStopTokensAndBadRequests) {
  auto engine = BatchedEngine::Create(*model_, Options(64, 16));
  ASSERT_TRUE(engine.has_value());
  BatchedEngine& e = **engine;
  const std::vector<int32_t> p = Prompt(20, 8);
  const Outcome want = Alone(p, 10);

  const Outcome cancelled = Start(e, Request(p, 10), 3).get();
  ASSERT_TRUE(cancelled.usage.has_value());
  EXPECT_EQ(cancelled.usage->finish, FinishReason::kCancelled);
  EXPECT_EQ(cancelled.tokens, std::vector<int32_t>(want.tokens.begin(), want.tokens.begin() + 3));

  const Outcome stopped = Start(e, Request(p, 10, {}, {want.tokens[4]})).get();
  ASSERT_TRUE(stopped.usage.has_value());
  EXPECT_EQ(stopped.usage->finish, FinishReason::kStop);
  EXPECT_EQ(stopped.tokens.back(), want.tokens[4]);

  // The context caps generation: 60 prompt tokens leave room for 5.
  const Outcome capped = Run(e, Prompt(60, 9), 100);
  ASSERT_TRUE(capped.usage.has_value());
  EXPECT_EQ(capped.usage->completion_tokens, 5u);
  EXPECT_EQ(capped.usage->finish, FinishReason::kLength);

  EXPECT_FALSE(Run(e, {}, 4).usage.has_value());
  EXPECT_FALSE(Run(e, Prompt(65, 10), 4).usage.has_value());
  EXPECT_FALSE(Run(e, {1, 2, 999999}, 4).usage.has_value());
  EXPECT_EQ(e.prefix_stats().used_blocks, 0u);
}

TEST_F(BatchedEngineTest, CancelledRequestsLeaveTheBatchAndTheQueue) {
  BatchedEngineOptions o = Options(64, 16);
  o.max_sequences = 1;  // the second request waits in the queue
  auto engine = BatchedEngine::Create(*model_, o);
  ASSERT_TRUE(engine.has_value());
  BatchedEngine& e = **engine;
  std::atomic<bool> a_gone{false};
  std::promise<void> a_running, release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<Result<CompletionUsage>> a_done, b_done;

  CompletionCallbacks a;
  a.on_token = [&, first = true](int32_t) mutable {
    if (first) {
      first = false;
      a_running.set_value();
      released.wait();  // holds the worker: the test looks at the stats meanwhile
    }
    return true;  // never refuses a token: only `cancelled` stops it
  };
  a.on_done = [&](Result<CompletionUsage> u) { a_done.set_value(std::move(u)); };
  a.cancelled = [&] { return a_gone.load(); };
  e.Submit(Request(Prompt(20, 3), 40), std::move(a));
  a_running.get_future().wait();

  CompletionCallbacks b;
  b.on_token = [](int32_t) { return true; };
  b.on_done = [&](Result<CompletionUsage> u) { b_done.set_value(std::move(u)); };
  b.cancelled = [] { return true; };  // its client is gone before it starts
  e.Submit(Request(Prompt(30, 4), 10), std::move(b));
  EngineStats s = e.stats();
  EXPECT_EQ(s.running, 1u);
  EXPECT_EQ(s.waiting, 1u);
  ASSERT_TRUE(s.prefix_cache.has_value());
  EXPECT_EQ(s.prefix_cache->used_blocks, 2u);

  a_gone = true;
  release.set_value();
  const auto ua = a_done.get_future().get();
  const auto ub = b_done.get_future().get();
  ASSERT_TRUE(ua.has_value() && ub.has_value());
  EXPECT_EQ(ua->finish, FinishReason::kCancelled);
  EXPECT_EQ(ua->completion_tokens, 1u);
  EXPECT_EQ(ub->finish, FinishReason::kCancelled);
  EXPECT_EQ(ub->completion_tokens, 0u);
  s = e.stats();
  EXPECT_EQ(s.finished[static_cast<size_t>(FinishReason::kCancelled)], 2u);
  EXPECT_EQ(s.prompt_tokens, 20u);  // the second never started
  EXPECT_EQ(s.generated_tokens, 1u);
  EXPECT_EQ(s.running, 0u);
  EXPECT_EQ(s.waiting, 0u);
  EXPECT_EQ(s.prefix_cache->used_blocks, 0u);
}

TEST_F(BatchedEngineTest, ModelIdentityTellsModelsApart) {
  std::unique_ptr<Model> other = Load(12);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(KvIdentity(*model_, 16), KvIdentity(*model_, 16));
  EXPECT_NE(KvIdentity(*model_, 16), KvIdentity(*other, 16));  // same shapes, other weights
  EXPECT_NE(KvIdentity(*model_, 16), KvIdentity(*model_, 32));
}

TEST_F(BatchedEngineTest, ShutdownFailsQueuedRequests) {
  auto engine = BatchedEngine::Create(*model_, Options(128, 16));
  ASSERT_TRUE(engine.has_value());
  std::vector<std::future<Outcome>> futures;
  for (int i = 0; i < 4; ++i) futures.push_back(Start(**engine, Request(Prompt(30, 20 + i), 50)));
  engine->reset();
  for (auto& f : futures) {
    const Outcome o = f.get();  // every request hears back exactly once
    if (!o.usage.has_value()) {
      EXPECT_EQ(o.usage.error().code(), StatusCode::kUnavailable);
    }
  }
}

}  // namespace
}  // namespace llmcache::engine
