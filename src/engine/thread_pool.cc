#include "engine/thread_pool.h"

#include <algorithm>
#include <immintrin.h>

namespace llmcache::engine {

namespace {

// About 20-50 us: longer than a wake-up costs, short enough that a pool
// sharing its cores with other work gives them back soon.
constexpr int kSpins = 20000;

template <typename Pred>
bool SpinFor(Pred pred) {
  for (int i = 0; i < kSpins; ++i) {
    if (pred()) return true;
    _mm_pause();
  }
  return false;
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  for (int i = 1; i < std::max(1, n_threads); ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunChunk(int index) {
  const size_t begin = std::min(n_, static_cast<size_t>(index) * chunk_);
  const size_t end = std::min(n_, begin + chunk_);
  if (begin < end) (*job_)(begin, end);
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    SpinFor([&] { return generation_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
    }
    RunChunk(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Under the lock, so a caller between its check and its wait cannot
      // miss the notification.
      std::lock_guard lock(mu_);
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::ParallelFor(size_t n, size_t grain,
                             const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(1, grain);
  const size_t threads = workers_.size() + 1;
  const size_t grains = (n + grain - 1) / grain;
  if (workers_.empty() || grains == 1) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard lock(mu_);
    job_ = &fn;
    n_ = n;
    chunk_ = (grains + threads - 1) / threads * grain;
    pending_.store(static_cast<int>(workers_.size()));
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();
  RunChunk(0);
  if (!SpinFor([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return pending_.load() == 0; });
  }
  std::lock_guard lock(mu_);
  job_ = nullptr;
}

}  // namespace llmcache::engine
