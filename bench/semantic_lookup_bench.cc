// Semantic lookup end to end at scale: N entries in one context (the worst
// case: real partitions are split by namespace, model, embedder and context),
// then single-thread SemanticCache::Lookup latency — embedding the question,
// the hnsw search of the top 5, the thresholds and the lexical guard on every
// candidate above them — against an exact brute-force index search of the
// same vectors measured in the same run (the reference). Prints Markdown
// rows; no assertions.
//
//   semantic_lookup_bench                          # 100,000 entries, 2,000 lookups
//   semantic_lookup_bench --data-dir /tmp/slb      # keep the cache: later runs only load
//   semantic_lookup_bench --use-lite-dir DIR       # also embed each question with use-lite
//
// Data (fixed seeds): 512-d vectors in n/100 clusters (random unit centre +
// Gaussian noise, cosine ≈ 0.87 to the centre, ≈ 0.75 between two members,
// so a fresh question's top 5 are all above the default threshold and the
// guard runs on each), and synthetic questions ("How can I renew the annual
// parking permit in Berlin?") whose content words differ, so the guard works
// through WordNet and refuses most candidates: the slow path. The vectors
// come from a table, not a model; --use-lite-dir runs use-lite on each
// question as well (its vector is discarded) so that the row includes a real
// embedding.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "llmcache/semantic_cache.h"
#include "llmcache/vector_index.h"
#include "semantic/context_key.h"
#include "semantic/eval.h"

namespace {

using llmcache::EmbeddingInfo;
using llmcache::Result;
using Clock = std::chrono::steady_clock;

struct Args {
  size_t n = 100'000;
  size_t dim = 512;
  size_t queries = 2'000;
  size_t brute_queries = 200;
  double sigma = 0.577;  // noise norm relative to the unit centre
  std::string data_dir;
  std::string use_lite_dir;
  bool guard = true;
  size_t ef_construction = 0;  // 0: the index default
};

void Usage() {
  std::fprintf(stderr,
               "usage: semantic_lookup_bench [--n N] [--queries Q] [--brute-queries B] "
               "[--sigma S] [--data-dir DIR] [--use-lite-dir DIR] [--ef-construction E] "
               "[--no-guard]\n");
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--no-guard") {
      a.guard = false;
      continue;
    }
    if (i + 1 >= argc) Usage();
    std::string value = argv[++i];
    if (flag == "--n") a.n = std::stoull(value);
    else if (flag == "--queries") a.queries = std::stoull(value);
    else if (flag == "--brute-queries") a.brute_queries = std::stoull(value);
    else if (flag == "--sigma") a.sigma = std::stod(value);
    else if (flag == "--data-dir") a.data_dir = value;
    else if (flag == "--use-lite-dir") a.use_lite_dir = value;
    else if (flag == "--ef-construction") a.ef_construction = std::stoull(value);
    else Usage();
  }
  if (a.n < 100 || a.queries == 0) Usage();
  return a;
}

const std::vector<std::string> kAux = {"do", "can", "should", "would", "could"};
const std::vector<std::string> kVerbs = {
    "renew",  "cancel", "update",  "change",   "transfer", "book",    "return", "replace",
    "extend", "report", "request", "register", "pay",      "upgrade", "close",  "open",
    "share",  "export", "import",  "verify",   "reset",    "approve", "submit", "track"};
const std::vector<std::string> kAdjectives = {
    "annual",  "monthly", "shared",  "personal", "corporate", "temporary", "permanent",
    "digital", "printed", "expired", "new",      "old",       "premium",   "basic"};
const std::vector<std::string> kNouns = {
    "parking permit", "library card", "health insurance", "phone plan",   "gym membership",
    "travel booking", "expense report", "vacation request", "bank account", "credit card",
    "email address",  "delivery address", "software license", "team calendar", "office badge",
    "pension plan",   "train ticket",  "hotel reservation", "tax return",   "rental contract",
    "laptop",         "password",      "username",          "subscription", "invoice"};
const std::vector<std::string> kPlaces = {
    "Berlin", "Tokyo", "Paris",  "the app",    "the portal", "the office", "the branch",
    "Osaka",  "Madrid", "Seoul", "the website", "my profile", "the kiosk",  "Chicago"};

template <class T>
const T& Pick(const std::vector<T>& v, std::mt19937_64& rng) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

std::string Question(std::mt19937_64& rng) {
  return "How " + Pick(kAux, rng) + " I " + Pick(kVerbs, rng) + " the " + Pick(kAdjectives, rng) +
         " " + Pick(kNouns, rng) + " in " + Pick(kPlaces, rng) + "?";
}

