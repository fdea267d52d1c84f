// engine_bench: the CPU engine against llama.cpp's library on the same GGUF
// with the same thread count (BENCHMARKS.md section 7, driven by
// bench/engine.sh). One measurement per process, so each gets a fresh page
// cache view, a fresh allocator and its own peak RSS (VmHWM):
//
//   engine_bench write-model --vocab V.gguf --type q4_k --out M.gguf [shape]
//   engine_bench speed --impl ours|llama --model M.gguf --prompt 128 --decode 32
//   engine_bench ttft --model M.gguf --prefix 2000 --suffix 50 --disk-dir DIR
//   engine_bench profile --model M.gguf --rows 1|16
//
// Each measuring command prints one JSON line on stdout.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/scheduler.h"
#include "engine/test_model.h"
#include "engine/thread_pool.h"

#if defined(LLMCACHE_HAVE_LLAMA_H)
#include "engine/llama_ref.h"
#endif

namespace {

using namespace llmcache::engine;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Peak resident set of this process in bytes: VmHWM counts the mapped model
// file's pages as well as the heap, which is what the RSS target is about.
uint64_t PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

// Ordinary tokens (no control tokens at either end of the vocabulary) from a
// seed, so both implementations see the same prompt.
std::vector<int32_t> RandomTokens(size_t n, uint32_t n_vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const uint32_t lo = std::min(1000u, n_vocab / 4);
  const uint32_t hi = std::max(lo + 1, std::min(n_vocab - 1, 100000u));
  std::uniform_int_distribution<uint32_t> dist(lo, hi - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(dist(rng));
  return t;
}

// CPU seconds (user + system) this process has used so far: CPU over wall
// time of a phase shows whether another job took the cores during it.
double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Busy CPU seconds of the whole machine so far (/proc/stat): minus our own
// CPU seconds, what other processes took from the cores during a phase.
double MachineBusySeconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> sys >> idle >> iowait >> irq >> softirq >> steal;
  return static_cast<double>(user + nice + sys + irq + softirq + steal) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU of other processes during a phase, in percent of one core.
class OthersMeter {
 public:
  OthersMeter() : t_(Clock::now()), busy_(MachineBusySeconds()), own_(CpuSeconds()) {}
  double Percent() const {
    const double others = (MachineBusySeconds() - busy_) - (CpuSeconds() - own_);
    return std::max(0.0, 100 * others / Seconds(t_));
  }

 private:
  Clock::time_point t_;
  double busy_, own_;
};

int32_t Argmax(const float* v, size_t n) {
  return static_cast<int32_t>(std::max_element(v, v + n) - v);
}

struct SpeedResult {
  double load_s = 0, prefill_s = 0, decode_s = 0;
  double prefill_cpu_s = 0, decode_cpu_s = 0;
  double others_pct = 0;  // other processes' CPU over both phases
  size_t prefill_tokens = 0, decode_tokens = 0;
  uint64_t kv_bytes = 0;
  std::string error;
};

// Our engine: one Session, the prompt in one Eval (the Session chunks it),
// then greedy decoding one token per Eval, as `llmcache generate` does.
SpeedResult SpeedOurs(const std::string& path, int threads, size_t n_prompt, size_t n_decode,
                      uint64_t seed) {
  SpeedResult r;
  const auto t0 = Clock::now();
  auto model = Model::Open(path);
  if (!model.has_value()) {
    r.error = model.error().ToString();
    return r;
  }
  ThreadPool pool(threads);
  const auto n_ctx = static_cast<uint32_t>(n_prompt + n_decode + 1);
  Session session(**model, &pool, {.n_ctx = n_ctx});
  r.load_s = Seconds(t0);
  const ModelConfig& c = (*model)->config();
  const std::vector<int32_t> prompt = RandomTokens(n_prompt, c.n_vocab, seed);
  // Warm-up: one token faults the weights in and sizes the scratch buffers,
  // as llama.cpp's warm-up below does.
  if (auto w = session.Eval(std::span(prompt.data(), 1)); !w.has_value()) {
    r.error = w.error().ToString();
    return r;
  }
  session.Reset();
  auto t = Clock::now();
  double cpu = CpuSeconds();
  const OthersMeter others;
  auto logits = session.Eval(prompt);
  if (!logits.has_value()) {
    r.error = logits.error().ToString();
    return r;
  }
  r.prefill_s = Seconds(t);
  r.prefill_cpu_s = CpuSeconds() - cpu;
  r.prefill_tokens = n_prompt;
  int32_t next = Argmax(logits->data(), logits->size());
  t = Clock::now();
  cpu = CpuSeconds();
  for (size_t i = 0; i < n_decode; ++i) {
    auto l = session.Eval(std::span(&next, 1));
    if (!l.has_value()) {
      r.error = l.error().ToString();
      return r;
    }
    next = Argmax(l->data(), l->size());
  }
  r.decode_s = Seconds(t);
  r.decode_cpu_s = CpuSeconds() - cpu;
  r.others_pct = others.Percent();
  r.decode_tokens = n_decode;
  const uint64_t blocks = (n_prompt + n_decode + 15) / 16;
  r.kv_bytes = blocks * KvBlockPool::BlockBytes(c, 16);
  return r;
}

#if defined(LLMCACHE_HAVE_LLAMA_H)
// llama.cpp: the same prompt in one llama_decode (n_batch = n_ubatch = the
// prompt, so it is one graph), then one llama_decode per generated token.
SpeedResult SpeedLlama(const std::string& lib_dir, const std::string& path, int threads,
                       size_t n_prompt, size_t n_decode, uint64_t seed) {
  SpeedResult r;
  const enginetest::LlamaApi& api = enginetest::LlamaApi::Get(lib_dir);
  if (!api.ok()) {
    r.error = api.error;
    return r;
  }
  auto get_memory =
      reinterpret_cast<decltype(&llama_get_memory)>(dlsym(RTLD_DEFAULT, "llama_get_memory"));
  auto memory_clear =
      reinterpret_cast<decltype(&llama_memory_clear)>(dlsym(RTLD_DEFAULT, "llama_memory_clear"));
  if (get_memory == nullptr || memory_clear == nullptr) {
    r.error = "llama.cpp: missing llama_get_memory / llama_memory_clear";
    return r;
  }
  const auto t0 = Clock::now();
  auto mp = api.model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = api.model_load_from_file(path.c_str(), mp);
  if (model == nullptr) {
    r.error = "llama.cpp could not load " + path;
    return r;
  }
  const int32_t n_vocab = api.vocab_n_tokens(api.model_get_vocab(model));
  auto cp = api.context_default_params();
  cp.n_ctx = static_cast<uint32_t>(n_prompt + n_decode + 16);
  cp.n_batch = static_cast<uint32_t>(std::max<size_t>(n_prompt, 1));
  cp.n_ubatch = cp.n_batch;
  cp.n_threads = threads;
  cp.n_threads_batch = threads;
  llama_context* ctx = api.init_from_model(model, cp);
  if (ctx == nullptr) {
    r.error = "llama.cpp could not create a context";
    api.model_free(model);
    return r;
  }
  r.load_s = Seconds(t0);
  std::vector<llama_token> prompt = RandomTokens(n_prompt, static_cast<uint32_t>(n_vocab), seed);
  auto fail = [&](const std::string& what) {
    r.error = what;
    api.free(ctx);
    api.model_free(model);
    return r;
  };
  if (api.decode(ctx, api.batch_get_one(prompt.data(), 1)) != 0) return fail("warm-up failed");
  memory_clear(get_memory(ctx), true);
  auto t = Clock::now();
  double cpu = CpuSeconds();
  const OthersMeter others;
  if (api.decode(ctx, api.batch_get_one(prompt.data(), static_cast<int32_t>(n_prompt))) != 0) {
    return fail("llama_decode of the prompt failed");
  }
  llama_token next = Argmax(api.get_logits_ith(ctx, -1), n_vocab);
  r.prefill_s = Seconds(t);
  r.prefill_cpu_s = CpuSeconds() - cpu;
  r.prefill_tokens = n_prompt;
  t = Clock::now();
  cpu = CpuSeconds();
  for (size_t i = 0; i < n_decode; ++i) {
    if (api.decode(ctx, api.batch_get_one(&next, 1)) != 0) return fail("llama_decode failed");
    next = Argmax(api.get_logits_ith(ctx, -1), n_vocab);
  }
  r.decode_s = Seconds(t);
  r.decode_cpu_s = CpuSeconds() - cpu;
  r.others_pct = others.Percent();
  r.decode_tokens = n_decode;
  api.free(ctx);
  api.model_free(model);
  return r;
}
#endif

uint64_t FileBytes(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

int PrintSpeed(const std::string& impl, const std::string& path, int threads,
               const SpeedResult& r) {
  if (!r.error.empty()) {
    std::fprintf(stderr, "engine_bench speed (%s): %s\n", impl.c_str(), r.error.c_str());
    return 1;
  }
  std::printf(
      "{\"impl\":\"%s\",\"model\":\"%s\",\"threads\":%d,\"load_s\":%.3f,"
      "\"prefill_tokens\":%zu,\"prefill_s\":%.4f,\"prefill_tps\":%.3f,"
      "\"decode_tokens\":%zu,\"decode_s\":%.4f,\"decode_tps\":%.3f,"
      "\"prefill_cpu_pct\":%.0f,\"decode_cpu_pct\":%.0f,\"others_cpu_pct\":%.0f,"
      "\"file_bytes\":%llu,\"kv_bytes\":%llu,\"peak_rss_bytes\":%llu,\"isa\":\"%s\"}\n",
      impl.c_str(), std::filesystem::path(path).filename().c_str(), threads, r.load_s,
      r.prefill_tokens, r.prefill_s, r.prefill_tokens / r.prefill_s, r.decode_tokens, r.decode_s,
      r.decode_tokens / r.decode_s, 100 * r.prefill_cpu_s / r.prefill_s,
      100 * r.decode_cpu_s / r.decode_s, r.others_pct,
      static_cast<unsigned long long>(FileBytes(path)), static_cast<unsigned long long>(r.kv_bytes),
      static_cast<unsigned long long>(PeakRssBytes()),
      impl == "ours" ? std::string(KernelIsaName(BestKernelIsa())).c_str() : "ggml-best");
  return 0;
}

// Time to the first token of one request on a BatchedEngine (max_tokens 1).
llmcache::Result<double> TimeToFirstToken(BatchedEngine& engine, std::vector<int32_t> prompt,
                                          uint32_t* cached_tokens) {
  std::promise<llmcache::Result<CompletionUsage>> done;
  auto first = std::make_shared<std::promise<double>>();
  const auto t = Clock::now();
  CompletionRequest req;
  req.prompt = std::move(prompt);
  req.max_tokens = 1;
  req.sampling.temperature = 0;
  CompletionCallbacks callbacks;
  callbacks.on_token = [first, t](int32_t) {
    first->set_value(Seconds(t));
    return true;
  };
  callbacks.on_done = [&done](llmcache::Result<CompletionUsage> u) {
    done.set_value(std::move(u));
  };
  engine.Submit(std::move(req), std::move(callbacks));
  auto usage = done.get_future().get();
  if (!usage.has_value()) return llmcache::Err(usage.error());
  *cached_tokens = usage->cached_tokens;
  return first->get_future().get();
}

// Writes the disk tier's files through and asks the kernel to drop them
// from the page cache, so the disk run reads the device, not RAM (where the
// kernel honours the hint).
void DropFromPageCache(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const int fd = ::open(e.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

int RunTtft(const std::string& path, int threads, size_t n_prefix, size_t n_suffix,
            const std::string& disk_dir, uint64_t seed) {
  auto model = Model::Open(path);
  if (!model.has_value()) {
    std::fprintf(stderr, "engine_bench ttft: %s\n", model.error().ToString().c_str());
    return 1;
  }
  const uint32_t n_vocab = (*model)->config().n_vocab;
  const std::vector<int32_t> prefix = RandomTokens(n_prefix, n_vocab, seed);
  auto prompt_with = [&](uint64_t suffix_seed) {
    std::vector<int32_t> p = prefix;
    const auto s = RandomTokens(n_suffix, n_vocab, suffix_seed);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };
  BatchedEngineOptions o;
  o.n_ctx = static_cast<uint32_t>(n_prefix + n_suffix + 16);
  o.max_sequences = 1;
  o.threads = threads;
  o.ignore_eos = true;
  // Room for the prefix and two suffixes: nothing is evicted in RAM.
  o.ram_budget_bytes = 3 * o.n_ctx * KvBlockPool::BlockBytes((*model)->config(), 1);
  o.disk_dir = disk_dir;
  std::error_code ec;
  std::filesystem::remove_all(disk_dir, ec);
  double cold = 0, warm = 0, disk = 0;
  uint32_t cached_cold = 0, cached_warm = 0, cached_disk = 0;
  {
    auto engine = BatchedEngine::Create(**model, o);
    if (!engine.has_value()) {
      std::fprintf(stderr, "engine_bench ttft: %s\n", engine.error().ToString().c_str());
      return 1;
    }
    // A short request first faults the weights in, so the cold run measures
    // compute and not page faults.
    uint32_t ignored = 0;
    (void)TimeToFirstToken(**engine, RandomTokens(4, n_vocab, seed + 99), &ignored);
    auto c = TimeToFirstToken(**engine, prompt_with(seed + 1), &cached_cold);
    auto w = TimeToFirstToken(**engine, prompt_with(seed + 2), &cached_warm);
    if (!c.has_value() || !w.has_value()) {
      std::fprintf(stderr, "engine_bench ttft: a request failed\n");
      return 1;
    }
    cold = *c;
    warm = *w;
  }  // the destructor spills every cached block to the disk tier
  DropFromPageCache(disk_dir);
  {
    auto engine = BatchedEngine::Create(**model, o);
    if (!engine.has_value()) {
      std::fprintf(stderr, "engine_bench ttft: %s\n", engine.error().ToString().c_str());
      return 1;
    }
    auto d = TimeToFirstToken(**engine, prompt_with(seed + 3), &cached_disk);
    if (!d.has_value()) {
      std::fprintf(stderr, "engine_bench ttft: the disk request failed\n");
      return 1;
    }
    disk = *d;
  }
  std::printf(
      "{\"model\":\"%s\",\"threads\":%d,\"prefix\":%zu,\"suffix\":%zu,"
      "\"cold_s\":%.4f,\"warm_s\":%.4f,\"disk_s\":%.4f,"
      "\"cached_cold\":%u,\"cached_warm\":%u,\"cached_disk\":%u,\"peak_rss_bytes\":%llu}\n",
      std::filesystem::path(path).filename().c_str(), threads, n_prefix, n_suffix, cold, warm, disk,
      cached_cold, cached_warm, cached_disk, static_cast<unsigned long long>(PeakRssBytes()));
  std::filesystem::remove_all(disk_dir, ec);
  return 0;
}

// Where a forward pass of ours spends its time, rebuilt from the kernels
// ForwardPass uses (the engine has no timers and is not changed for this):
// every weight matrix of every layer in order, `rows` activations each (1 is
// a decode step, 16 a prefill tile), the activation conversion apart from
// the matrix products. What a measured step takes beyond the sum is
// attention, norms, RoPE and the thread hand-offs.
int RunProfile(const std::string& path, int threads, size_t rows, int iters) {
  auto model = Model::Open(path);
  if (!model.has_value()) {
    std::fprintf(stderr, "engine_bench profile: %s\n", model.error().ToString().c_str());
    return 1;
  }
  const Model& m = **model;
  const ModelConfig& c = m.config();
  ThreadPool pool(threads);
  const KernelIsa isa = BestKernelIsa();
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(rows * std::max(c.n_embd, c.n_ff));
  for (auto& v : x) v = dist(rng);
  std::vector<float> out(rows * std::max<size_t>(c.n_vocab, c.n_ff));
  std::vector<std::vector<uint8_t>> act(rows);
  enum Group { kConvert, kAttnProj, kFfn, kOutput, kGroups };
  double ms[kGroups] = {};
  uint64_t weight_bytes = 0, weights = 0;
  auto matvec = [&](const WeightMatrix& w, Group g, bool count) {
    auto t = Clock::now();
    for (size_t r = 0; r < rows; ++r) {
      act[r].resize(ActivationBytes(w.type, w.cols));
      ConvertActivation(w.type, {x.data() + r * w.cols, w.cols}, act[r]);
    }
    const double convert_ms = Seconds(t) * 1e3;
    t = Clock::now();
    const VecDotFn dot = GetVecDot(w.type, isa);
    constexpr size_t kTile = 16;  // as ForwardPass::MatVec
    pool.ParallelFor(w.rows, 16, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; i += kTile) {
        const size_t ie = std::min(e, i + kTile);
        for (size_t r = 0; r < rows; ++r) {
          MatVecRows(w, act[r].data(), dot, i, ie, out.data() + r * w.rows);
        }
      }
    });
    if (!count) return;
    ms[kConvert] += convert_ms;
    ms[g] += Seconds(t) * 1e3;
    weight_bytes += w.rows * w.row_bytes;
    weights += w.rows * w.cols;
  };
  for (int it = 0; it <= iters; ++it) {  // pass 0 faults the weights in
    for (uint32_t l = 0; l < c.n_layer; ++l) {
      const LayerWeights& w = m.layer(l);
      for (const WeightMatrix* a : {&w.wq, &w.wk, &w.wv, &w.wo}) matvec(*a, kAttnProj, it > 0);
      for (const WeightMatrix* f : {&w.ffn_gate, &w.ffn_up, &w.ffn_down}) matvec(*f, kFfn, it > 0);
    }
    matvec(m.output(), kOutput, it > 0);
  }
  const double per_token = 1.0 / (iters * static_cast<double>(rows));
  const double matvec_ms = ms[kAttnProj] + ms[kFfn] + ms[kOutput];
  std::printf(
      "{\"model\":\"%s\",\"threads\":%d,\"rows\":%zu,\"convert_ms\":%.3f,\"attn_proj_ms\":%.3f,"
      "\"ffn_ms\":%.3f,\"output_ms\":%.3f,\"matvec_ms\":%.3f,\"weight_gbps\":%.2f,\"gflops\":%.2f,"
      "\"weights_per_pass\":%llu}\n",
      std::filesystem::path(path).filename().c_str(), threads, rows, ms[kConvert] * per_token,
      ms[kAttnProj] * per_token, ms[kFfn] * per_token, ms[kOutput] * per_token,
      (matvec_ms + ms[kConvert]) * per_token, weight_bytes / (matvec_ms * 1e6),
      2.0 * weights * rows / (matvec_ms * 1e6), static_cast<unsigned long long>(weights / iters));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The CPU engine against llama.cpp (BENCHMARKS.md section 7)"};
  app.require_subcommand(1);

  TestModelOptions m;
  m.n_layer = 24;
  m.n_embd = 1024;
  m.n_head = 16;
  m.n_head_kv = 4;
  m.n_ff = 2816;
  m.n_ctx = 4096;
  m.weight_scale = 0.05f;
  std::string out, type = "q4_k";
  auto* write = app.add_subcommand("write-model", "Write a random-weight ~0.5B llama GGUF");
  write->add_option("--vocab", m.vocab_path, "vocab-only GGUF")->required();
  write->add_option("--type", type, "f16 q8_0 q4_k ...")->capture_default_str();
  write->add_option("--out,-o", out)->required();
  write->add_option("--n-layer", m.n_layer)->capture_default_str();
  write->add_option("--n-embd", m.n_embd)->capture_default_str();
  write->add_option("--n-head", m.n_head)->capture_default_str();
  write->add_option("--n-head-kv", m.n_head_kv)->capture_default_str();
  write->add_option("--n-ff", m.n_ff)->capture_default_str();

  std::string impl = "ours", model, lib_dir = LLMCACHE_LLAMA_CPP_LIB_DIR, disk_dir;
  int threads = 2;
  size_t n_prompt = 128, n_decode = 32, n_prefix = 2000, n_suffix = 50;
  uint64_t seed = 1;
  auto* speed = app.add_subcommand("speed", "Prefill and decode tokens/s of one implementation");
  speed->add_option("--impl", impl, "ours or llama")->check(CLI::IsMember({"ours", "llama"}));
  speed->add_option("--model", model)->required();
  speed->add_option("--threads", threads)->capture_default_str();
  speed->add_option("--prompt", n_prompt, "prompt tokens (prefill)")->capture_default_str();
  speed->add_option("--decode", n_decode, "tokens generated (decode)")->capture_default_str();
  speed->add_option("--seed", seed)->capture_default_str();
  speed->add_option("--llama-lib-dir", lib_dir, "llama.cpp's prebuilt CPU libraries")
      ->capture_default_str();

  auto* ttft = app.add_subcommand("ttft", "Time to first token: cold, cached prefix, disk tier");
  ttft->add_option("--model", model)->required();
  ttft->add_option("--threads", threads)->capture_default_str();
  ttft->add_option("--prefix", n_prefix)->capture_default_str();
  ttft->add_option("--suffix", n_suffix)->capture_default_str();
  ttft->add_option("--disk-dir", disk_dir, "disk tier directory (emptied first)")->required();
  ttft->add_option("--seed", seed)->capture_default_str();

  size_t rows = 1;
  int iters = 3;
  auto* profile = app.add_subcommand("profile", "Per-phase timings of our matrix products");
  profile->add_option("--model", model)->required();
  profile->add_option("--threads", threads)->capture_default_str();
  profile->add_option("--rows", rows, "activations per matrix (1: decode, 16: a prefill tile)")
      ->check(CLI::Range(1, 512))
      ->capture_default_str();
  profile->add_option("--iters", iters)->check(CLI::Range(1, 100))->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (write->parsed()) {
    auto t = ParseTestModelType(type);
    if (!t) {
      std::fprintf(stderr, "unknown --type %s\n", type.c_str());
      return 2;
    }
    m.type = *t;
    if (auto s = WriteTestModel(m, out); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    return 0;
  }
  if (speed->parsed()) {
    if (n_prompt == 0) {
      std::fprintf(stderr, "--prompt must be > 0\n");
      return 2;
    }
    if (impl == "ours") {
      return PrintSpeed(impl, model, threads, SpeedOurs(model, threads, n_prompt, n_decode, seed));
    }
#if defined(LLMCACHE_HAVE_LLAMA_H)
    return PrintSpeed(impl, model, threads,
                      SpeedLlama(lib_dir, model, threads, n_prompt, n_decode, seed));
#else
    std::fprintf(stderr, "built without llama.h: no llama.cpp reference\n");
    return 1;
#endif
  }
  if (profile->parsed()) return RunProfile(model, threads, rows, iters);
  return RunTtft(model, threads, n_prefix, n_suffix, disk_dir, seed);
}
