#include "semantic/eval.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "semantic/context_key.h"
#include "semantic/jsonl.h"
#include "semantic/llm_verifier.h"
#include "semantic/semantic_cache.h"
#include "semantic/use_lite.h"

namespace llmcache::semantic {
namespace {

namespace json = boost::json;

constexpr size_t kEmbedBatch = 64;
constexpr char kContext[] = "eval";

std::string Percent(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %%", 100 * x);
  return buf;
}

std::string Fixed(double x, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, x);
  return buf;
}

// Questions the verifier got, answered by it or by the cache's memo.
uint64_t VerifierAsks(const SemanticCacheStats& s) {
  return s.verifier_calls + s.verifier_cache_hits;
}

// Intents to hold out: per family, a seeded shuffle; a share of them, at
// least one when the family has siblings, never all of a family's intents.
std::set<std::string> HeldOutIntents(const std::vector<EvalItem>& items, double fraction,
                                     uint64_t seed) {
  std::map<std::string, std::vector<std::string>> by_family;
  for (const auto& it : items) {
    auto& v = by_family[it.family];
    if (std::find(v.begin(), v.end(), it.intent) == v.end()) v.push_back(it.intent);
  }
  std::mt19937_64 rng(seed);
  std::set<std::string> held;
  for (auto& [family, intents] : by_family) {
    std::sort(intents.begin(), intents.end());
    std::shuffle(intents.begin(), intents.end(), rng);
    size_t n = static_cast<size_t>(fraction * intents.size() + 0.5);
    if (intents.size() >= 2) n = std::clamp<size_t>(n, 1, intents.size() - 1);
    if (intents.size() == 1) n = std::uniform_real_distribution<double>(0, 1)(rng) < fraction;
    held.insert(intents.begin(), intents.begin() + n);
  }
  return held;
}

}  // namespace

Result<std::vector<EvalItem>> LoadEvalSet(const std::string& path) {
  std::vector<EvalItem> items;
  Status s = ForEachJsonlObject(path, [&](const json::object* o, size_t n) {
    auto str = [&](const char* k) -> const json::string* {
      const json::value* f = o ? o->if_contains(k) : nullptr;
      return f ? f->if_string() : nullptr;
    };
    if (!str("text") || !str("intent")) {
      return Status::InvalidArgument(path + ":" + std::to_string(n) +
                                     ": need {\"text\",\"intent\",\"family\",\"lang\"}");
    }
    EvalItem item;
    item.text = std::string(*str("text"));
    item.intent = std::string(*str("intent"));
    item.family = str("family") ? std::string(*str("family")) : item.intent;
    item.lang = str("lang") ? std::string(*str("lang")) : "?";
    items.push_back(std::move(item));
    return Status::OK();
  });
  if (!s.ok()) return Err(s);
  return items;
}

bool InTuningHalf(std::string_view family) {
  // FNV-1a: fixed across platforms and runs, unlike std::hash.
  uint64_t h = 14695981039346656037ull;
  for (char c : family) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return (h >> 7) % 2 == 0;
}

Result<std::vector<EvalItem>> SplitEvalSet(std::vector<EvalItem> items, std::string_view split) {
  if (split.empty()) return items;
  if (split != "tune" && split != "test") {
    return Err(Status::InvalidArgument("split must be tune or test, not " + std::string(split)));
  }
  const bool tune = split == "tune";
  std::erase_if(items, [&](const EvalItem& it) { return InTuningHalf(it.family) != tune; });
  return items;
}

std::shared_ptr<Embedder> WordEmbedderFor(const std::shared_ptr<Embedder>& embedder) {
  return embedder && embedder->id() == "use-lite" ? embedder : nullptr;
}

