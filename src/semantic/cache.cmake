# Semantic cache core: context keys, the layered hit decision, entries with
# their own RocksDB, and the `llmcache eval` / `llmcache calibrate` commands.
find_package(spdlog REQUIRED)

add_library(llmcache_semantic_cache STATIC
  context_key.cc hit_policy.cc semantic_entry.cc semantic_cache.cc eval.cc calibrate.cc)
target_link_libraries(llmcache_semantic_cache
  PUBLIC llmcache_common llmcache_semantic Boost::json
  PRIVATE RocksDB::rocksdb spdlog::spdlog simdjson::simdjson)
# The default index and guard, when their parts are configured (they come
# before this file in CMakeLists.txt).
if(TARGET llmcache_vector_index)
  target_link_libraries(llmcache_semantic_cache PUBLIC llmcache_vector_index)
  target_compile_definitions(llmcache_semantic_cache PRIVATE LLMCACHE_HAVE_VECTOR_INDEX=1)
endif()
if(TARGET llmcache_guard)
  target_link_libraries(llmcache_semantic_cache PUBLIC llmcache_guard)
  target_compile_definitions(llmcache_semantic_cache PRIVATE LLMCACHE_HAVE_GUARD=1)
endif()

llmcache_test(semantic_cache_test
  context_key_test.cc hit_policy_test.cc semantic_entry_test.cc semantic_cache_test.cc
  eval_test.cc)
target_link_libraries(semantic_cache_test PRIVATE llmcache_semantic_cache Boost::json)
target_compile_definitions(semantic_cache_test PRIVATE
  LLMCACHE_MODEL_DIR="${LLMCACHE_USE_LITE_MODEL_DIR}"
  LLMCACHE_DEVSET="${CMAKE_CURRENT_SOURCE_DIR}/../../data/semantic/devset.jsonl")
if(TARGET llmcache_guard)
  target_compile_definitions(semantic_cache_test PRIVATE LLMCACHE_HAVE_GUARD=1)
endif()
if(TARGET llmcache_vector_index)
  target_compile_definitions(semantic_cache_test PRIVATE LLMCACHE_HAVE_VECTOR_INDEX=1)
endif()
# Where install-deps puts the Japanese synonym dictionary the guard reads.
cmake_path(SET LLMCACHE_SUDACHI_SYNONYMS_PATH NORMALIZE
  "${CMAKE_CURRENT_SOURCE_DIR}/../../models/node_modules/sudachi-synonyms-dictionary/sudachi-synonyms-dictionary.json")
set_source_files_properties(eval.cc PROPERTIES COMPILE_DEFINITIONS
  "LLMCACHE_SUDACHI_SYNONYMS_PATH=\"${LLMCACHE_SUDACHI_SYNONYMS_PATH}\"")
