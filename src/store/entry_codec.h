// The on-disk (and on-wire) form of a CacheEntry, shared by every persistent
// tier. Bytes read back from a store are untrusted: disks rot, processes die
// mid-write, and other tools may touch the database.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "llmcache/cache_entry.h"
#include "llmcache/status.h"

namespace llmcache {

// Format, little-endian, fixed widths:
//   u8  magic/version (kEntryFormatV1)
//   u8  route, u8 flags (bit 0: ttl_fixed; the others must be 0)
//   i64 created_ms, i64 last_access_ms, i64 ttl_ms
//   u32 hit_count, i32 http_status, u32 prompt_tokens, u32 completion_tokens
//   str key, str ns, str model, str body      (str = u32 length + bytes)
//   u32 event count, then that many str
//   u64 XXH3-64 of every byte before it
// A new layout gets a new first byte; decoders refuse what they do not know.
inline constexpr uint8_t kEntryFormatV1 = 0xC1;

// Exact size EncodeEntry produces for e.
size_t EncodedEntrySize(const CacheEntry& e);

// Appends the encoding of e to *out. InvalidArgument when a string, or the
// number of events, does not fit the format's 32-bit lengths; *out is then
// left as it was.
Status EncodeEntry(const CacheEntry& e, std::string* out);

// Parses bytes produced by EncodeEntry. Corruption when the checksum, the
// version, an enum value or any length does not match; never reads past
// `data` and never allocates more than data.size() bytes' worth of strings.
Result<CacheEntry> DecodeEntry(std::string_view data);

}  // namespace llmcache
