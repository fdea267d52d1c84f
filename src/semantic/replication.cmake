# The semantic cache across gateway replicas: a shared log of changes
# (replication.h) kept in a Redis stream (redis_replication.h). Needs the
# Redis store's connection pool (src/store/redis.cmake).
if(NOT TARGET llmcache_semantic_cache OR NOT TARGET llmcache_store)
  return()
endif()

add_library(llmcache_semantic_replication STATIC replication.cc redis_replication.cc)
target_link_libraries(llmcache_semantic_replication
  PUBLIC llmcache_semantic_cache llmcache_store
  PRIVATE spdlog::spdlog)

# Starts its own redis-server processes on free loopback ports.
find_program(LLMCACHE_REDIS_SERVER redis-server)
if(LLMCACHE_REDIS_SERVER)
  llmcache_test(semantic_replication_test redis_replication_test.cc)
  target_link_libraries(semantic_replication_test PRIVATE
    llmcache_semantic_replication llmcache_store_conformance Boost::json)
endif()
