// `llmcache_eval SET.jsonl [--split tune|test] [--thresholds 0.6,0.65]
//  [--max-inserted N] [--word-similarity X] [--loose-raise X] [--no-guard]
//  [--verifier oracle[:ACC]] [--grey-band X] [--overrule-content-words]
//  [--thesaurus TH.dat] [--thesaurus-similar]`:
// `llmcache eval` without the rest of the llmcache binary (gateway, engine,
// stores), for tuning the hit decision in a quick build. Same report.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>

#include "semantic/eval.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: llmcache_eval SET.jsonl [--split tune|test] [--thresholds A,B,..] "
                 "[--max-inserted N] [--word-similarity X] [--loose-raise X] [--no-guard] "
                 "[--verifier oracle[:ACC]] [--grey-band X] [--overrule-content-words] "
                 "[--thesaurus TH.dat] [--thesaurus-similar]\n");
    return 2;
  }
  llmcache::semantic::EvalCommandOptions o;
  o.set_path = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--no-guard") {
      o.guard = false;
      continue;
    }
    if (flag == "--overrule-content-words") {
      o.overrule_content_words = true;
      continue;
    }
    if (flag == "--thesaurus-similar") {
      o.thesaurus_similar_terms = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "llmcache_eval: %s needs a value\n", flag.c_str());
      return 2;
    }
    const char* v = argv[++i];
    if (flag == "--split") {
      o.split = v;
    } else if (flag == "--thresholds") {
      std::stringstream in(v);
      for (std::string t; std::getline(in, t, ',');)
        o.thresholds.push_back(std::strtod(t.c_str(), nullptr));
    } else if (flag == "--max-inserted") {
      o.max_inserted_words = std::strtoul(v, nullptr, 10);
    } else if (flag == "--word-similarity") {
      o.min_word_similarity = std::strtod(v, nullptr);
    } else if (flag == "--loose-raise") {
      o.loose_threshold_raise = std::strtod(v, nullptr);
    } else if (flag == "--verifier") {
      o.verifier = v;
    } else if (flag == "--grey-band") {
      o.grey_band = std::strtod(v, nullptr);
    } else if (flag == "--thesaurus") {
      o.thesaurus_path = v;
    } else {
      std::fprintf(stderr, "llmcache_eval: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  return llmcache::semantic::RunEvalCommand(o, std::cout, std::cerr);
}
