# Compute of the engine: kernels, thread pool, the forward pass, sampling and
# the `generate` command. Included at the end of src/engine/CMakeLists.txt.
add_library(llmcache_engine_compute STATIC kernels.cc thread_pool.cc model.cc sampling.cc)
target_link_libraries(llmcache_engine_compute PUBLIC llmcache_engine Threads::Threads)

find_package(CLI11 CONFIG REQUIRED)
add_library(llmcache_engine_generate STATIC generate_command.cc)
target_link_libraries(llmcache_engine_generate PUBLIC llmcache_engine_compute CLI11::CLI11 llmcache_boost)

llmcache_test(engine_compute_test kernels_test.cc model_test.cc sampling_test.cc generate_command_test.cc thread_pool_test.cc)
target_link_libraries(engine_compute_test PRIVATE llmcache_engine_compute llmcache_engine_generate ${CMAKE_DL_LIBS})
target_compile_definitions(engine_compute_test PRIVATE
  LLMCACHE_LLAMA_CPP_DIR="${CMAKE_SOURCE_DIR}/models/llama-cpp")
if(EXISTS ${LLAMA_CPP_SRC}/include/llama.h)
  target_include_directories(engine_compute_test SYSTEM PRIVATE ${LLAMA_CPP_SRC}/include ${LLAMA_CPP_SRC}/ggml/include)
  target_compile_definitions(engine_compute_test PRIVATE LLMCACHE_HAVE_LLAMA_H=1)
endif()

# Runtime of the engine: block hashes, the prefix cache with its disk tier,
# and BatchedEngine (continuous batching behind EngineBackend).
add_library(llmcache_engine_runtime STATIC kv_hash.cc disk_tier.cc prefix_cache.cc scheduler.cc)
target_link_libraries(llmcache_engine_runtime PUBLIC llmcache_engine_compute)

llmcache_test(engine_kv_test kv_test.cc scheduler_test.cc)
target_link_libraries(engine_kv_test PRIVATE llmcache_engine_runtime)
target_compile_definitions(engine_kv_test PRIVATE
  LLMCACHE_LLAMA_CPP_DIR="${CMAKE_SOURCE_DIR}/models/llama-cpp")
