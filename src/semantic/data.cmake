# --- Semantic cache: `openai` embedder, warm-up, development set -------------
# The `openai` embedder joins llmcache_semantic (`llmcache embed` builds
# either embedder), which then needs the HTTP client.
target_sources(llmcache_semantic PRIVATE openai_embedder.cc)
target_link_libraries(llmcache_semantic PRIVATE llmcache_http)

# `llmcache warm`: clusters a query log and replays it through the gateway.
# The lexical guard (guard.cmake, configured before this file) vets
# paraphrase merges; without it warm-up merges exact repeats only.
add_library(llmcache_warm STATIC warm.cc)
target_link_libraries(llmcache_warm PUBLIC llmcache_semantic PRIVATE llmcache_http)
if(TARGET llmcache_guard)
  target_link_libraries(llmcache_warm PRIVATE llmcache_guard)
  target_compile_definitions(llmcache_warm PRIVATE LLMCACHE_HAVE_GUARD=1)
endif()

llmcache_test(semantic_data_test openai_embedder_test.cc warm_test.cc devset_test.cc)
target_link_libraries(semantic_data_test PRIVATE llmcache_warm llmcache_http Boost::json)
target_compile_definitions(semantic_data_test PRIVATE
  LLMCACHE_DATA_DIR="${PROJECT_SOURCE_DIR}/data/semantic")

# The checked-in pairs file must be what tools/devset-pairs.mjs derives from
# the development set.
find_program(LLMCACHE_NODE node)
if(LLMCACHE_NODE)
  add_test(NAME DevsetPairsUpToDate
    COMMAND ${LLMCACHE_NODE} ${PROJECT_SOURCE_DIR}/tools/devset-pairs.mjs --check)
endif()
