#include "engine/disk_tier.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

namespace llmcache::engine {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'L', 'L', 'M', 'C', 'K', 'V', 'B', '1'};
constexpr std::string_view kSuffix = ".kvb";

struct FileHeader {
  char magic[8];
  uint64_t hash_lo;
  uint64_t hash_hi;
  uint64_t payload_bytes;
  uint64_t payload_xxh;
  uint64_t header_xxh;  // of the 40 bytes before it
};
static_assert(sizeof(FileHeader) == 48);
constexpr size_t kHeaderChecked = offsetof(FileHeader, header_xxh);

}  // namespace

Result<std::unique_ptr<DiskTier>> DiskTier::Open(const DiskTierOptions& options) {
  if (options.dir.empty()) return Err(Status::InvalidArgument("disk tier: no directory"));
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return Err(Status::IOError("disk tier: create " + options.dir + ": " + ec.message()));
  std::unique_ptr<DiskTier> tier(new DiskTier(options));
  struct Found {
    fs::file_time_type mtime;
    BlockHash hash;
    uint64_t bytes;
  };
  std::vector<Found> found;
  for (fs::directory_iterator it(options.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    std::error_code fe;
    if (name.ends_with(".tmp")) {
      fs::remove(p, fe);  // an interrupted write
      continue;
    }
    BlockHash h;
    if (!name.ends_with(kSuffix) || !FromHex(name.substr(0, name.size() - kSuffix.size()), &h)) {
      continue;
    }
    const uint64_t size = it->file_size(fe);
    const auto mtime = it->last_write_time(fe);
    if (fe) continue;
    found.push_back({mtime, h, size});
  }
  if (ec) return Err(Status::IOError("disk tier: scan " + options.dir + ": " + ec.message()));
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
  std::lock_guard lock(tier->mu_);
  for (const Found& f : found) {
    tier->lru_.push_back(f.hash);
    tier->index_[f.hash] = {f.bytes, std::prev(tier->lru_.end())};
    tier->stats_.bytes += f.bytes;
  }
  tier->EnforceBudget();
  return tier;
}

std::string DiskTier::PathOf(const BlockHash& hash) const {
  return (fs::path(options_.dir) / (ToHex(hash) + std::string(kSuffix))).string();
}

bool DiskTier::Contains(const BlockHash& hash) const {
  std::lock_guard lock(mu_);
  return index_.count(hash) != 0;
}

Status DiskTier::Store(const BlockHash& hash, std::span<const uint8_t> payload) {
  std::lock_guard lock(mu_);
  if (index_.count(hash) != 0) return Status::OK();
  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.hash_lo = hash.lo;
  h.hash_hi = hash.hi;
  h.payload_bytes = payload.size();
  h.payload_xxh = XXH3_64bits(payload.data(), payload.size());
  h.header_xxh = XXH3_64bits(&h, kHeaderChecked);
  const std::string path = PathOf(hash);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(&h), sizeof(h));
    out.write(reinterpret_cast<const char*>(payload.data()),
              static_cast<std::streamsize>(payload.size()));
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return Status::IOError("disk tier: write " + tmp);
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Status::IOError("disk tier: rename " + tmp + ": " + ec.message());
  }
  const uint64_t bytes = sizeof(h) + payload.size();
  lru_.push_back(hash);
  index_[hash] = {bytes, std::prev(lru_.end())};
  stats_.bytes += bytes;
  ++stats_.stored;
  EnforceBudget();
  return Status::OK();
}

Status DiskTier::Load(const BlockHash& hash, std::span<uint8_t> out) {
  std::lock_guard lock(mu_);
  auto it = index_.find(hash);
  if (it == index_.end()) return Status::NotFound();
  const std::string path = PathOf(hash);
  auto corrupt = [&](const std::string& why) {
    Drop(hash);
    ++stats_.corrupt_dropped;
    return Status::Corruption("disk tier: " + path + ": " + why);
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) return corrupt("cannot open");
  FileHeader h{};
  in.read(reinterpret_cast<char*>(&h), sizeof(h));
  if (in.gcount() != static_cast<std::streamsize>(sizeof(h))) return corrupt("truncated header");
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) return corrupt("bad magic");
  if (XXH3_64bits(&h, kHeaderChecked) != h.header_xxh) return corrupt("header checksum");
  if (h.hash_lo != hash.lo || h.hash_hi != hash.hi) return corrupt("hash mismatch");
  if (h.payload_bytes != out.size()) return corrupt("payload size mismatch");
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
  if (in.gcount() != static_cast<std::streamsize>(out.size())) return corrupt("truncated payload");
  if (in.peek() != std::ifstream::traits_type::eof()) return corrupt("trailing bytes");
  if (XXH3_64bits(out.data(), out.size()) != h.payload_xxh) return corrupt("payload checksum");
  lru_.splice(lru_.end(), lru_, it->second.lru);
  std::error_code ec;
  fs::last_write_time(path, fs::file_time_type::clock::now(), ec);  // LRU order across restarts
  ++stats_.loaded;
  return Status::OK();
}

DiskTierStats DiskTier::stats() const {
  std::lock_guard lock(mu_);
  DiskTierStats s = stats_;
  s.blocks = index_.size();
  return s;
}

void DiskTier::Drop(const BlockHash& hash) {
  auto it = index_.find(hash);
  std::error_code ec;
  fs::remove(PathOf(hash), ec);
  stats_.bytes -= it->second.bytes;
  lru_.erase(it->second.lru);
  index_.erase(it);
}

void DiskTier::EnforceBudget() {
  while (stats_.bytes > options_.budget_bytes && !lru_.empty()) {
    Drop(lru_.front());
    ++stats_.evicted;
  }
}

}  // namespace llmcache::engine
