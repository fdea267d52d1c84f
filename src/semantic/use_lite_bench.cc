// Latency of the use-lite embedder: one query per call on one thread, as the
// semantic cache embeds a request, for ~20-token and ~30-token (<= 32)
// queries; plus the throughput of batched calls. Prints p50/p99; no
// assertions. Usage: use_lite_bench [model_dir] [iterations]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "semantic/use_lite.h"

namespace {

using llmcache::semantic::Isa;
using llmcache::semantic::IsaName;
using llmcache::semantic::IsaSupported;
using llmcache::semantic::UseLiteEmbedder;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kShortQueries = {
    "How do I apply for paid leave if I have already used all my vacation days this year?",
    "What is the fastest way to reset my password when I no longer have access to my email?",
    "Can you explain the difference between a process and a thread in an operating system?",
    "Which documents do I need to submit to get reimbursed for my business travel expenses?",
    "How many sick days am I allowed to take before I need to show a doctor's note?",
    "Why does my order still show as pending three days after I paid for it online?",
};

const std::vector<std::string> kLongQueries = {
    "How do I apply for paid leave if I have already used all my vacation days this year and my "
    "manager is currently away on holiday?",
    "What is the fastest way to reset my password when I no longer have access to the email "
    "address that is linked to my old account?",
    "Can you explain the difference between a process and a thread in an operating system, with a "
    "short and simple example for beginners?",
    "Which documents do I need to submit to get reimbursed for my business travel expenses, and "
    "how long does the approval take?",
    "How many sick days am I allowed to take before I need to show a doctor's note to my manager "
    "or to the HR department?",
    "Why does my order still show as pending three days after I paid for it online with my credit "
    "card, and who should I contact?",
};

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// Prints p50/p99 of single-query Embed calls; false on an embedding error.
bool Measure(UseLiteEmbedder& e, const std::vector<std::string>& queries, int runs,
             const char* label) {
  size_t tokens = 0, max_tokens = 0;
  for (const auto& q : queries) {
    const size_t n = e.Tokenize(q).ids.size();
    tokens += n;
    max_tokens = std::max(max_tokens, n);
  }
  std::vector<double> ms, tokenize_us;
  for (int i = -runs / 10; i < runs; ++i) {  // the first tenth warms up
    const std::string& q = queries[static_cast<size_t>(i + runs) % queries.size()];
    const auto t0 = Clock::now();
    auto v = e.Embed(std::span<const std::string>(&q, 1));
    const auto t1 = Clock::now();
    if (!v) {
      std::fprintf(stderr, "use_lite_bench: %s\n", v.error().ToString().c_str());
      return false;
    }
    const auto t = e.Tokenize(q);
    const auto t2 = Clock::now();
    if (i >= 0) {
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      tokenize_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
    }
  }
  std::printf(
      "use-lite %-7s %s (%.1f tokens avg, max %zu), %d runs: p50 %.3f ms  p99 %.3f ms  "
      "(tokenizer p50 %.1f us)\n",
      std::string(IsaName(e.model().isa())).c_str(), label,
      static_cast<double>(tokens) / queries.size(), max_tokens, runs, Percentile(ms, 0.5),
      Percentile(ms, 0.99), Percentile(tokenize_us, 0.5));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model_dir = argc > 1 ? argv[1] : LLMCACHE_MODEL_DIR;
  const int iterations = argc > 2 ? std::max(1, std::atoi(argv[2])) : 1000;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric}) {
    if (!IsaSupported(isa)) continue;
    auto embedder = UseLiteEmbedder::Create({model_dir, 1}, isa);
    if (!embedder) {
      std::fprintf(stderr, "use_lite_bench: %s\n", embedder.error().ToString().c_str());
      return 1;
    }
    UseLiteEmbedder& e = **embedder;
    // The portable kernels are only a fallback; a few runs show their cost.
    const int runs = isa == Isa::kGeneric ? std::max(1, iterations / 50) : iterations;
    if (!Measure(e, kShortQueries, runs, "one ~20-token query") ||
        !Measure(e, kLongQueries, runs, "one ~30-token query")) {
      return 1;
    }
    std::vector<std::string> batch;
    for (int i = 0; i < 64; ++i) batch.push_back(kShortQueries[static_cast<size_t>(i) % 6]);
    const int batches = isa == Isa::kGeneric ? 1 : 10;
    const auto b0 = Clock::now();
    for (int i = 0; i < batches; ++i) (void)e.Embed(batch);
    const double s = std::chrono::duration<double>(Clock::now() - b0).count();
    std::printf("use-lite %-7s batches of 64 ~20-token texts: %.0f texts/s\n",
                std::string(IsaName(isa)).c_str(), batches * 64 / s);
  }
  return 0;
}
