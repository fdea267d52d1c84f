// How a tiered store keeps its tiers' access data (last read, hit count)
// consistent without writing to the persistent tier on every memory hit.
// Internal to src/store: the gateway only sees the Store interface.
//
// The outer (memory) tier is an AccessSource: it reports reads it served to a
// listener, lazily (see MemoryStore), and answers point queries about the
// freshest access data it holds. The inner (persistent) tier is an
// AccessSink: it merges reported reads into its records and asks the oracle
// before it expires or evicts anything, so an entry hot in memory is never
// idle-expired or evicted on disk because its disk record is stale.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/status.h"

namespace llmcache {

struct AccessData {
  int64_t last_access_ms = 0;
  uint32_t hit_count = 0;
};

struct AccessUpdate {
  std::string key;
  AccessData access;
};

// Both hooks must be installed before the store is shared between threads
// and must not call back into the store that invokes them.
using AccessListener = std::function<void(const std::vector<AccessUpdate>&)>;
using AccessOracle = std::function<std::optional<AccessData>(std::string_view key)>;

class AccessSource {
 public:
  virtual ~AccessSource() = default;
  // Called, outside the source's locks, with reads not yet reported: when a
  // hit finds the last report older than the source's write-back interval,
  // when an entry with unreported reads is evicted for space, and on
  // FlushAccess().
  virtual void SetAccessListener(AccessListener listener) = 0;
  // The access data held for key, without counting a read; nullopt if absent.
  virtual std::optional<AccessData> PeekAccess(std::string_view key) const = 0;
  // Reports every unreported read now (e.g. before shutdown).
  virtual void FlushAccess() = 0;
};

class AccessSink {
 public:
  virtual ~AccessSink() = default;
  // Merges reads served elsewhere: last_access_ms and hit_count become the
  // maximum of the stored and the reported values (so reports are
  // idempotent and may arrive in any order). Keys not stored are ignored.
  virtual Status RecordAccess(const std::vector<AccessUpdate>& updates) = 0;
  // Consulted (and merged the same way) before expiring or evicting an entry.
  virtual void SetAccessOracle(AccessOracle oracle) = 0;
};

}  // namespace llmcache