std::shared_ptr<const LexicalGuard> DefaultLexicalGuard(std::string* why, LexicalGuardOptions go) {
#ifdef LLMCACHE_HAVE_GUARD
  if (go.sudachi_synonyms_path.empty()) go.sudachi_synonyms_path = LLMCACHE_SUDACHI_SYNONYMS_PATH;
  auto g = NewLexicalGuard(go);
  if (!g) {
    if (why) *why = g.error().ToString();
    return nullptr;
  }
  return std::shared_ptr<const LexicalGuard>(std::move(*g));
#else
  (void)go;
  if (why) *why = "this build has no lexical guard (llmcache_guard)";
  return nullptr;
#endif
}

Result<EvalReport> RunEval(const std::vector<EvalItem>& items, const EvalOptions& options) {
  if (!options.cache.embedder) return Err(Status::InvalidArgument("eval: no embedder"));
  EvalReport report;
  report.items = items.size();
  const std::set<std::string> held = HeldOutIntents(items, options.holdout_fraction, options.seed);

  // Seeds: the first query of each cached intent; every other item queries.
  std::map<std::string, size_t> seed_of;
  std::vector<size_t> queries;
  std::set<std::string> intents;
  for (size_t i = 0; i < items.size(); ++i) {
    intents.insert(items[i].intent);
    if (!held.count(items[i].intent) && seed_of.emplace(items[i].intent, i).second) continue;
    queries.push_back(i);
  }
  report.intents = intents.size();
  report.held_out_intents = held.size();
  report.cached_intents = seed_of.size();

  // Embed everything once; the sweeps reuse the vectors.
  std::vector<std::shared_ptr<const EmbeddingInfo>> emb(items.size());
  for (size_t i = 0; i < items.size(); i += kEmbedBatch) {
    std::vector<std::string> texts;
    for (size_t j = i; j < std::min(items.size(), i + kEmbedBatch); ++j) {
      texts.push_back(items[j].text);
    }
    auto r = options.cache.embedder->EmbedWithInfo(texts);
    if (!r) return Err(r.error());
    for (size_t j = 0; j < r->size(); ++j) {
      emb[i + j] = std::make_shared<const EmbeddingInfo>(std::move((*r)[j]));
    }
  }
  auto query_of = [&](size_t i) {
    SemanticQuery q;
    q.ns = kContext;
    q.eligible = true;
    q.text = items[i].text;
    q.context_key = kContext;
    q.words = CountWords(q.text);
    q.embedding = emb[i];
    return q;
  };

  SemanticCacheOptions co = options.cache;
  co.data_dir.clear();
  co.max_entries = std::max(co.max_entries, items.size() + 1);
  co.namespace_thresholds.clear();
  auto cache = OpenSemanticCache(co);
  if (!cache) return Err(cache.error());
  for (const auto& [intent, i] : seed_of) {
    SemanticQuery q = query_of(i);
    Status s = (*cache)->Insert(&q, intent, {});
    if (!s.ok()) return Err(s);
  }

  struct Mode {
    const char* name;
    bool guard, verifier;
  };
  std::vector<Mode> modes = {{"cosine", false, false}};
  if (co.guard) modes.push_back({"guard", true, false});
  if (co.verifier) modes.push_back({co.guard ? "guard+verifier" : "verifier", true, true});
  std::set<std::string> langs;
  for (size_t i : queries) langs.insert(items[i].lang);

  const double short_delta = co.thresholds.short_threshold - co.thresholds.threshold;
  for (const Mode& m : modes) {
    for (double t : options.thresholds) {
      SemanticLookupOverrides ov;
      ov.threshold = t;
      ov.short_threshold = std::min(0.99, t + short_delta);
      ov.use_guard = m.guard;
      ov.use_verifier = m.verifier;
      ov.record = false;
      auto new_row = [&](const std::string& lang) {
        EvalRow r;
        r.lang = lang;
        r.mode = m.name;
        r.threshold = t;
        r.short_threshold = *ov.short_threshold;
        return r;
      };
      std::map<std::string, EvalRow> by_lang;
      for (const std::string& l : langs) by_lang[l] = new_row(l);
      for (size_t i : queries) {
        SemanticQuery q = query_of(i);
        const uint64_t asked_before = m.verifier ? VerifierAsks((*cache)->Stats()) : 0;
        SemanticLookup r = (*cache)->Lookup(&q, ov);
        EvalRow& row = by_lang[items[i].lang];
        ++row.queries;
        if (m.verifier) row.verifier_asks += VerifierAsks((*cache)->Stats()) - asked_before;
        const bool cached = seed_of.count(items[i].intent) > 0;
        row.paraphrase_queries += cached;
        if (cached && (!r.hit || r.hit->exact_key != items[i].intent)) {
          ++row.paraphrase_misses[r.hit ? "wrong_entry" : r.reason];
        }
        if (r.hit) {
          if (r.hit->exact_key == items[i].intent) {
            ++row.true_hits;
          } else {
            ++row.false_hits;
          }
        }
      }
      EvalRow all = new_row("all");
      for (const auto& [l, row] : by_lang) {
        all.queries += row.queries;
        all.paraphrase_queries += row.paraphrase_queries;
        all.true_hits += row.true_hits;
        all.false_hits += row.false_hits;
        for (const auto& [reason, n] : row.paraphrase_misses) all.paraphrase_misses[reason] += n;
        all.verifier_asks += row.verifier_asks;
      }
      report.rows.push_back(all);
      for (const auto& [l, row] : by_lang) report.rows.push_back(row);
    }
  }
  // Group the table by language, then mode, then threshold.
  std::stable_sort(report.rows.begin(), report.rows.end(), [](const EvalRow& a, const EvalRow& b) {
    if (a.lang != b.lang) return a.lang == "all" || (b.lang != "all" && a.lang < b.lang);
    return false;
  });
  return report;
}

