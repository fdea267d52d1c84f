#include "store/redis_sentinel.h"

#include <hiredis/hiredis.h>

#include <charconv>
#include <memory>

#include "store/redis_store_pool.h"

namespace llmcache {
namespace {

// What one sentinel says: the address, or why not.
Result<RedisHostPort> AskOne(const RedisHostPort& sentinel, const std::string& master_name,
                             int64_t timeout_ms) {
  std::unique_ptr<redisContext, decltype(&redisFree)> ctx(
      redisConnectWithTimeout(sentinel.host.c_str(), sentinel.port, RedisTimeval(timeout_ms)),
      &redisFree);
  if (!ctx) return Err(Status::Unavailable("out of memory"));
  if (ctx->err) return Err(Status::Unavailable(ctx->errstr));
  redisSetTimeout(ctx.get(), RedisTimeval(timeout_ms));
  ScopedSigpipeBlock no_sigpipe;
  auto* raw = static_cast<redisReply*>(redisCommand(
      ctx.get(), "SENTINEL get-master-addr-by-name %b", master_name.data(), master_name.size()));
  std::unique_ptr<redisReply, decltype(&freeReplyObject)> reply(raw, &freeReplyObject);
  if (!reply) return Err(Status::Unavailable(ctx->errstr));
  if (reply->type == REDIS_REPLY_ERROR) return Err(Status::Unavailable(reply->str));
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      reply->element[0]->type != REDIS_REPLY_STRING ||
      reply->element[1]->type != REDIS_REPLY_STRING) {
    return Err(Status::Unavailable("does not know master " + master_name));
  }
  RedisHostPort out;
  out.host.assign(reply->element[0]->str, reply->element[0]->len);
  std::string_view port(reply->element[1]->str, reply->element[1]->len);
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), out.port);
  if (ec != std::errc() || out.port <= 0 || out.port > 65535) {
    return Err(Status::Unavailable("answered a bad port"));
  }
  return out;
}

}  // namespace

Result<RedisHostPort> DiscoverPrimary(const std::vector<RedisHostPort>& sentinels,
                                      const std::string& master_name, int64_t timeout_ms) {
  std::string why;
  for (const auto& s : sentinels) {
    auto addr = AskOne(s, master_name, timeout_ms);
    if (addr) return addr;
    if (!why.empty()) why += "; ";
    why += s.host + ":" + std::to_string(s.port) + ": " + addr.error().message();
  }
  return Err(
      Status::Unavailable("no sentinel knows the primary of " + master_name + " (" + why + ")"));
}

}  // namespace llmcache
