// Connections to one Redis primary for RedisStore: a bounded pool of
// blocking hiredis contexts with connect/command timeouts, AUTH/SELECT on
// connect, Sentinel discovery, and a circuit breaker so that while Redis is
// unreachable callers fail at once instead of each waiting for a timeout.
// Internal to src/store.
#pragma once

#include <hiredis/hiredis.h>
#include <signal.h>
#include <time.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/status.h"
#include "llmcache/store.h"
#include "store/redis_url.h"

namespace llmcache {

struct RedisReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

using RedisCommand = std::vector<std::string_view>;

// hiredis (0.14) writes with write(2): on a connection the server has
// reset, that raises SIGPIPE, whose default action kills the process. The
// library must not change process-wide signal handling, so SIGPIPE is
// blocked for this thread around each round trip and a SIGPIPE raised
// meanwhile is consumed (the write then fails with EPIPE, which we handle).
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    already_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~ScopedSigpipeBlock() {
    if (!already_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_, nullptr, &zero) > 0) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool already_pending_ = false;
};

struct RedisPoolOptions {
  RedisUrl url;
  // The resolved password (environment or URL); empty: no AUTH.
  std::string password;
  // Connections open at once; callers beyond it wait up to
  // command_timeout_ms for one to come back.
  int max_connections = 8;
  int64_t connect_timeout_ms = 250;
  int64_t command_timeout_ms = 500;
  // After a failure the circuit stays open (calls fail at once) for
  // backoff_initial_ms, doubling with each failed probe up to backoff_max_ms.
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 5000;
};

// The connection settings RedisStoreOptions and RedisFlightOptions share
// (same field names), checked and resolved: the URL parsed, the password
// taken from the environment variable named by password_env when it is set
// and non-empty, else from the URL. InvalidArgument for a bad URL or
// non-positive limits; the message never contains the password.
template <class Options>
Result<RedisPoolOptions> ResolvePoolOptions(const Options& o) {
  auto url = ParseRedisUrl(o.url);
  if (!url) return Err(url.error());
  if (o.max_connections < 1 || o.connect_timeout_ms <= 0 || o.command_timeout_ms <= 0 ||
      o.backoff_initial_ms <= 0 || o.backoff_max_ms < o.backoff_initial_ms) {
    return Err(Status::InvalidArgument("redis: bad connection or backoff options"));
  }
  RedisPoolOptions po;
  po.password = url->password;
  if (!o.password_env.empty()) {
    if (const char* env = std::getenv(o.password_env.c_str()); env && *env) po.password = env;
  }
  po.url = std::move(*url);
  po.max_connections = o.max_connections;
  po.connect_timeout_ms = o.connect_timeout_ms;
  po.command_timeout_ms = o.command_timeout_ms;
  po.backoff_initial_ms = o.backoff_initial_ms;
  po.backoff_max_ms = o.backoff_max_ms;
  return po;
}

timeval RedisTimeval(int64_t ms);

// Error replies that mean "this server cannot serve us now": the connection
// works but points at the wrong (or a recovering) node, or is not
// authenticated. Treated like a broken connection: fail fast, re-discover.
bool RedisReplyMeansUnusable(const redisReply* r);

// Thread-safe.
class RedisPool final : public StoreHealth {
 public:
  explicit RedisPool(RedisPoolOptions options);
  ~RedisPool() override;
  RedisPool(const RedisPool&) = delete;
  RedisPool& operator=(const RedisPool&) = delete;

  // Sends the commands as one pipeline (one round trip) and reads every
  // reply. Unavailable when no connection could be had (circuit open,
  // connect failed, pool exhausted) or the connection failed on the way (it
  // is then closed, with every idle one, and the circuit opens). Error
  // replies come back as replies (REDIS_REPLY_ERROR), except those meaning
  // "cannot serve us" (READONLY, LOADING, MASTERDOWN, NOAUTH), which count as
  // connection failures and trigger Sentinel re-discovery.
  Result<std::vector<RedisReplyPtr>> Pipeline(const std::vector<RedisCommand>& commands);
  Result<RedisReplyPtr> Command(const RedisCommand& argv);

  const RedisPoolOptions& options() const { return options_; }

  // Closes every connection; later calls fail with Unavailable.
  void Shutdown();

  bool degraded() const override;
  std::string detail() const override;

 private:
  struct Conn {
    redisContext* ctx = nullptr;
    uint64_t generation = 0;
  };
  using SteadyTime = std::chrono::steady_clock::time_point;

  Result<Conn> Acquire();
  void Release(Conn conn);
  void Fail(Conn conn, const Status& why);
  Result<redisContext*> Connect();
  Result<RedisHostPort> Target();
  void NoteFailureLocked(const Status& why);

  const RedisPoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Conn> idle_;
  int open_ = 0;  // connections in idle_ or lent out
  uint64_t generation_ = 0;
  bool shut_down_ = false;
  // Circuit breaker: closed while consecutive_failures_ == 0.
  int consecutive_failures_ = 0;
  SteadyTime retry_at_{};
  bool probing_ = false;
  std::string last_error_;
  // Sentinel: the primary found last; empty after a failure.
  std::optional<RedisHostPort> primary_;
};

}  // namespace llmcache
