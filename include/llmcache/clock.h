// Time comes from an injected Clock so TTL and expiry logic is testable
// without sleeping.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace llmcache {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in milliseconds since the Unix epoch. Thread-safe.
  virtual int64_t NowMillis() const = 0;
};

// The process-wide real clock. Never null.
std::shared_ptr<Clock> SystemClock();

// A clock that moves only when told to; for tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t NowMillis() const override { return now_.load(std::memory_order_relaxed); }
  void Set(int64_t ms) { now_.store(ms, std::memory_order_relaxed); }
  void Advance(int64_t ms) { now_.fetch_add(ms, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace llmcache
