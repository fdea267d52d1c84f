// Hashes used across modules: SHA-256 for persisted keys (collision
// resistant, so a crafted request cannot alias another tenant's key) and
// XXH3 for in-process tables and checksums.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmcache {

std::array<uint8_t, 32> Sha256(std::string_view data);
// Lowercase hex of SHA-256, 64 characters.
std::string Sha256Hex(std::string_view data);
std::string HexEncode(const uint8_t* data, size_t size);

uint64_t Xxh3(std::string_view data);
uint64_t Xxh3(const void* data, size_t size, uint64_t seed);

}  // namespace llmcache
