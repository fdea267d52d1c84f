// A non-blocking Redis connection for RedisStore's async calls: one TCP
// connection, driven by one I/O thread (an asio io_context), that pipelines
// every caller's commands in order. Callers never block on the network and
// no thread is used per request: however many lookups are in flight, they
// share this one connection and thread. hiredis supplies only the protocol
// (command formatting and the reply parser).
//
// Failure handling matches RedisPool: bounded connect and command timeouts;
// on any failure every pending command fails with Unavailable, and calls
// fail at once (in the caller's thread) until the backoff allows a new
// connection attempt, which the next call triggers. Internal to src/store.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llmcache/status.h"
#include "store/redis_store_pool.h"

namespace llmcache {

class RedisAsyncLink {
 public:
  using Callback = std::function<void(Result<RedisReplyPtr>)>;

  explicit RedisAsyncLink(RedisPoolOptions options);
  // Fails whatever is pending (Unavailable) and joins the I/O thread.
  ~RedisAsyncLink();
  RedisAsyncLink(const RedisAsyncLink&) = delete;
  RedisAsyncLink& operator=(const RedisAsyncLink&) = delete;

  // Sends one command. `done` runs exactly once: on the I/O thread with the
  // reply (error replies included) or a connection failure, or at once on
  // the calling thread when the link is down. It must not block: it shares
  // the I/O thread with every other pending call. Thread-safe.
  void Send(std::vector<std::string> argv, Callback done);

  bool degraded() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace llmcache
