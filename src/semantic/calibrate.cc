#include "semantic/calibrate.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "semantic/context_key.h"
#include "semantic/eval.h"
#include "semantic/jsonl.h"
#include "semantic/use_lite.h"

namespace llmcache::semantic {
namespace {

namespace json = boost::json;

constexpr size_t kEmbedBatch = 64;

std::string Fmt(const char* f, double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), f, x);
  return buf;
}

double Rate(size_t n, size_t d) { return d ? static_cast<double>(n) / d : 0; }

}  // namespace

Result<std::vector<LabelledPair>> LoadPairs(const std::string& path) {
  std::vector<LabelledPair> pairs;
  Status s = ForEachJsonlObject(path, [&](const json::object* o, size_t n) {
    auto field = [&](const char* k) { return o ? o->if_contains(k) : nullptr; };
    const json::value *a = field("a"), *b = field("b"), *same = field("same");
    if (!a || !a->is_string() || !b || !b->is_string() || !same || !same->is_bool()) {
      return Status::InvalidArgument(path + ":" + std::to_string(n) +
                                     ": need {\"a\",\"b\",\"same\",\"lang\",\"kind\"}");
    }
    LabelledPair p;
    p.a = std::string(a->get_string());
    p.b = std::string(b->get_string());
    p.same = same->get_bool();
    if (auto* l = field("lang"); l && l->is_string()) p.lang = std::string(l->get_string());
    if (auto* k = field("kind"); k && k->is_string()) p.kind = std::string(k->get_string());
    pairs.push_back(std::move(p));
    return Status::OK();
  });
  if (!s.ok()) return Err(s);
  return pairs;
}

Result<Calibration> Calibrate(const std::vector<LabelledPair>& pairs,
                              const CalibrateOptions& options) {
  if (!options.embedder) return Err(Status::InvalidArgument("calibrate: no embedder"));
  // Per pair: the similarity, or NaN when the cache would never accept it
  // (guard refusal, unrepresentable text).
  std::vector<double> sim(pairs.size());
  for (size_t i = 0; i < pairs.size(); i += kEmbedBatch) {
    std::vector<std::string> texts;
    size_t end = std::min(pairs.size(), i + kEmbedBatch);
    for (size_t j = i; j < end; ++j) {
      texts.push_back(pairs[j].a);
      texts.push_back(pairs[j].b);
    }
    auto r = options.embedder->EmbedWithInfo(texts);
    if (!r) return Err(r.error());
    for (size_t j = i; j < end; ++j) {
      const EmbeddingInfo& ea = (*r)[2 * (j - i)];
      const EmbeddingInfo& eb = (*r)[2 * (j - i) + 1];
      double dot = 0;
      for (size_t d = 0; d < ea.vector.size() && d < eb.vector.size(); ++d) {
        dot += ea.vector[d] * eb.vector[d];
      }
      bool blocked = ea.unknown_fraction > options.max_unknown_fraction ||
                     eb.unknown_fraction > options.max_unknown_fraction;
      if (!blocked && options.guard) blocked = !options.guard->Check(pairs[j].a, pairs[j].b).pass;
      sim[j] = blocked ? std::nan("") : dot;
    }
  }

  Calibration c;
  std::vector<bool> is_short(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    is_short[i] = CountWords(pairs[i].a) <= options.short_query_words;
    (pairs[i].same ? c.positives : c.negatives)++;
    if (is_short[i]) (pairs[i].same ? c.short_positives : c.short_negatives)++;
  }
  bool long_done = false, short_done = false;
  const int steps =
      static_cast<int>(std::floor((options.grid_to - options.grid_from) / options.grid_step + 0.5));
  // From the top down, so the first θ over the target ends the search.
  for (int s = steps; s >= 0; --s) {
    const double t = options.grid_from + s * options.grid_step;
    size_t tp = 0, fp = 0, stp = 0, sfp = 0;
    for (size_t i = 0; i < pairs.size(); ++i) {
      if (!(sim[i] >= t - 1e-9)) continue;
      (pairs[i].same ? tp : fp)++;
      if (is_short[i]) (pairs[i].same ? stp : sfp)++;
    }
    CurvePoint p{t, Rate(tp, c.positives), Rate(fp, c.negatives), Rate(stp, c.short_positives),
                 Rate(sfp, c.short_negatives)};
    c.curve.push_back(p);
    if (!long_done && p.false_hit <= options.max_false_hit) {
      c.threshold = t;
    } else {
      long_done = true;
    }
    if (!short_done && p.short_false_hit <= options.max_false_hit) {
      c.short_threshold = t;
    } else {
      short_done = true;
    }
  }
  std::reverse(c.curve.begin(), c.curve.end());
  c.feasible = c.threshold <= 1.0 - 1e-9 || c.negatives == 0;
  c.short_threshold = std::max(c.short_threshold, c.threshold);
  return c;
}

