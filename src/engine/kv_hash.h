// Hashes that name KV blocks across requests, restarts and tenants.
//
// A full block's hash chains its parent's hash, its token ids and the
// "extra keys": everything besides the tokens that decides the block's K and
// V bytes (the model file, its tokenizer, the KV dtype, the RoPE settings,
// the block size) plus the request's cache salt. Two blocks with equal hashes
// hold equal bytes, so the hash is also the disk tier's key; different salts
// never meet, so a tenant cannot time-probe another tenant's prefixes.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "engine/model.h"

namespace llmcache::engine {

// 128 bits (XXH3): collisions are not a practical concern, and a wrong hit
// would silently serve another prefix's attention state.
struct BlockHash {
  uint64_t lo = 0;
  uint64_t hi = 0;
  friend bool operator==(const BlockHash&, const BlockHash&) = default;
};

struct BlockHashHasher {
  size_t operator()(const BlockHash& h) const { return static_cast<size_t>(h.lo ^ (h.hi * 31)); }
};

std::string ToHex(const BlockHash& h);               // 32 lowercase hex digits
bool FromHex(std::string_view hex, BlockHash* out);  // false unless 32 hex digits

// The model-side extra keys: a digest of the GGUF header, metadata (which
// holds the tokenizer) and tensor infos, the size of the file, samples of
// every tensor's bytes (models that differ only in weights differ there),
// KV dtype, RoPE settings and block size. Path-independent: a copied file
// keeps its identity and its disk-tier blocks.
BlockHash KvIdentity(const Model& model, uint32_t block_tokens);

// The extra keys of one request: the model identity and its cache salt.
BlockHash RequestKeys(const BlockHash& identity, std::string_view cache_salt);

// hash(parent hash, token ids, extra keys). The first block's parent is the
// zero hash.
BlockHash ChainBlockHash(const BlockHash& parent, std::span<const int32_t> tokens,
                         const BlockHash& extra_keys);

}  // namespace llmcache::engine
