#include "store/redis_store_pool.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "store/redis_sentinel.h"

namespace llmcache {
namespace {

bool StartsWith(const redisReply* r, std::string_view prefix) {
  return r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).starts_with(prefix);
}

Status ContextError(redisContext* ctx, std::string_view what) {
  std::string msg = "redis " + std::string(what) + ": ";
  msg += ctx && ctx->err ? ctx->errstr : "failed";
  return Status::Unavailable(std::move(msg));
}

Status ReplyError(const redisReply* r, std::string_view what) {
  if (!r) return Status::Unavailable("redis " + std::string(what) + ": no reply");
  return Status::Unavailable("redis " + std::string(what) + ": " +
                             (r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                                                           : std::string("unexpected reply")));
}

}  // namespace

timeval RedisTimeval(int64_t ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

bool RedisReplyMeansUnusable(const redisReply* r) {
  return StartsWith(r, "READONLY") || StartsWith(r, "LOADING") || StartsWith(r, "MASTERDOWN") ||
         StartsWith(r, "NOAUTH") || StartsWith(r, "WRONGPASS");
}

RedisPool::RedisPool(RedisPoolOptions options) : options_(std::move(options)) {}

RedisPool::~RedisPool() { Shutdown(); }

void RedisPool::Shutdown() {
  std::vector<Conn> idle;
  {
    std::lock_guard lock(mu_);
    shut_down_ = true;
    idle.swap(idle_);
    open_ -= static_cast<int>(idle.size());
    ++generation_;
  }
  for (auto& c : idle) redisFree(c.ctx);
  cv_.notify_all();
}

bool RedisPool::degraded() const {
  std::lock_guard lock(mu_);
  return shut_down_ || consecutive_failures_ > 0;
}

std::string RedisPool::detail() const {
  std::lock_guard lock(mu_);
  if (shut_down_) return "redis store closed";
  if (consecutive_failures_ == 0) return "ok";
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
      retry_at_ - std::chrono::steady_clock::now());
  return "degraded: " + last_error_ + " (" + std::to_string(consecutive_failures_) +
         " failures; next attempt in " + std::to_string(std::max<int64_t>(0, wait.count())) +
         " ms)";
}

void RedisPool::NoteFailureLocked(const Status& why) {
  ++consecutive_failures_;
  const int doublings = std::min(consecutive_failures_ - 1, 30);
  const int64_t backoff =
      std::min(options_.backoff_max_ms, options_.backoff_initial_ms << std::min(doublings, 20));
  retry_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff);
  last_error_ = why.message();
  primary_.reset();  // re-ask the sentinels before the next connect
}

Result<RedisPool::Conn> RedisPool::Acquire() {
  std::unique_lock lock(mu_);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.command_timeout_ms);
  while (true) {
    if (shut_down_) return Err(Status::Unavailable("redis store closed"));
    if (!idle_.empty()) {
      Conn c = idle_.back();
      idle_.pop_back();
      return c;
    }
    if (open_ < options_.max_connections) {
      const bool open_circuit = consecutive_failures_ > 0;
      if (open_circuit) {
        // Circuit open: one caller at a time probes once the backoff ran
        // out; everyone else fails at once.
        if (probing_ || std::chrono::steady_clock::now() < retry_at_) {
          return Err(Status::Unavailable("redis unavailable (circuit open): " + last_error_));
        }
        probing_ = true;
      }
      ++open_;
      const uint64_t generation = generation_;
      lock.unlock();
      auto ctx = Connect();
      lock.lock();
      if (open_circuit) probing_ = false;
      if (!ctx) {
        --open_;
        NoteFailureLocked(ctx.error());
        cv_.notify_all();
        return Err(ctx.error());
      }
      consecutive_failures_ = 0;
      return Conn{*ctx, generation};
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= options_.max_connections) {
      return Err(Status::Unavailable("redis pool exhausted"));
    }
  }
}

void RedisPool::Release(Conn conn) {
  {
    std::lock_guard lock(mu_);
    if (!shut_down_ && conn.generation == generation_) {
      idle_.push_back(conn);
      conn.ctx = nullptr;
    } else {
      --open_;
    }
  }
  if (conn.ctx) redisFree(conn.ctx);
  cv_.notify_one();
}

