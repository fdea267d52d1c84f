#include "store/redis_flight.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <utility>

#include "store/redis_store_async.h"
#include "store/redis_store_pool.h"

namespace llmcache {
namespace {

// Deletes the lock only while it holds this leader's token.
constexpr std::string_view kReleaseLua = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

// Unique per process and call: the random part tells replicas apart, the
// counter calls within one.
std::string NewToken() {
  static const uint64_t process_nonce = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  static std::atomic<uint64_t> counter{0};
  const uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  return std::to_string(process_nonce) + "-" + std::to_string(n);
}

// The reply to SET NX PX: OK (we lead) or nil (someone else does).
Result<RedisFlight::Claim> ClaimFromReply(const redisReply* reply, std::string token) {
  RedisFlight::Claim claim;
  if (reply->type == REDIS_REPLY_STATUS) {
    claim.leader = true;
    claim.token = std::move(token);
  } else if (reply->type != REDIS_REPLY_NIL) {
    return Err(Status::Unavailable("redis flight: SET NX: " +
                                   std::string(reply->str ? reply->str : "unexpected reply")));
  }
  return claim;
}

Status ReleaseFromReply(const redisReply* reply) {
  if (reply->type == REDIS_REPLY_ERROR) {
    return Status::Unavailable("redis flight: release: " + std::string(reply->str, reply->len));
  }
  return Status::OK();
}

Result<bool> HeldFromReply(const redisReply* reply) {
  if (reply->type != REDIS_REPLY_INTEGER) {
    return Err(Status::Unavailable("redis flight: EXISTS: " +
                                   std::string(reply->str ? reply->str : "unexpected reply")));
  }
  return reply->integer != 0;
}

}  // namespace

Result<std::unique_ptr<RedisFlight>> RedisFlight::Open(RedisFlightOptions options) {
  auto po = ResolvePoolOptions(options);
  if (!po) return Err(po.error());
  if (options.key_prefix.empty() || options.lock_ttl_ms <= 0 || options.poll_interval_ms <= 0 ||
      options.max_poll_interval_ms < options.poll_interval_ms) {
    return Err(Status::InvalidArgument("redis flight: bad options"));
  }
  auto pool = std::make_shared<RedisPool>(std::move(*po));
  return std::unique_ptr<RedisFlight>(new RedisFlight(std::move(options), std::move(pool)));
}

RedisFlight::RedisFlight(RedisFlightOptions options, std::shared_ptr<RedisPool> pool)
    : options_(std::move(options)), pool_(std::move(pool)) {}

RedisFlight::~RedisFlight() {
  // The link answers its pending calls (Unavailable) before it goes; their
  // callbacks do not use this object.
  link_.reset();
  pool_->Shutdown();
}

RedisAsyncLink& RedisFlight::Link() {
  std::call_once(link_once_, [this] { link_ = std::make_unique<RedisAsyncLink>(pool_->options()); });
  return *link_;
}

std::string RedisFlight::LockKey(std::string_view key) const {
  std::string k = options_.key_prefix;
  k += "f:";
  k += key;
  return k;
}

std::vector<std::string> RedisFlight::ClaimCommand(std::string_view key,
                                                   const std::string& token) const {
  return {"SET", LockKey(key), token, "NX", "PX", std::to_string(options_.lock_ttl_ms)};
}

// One-off and rare (once per leader): plain EVAL keeps this free of
// script-cache bookkeeping.
std::vector<std::string> RedisFlight::ReleaseCommand(std::string_view key,
                                                     std::string_view token) const {
  return {"EVAL", std::string(kReleaseLua), "1", LockKey(key), std::string(token)};
}

Result<RedisFlight::Claim> RedisFlight::TryLead(std::string_view key) {
  std::string token = NewToken();
  const auto argv = ClaimCommand(key, token);
  auto r = pool_->Command(RedisCommand(argv.begin(), argv.end()));
  if (!r) return Err(r.error());
  return ClaimFromReply(r->get(), std::move(token));
}

Status RedisFlight::Release(std::string_view key, std::string_view token) {
  const auto argv = ReleaseCommand(key, token);
  auto r = pool_->Command(RedisCommand(argv.begin(), argv.end()));
  if (!r) return r.error();
  return ReleaseFromReply(r->get());
}

Status RedisFlight::Wait(std::string_view key, int64_t timeout_ms) {
  const std::string lock = LockKey(key);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int64_t interval = options_.poll_interval_ms;
  while (true) {
    auto r = pool_->Command({"EXISTS", lock});
    if (!r) return r.error();
    if ((*r)->type == REDIS_REPLY_INTEGER && (*r)->integer == 0) return Status::OK();
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Status::Timeout("redis flight: leader still working");
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    std::this_thread::sleep_for(std::min(std::chrono::milliseconds(interval), left));
    interval = std::min(interval * 2, options_.max_poll_interval_ms);
  }
}

void RedisFlight::TryLeadAsync(std::string_view key, ClaimCallback done) {
  std::string token = NewToken();
  auto argv = ClaimCommand(key, token);
  Link().Send(std::move(argv), [token = std::move(token), done = std::move(done)](
                                   Result<RedisReplyPtr> r) mutable {
    if (!r) return done(Err(r.error()));
    done(ClaimFromReply(r->get(), std::move(token)));
  });
}

void RedisFlight::ReleaseAsync(std::string_view key, std::string_view token, DoneCallback done) {
  Link().Send(ReleaseCommand(key, token), [done = std::move(done)](Result<RedisReplyPtr> r) {
    done(r ? ReleaseFromReply(r->get()) : r.error());
  });
}

void RedisFlight::HeldAsync(std::string_view key, HeldCallback done) {
  Link().Send({"EXISTS", LockKey(key)}, [done = std::move(done)](Result<RedisReplyPtr> r) {
    if (!r) return done(Err(r.error()));
    done(HeldFromReply(r->get()));
  });
}

}  // namespace llmcache
