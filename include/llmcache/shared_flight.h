// Coalescing of identical cache misses across processes that share one store
// (gateway replicas over one Redis): of the replicas that miss the same key
// at the same time, one leads and asks the upstream; the others wait until
// its answer is in the shared store and serve it from there.
//
// The lock behind it is short-lived (it expires on its own), so a leader
// that dies only delays the others until the lock's TTL ends, and every
// waiter bounds its own wait. Fail open: when the lock cannot be asked
// about, callers proceed as leaders without it.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "llmcache/status.h"

namespace llmcache {

// Thread-safe. Every callback runs exactly once, either inline (before the
// call returns, e.g. when the lock service is known to be down) or on a
// thread of the implementation (never a thread per call); it must not
// block. A key only needs to live for the duration of the call.
class SharedFlight {
 public:
  struct Claim {
    bool leader = false;
    std::string token;  // the leader's proof of ownership, for Release
  };
  using ClaimCallback = std::function<void(Result<Claim>)>;
  using HeldCallback = std::function<void(Result<bool>)>;
  using DoneCallback = std::function<void(Status)>;

  virtual ~SharedFlight() = default;

  // Leader when this call took key's lock; follower when another holder has
  // it. Unavailable when the lock cannot be asked about: proceed as a leader
  // without a lock.
  virtual void TryLeadAsync(std::string_view key, ClaimCallback done) = 0;

  // Drops key's lock if it still holds this leader's token (a lock that
  // expired and was taken by another leader is left alone). Call once the
  // answer is in the store, or after giving up.
  virtual void ReleaseAsync(std::string_view key, std::string_view token, DoneCallback done) = 0;

  // True while some leader holds key's lock; false once it was released or
  // expired (the answer, if any, is then in the store).
  virtual void HeldAsync(std::string_view key, HeldCallback done) = 0;
};

}  // namespace llmcache