std::string EvalMarkdown(const EvalReport& report) {
  std::string out = std::to_string(report.items) + " queries in " + std::to_string(report.intents) +
                    " intents: " + std::to_string(report.cached_intents) +
                    " intents cached (one query each), " + std::to_string(report.held_out_intents) +
                    " held out (their queries can only produce false hits).\n\n";
  out +=
      "| lang | mode | θ | θ short | paraphrase hit rate | false-hit rate | true hits | false hits "
      "| queries |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const EvalRow& r : report.rows) {
    out += "| " + r.lang + " | " + r.mode + " | " + Fixed(r.threshold, 3) + " | " +
           Fixed(r.short_threshold, 3) + " | " + Percent(r.hit_rate()) + " | " +
           Percent(r.false_hit_rate()) + " | " + std::to_string(r.true_hits) + "/" +
           std::to_string(r.paraphrase_queries) + " | " + std::to_string(r.false_hits) + " | " +
           std::to_string(r.queries) + " |\n";
  }
  out +=
      "\nWhy paraphrases of cached intents got no hit (all languages; `wrong_entry`: "
      "another intent's answer):\n\n| mode | θ | reasons |\n|---|---|---|\n";
  for (const EvalRow& r : report.rows) {
    if (r.lang != "all") continue;
    out += "| " + r.mode + " | " + Fixed(r.threshold, 3) + " |";
    for (const auto& [reason, n] : r.paraphrase_misses)
      out += " " + reason + " " + std::to_string(n);
    out += " |\n";
  }
  bool verified = false;
  for (const EvalRow& r : report.rows) verified |= r.mode.find("verifier") != std::string::npos;
  if (verified) {
    out +=
        "\nQuestions put to the verifier (all languages):\n\n| mode | θ | asked | per query "
        "|\n|---|---|---|---|\n";
    for (const EvalRow& r : report.rows) {
      if (r.lang != "all" || r.mode.find("verifier") == std::string::npos) continue;
      out += "| " + r.mode + " | " + Fixed(r.threshold, 3) + " | " +
             std::to_string(r.verifier_asks) + " | " +
             Fixed(r.queries ? double(r.verifier_asks) / r.queries : 0, 3) + " |\n";
    }
  }
  return out;
}

