// Nearest-neighbour search over embeddings for the semantic cache. Vectors
// live in partitions (namespace + model revision + embedder + context key,
// hashed by the caller); a search never crosses partitions. Every
// implementation passes the one conformance suite in
// src/semantic/vector_index_conformance_test.h, with the brute-force index as
// the reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/status.h"

namespace llmcache {

struct IndexHit {
  uint64_t id = 0;
  float similarity = 0;  // cosine similarity in [-1, 1]
};

// Thread-safe: Search may run concurrently with other Searches and with
// Add/Remove (implementations serialize writers as they need). Vectors are
// compared by cosine, so the index stores them L2-normalized; a vector that
// cannot be normalized (zero, NaN, infinite) is refused.
class VectorIndex {
 public:
  virtual ~VectorIndex() = default;

  virtual const char* Name() const = 0;
  virtual size_t dimension() const = 0;

  // Adds or replaces the vector with this id in the partition. The vector
  // need not be normalized; the index compares by cosine.
  // InvalidArgument: wrong dimension, non-finite values or a zero vector.
  // ResourceExhausted: memory for the graph could not be allocated.
  virtual Status Add(std::string_view partition, uint64_t id, std::span<const float> vector) = 0;

  // Removes the id from the partition; OK whether or not it was present.
  virtual Status Remove(std::string_view partition, uint64_t id) = 0;

  // Up to k hits in the partition, best first (equal similarities: lower id
  // first). An unknown partition gives an empty list. Exact for partitions
  // below VectorIndexOptions::exact_below, approximate above.
  // InvalidArgument: wrong dimension, non-finite values or a zero vector.
  virtual Result<std::vector<IndexHit>> Search(std::string_view partition,
                                               std::span<const float> query, size_t k) const = 0;

  // Vectors held, over all partitions.
  virtual size_t size() const = 0;
  // Approximate bytes of memory held.
  virtual size_t memory_bytes() const = 0;

  // Writes a snapshot to a file (atomically: a temporary file in the same
  // directory, fsync, then rename). Each partition is consistent in itself;
  // writers to other partitions may proceed meanwhile. HNSW graphs are
  // saved as they are, so loading does not rebuild them.
  virtual Status Save(const std::string& path) const = 0;
};

struct VectorIndexOptions {
  size_t dimension = 512;
  // "hnsw" (hnswlib) or "brute-force" (exact; the reference).
  std::string kind = "hnsw";
  // HNSW parameters: graph degree, build and search beam widths.
  size_t hnsw_m = 16;
  size_t hnsw_ef_construction = 200;
  size_t hnsw_ef_search = 64;
  // Partitions smaller than this are scanned exactly (no graph is built);
  // a partition gets its graph when it reaches this size and drops it again
  // when it shrinks below half of it. 0: always a graph. Besides its
  // vectors a graph costs ~2.6 MB (hnswlib's table of 65,536 update locks),
  // one more reason small partitions stay flat.
  size_t exact_below = 1024;
  uint64_t seed = 42;
};

// nullptr for an unknown kind or a dimension of 0.
std::unique_ptr<VectorIndex> NewVectorIndex(const VectorIndexOptions& options);

// Loads a snapshot written by Save. Corruption (checksum, truncation, bad
// structure); InvalidArgument (a dimension other than options.dimension, or
// a snapshot of another kind); IOError (cannot read). On any error the caller
// rebuilds the index from the store and logs it; nothing from a bad file is
// used. Saved graphs keep their M and ef_construction from the file;
// ef_search and exact_below come from options.
Result<std::unique_ptr<VectorIndex>> LoadVectorIndex(const VectorIndexOptions& options,
                                                     const std::string& path);

}  // namespace llmcache
