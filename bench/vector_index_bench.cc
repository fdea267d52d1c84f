// Vector index at scale: N vectors in one partition, then single-thread
// search latency (k=5), recall@1 against an exact scan on a sample of
// queries, index memory and build time. Prints one Markdown table row per
// run (the header with --header).
//
//   vector_index_bench --n 100000 --data clustered
//   vector_index_bench --n 1000000 --data clustered --recall-queries 200
//   vector_index_bench --n 100000 --snapshot /tmp/idx  # build+save once, then reload
//
// Data (fixed seeds): `clustered` draws n/100 random unit centres and puts
// each vector at centre + Gaussian noise of the same norm (cosine to its
// centre ~0.7, like sentence embeddings of one topic); queries are fresh
// draws from the same clusters. `random` is uniform on the sphere, the worst
// case for graph search (no structure, all similarities near 0).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "llmcache/vector_index.h"
#include "semantic/kernels.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  size_t n = 100'000;
  size_t dim = 512;
  std::string data = "clustered";
  size_t queries = 2000;
  size_t recall_queries = 500;
  size_t k = 5;
  llmcache::VectorIndexOptions index;
  bool header = false;
  // Load the index from this snapshot if it exists, else build and save it.
  std::string snapshot;
};

void Usage() {
  std::fprintf(stderr,
               "usage: vector_index_bench [--n N] [--dim D] [--data clustered|random] "
               "[--queries Q] [--recall-queries R] [--k K] [--m M] [--ef-construction E] "
               "[--ef-search E] [--kind hnsw|brute-force] [--snapshot FILE] [--header]\n");
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--header") {
      a.header = true;
      continue;
    }
    if (i + 1 >= argc) Usage();
    std::string value = argv[++i];
    auto number = [&] { return static_cast<size_t>(std::stoull(value)); };
    if (flag == "--n")
      a.n = number();
    else if (flag == "--dim")
      a.dim = number();
    else if (flag == "--data")
      a.data = value;
    else if (flag == "--queries")
      a.queries = number();
    else if (flag == "--recall-queries")
      a.recall_queries = number();
    else if (flag == "--k")
      a.k = number();
    else if (flag == "--m")
      a.index.hnsw_m = number();
    else if (flag == "--ef-construction")
      a.index.hnsw_ef_construction = number();
    else if (flag == "--ef-search")
      a.index.hnsw_ef_search = number();
    else if (flag == "--kind")
      a.index.kind = value;
    else if (flag == "--snapshot")
      a.snapshot = value;
    else
      Usage();
  }
  if (a.data != "clustered" && a.data != "random") Usage();
  a.index.dimension = a.dim;
  return a;
}

void Normalize(float* v, size_t dim) {
  double s = 0;
  for (size_t i = 0; i < dim; ++i) s += double{v[i]} * v[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(s));
  for (size_t i = 0; i < dim; ++i) v[i] *= inv;
}

// Draws unit vectors of the chosen distribution.
class Generator {
 public:
  Generator(const Args& a, uint64_t seed)
      : dim_(a.dim), clustered_(a.data == "clustered"), rng_(seed) {
    if (!clustered_) return;
    std::mt19937_64 centre_rng(1);  // the same clusters for data and queries
    centres_.resize(std::max<size_t>(1, a.n / 100) * dim_);
    for (float& x : centres_) x = normal_(centre_rng);
    for (size_t c = 0; c < centres_.size() / dim_; ++c) Normalize(&centres_[c * dim_], dim_);
  }

  void Next(float* out) {
    const float noise = clustered_ ? 1.0f / std::sqrt(static_cast<float>(dim_)) : 1.0f;
    for (size_t i = 0; i < dim_; ++i) out[i] = noise * normal_(rng_);
    if (clustered_) {
      const size_t c = std::uniform_int_distribution<size_t>(0, centres_.size() / dim_ - 1)(rng_);
      for (size_t i = 0; i < dim_; ++i) out[i] += centres_[c * dim_ + i];
    }
    Normalize(out, dim_);
  }

 private:
  size_t dim_;
  bool clustered_;
  std::mt19937_64 rng_;
  std::normal_distribution<float> normal_;
  std::vector<float> centres_;
};

size_t RssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

