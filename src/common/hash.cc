#include "common/hash.h"

#include <openssl/sha.h>
#include <xxhash.h>

namespace llmcache {

std::array<uint8_t, 32> Sha256(std::string_view data) {
  std::array<uint8_t, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}

std::string HexEncode(const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    s[2 * i] = kDigits[data[i] >> 4];
    s[2 * i + 1] = kDigits[data[i] & 15];
  }
  return s;
}

std::string Sha256Hex(std::string_view data) {
  auto d = Sha256(data);
  return HexEncode(d.data(), d.size());
}

uint64_t Xxh3(std::string_view data) { return XXH3_64bits(data.data(), data.size()); }

uint64_t Xxh3(const void* data, size_t size, uint64_t seed) {
  return XXH3_64bits_withSeed(data, size, seed);
}

}  // namespace llmcache
