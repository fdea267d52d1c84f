// `guard_pairs PAIRS.jsonl [--show KIND] [--lang LANG] [--devset SET --split tune|test]
//  [--max-inserted N] [--word-similarity X] [--thesaurus TH.dat]`: runs the lexical guard alone on
// labelled question pairs ({"a","b","same","lang","kind"} per line, as in
// data/semantic/pairs.jsonl) and prints, per language and kind, how many
// pairs pass (and how many of those only loosely) and why the others were
// refused. The guard's own share of the hit decision: the embedding threshold
// comes on top in `llmcache eval`. With --devset and --split, only pairs whose
// first question belongs to a family of that half (InTuningHalf) count.
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "llmcache/lexical_guard.h"
#include "semantic/eval.h"
#include "semantic/use_lite.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: guard_pairs PAIRS.jsonl [--show KIND] [--lang LANG] [--devset SET "
                 "--split tune|test] [--max-inserted N] [--word-similarity X] "
                 "[--thesaurus TH.dat]\n");
    return 2;
  }
  std::string show, lang_filter, devset, split;
  llmcache::LexicalGuardOptions options;
  bool align = false;  // word alignment only when asked for
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--show") == 0) show = argv[i + 1];
    if (std::strcmp(argv[i], "--lang") == 0) lang_filter = argv[i + 1];
    if (std::strcmp(argv[i], "--devset") == 0) devset = argv[i + 1];
    if (std::strcmp(argv[i], "--split") == 0) split = argv[i + 1];
    if (std::strcmp(argv[i], "--thesaurus") == 0) options.thesaurus_path = argv[i + 1];
    if (std::strcmp(argv[i], "--max-inserted") == 0) {
      options.max_inserted_words = std::strtoul(argv[i + 1], nullptr, 10);
    }
    if (std::strcmp(argv[i], "--word-similarity") == 0) {
      options.min_word_similarity = std::strtod(argv[i + 1], nullptr);
      align = options.min_word_similarity > 0;
    }
  }
  if (align) {
    llmcache::UseLiteOptions uo;
    uo.model_dir = llmcache::semantic::DefaultUseLiteModelDir();
    auto embedder = llmcache::NewUseLiteEmbedder(uo);
    if (!embedder) {
      std::fprintf(stderr, "use-lite: %s\n", embedder.error().ToString().c_str());
      return 1;
    }
    options.word_embedder = std::move(*embedder);
  }
  std::map<std::string, std::string> family_of;
  if (!devset.empty()) {
    auto items = llmcache::semantic::LoadEvalSet(devset);
    if (!items) {
      std::fprintf(stderr, "%s\n", items.error().ToString().c_str());
      return 1;
    }
    for (const auto& it : *items) family_of[it.text] = it.family;
  }
  std::string why;
  auto guard = llmcache::semantic::DefaultLexicalGuard(&why, options);
  if (!guard) {
    std::fprintf(stderr, "guard: %s\n", why.c_str());
    return 1;
  }
  simdjson::ondemand::parser parser;
  simdjson::padded_string json;
  if (simdjson::padded_string::load(argv[1]).get(json)) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  struct Tally {
    int total = 0, passed = 0, loose = 0;
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
    if (!split.empty()) {
      auto f = family_of.find(sa);
      if (f == family_of.end()) continue;
      if (llmcache::semantic::InTuningHalf(f->second) != (split == "tune")) continue;
    }
    llmcache::GuardVerdict v = guard->Check(sa, sb);
    std::string key =
        std::string(lang) + " " + std::string(kind) + (same ? " (same)" : " (different)");
    Tally& t = tallies[key];
    ++t.total;
    if (v.pass) {
      ++t.passed;
      t.loose += v.detail.starts_with("loose");
    } else {
      ++t.reasons[v.reason];
    }
    if (!show.empty() && kind == show) {
      std::printf("%s %-14s %s | %s | %s\n", v.pass ? "PASS" : "FAIL", v.reason.c_str(), sa.c_str(),
                  sb.c_str(), v.detail.c_str());
    }
  }
  for (const auto& [key, t] : tallies) {
    std::printf("%-28s %5d pairs, %5.1f%% pass (%d loose);", key.c_str(), t.total,
                100.0 * t.passed / std::max(1, t.total), t.loose);
    for (const auto& [reason, n] : t.reasons) std::printf(" %s %d", reason.c_str(), n);
    std::printf("\n");
  }
  return 0;
}