double ThreadCpuMicros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  if (a.header) {
    std::printf(
        "| index | data | vectors | dim | M / efC / ef | build s | index MiB (RSS) | "
        "search p50 µs | p99 µs | CPU p50 µs | CPU p99 µs | recall@1 | recall@%zu |\n"
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        a.k);
    return 0;
  }
  std::vector<float> data(a.n * a.dim);
  {
    Generator gen(a, 2);
    for (size_t i = 0; i < a.n; ++i) gen.Next(&data[i * a.dim]);
  }
  std::vector<float> queries((a.queries + a.recall_queries) * a.dim);
  {
    Generator gen(a, 3);
    for (size_t i = 0; i < a.queries + a.recall_queries; ++i) gen.Next(&queries[i * a.dim]);
  }

  const size_t rss_before = RssBytes();
  const auto build_start = Clock::now();
  std::unique_ptr<llmcache::VectorIndex> index;
  bool loaded = false;
  if (!a.snapshot.empty() && std::filesystem::exists(a.snapshot)) {
    auto l = llmcache::LoadVectorIndex(a.index, a.snapshot);
    if (!l) {
      std::fprintf(stderr, "LoadVectorIndex: %s\n", l.error().ToString().c_str());
      return 1;
    }
    index = std::move(*l);
    loaded = true;
  } else {
    index = llmcache::NewVectorIndex(a.index);
  }
  if (!index) {
    std::fprintf(stderr, "unknown kind %s\n", a.index.kind.c_str());
    return 2;
  }
  for (size_t i = 0; i < a.n && !loaded; ++i) {
    auto s = index->Add("bench", i, std::span<const float>(&data[i * a.dim], a.dim));
    if (!s.ok()) {
      std::fprintf(stderr, "Add: %s\n", s.ToString().c_str());
      return 1;
    }
    if (i % 100'000 == 99'999) {
      std::fprintf(stderr, "  %zu added, %.0f s\n", i + 1,
                   std::chrono::duration<double>(Clock::now() - build_start).count());
    }
  }
  const double build_s = std::chrono::duration<double>(Clock::now() - build_start).count();
  const size_t rss_index = RssBytes() - rss_before;
  if (!a.snapshot.empty() && !loaded) {
    if (auto s = index->Save(a.snapshot); !s.ok()) {
      std::fprintf(stderr, "Save: %s\n", s.ToString().c_str());
    }
  }

  // Wall time includes preemption on a shared machine; the thread's CPU
  // time is what the search itself costs.
  std::vector<double> latency_us, cpu_us;
  for (size_t q = 0; q < a.queries; ++q) {
    std::span<const float> query(&queries[q * a.dim], a.dim);
    const double c0 = ThreadCpuMicros();
    const auto t0 = Clock::now();
    auto hits = index->Search("bench", query, a.k);
    latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    cpu_us.push_back(ThreadCpuMicros() - c0);
    if (!hits || hits->size() != std::min(a.k, a.n)) {
      std::fprintf(stderr, "Search failed or short\n");
      return 1;
    }
  }

  // Exact answers by a scan over the data (cosine = dot: unit vectors).
  const auto isa = llmcache::semantic::BestIsa();
  size_t top1 = 0, topk = 0;
  for (size_t q = a.queries; q < a.queries + a.recall_queries; ++q) {
    const float* query = &queries[q * a.dim];
    std::vector<std::pair<float, size_t>> scored(a.n);
    for (size_t i = 0; i < a.n; ++i) {
      const float dot =
          llmcache::semantic::Dot(isa, query, &data[i * a.dim], static_cast<int>(a.dim));
      scored[i] = {-dot, i};
    }
    const size_t k = std::min(a.k, a.n);
    std::partial_sort(scored.begin(), scored.begin() + k, scored.end());
    auto hits = index->Search("bench", std::span<const float>(query, a.dim), k);
    if (!hits || hits->empty()) continue;
    if ((*hits)[0].id == scored[0].second) ++top1;
    for (const auto& h : *hits) {
      for (size_t j = 0; j < k; ++j) topk += h.id == scored[j].second;
    }
  }

  const bool hnsw = a.index.kind == "hnsw";
  char params[64] = "-";
  if (hnsw) {
    std::snprintf(params, sizeof params, "%zu / %zu / %zu", a.index.hnsw_m,
                  a.index.hnsw_ef_construction, a.index.hnsw_ef_search);
  }
  char build[32] = "loaded";
  if (!loaded) std::snprintf(build, sizeof build, "%.1f", build_s);
  const double recalled = static_cast<double>(std::max<size_t>(1, a.recall_queries));
  std::printf(
      "| %s | %s | %zu | %zu | %s | %s | %.0f (%.0f) | %.0f | %.0f | %.0f | %.0f | %.3f | %.3f |\n",
      index->Name(), a.data.c_str(), a.n, a.dim, params, build, index->memory_bytes() / 1048576.0,
      rss_index / 1048576.0, Percentile(latency_us, 0.50), Percentile(latency_us, 0.99),
      Percentile(cpu_us, 0.50), Percentile(cpu_us, 0.99), top1 / recalled,
      topk / (recalled * std::min(a.k, a.n)));
  return 0;
}
