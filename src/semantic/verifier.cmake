# --- Semantic cache: the grey-band LLM check ----------------------------------
# PairVerifiers (an OpenAI-compatible chat endpoint, routing by namespace, and
# the label oracle of `llmcache eval --verifier`) join the cache library,
# which then needs the HTTP client.
if(NOT TARGET llmcache_semantic_cache)
  return()
endif()
target_sources(llmcache_semantic_cache PRIVATE llm_verifier.cc)
target_link_libraries(llmcache_semantic_cache PRIVATE llmcache_http)

llmcache_test(llm_verifier_test llm_verifier_test.cc)
target_link_libraries(llm_verifier_test PRIVATE llmcache_semantic_cache llmcache_http Boost::json)
