# The Redis store: included from src/store/CMakeLists.txt.
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

target_sources(llmcache_store PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/redis_flight.cc
  ${CMAKE_CURRENT_LIST_DIR}/redis_store.cc
  ${CMAKE_CURRENT_LIST_DIR}/redis_store_async.cc
  ${CMAKE_CURRENT_LIST_DIR}/redis_store_pool.cc
  ${CMAKE_CURRENT_LIST_DIR}/redis_sentinel.cc
  ${CMAKE_CURRENT_LIST_DIR}/redis_url.cc)
target_link_libraries(llmcache_store PUBLIC PkgConfig::HIREDIS OpenSSL::Crypto PRIVATE llmcache_boost)

# Tests start their own redis-server / redis-sentinel processes on free
# loopback ports (binaries from PATH).
llmcache_test(redis_store_test
  redis_url_test.cc
  redis_store_test.cc
  redis_sentinel_test.cc
  redis_flight_test.cc
  redis_store_async_test.cc)
target_link_libraries(redis_store_test PRIVATE llmcache_store llmcache_store_conformance)
