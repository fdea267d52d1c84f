// A fixed set of worker threads that split index ranges (matrix rows,
// attention heads) between themselves and the calling thread.
//
// ParallelFor blocks until every chunk is done, so callers keep plain stack
// buffers. Not reentrant: one ParallelFor at a time per pool (the engine runs
// one forward pass per pool).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace llmcache::engine {

class ThreadPool {
 public:
  // n_threads counts the caller: 1 means no workers (everything runs inline).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n), one per thread,
  // each range a multiple of `grain` except the last.
  void ParallelFor(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

 private:
  void WorkerLoop(int index);
  void RunChunk(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t n_ = 0;
  size_t chunk_ = 0;
  // Written under mu_; read without it while spinning. A decode step runs
  // hundreds of short ParallelFor calls: a thread that sleeps on the
  // condition variable between them pays a wake-up each time, so both sides
  // spin briefly (kSpins) before they sleep.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool stop_ = false;
};

}  // namespace llmcache::engine