class Data {
 public:
  Data(size_t n, size_t dim, double sigma) : dim_(dim), sigma_(sigma) {
    std::mt19937_64 rng(7);
    centres_.resize(std::max<size_t>(1, n / 100));
    for (auto& c : centres_) c = Unit(Gaussian(rng, 1.0));
  }
  size_t clusters() const { return centres_.size(); }
  // Entry i's vector (cluster i % clusters), the same in every call.
  std::vector<float> Entry(size_t i) const {
    std::mt19937_64 rng(0x9e3779b97f4a7c15ull * (i + 1));
    return Member(i % centres_.size(), rng);
  }
  std::vector<float> Member(size_t cluster, std::mt19937_64& rng) const {
    std::vector<float> v = Gaussian(rng, sigma_ / std::sqrt(static_cast<double>(dim_)));
    for (size_t d = 0; d < dim_; ++d) v[d] += centres_[cluster][d];
    return Unit(std::move(v));
  }

 private:
  std::vector<float> Gaussian(std::mt19937_64& rng, double scale) const {
    std::normal_distribution<double> g(0, scale);
    std::vector<float> v(dim_);
    for (float& x : v) x = static_cast<float>(g(rng));
    return v;
  }
  static std::vector<float> Unit(std::vector<float> v) {
    double n = 0;
    for (float x : v) n += double(x) * x;
    n = std::sqrt(n);
    for (float& x : v) x = static_cast<float>(x / n);
    return v;
  }
  size_t dim_;
  double sigma_;
  std::vector<std::vector<float>> centres_;
};

// Vectors from a table filled by the benchmark; optionally runs use-lite on
// each text first so that a lookup pays for a real embedding.
class TableEmbedder final : public llmcache::Embedder {
 public:
  TableEmbedder(size_t dim, std::shared_ptr<llmcache::Embedder> use_lite)
      : dim_(dim), use_lite_(std::move(use_lite)) {}
  size_t dimension() const override { return dim_; }
  std::string_view id() const override { return "bench-table"; }
  void Set(const std::string& text, std::vector<float> v) { table_[text] = std::move(v); }
  void SpendUseLite(bool on) { spend_ = on; }

  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) override {
    if (spend_ && use_lite_) {
      auto r = use_lite_->Embed(texts);
      if (!r) return llmcache::Err(r.error());
    }
    std::vector<std::vector<float>> out;
    for (const auto& t : texts) {
      auto it = table_.find(t);
      if (it == table_.end()) return llmcache::Err(llmcache::Status::NotFound("no vector: " + t));
      out.push_back(it->second);
    }
    return out;
  }
  Result<std::vector<EmbeddingInfo>> EmbedWithInfo(std::span<const std::string> texts) override {
    auto v = Embed(texts);
    if (!v) return llmcache::Err(v.error());
    std::vector<EmbeddingInfo> out(v->size());
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].vector = std::move((*v)[i]);
      out[i].unknown_fraction = 0;
    }
    return out;
  }

 private:
  size_t dim_;
  std::shared_ptr<llmcache::Embedder> use_lite_;
  bool spend_ = false;  // set between phases, never during lookups
  std::unordered_map<std::string, std::vector<float>> table_;
};

double ThreadCpuUs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

struct Timings {
  std::vector<double> wall_us, cpu_us;
  template <class F>
  void Time(F&& f) {
    const double c0 = ThreadCpuUs();
    const auto t0 = Clock::now();
    f();
    wall_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    cpu_us.push_back(ThreadCpuUs() - c0);
  }
};

