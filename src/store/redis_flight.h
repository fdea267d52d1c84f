// Cross-replica single-flight over Redis (the SharedFlight of
// include/llmcache/shared_flight.h): of the gateway replicas that miss the
// same key at the same time, one (the leader) calls the upstream; the others
// wait for it to finish and then read the answer from the shared store. The
// lock is a short-lived Redis key (`SET NX PX`), so a leader that dies only
// delays the others until the lock's TTL ends.
//
// How a caller uses the blocking forms, after a local FlightTable has
// already coalesced this replica's own identical misses (so one call per
// replica, not per request, reaches Redis):
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
//
// The gateway uses the non-blocking forms (SharedFlight), which share one
// pipelined connection driven by one I/O thread per RedisFlight, and polls
// HeldAsync with timers of its own event loop instead of Wait.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/shared_flight.h"
#include "llmcache/status.h"
#include "llmcache/store.h"

namespace llmcache {

class RedisAsyncLink;
class RedisPool;

struct RedisFlightOptions {
  // The same URL forms and password handling as RedisStoreOptions.
  std::string url = "redis://127.0.0.1:6379";
  std::string password_env;
  std::string key_prefix = "llmcache:";  // locks live under <prefix>f:<key>
  // How long a lock lives if its leader never releases it (crashed or
  // stuck). Longer than a normal upstream call.
  int64_t lock_ttl_ms = 30000;
  // Wait (the blocking form) polls the lock starting at this interval,
  // doubling up to max_poll_interval_ms. Async callers time their own polls.
  int64_t poll_interval_ms = 5;
  int64_t max_poll_interval_ms = 50;
  int max_connections = 4;
  int64_t connect_timeout_ms = 250;
  int64_t command_timeout_ms = 500;
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 5000;
};

// Thread-safe.
class RedisFlight final : public SharedFlight {
 public:
  // InvalidArgument for a bad URL or options; never fails because Redis is
  // unreachable (calls then return Unavailable).
  static Result<std::unique_ptr<RedisFlight>> Open(RedisFlightOptions options);
  ~RedisFlight() override;

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

  // SharedFlight: the same operations without blocking (Wait's poll is
  // HeldAsync, timed by the caller). The first call starts the I/O thread.
  void TryLeadAsync(std::string_view key, ClaimCallback done) override;
  void ReleaseAsync(std::string_view key, std::string_view token, DoneCallback done) override;
  void HeldAsync(std::string_view key, HeldCallback done) override;

 private:
  RedisFlight(RedisFlightOptions options, std::shared_ptr<RedisPool> pool);
  std::string LockKey(std::string_view key) const;
  std::vector<std::string> ClaimCommand(std::string_view key, const std::string& token) const;
  std::vector<std::string> ReleaseCommand(std::string_view key, std::string_view token) const;
  RedisAsyncLink& Link();

  const RedisFlightOptions options_;
  const std::shared_ptr<RedisPool> pool_;
  std::once_flag link_once_;
  std::unique_ptr<RedisAsyncLink> link_;
};

}  // namespace llmcache
