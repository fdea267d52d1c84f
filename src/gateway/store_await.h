// Awaiting the callback-style calls of stores and shared flights from the
// gateway's coroutines: the coroutine suspends while the store waits on the
// network (no thread is held), and resumes on its own executor, whatever
// thread the store answered on. A call whose callback runs inline (a
// memory-tier hit, a store that is known to be down) neither suspends nor
// posts.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

#include "http/asio.h"
#include "llmcache/shared_flight.h"
#include "llmcache/store.h"

namespace llmcache::gateway {

// Calls whose callbacks have not yet handed their result to an executor.
// The gateway waits for none to be left before it destroys its event loops:
// a late callback would post to a destroyed io_context.
class PendingCalls {
 public:
  // Every store call passes through here, from every event loop thread: the
  // count is atomic, and only the call that brings it to zero takes the lock.
  void Add() { n_.fetch_add(1, std::memory_order_relaxed); }
  void Done() {
    if (n_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Under the lock, so a WaitIdle between its check and its wait cannot
      // miss the notification.
      std::lock_guard lock(mu_);
      idle_.notify_all();
    }
  }
  // Bounded by the stores' own timeouts (every callback runs exactly once).
  void WaitIdle() {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [this] { return n_.load(std::memory_order_acquire) == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  std::atomic<int64_t> n_{0};
};

namespace detail {

// Where the result meets the coroutine: whichever of the two arrives
// second (the result, or the suspended coroutine's resume function) goes on.
template <class R>
struct ResultSlot {
  std::mutex mu;
  std::optional<R> result;
  std::function<void(R)> resume;
};

}  // namespace detail

// start(callback) begins the call; the callback (copyable, call it exactly
// once from any thread) delivers R.
template <class R, class Start>
http::awaitable<R> AwaitCallback(PendingCalls& pending, Start start) {
  namespace net = http::net;
  auto slot = std::make_shared<detail::ResultSlot<R>>();
  pending.Add();
  start([slot, &pending](R r) {
    {
      std::function<void(R)> resume;
      {
        std::lock_guard lock(slot->mu);
        if (slot->resume) {
          resume = std::move(slot->resume);
        } else {
          slot->result.emplace(std::move(r));
        }
      }
      // Outside the lock: resuming may let the coroutine (and the slot's
      // other owner) go away at once.
      if (resume) resume(std::move(r));
    }
    // Last: once the count drops, the gateway may destroy the executor the
    // result went to.
    pending.Done();
  });
  {
    std::unique_lock lock(slot->mu);
    if (slot->result) {
      R r = std::move(*slot->result);
      lock.unlock();
      co_return r;
    }
  }
  auto initiation = [slot](auto handler) {
    auto ex = net::get_associated_executor(handler);
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    std::function<void(R)> resume = [h, ex](R r) {
      net::post(ex, [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); });
    };
    std::unique_lock lock(slot->mu);
    if (slot->result) {
      // Arrived between the check above and now.
      R r = std::move(*slot->result);
      lock.unlock();
      resume(std::move(r));
      return;
    }
    slot->resume = std::move(resume);
  };
  // Nothing with a destructor is built inside the co_await expression, and
  // no named awaitable is moved into one: GCC 12 may destroy such objects
  // twice.
  R r = co_await net::async_initiate<decltype(net::use_awaitable), void(R)>(std::move(initiation),
                                                                            net::use_awaitable);
  co_return r;
}

inline http::awaitable<Result<StoreHit>> AwaitLookup(Store& store, std::string_view key,
                                                     PendingCalls& pending) {
  return AwaitCallback<Result<StoreHit>>(pending, [&store, key](Store::LookupCallback done) {
    store.LookupAsync(key, std::move(done));
  });
}

inline http::awaitable<Status> AwaitInsert(Store& store,
                                           const std::shared_ptr<const CacheEntry>& entry,
                                           PendingCalls& pending) {
  return AwaitCallback<Status>(pending, [&store, entry](Store::InsertCallback done) {
    store.InsertAsync(entry, std::move(done));
  });
}

inline http::awaitable<Result<SharedFlight::Claim>> AwaitClaim(SharedFlight& flight,
                                                               std::string_view key,
                                                               PendingCalls& pending) {
  return AwaitCallback<Result<SharedFlight::Claim>>(
      pending, [&flight, key](SharedFlight::ClaimCallback done) {
        flight.TryLeadAsync(key, std::move(done));
      });
}

inline http::awaitable<Result<bool>> AwaitHeld(SharedFlight& flight, std::string_view key,
                                               PendingCalls& pending) {
  return AwaitCallback<Result<bool>>(pending, [&flight, key](SharedFlight::HeldCallback done) {
    flight.HeldAsync(key, std::move(done));
  });
}

}  // namespace llmcache::gateway
