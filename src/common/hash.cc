#include "common/hash.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <xxhash.h>

#include <memory>

namespace llmcache {

std::array<uint8_t, 32> Sha256(std::string_view data) {
  // Every cache request hashes its key. OpenSSL 3's one-shot SHA256() looks
  // the algorithm up and allocates a context on each call, a quarter of the
  // cost of hashing a 1 KB key; a fetched algorithm and a per-thread context
  // do that once.
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                                 &EVP_MD_CTX_free);
  std::array<uint8_t, 32> out{};
  unsigned int n = 0;
  if (md && ctx && EVP_DigestInit_ex2(ctx.get(), md, nullptr) == 1 &&
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) == 1 &&
      EVP_DigestFinal_ex(ctx.get(), out.data(), &n) == 1 && n == out.size()) {
    return out;
  }
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
