// Internals of the semantic cache shared with its tests and `llmcache eval`.
// The interface is include/llmcache/semantic_cache.h.
#pragma once

#include <string>

#include "llmcache/semantic_cache.h"

namespace llmcache::semantic {

// Where the cache keeps its parts under SemanticCacheOptions::data_dir.
inline constexpr const char* kEntriesDirName = "entries";  // RocksDB
inline constexpr const char* kIndexSnapshotName = "index.snap";

// Whether this build links a VectorIndex implementation for the default
// new_index/load_index (llmcache_vector_index).
bool HaveDefaultVectorIndex();

}  // namespace llmcache::semantic
