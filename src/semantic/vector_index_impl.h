// What the VectorIndex implementations share: the partition map with its
// locks, vector checks and normalization, an exact top-k scan over a dense
// array, and the snapshot file (header, partition blocks, XXH3 trailer). An
// implementation only says how one partition stores and searches vectors.
//
// Snapshot layout (little-endian, as the host writes it):
//   "LLMCVIDX" u32 version u32 dimension u32 kind u32 reserved(0)
//   { u8 1, u32 name_size, name bytes, partition block }*   u8 0
//   u64 XXH3-64 of every byte before it
// A partition block starts with a u8 mode: kFlatBlock or kGraphBlock.
#pragma once

#include <xxhash.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llmcache/vector_index.h"

namespace llmcache::vindex {

inline constexpr uint32_t kSnapshotVersion = 1;
inline constexpr uint32_t kKindBruteForce = 1;
inline constexpr uint32_t kKindHnsw = 2;
inline constexpr uint8_t kFlatBlock = 0;
inline constexpr uint8_t kGraphBlock = 1;

// Dot product of two n-float vectors with the widest kernel the CPU runs.
float Dot(const float* a, const float* b, size_t n);

// Writes `in` scaled to unit length into `out`; false for non-finite values or
// a zero vector (whose cosine is undefined).
bool NormalizeInto(std::span<const float> in, float* out);

// The k best (similarity desc, then id asc) of what is offered.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) {}
  size_t k() const { return k_; }
  void Offer(uint64_t id, float similarity);
  // The hits, best first; leaves the collector empty.
  std::vector<IndexHit> Take();

 private:
  size_t k_;
  std::vector<IndexHit> heap_;  // worst on top
};

// Appends to a file while hashing what it writes.
class SnapshotWriter {
 public:
  explicit SnapshotWriter(std::FILE* file);
  void Write(const void* data, size_t size);
  template <class T>
  void Put(T value) {
    Write(&value, sizeof value);
  }
  bool ok() const { return ok_; }
  // Writes the checksum of everything so far (not itself hashed).
  void Finish();

 private:
  std::FILE* file_;
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> hash_;
  bool ok_ = true;
};

// Reads a snapshot front to back while hashing, never past the checksum
// trailer: every read is bounds-checked, so counts in a damaged file cannot
// make the loader read or allocate more than the file holds.
class SnapshotReader {
 public:
  // `payload_size`: file size minus the 8-byte trailer.
  SnapshotReader(std::FILE* file, uint64_t payload_size);
  // False when fewer than `size` payload bytes remain or the read fails.
  bool Read(void* data, size_t size);
  template <class T>
  bool Get(T* value) {
    return Read(value, sizeof *value);
  }
  uint64_t remaining() const { return remaining_; }
  // True when the trailer matches the hash of the payload read so far (call
  // after reading all of it).
  bool ChecksumMatches();

 private:
  std::FILE* file_;
  uint64_t remaining_;
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> hash_;
};

// Normalized vectors in one dense array (removal moves the last one into the
// hole), so an exact scan streams memory.
class FlatVectors {
 public:
  explicit FlatVectors(size_t dimension) : dimension_(dimension) {}
  // Adds or replaces; `unit` holds dimension() normalized floats.
  void Put(uint64_t id, const float* unit);
  bool Erase(uint64_t id);
  size_t size() const { return ids_.size(); }
  size_t dimension() const { return dimension_; }
  void Scan(const float* unit_query, TopK& top) const;
  uint64_t id_at(size_t i) const { return ids_[i]; }
  const float* vector_at(size_t i) const { return data_.data() + i * dimension_; }
  size_t memory_bytes() const;

  // Block: u8 kFlatBlock, u64 count, count x (u64 id, dimension floats).
  void Write(SnapshotWriter& w) const;
  // Reads the block after its mode byte. Corruption for bad counts, values
  // or duplicate ids.
  static Result<std::unique_ptr<FlatVectors>> Read(size_t dimension, SnapshotReader& r);

 private:
  size_t dimension_;
  std::vector<float> data_;
  std::vector<uint64_t> ids_;
  std::unordered_map<uint64_t, uint32_t> slot_of_;
};

// One partition's vectors. The index serializes calls: writers hold the
// partition's lock exclusively, Search and Write hold it shared.
class Partition {
 public:
  virtual ~Partition() = default;
  // `unit` is normalized and of the index's dimension.
  virtual Status Add(uint64_t id, const float* unit) = 0;
  virtual bool Remove(uint64_t id) = 0;
  virtual void Search(const float* unit_query, TopK& top) const = 0;
  virtual size_t size() const = 0;
  virtual size_t memory_bytes() const = 0;
  // The partition block (starting with its mode byte).
  virtual void Write(SnapshotWriter& w) const = 0;
};

// The VectorIndex over named partitions; subclasses make the partitions.
class PartitionedIndex : public VectorIndex {
 public:
  explicit PartitionedIndex(const VectorIndexOptions& options);

  size_t dimension() const override { return options_.dimension; }
  Status Add(std::string_view partition, uint64_t id, std::span<const float> vector) override;
  Status Remove(std::string_view partition, uint64_t id) override;
  Result<std::vector<IndexHit>> Search(std::string_view partition, std::span<const float> query,
                                       size_t k) const override;
  size_t size() const override { return size_.load(std::memory_order_relaxed); }
  size_t memory_bytes() const override;
  Status Save(const std::string& path) const override;

  // The snapshot kind code (kKindBruteForce, kKindHnsw).
  virtual uint32_t kind_code() const = 0;
  // Reads the partition records of a snapshot, after its header, into this
  // empty index (not yet shared, so no locking).
  Status ReadPartitions(SnapshotReader& r);

 protected:
  virtual std::unique_ptr<Partition> NewPartition(std::string_view name) const = 0;
  // Reads one partition block whose mode byte is `mode`.
  virtual Result<std::unique_ptr<Partition>> ReadPartition(std::string_view name, uint8_t mode,
                                                           SnapshotReader& r) const = 0;
  const VectorIndexOptions& options() const { return options_; }

 private:
  struct Slot {
    mutable std::shared_mutex mu;
    std::unique_ptr<Partition> partition;
  };
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using SlotMap = std::unordered_map<std::string, std::shared_ptr<Slot>, NameHash, std::equal_to<>>;

  Status CheckDimension(std::span<const float> v) const;
  void EraseIfEmpty(std::string_view partition);

  VectorIndexOptions options_;
  // Lock order: map_mu_, then a slot's mu. The map lock is held shared
  // while a slot is used, exclusively only to insert or erase a slot.
  mutable std::shared_mutex map_mu_;
  SlotMap partitions_;
  std::atomic<size_t> size_{0};
};

std::unique_ptr<PartitionedIndex> NewBruteForceIndex(const VectorIndexOptions& options);
std::unique_ptr<PartitionedIndex> NewHnswIndex(const VectorIndexOptions& options);

// The search beam of an HNSW partition of `live` vectors: ef_search up to
// 500,000 vectors, then doubled for every doubling. At a fixed beam recall
// falls as the graph grows (clustered 512-d data, ef 64: recall@1 1.000 at
// 100k, 0.955 at 1M; ef 128 at 1M: 0.995; bench/vector_index_bench).
size_t HnswSearchBeam(size_t live, size_t ef_search);

}  // namespace llmcache::vindex