void RedisPool::Fail(Conn conn, const Status& why) {
  std::vector<Conn> idle;
  {
    std::lock_guard lock(mu_);
    // The others most likely share this one's fate (server restarted or
    // failed over): drop them rather than fail one request each.
    idle.swap(idle_);
    open_ -= static_cast<int>(idle.size()) + 1;
    ++generation_;
    NoteFailureLocked(why);
  }
  redisFree(conn.ctx);
  for (auto& c : idle) redisFree(c.ctx);
  cv_.notify_all();
}

Result<RedisHostPort> RedisPool::Target() {
  if (!options_.url.sentinel) return options_.url.hosts.front();
  {
    std::lock_guard lock(mu_);
    if (primary_) return *primary_;
  }
  auto found =
      DiscoverPrimary(options_.url.hosts, options_.url.master_name, options_.connect_timeout_ms);
  if (!found) return found;
  std::lock_guard lock(mu_);
  primary_ = *found;
  return found;
}

Result<redisContext*> RedisPool::Connect() {
  auto target = Target();
  if (!target) return Err(target.error());
  redisContext* ctx = redisConnectWithTimeout(target->host.c_str(), target->port,
                                              RedisTimeval(options_.connect_timeout_ms));
  if (!ctx || ctx->err) {
    Status s = ContextError(ctx, "connect to " + target->host + ":" + std::to_string(target->port));
    if (ctx) redisFree(ctx);
    return Err(s);
  }
  auto fail = [ctx](Status s) -> Result<redisContext*> {
    redisFree(ctx);
    return Err(std::move(s));
  };
  redisSetTimeout(ctx, RedisTimeval(options_.command_timeout_ms));
  redisEnableKeepAlive(ctx);
  ScopedSigpipeBlock no_sigpipe;
  auto run = [ctx](const RedisCommand& argv) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (auto a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    return RedisReplyPtr(static_cast<redisReply*>(
        redisCommandArgv(ctx, static_cast<int>(argv.size()), ptrs.data(), lens.data())));
  };
  if (!options_.password.empty()) {
    RedisCommand auth = {"AUTH"};
    if (!options_.url.username.empty()) auth.push_back(options_.url.username);
    auth.push_back(options_.password);
    auto r = run(auth);
    if (!r) return fail(ContextError(ctx, "AUTH"));
    if (r->type == REDIS_REPLY_ERROR) return fail(ReplyError(r.get(), "AUTH"));
  }
  if (options_.url.db != 0) {
    const std::string db = std::to_string(options_.url.db);
    auto r = run({"SELECT", db});
    if (!r || r->type == REDIS_REPLY_ERROR) return fail(ReplyError(r.get(), "SELECT"));
  }
  if (options_.url.sentinel) {
    // Sentinel may lag behind a failover: only a node that says it is the
    // primary is used.
    auto r = run({"ROLE"});
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        std::string_view(r->element[0]->str, r->element[0]->len) != "master") {
      return fail(r && r->type == REDIS_REPLY_ERROR
                      ? ReplyError(r.get(), "ROLE")
                      : Status::Unavailable("redis " + target->host + ":" +
                                            std::to_string(target->port) + " is not the primary"));
    }
  }
  return ctx;
}

Result<std::vector<RedisReplyPtr>> RedisPool::Pipeline(const std::vector<RedisCommand>& commands) {
  auto conn = Acquire();
  if (!conn) return Err(conn.error());
  redisContext* ctx = conn->ctx;
  ScopedSigpipeBlock no_sigpipe;
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const auto& argv : commands) {
    ptrs.clear();
    lens.clear();
    for (auto a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), ptrs.data(), lens.data()) !=
        REDIS_OK) {
      Status s = ContextError(ctx, "write");
      Fail(*conn, s);
      return Err(s);
    }
  }
  std::vector<RedisReplyPtr> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx, &raw) != REDIS_OK || raw == nullptr) {
      Status s = ContextError(ctx, "read");
      Fail(*conn, s);
      return Err(s);
    }
    replies.emplace_back(static_cast<redisReply*>(raw));
  }
  for (const auto& r : replies) {
    if (RedisReplyMeansUnusable(r.get())) {
      Status s = ReplyError(r.get(), "command");
      Fail(*conn, s);
      return Err(s);
    }
  }
  Release(*conn);
  return replies;
}

Result<RedisReplyPtr> RedisPool::Command(const RedisCommand& argv) {
  auto replies = Pipeline({argv});
  if (!replies) return Err(replies.error());
  return std::move(replies->front());
}

}  // namespace llmcache
