# --- Semantic cache: the lexical verification guard ----------------------------
# English: WordNet 3.0 (Debian wordnet-base). Japanese: MeCab with IPADIC
# (libmecab-dev, mecab-ipadic-utf8) and the Sudachi synonym groups from the
# npm package sudachi-synonyms-dictionary (scripts/install-deps).
find_path(LLMCACHE_WORDNET_DIR NAMES index.noun data.noun
  PATH_SUFFIXES share/wordnet wordnet
  HINTS ENV WNSEARCHDIR
  DOC "WordNet database directory (index.*, data.*, *.exc)")
find_library(LLMCACHE_MECAB_LIBRARY NAMES mecab REQUIRED)
find_path(LLMCACHE_MECAB_INCLUDE_DIR NAMES mecab.h REQUIRED)
cmake_path(SET LLMCACHE_SUDACHI_SYNONYMS NORMALIZE
  "${CMAKE_CURRENT_SOURCE_DIR}/../../models/node_modules/sudachi-synonyms-dictionary/sudachi-synonyms-dictionary.json")
if(NOT LLMCACHE_WORDNET_DIR)
  message(WARNING "WordNet not found: the lexical guard needs a wordnet_dir option at run time")
  set(LLMCACHE_WORDNET_DIR "")
endif()

add_library(llmcache_guard STATIC lexical_guard.cc wordnet.cc japanese_text.cc thesaurus.cc)
target_include_directories(llmcache_guard PRIVATE ${LLMCACHE_MECAB_INCLUDE_DIR})
target_link_libraries(llmcache_guard
  PUBLIC llmcache_common
  PRIVATE ${LLMCACHE_MECAB_LIBRARY} simdjson::simdjson)
# Where the packages put their data: the defaults when options name none.
target_compile_definitions(llmcache_guard PRIVATE
  LLMCACHE_DEFAULT_WORDNET_DIR="${LLMCACHE_WORDNET_DIR}"
  LLMCACHE_DEFAULT_SUDACHI_SYNONYMS="${LLMCACHE_SUDACHI_SYNONYMS}")

llmcache_test(guard_test lexical_guard_test.cc wordnet_test.cc japanese_text_test.cc
  thesaurus_test.cc)
target_link_libraries(guard_test PRIVATE llmcache_guard)
target_include_directories(guard_test PRIVATE ${LLMCACHE_MECAB_INCLUDE_DIR})
target_compile_definitions(guard_test PRIVATE
  LLMCACHE_WORDNET_DIR="${LLMCACHE_WORDNET_DIR}"
  LLMCACHE_SUDACHI_SYNONYMS="${LLMCACHE_SUDACHI_SYNONYMS}"
  LLMCACHE_GUARD_TESTDATA="${CMAKE_CURRENT_SOURCE_DIR}/testdata")

# Which guard refusals the grey-band LLM check may overrule, down to the
# cache's routing (llmcache_semantic_cache is defined by cache.cmake, next).
llmcache_test(guard_overrule_test guard_overrule_test.cc)
target_link_libraries(guard_overrule_test PRIVATE llmcache_semantic_cache llmcache_guard Boost::json)

if(NOT DEFINED LLMCACHE_BUILD_BENCH OR LLMCACHE_BUILD_BENCH)
  # The guard alone on labelled pairs (data/semantic/pairs.jsonl): pass rates
  # per language and kind, refusal reasons. Not a test; run by hand.
  add_executable(guard_pairs guard_pairs.cc)
  # The cache library for the dev-set split and the guard's default
  # resources; use-lite for word alignment.
  target_link_libraries(guard_pairs PRIVATE
    llmcache_guard llmcache_semantic_cache llmcache_semantic simdjson::simdjson)
  # `llmcache eval` alone, for tuning the hit decision without building the
  # gateway and the engine. Not a test; run by hand.
  add_executable(llmcache_eval eval_main.cc)
  target_link_libraries(llmcache_eval PRIVATE llmcache_semantic_cache)
endif()