void Row(const char* what, const Args& a, const Timings& t, const std::string& notes) {
  std::printf("| %s | %zu | %zu | %.0f | %.0f | %.0f | %.0f | %s |\n", what, a.n, t.wall_us.size(),
              Percentile(t.wall_us, 0.5), Percentile(t.wall_us, 0.99), Percentile(t.cpu_us, 0.5),
              Percentile(t.cpu_us, 0.99), notes.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  const Data data(a.n, a.dim, a.sigma);

  std::shared_ptr<llmcache::Embedder> use_lite;
  if (!a.use_lite_dir.empty()) {
    auto e = llmcache::NewUseLiteEmbedder({a.use_lite_dir, 1});
    if (!e) {
      std::fprintf(stderr, "semantic_lookup_bench: %s\n", e.error().ToString().c_str());
      return 1;
    }
    use_lite = std::move(*e);
  }
  auto embedder = std::make_shared<TableEmbedder>(a.dim, use_lite);

  // Fresh questions: a random cluster, a text used nowhere else.
  std::mt19937_64 qrng(11);
  std::unordered_set<std::string> texts;
  std::vector<std::string> questions;
  std::vector<std::vector<float>> question_vectors;
  const size_t wanted = a.queries + a.queries / 10;  // a tenth warms up
  while (questions.size() < wanted) {
    std::string q = Question(qrng);
    if (!texts.insert(q).second) continue;
    const size_t cluster = std::uniform_int_distribution<size_t>(0, data.clusters() - 1)(qrng);
    question_vectors.push_back(data.Member(cluster, qrng));
    embedder->Set(q, question_vectors.back());
    questions.push_back(std::move(q));
  }

  llmcache::SemanticCacheOptions so;
  so.data_dir = a.data_dir;
  so.embedder = embedder;
  so.max_entries = a.n + 1;
  if (a.ef_construction > 0) so.index.hnsw_ef_construction = a.ef_construction;
  if (a.guard) {
    std::string why;
    so.guard = llmcache::semantic::DefaultLexicalGuard(&why);
    if (!so.guard) {
      std::fprintf(stderr, "semantic_lookup_bench: no lexical guard: %s\n", why.c_str());
      return 1;
    }
  }
  const auto open0 = Clock::now();
  auto cache = llmcache::OpenSemanticCache(so);
  if (!cache) {
    std::fprintf(stderr, "semantic_lookup_bench: %s\n", cache.error().ToString().c_str());
    return 1;
  }
  llmcache::SemanticCache& c = **cache;
  const double open_s = std::chrono::duration<double>(Clock::now() - open0).count();
  const std::string context = "bench-context";
  auto query = [&](std::string text) {
    llmcache::SemanticQuery q;
    q.ns = "bench";
    q.eligible = true;
    q.words = llmcache::semantic::CountWords(text);
    q.text = std::move(text);
    q.context_key = context;
    return q;
  };

  double fill_s = 0;
  if (c.Stats().indexed < a.n) {
    std::mt19937_64 trng(5);
    const auto f0 = Clock::now();
    for (size_t i = 0; i < a.n; ++i) {
      llmcache::SemanticQuery q = query(Question(trng));
      auto info = std::make_shared<EmbeddingInfo>();
      info->vector = data.Entry(i);
      info->unknown_fraction = 0;
      q.embedding = std::move(info);
      llmcache::Status s = c.Insert(&q, "exact-" + std::to_string(i), {});
      if (!s.ok()) {
        std::fprintf(stderr, "semantic_lookup_bench: insert %zu: %s\n", i, s.ToString().c_str());
        return 1;
      }
      if ((i + 1) % 10'000 == 0) {
        std::fprintf(stderr, "filled %zu (%.0f s)\n", i + 1,
                     std::chrono::duration<double>(Clock::now() - f0).count());
      }
    }
    fill_s = std::chrono::duration<double>(Clock::now() - f0).count();
    if (!a.data_dir.empty()) {
      llmcache::Status s = c.Checkpoint();
      if (!s.ok()) std::fprintf(stderr, "checkpoint: %s\n", s.ToString().c_str());
    }
  }

  std::printf(
      "<!-- %zu entries in %zu clusters, sigma %.3f; %s; hnsw M %zu, ef_construction %zu, "
      "ef_search %zu; open %.1f s, fill %.1f s -->\n",
      a.n, data.clusters(), a.sigma, a.guard ? "lexical guard on" : "no guard", so.index.hnsw_m,
      so.index.hnsw_ef_construction, so.index.hnsw_ef_search, open_s, fill_s);
  std::printf(
      "| lookup | entries | calls | p50 µs | p99 µs | CPU p50 µs | CPU p99 µs | outcome |\n"
      "|---|---:|---:|---:|---:|---:|---:|---|\n");

  auto run_lookups = [&](const char* what, bool guard) {
    llmcache::SemanticLookupOverrides ov;
    ov.use_guard = guard;
    ov.record = false;  // every call sees the same cache
    Timings t;
    std::map<std::string, size_t> outcome;
    for (size_t i = 0; i < questions.size(); ++i) {
      llmcache::SemanticQuery q = query(questions[i]);
      llmcache::SemanticLookup r;
      if (i < questions.size() - a.queries) {
        r = c.Lookup(&q, ov);  // warm-up
        continue;
      }
      t.Time([&] { r = c.Lookup(&q, ov); });
      ++outcome[r.hit ? "hit" : r.reason];
    }
    std::string notes;
    for (const auto& [k, v] : outcome) notes += (notes.empty() ? "" : ", ") + k + " " + std::to_string(v);
    Row(what, a, t, notes);
  };
  run_lookups("SemanticCache::Lookup (hnsw top 5 + guard)", a.guard);
  if (a.guard) run_lookups("SemanticCache::Lookup (hnsw top 5, no guard)", false);
  if (use_lite) {
    embedder->SpendUseLite(true);
    run_lookups("SemanticCache::Lookup incl. a use-lite embedding", a.guard);
    embedder->SpendUseLite(false);
  }

  // The reference: an exact scan of the same vectors.
  llmcache::VectorIndexOptions bo;
  bo.dimension = a.dim;
  bo.kind = "brute-force";
  auto brute = llmcache::NewVectorIndex(bo);
  for (size_t i = 0; i < a.n; ++i) {
    llmcache::Status s = brute->Add("p", i, data.Entry(i));
    if (!s.ok()) {
      std::fprintf(stderr, "brute-force add: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  Timings bt;
  size_t found = 0;
  for (size_t i = 0; i < std::min(a.brute_queries, question_vectors.size()); ++i) {
    bt.Time([&] {
      auto hits = brute->Search("p", question_vectors[i], 5);
      found += hits && !hits->empty();
    });
  }
  Row("brute-force VectorIndex::Search (top 5, reference)", a, bt,
      std::to_string(found) + " searches with hits");
  return 0;
}