int RunEvalCommand(const EvalCommandOptions& options, std::ostream& out, std::ostream& err) {
  auto items = LoadEvalSet(options.set_path);
  if (items) items = SplitEvalSet(std::move(*items), options.split);
  if (!items) {
    err << "llmcache eval: " << items.error().ToString() << "\n";
    return 2;
  }
  if (!HaveDefaultVectorIndex()) {
    err << "llmcache eval: this build has no vector index (llmcache_vector_index)\n";
    return 1;
  }
  UseLiteOptions uo;
  uo.model_dir = options.model_dir.empty() ? DefaultUseLiteModelDir() : options.model_dir;
  auto embedder = NewUseLiteEmbedder(uo);
  if (!embedder) {
    err << "llmcache eval: " << embedder.error().ToString() << "\n";
    return 1;
  }
  EvalOptions eo;
  eo.cache.embedder = std::shared_ptr<Embedder>(std::move(*embedder));
  eo.cache.index.kind = "brute-force";  // exact: measures the decision, not recall
  eo.holdout_fraction = options.holdout_fraction;
  eo.seed = options.seed;
  if (!options.thresholds.empty()) eo.thresholds = options.thresholds;
  LexicalGuardOptions go;
  if (options.max_inserted_words) go.max_inserted_words = *options.max_inserted_words;
  // Word alignment only when asked for: measured, it lets siblings through
  // (docs/semantic-eval.md).
  if (options.min_word_similarity && *options.min_word_similarity > 0) {
    go.min_word_similarity = *options.min_word_similarity;
    go.word_embedder = WordEmbedderFor(eo.cache.embedder);
  }
  if (options.loose_threshold_raise) go.loose_threshold_raise = *options.loose_threshold_raise;
  go.thesaurus_path = options.thesaurus_path;
  go.thesaurus_similar_terms = options.thesaurus_similar_terms;
  if (options.guard) {
    std::string why;
    eo.cache.guard = DefaultLexicalGuard(&why, go);
    if (!eo.cache.guard) err << "llmcache eval: without the lexical guard: " << why << "\n";
  }
  if (!options.verifier.empty()) {
    auto oracle = ParseOracleSpec(options.verifier);
    if (!oracle) {
      err << "llmcache eval: " << oracle.error().ToString() << "\n";
      return 2;
    }
    oracle->seed = options.seed;
    for (const EvalItem& it : *items) oracle->label_of.emplace(it.text, it.intent);
    out << "Verifier: simulated from the labels, " << Percent(oracle->accuracy)
        << " of pairs answered right.\n";
    eo.cache.verifier = NewOracleVerifier(std::move(*oracle));
  }
  if (options.grey_band) eo.cache.grey_band = *options.grey_band;
  eo.cache.overrule_content_words = options.overrule_content_words;
  auto report = RunEval(*items, eo);
  if (!report) {
    err << "llmcache eval: " << report.error().ToString() << "\n";
    return 1;
  }
  out << "Defaults: θ " << Fixed(eo.cache.thresholds.threshold, 3) << ", θ short (≤ "
      << eo.cache.short_query_words << " words) " << Fixed(eo.cache.thresholds.short_threshold, 3)
      << ", top-k " << eo.cache.top_k << ", unknown-fraction limit "
      << eo.cache.max_unknown_fraction << "; embedder " << eo.cache.embedder->id() << ".\n";
  out << "Guard: up to " << go.max_inserted_words << " inserted generic word(s), word alignment "
      << (go.word_embedder ? "at cosine ≥ " + Fixed(go.min_word_similarity, 2) : std::string("off"))
      << ", loose passes need θ + " << Fixed(go.loose_threshold_raise, 3) << ", thesaurus "
      << (go.thesaurus_path.empty()
              ? std::string("off")
              : std::string(go.thesaurus_similar_terms ? "synonyms + similar terms" : "synonyms"))
      << (eo.cache.verifier && eo.cache.overrule_content_words
              ? "; the verifier decides content-word refusals at or above θ"
              : "")
      << "." << (options.split.empty() ? "" : " Split: " + options.split + " half of the families.")
      << "\n";
  out << EvalMarkdown(*report);
  return out ? 0 : 1;
}

}  // namespace llmcache::semantic
