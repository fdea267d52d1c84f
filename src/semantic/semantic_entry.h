// A semantic cache entry and its on-disk form. The answer itself stays in the
// exact Store; an entry points to it by exact key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/status.h"
#include "semantic/hit_policy.h"

namespace llmcache::semantic {

struct SemanticEntry {
  uint64_t id = 0;
  std::string exact_key;
  std::string ns;
  // Empty for an exact-only entry (kept for its documents only); then text
  // and embedding are empty too.
  std::string context_key;
  std::string text;
  std::vector<float> embedding;  // of the embedder in the cache's meta record
  std::vector<std::string> doc_hashes;
  int64_t created_ms = 0;
  int64_t last_hit_ms = 0;
  int64_t ttl_ms = 0;  // 0: no TTL
  uint32_t hit_count = 0;
  std::vector<Observation> observations;

  bool semantic() const { return !embedding.empty(); }
  bool Expired(int64_t now_ms) const { return ttl_ms > 0 && now_ms - created_ms >= ttl_ms; }
};

// Format, little-endian: u8 version (kSemanticEntryV1), u64 id, str exact_key,
// str ns, str context_key, str text (str = u32 length + bytes), u32 dim + dim
// f32, u32 doc count + str each, i64 created_ms, i64 last_hit_ms, i64 ttl_ms,
// u32 hit_count, u32 observation count + (f32 similarity, u8 same) each,
// u64 XXH3-64 of every byte before it.
inline constexpr uint8_t kSemanticEntryV1 = 0x51;

std::string EncodeSemanticEntry(const SemanticEntry& e);
// Corruption on any mismatch; never reads past data.
Result<SemanticEntry> DecodeSemanticEntry(std::string_view data);

// The cache's meta record: which embedder the stored vectors come from, the
// next entry id, and whether the index snapshot matches the entries.
struct SemanticMeta {
  std::string embedder_id;
  uint32_t dimension = 0;
  uint64_t next_id = 1;
  // True only between a Checkpoint and the next change: a snapshot written
  // before a crash is older than the entries and must not be used.
  bool snapshot_valid = false;
  uint64_t snapshot_vectors = 0;
};

std::string EncodeSemanticMeta(const SemanticMeta& m);
Result<SemanticMeta> DecodeSemanticMeta(std::string_view data);

}  // namespace llmcache::semantic
