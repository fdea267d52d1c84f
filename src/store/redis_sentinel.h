// Finding the current Redis primary through Sentinel.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llmcache/status.h"
#include "store/redis_url.h"

namespace llmcache {

// Asks each sentinel in turn `SENTINEL get-master-addr-by-name master_name`
// and returns the first address one of them knows. Each sentinel gets
// timeout_ms to connect and timeout_ms to answer. Unavailable when none
// answers with an address (the message says what each one said).
Result<RedisHostPort> DiscoverPrimary(const std::vector<RedisHostPort>& sentinels,
                                      const std::string& master_name, int64_t timeout_ms);

}  // namespace llmcache
