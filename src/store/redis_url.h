// Where a RedisStore connects: `redis://[[user]:password@]HOST:PORT[/DB]` or
// `redis-sentinel://[[user]:password@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`.
// The password in a URL is for the Redis primary (not the sentinels); an
// environment variable named in RedisStoreOptions overrides it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "llmcache/status.h"

namespace llmcache {

struct RedisHostPort {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
  int port = 6379;
  bool operator==(const RedisHostPort&) const = default;
};

struct RedisUrl {
  bool sentinel = false;
  // One address for redis://; the sentinels, in the order to ask them, for
  // redis-sentinel://.
  std::vector<RedisHostPort> hosts;
  std::string username;  // empty: the default user
  std::string password;  // empty: no AUTH (unless the environment supplies one)
  int db = 0;
  std::string master_name;  // redis-sentinel:// only
};

// InvalidArgument with a message that names the offending part. Percent
// escapes in the user and password are decoded. A missing port defaults to
// 6379 (redis://) or 26379 (redis-sentinel://).
Result<RedisUrl> ParseRedisUrl(std::string_view url);

// The URL without its password, for logs.
std::string RedactedRedisUrl(const RedisUrl& url);

}  // namespace llmcache
