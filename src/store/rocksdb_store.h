// Layout of the RocksDB tier, for tools and tests that open its database
// directly. The store itself is created with OpenRocksDbStore (store.h).
//
// Column family "entries": key -> EncodeEntry(entry) (entry_codec.h).
// Column family "access":  key -> access record: the entry's current
//   last_access_ms and hit_count plus what expiry and eviction need
//   (accounted bytes, created_ms, ttl_ms, ttl_fixed), so those never read
//   the blob. Insert writes both in one WriteBatch; Lookup rewrites only the
//   access record. Entry counts and byte totals are rebuilt from "access" at
//   open; eviction, expiry and corrupt-drop counters count from open.
#pragma once

#include <cstddef>

namespace llmcache {

inline constexpr char kRocksDbEntriesColumnFamily[] = "entries";
inline constexpr char kRocksDbAccessColumnFamily[] = "access";
// Maintain() leaves at most this fraction of max_disk_bytes after evicting,
// so that a store at its bound does not evict on every Insert.
inline constexpr double kRocksDbEvictTargetFraction = 0.9;

}  // namespace llmcache
