// Cross-replica single-flight: of the gateway replicas that miss the same key
// at the same time, one (the leader) calls the upstream; the others wait for
// it to finish and then read the answer from the shared store. The lock is a
// short-lived Redis key (`SET NX PX`), so a leader that dies only delays the
// others until the lock's TTL ends.
//
// How the gateway uses it, after a local FlightTable has already coalesced
// this replica's own identical misses (so one call per replica, not per
// request, reaches Redis):
//
//   auto claim = flight.TryLead(key);
//   if (!claim || claim->leader) {
//     // Leader, or Redis unavailable (fail open): call the upstream, insert.
//     ...; if (claim) flight.Release(key, claim->token);
//   } else if (flight.Wait(key, timeout).ok() && (hit = store.Lookup(key))) {
//     // The leader finished: serve its answer.
//   } else {
//     // Timed out, or the leader gave up without an answer: call the
//     // upstream ourselves.
//   }
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "llmcache/status.h"
#include "llmcache/store.h"

namespace llmcache {

class RedisPool;

struct RedisFlightOptions {
  // The same URL forms and password handling as RedisStoreOptions.
  std::string url = "redis://127.0.0.1:6379";
  std::string password_env;
  std::string key_prefix = "llmcache:";  // locks live under <prefix>f:<key>
  // How long a lock lives if its leader never releases it (crashed or
  // stuck). Longer than a normal upstream call.
  int64_t lock_ttl_ms = 30000;
  // Waiters poll the lock starting at this interval, doubling up to
  // max_poll_interval_ms.
  int64_t poll_interval_ms = 5;
  int64_t max_poll_interval_ms = 50;
  int max_connections = 4;
  int64_t connect_timeout_ms = 250;
  int64_t command_timeout_ms = 500;
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 5000;
};

// Thread-safe.
class RedisFlight {
 public:
  struct Claim {
    bool leader = false;
    std::string token;  // the leader's proof of ownership, for Release
  };

  // InvalidArgument for a bad URL or options; never fails because Redis is
  // unreachable (calls then return Unavailable).
  static Result<std::unique_ptr<RedisFlight>> Open(RedisFlightOptions options);
  ~RedisFlight();

  // Leader when this call created the lock; follower when another holder
  // has it. Unavailable when Redis cannot be asked: proceed as a leader
  // without a lock.
  Result<Claim> TryLead(std::string_view key);

  // Drops the lock if it is still this leader's (a lock that expired and
  // was taken by another leader is left alone). Call after the answer is in
  // the store, or after giving up.
  Status Release(std::string_view key, std::string_view token);

  // Blocks until the lock is gone (released or expired): OK. Timeout after
  // timeout_ms; Unavailable when Redis cannot be asked. Either way, the
  // caller then looks the key up and, on a miss, calls the upstream itself.
  Status Wait(std::string_view key, int64_t timeout_ms);

 private:
  RedisFlight(RedisFlightOptions options, std::shared_ptr<RedisPool> pool);
  std::string LockKey(std::string_view key) const;

  const RedisFlightOptions options_;
  const std::shared_ptr<RedisPool> pool_;
};

}  // namespace llmcache
