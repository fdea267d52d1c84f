// `guard_pairs PAIRS.jsonl [--show KIND]`: runs the lexical guard alone on
// labelled question pairs ({"a","b","same","lang","kind"} per line, as in
// data/semantic/pairs.jsonl) and prints, per language and kind, how many
// pairs pass and why the others were refused. The guard's own share of the
// hit decision: the embedding threshold comes on top in `llmcache eval`.
#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "llmcache/lexical_guard.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: guard_pairs PAIRS.jsonl [--show KIND] [--lang LANG]\n");
    return 2;
  }
  std::string show, lang_filter;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--show") == 0) show = argv[i + 1];
    if (std::strcmp(argv[i], "--lang") == 0) lang_filter = argv[i + 1];
  }
  auto guard = llmcache::NewLexicalGuard({});
  if (!guard) {
    std::fprintf(stderr, "guard: %s\n", guard.error().ToString().c_str());
    return 1;
  }
  simdjson::ondemand::parser parser;
  simdjson::padded_string json;
  if (simdjson::padded_string::load(argv[1]).get(json)) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  struct Tally {
    int total = 0, passed = 0;
    std::map<std::string, int> reasons;
  };
  std::map<std::string, Tally> tallies;
  simdjson::ondemand::document_stream docs;
  if (parser.iterate_many(json).get(docs)) return 1;
  for (auto doc : docs) {
    std::string_view a, b, lang, kind;
    bool same = false;
    if (doc["a"].get_string().get(a) || doc["b"].get_string().get(b) ||
        doc["same"].get_bool().get(same) || doc["lang"].get_string().get(lang) ||
        doc["kind"].get_string().get(kind)) {
      continue;
    }
    if (!lang_filter.empty() && lang != lang_filter) continue;
    std::string sa(a), sb(b);
    llmcache::GuardVerdict v = (*guard)->Check(sa, sb);
    std::string key =
        std::string(lang) + " " + std::string(kind) + (same ? " (same)" : " (different)");
    Tally& t = tallies[key];
    ++t.total;
    if (v.pass) {
      ++t.passed;
    } else {
      ++t.reasons[v.reason];
    }
    if (!show.empty() && kind == show) {
      std::printf("%s %-14s %s | %s | %s\n", v.pass ? "PASS" : "FAIL", v.reason.c_str(), sa.c_str(),
                  sb.c_str(), v.detail.c_str());
    }
  }
  for (const auto& [key, t] : tallies) {
    std::printf("%-28s %5d pairs, %5.1f%% pass;", key.c_str(), t.total,
                100.0 * t.passed / std::max(1, t.total));
    for (const auto& [reason, n] : t.reasons) std::printf(" %s %d", reason.c_str(), n);
    std::printf("\n");
  }
  return 0;
}
