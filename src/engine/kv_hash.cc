#include "engine/kv_hash.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace llmcache::engine {

namespace {

BlockHash FromXxh(XXH128_hash_t h) { return {h.low64, h.high64}; }

void Update(XXH3_state_t* s, const void* p, size_t n) { XXH3_128bits_update(s, p, n); }
template <class T>
void UpdateValue(XXH3_state_t* s, const T& v) {
  Update(s, &v, sizeof(v));
}
void UpdateString(XXH3_state_t* s, std::string_view v) {
  UpdateValue(s, static_cast<uint64_t>(v.size()));
  Update(s, v.data(), v.size());
}

struct StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};

}  // namespace

std::string ToHex(const BlockHash& h) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = kDigits[(h.hi >> (4 * i)) & 15];
    out[31 - i] = kDigits[(h.lo >> (4 * i)) & 15];
  }
  return out;
}

bool FromHex(std::string_view hex, BlockHash* out) {
  if (hex.size() != 32) return false;
  uint64_t parts[2] = {0, 0};
  for (size_t i = 0; i < 32; ++i) {
    const char c = hex[i];
    uint64_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return false;
    }
    parts[i / 16] = parts[i / 16] << 4 | d;
  }
  *out = {parts[1], parts[0]};
  return true;
}

BlockHash KvIdentity(const Model& model, uint32_t block_tokens) {
  std::unique_ptr<XXH3_state_t, StateDeleter> s(XXH3_createState());
  XXH3_128bits_reset(s.get());
  UpdateString(s.get(), "llmcache-kv-v1");
  const GgufFile& f = model.gguf();
  const std::span<const uint8_t> bytes = f.bytes();
  const size_t header = std::min<size_t>(bytes.size(), f.data_offset());
  Update(s.get(), bytes.data(), header);
  UpdateValue(s.get(), static_cast<uint64_t>(bytes.size()));
  // Hashing every weight would read the whole file at startup; a few bytes
  // from both ends of each tensor tell apart models of equal shape.
  constexpr size_t kSample = 64;
  for (const GgufTensorInfo& t : f.tensors()) {
    const size_t n = std::min(kSample, t.data.size());
    Update(s.get(), t.data.data(), n);
    Update(s.get(), t.data.data() + t.data.size() - n, n);
  }
  const ModelConfig& c = model.config();
  UpdateString(s.get(), "kv_dtype=f16");
  UpdateValue(s.get(), c.rope_freq_base);
  UpdateValue(s.get(), c.n_rot);
  UpdateValue(s.get(), static_cast<uint8_t>(c.rope_neox));
  UpdateValue(s.get(), block_tokens);
  return FromXxh(XXH3_128bits_digest(s.get()));
}

BlockHash RequestKeys(const BlockHash& identity, std::string_view cache_salt) {
  std::unique_ptr<XXH3_state_t, StateDeleter> s(XXH3_createState());
  XXH3_128bits_reset(s.get());
  UpdateValue(s.get(), identity.lo);
  UpdateValue(s.get(), identity.hi);
  UpdateString(s.get(), cache_salt);
  return FromXxh(XXH3_128bits_digest(s.get()));
}

BlockHash ChainBlockHash(const BlockHash& parent, std::span<const int32_t> tokens,
                         const BlockHash& extra_keys) {
  std::unique_ptr<XXH3_state_t, StateDeleter> s(XXH3_createState());
  XXH3_128bits_reset(s.get());
  const uint64_t head[4] = {parent.lo, parent.hi, extra_keys.lo, extra_keys.hi};
  Update(s.get(), head, sizeof(head));
  Update(s.get(), tokens.data(), tokens.size_bytes());
  return FromXxh(XXH3_128bits_digest(s.get()));
}

}  // namespace llmcache::engine
