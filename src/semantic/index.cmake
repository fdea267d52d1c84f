# --- Semantic cache: vector index ---------------------------------------------
# VectorIndex (include/llmcache/vector_index.h): a brute-force reference and
# hnswlib graphs (header-only, Debian libhnswlib-dev), partitioned, with
# snapshots. The distance kernels come from llmcache_semantic.
find_path(HNSWLIB_INCLUDE_DIR hnswlib/hnswlib.h REQUIRED)

add_library(llmcache_vector_index STATIC
  vector_index.cc brute_force_index.cc hnsw_index.cc)
target_include_directories(llmcache_vector_index SYSTEM PRIVATE ${HNSWLIB_INCLUDE_DIR})
target_link_libraries(llmcache_vector_index
  PUBLIC llmcache_common
  PRIVATE llmcache_semantic Threads::Threads)

# The conformance suite as an OBJECT library (like the store's), so a test
# binary of another implementation links all of its TEST_Ps.
add_library(llmcache_vector_index_conformance OBJECT vector_index_conformance_test.cc)
target_link_libraries(llmcache_vector_index_conformance
  PUBLIC llmcache_vector_index GTest::gtest GTest::gmock)

llmcache_test(vector_index_test vector_index_test.cc)
target_link_libraries(vector_index_test PRIVATE
  llmcache_vector_index llmcache_vector_index_conformance)