std::string CalibrationMarkdown(const Calibration& c, const CalibrateOptions& o) {
  std::string out = "Pairs: " + std::to_string(c.positives) + " same-answer, " +
                    std::to_string(c.negatives) +
                    " different-answer (short: " + std::to_string(c.short_positives) + " / " +
                    std::to_string(c.short_negatives) + "); guard " + (o.guard ? "on" : "off") +
                    ", target false-hit rate " + Fmt("%.2f %%", 100 * o.max_false_hit) + ".\n\n";
  out += c.feasible ? "Chosen: --semantic-threshold " + Fmt("%.2f", c.threshold) +
                          " (short queries, <= " + std::to_string(o.short_query_words) +
                          " words: " + Fmt("%.2f", c.short_threshold) + ")\n\n"
                    : "No threshold on the grid meets the target: keep semantic matching off.\n\n";
  out +=
      "| θ | recall | false-hit rate | short recall | short false-hit rate |\n"
      "|---|---|---|---|---|\n";
  for (const CurvePoint& p : c.curve) {
    out += "| " + Fmt("%.2f", p.threshold) + " | " + Fmt("%.1f %%", 100 * p.recall) + " | " +
           Fmt("%.2f %%", 100 * p.false_hit) + " | " + Fmt("%.1f %%", 100 * p.short_recall) +
           " | " + Fmt("%.2f %%", 100 * p.short_false_hit) + " |\n";
  }
  return out;
}

int RunCalibrateCommand(const CalibrateCommandOptions& options, std::ostream& out,
                        std::ostream& err) {
  auto pairs = LoadPairs(options.pairs_path);
  if (!pairs) {
    err << "llmcache calibrate: " << pairs.error().ToString() << "\n";
    return 2;
  }
  if (!(options.max_false_hit >= 0 && options.max_false_hit < 1)) {
    err << "llmcache calibrate: --max-false-hit must be in [0, 1)\n";
    return 2;
  }
  UseLiteOptions uo;
  uo.model_dir = options.model_dir.empty() ? DefaultUseLiteModelDir() : options.model_dir;
  auto embedder = NewUseLiteEmbedder(uo);
  if (!embedder) {
    err << "llmcache calibrate: " << embedder.error().ToString() << "\n";
    return 1;
  }
  CalibrateOptions co;
  co.embedder = std::shared_ptr<Embedder>(std::move(*embedder));
  co.max_false_hit = options.max_false_hit;
  if (options.guard) {
    std::string why;
    co.guard = DefaultLexicalGuard(&why);
    if (!co.guard) err << "llmcache calibrate: without the lexical guard: " << why << "\n";
  }
  auto c = Calibrate(*pairs, co);
  if (!c) {
    err << "llmcache calibrate: " << c.error().ToString() << "\n";
    return 1;
  }
  out << CalibrationMarkdown(*c, co);
  return out ? 0 : 1;
}

}  // namespace llmcache::semantic
