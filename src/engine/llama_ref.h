// Test-only access to llama.cpp's prebuilt CPU libraries (the reference the
// engine is compared against). The libraries are dlopened once per process
// and never unloaded (ggml keeps threads and static state).
#pragma once

#if defined(LLMCACHE_HAVE_LLAMA_H)

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "llama.h"

namespace llmcache::engine::enginetest {

struct LlamaApi {
  decltype(&llama_backend_init) backend_init = nullptr;
  decltype(&llama_log_set) log_set = nullptr;
  decltype(&llama_model_default_params) model_default_params = nullptr;
  decltype(&llama_model_load_from_file) model_load_from_file = nullptr;
  decltype(&llama_model_free) model_free = nullptr;
  decltype(&llama_model_get_vocab) model_get_vocab = nullptr;
  decltype(&llama_model_n_embd) model_n_embd = nullptr;
  decltype(&llama_vocab_n_tokens) vocab_n_tokens = nullptr;
  decltype(&llama_context_default_params) context_default_params = nullptr;
  decltype(&llama_init_from_model) init_from_model = nullptr;
  decltype(&llama_free) free = nullptr;
  decltype(&llama_batch_get_one) batch_get_one = nullptr;
  decltype(&llama_decode) decode = nullptr;
  decltype(&llama_get_logits_ith) get_logits_ith = nullptr;
  decltype(&llama_tokenize) tokenize = nullptr;
  decltype(&llama_chat_apply_template) chat_apply_template = nullptr;
  std::string error;  // why loading failed; empty on success

  bool ok() const { return error.empty(); }

  // Loads libggml (and its CPU backend variants) and libllama from `dir`.
  static const LlamaApi& Get(const std::filesystem::path& dir) {
    static const LlamaApi api = Load(dir);
    return api;
  }

 private:
  static void Quiet(ggml_log_level, const char*, void*) {}

  template <class Fn>
  static bool Sym(void* h, const char* name, Fn* out, std::string* error) {
    *out = reinterpret_cast<Fn>(dlsym(h, name));
    if (*out == nullptr) *error = std::string("missing symbol ") + name;
    return *out != nullptr;
  }

  static LlamaApi Load(const std::filesystem::path& dir) {
    LlamaApi a;
    void* ggml = dlopen((dir / "libggml.v0.5.0.so").c_str(), RTLD_NOW | RTLD_GLOBAL);
    void* llama =
        ggml ? dlopen((dir / "libllama.v0.5.0.so").c_str(), RTLD_NOW | RTLD_GLOBAL) : nullptr;
    if (ggml == nullptr || llama == nullptr) {
      a.error = dlerror();
      return a;
    }
    void (*load_all)(const char*) = nullptr;
    if (!Sym(ggml, "ggml_backend_load_all_from_path", &load_all, &a.error)) return a;
    std::string* e = &a.error;
    const bool ok = Sym(llama, "llama_backend_init", &a.backend_init, e) &&
                    Sym(llama, "llama_log_set", &a.log_set, e) &&
                    Sym(llama, "llama_model_default_params", &a.model_default_params, e) &&
                    Sym(llama, "llama_model_load_from_file", &a.model_load_from_file, e) &&
                    Sym(llama, "llama_model_free", &a.model_free, e) &&
                    Sym(llama, "llama_model_get_vocab", &a.model_get_vocab, e) &&
                    Sym(llama, "llama_model_n_embd", &a.model_n_embd, e) &&
                    Sym(llama, "llama_vocab_n_tokens", &a.vocab_n_tokens, e) &&
                    Sym(llama, "llama_context_default_params", &a.context_default_params, e) &&
                    Sym(llama, "llama_init_from_model", &a.init_from_model, e) &&
                    Sym(llama, "llama_free", &a.free, e) &&
                    Sym(llama, "llama_batch_get_one", &a.batch_get_one, e) &&
                    Sym(llama, "llama_decode", &a.decode, e) &&
                    Sym(llama, "llama_get_logits_ith", &a.get_logits_ith, e) &&
                    Sym(llama, "llama_tokenize", &a.tokenize, e) &&
                    Sym(llama, "llama_chat_apply_template", &a.chat_apply_template, e);
    if (!ok) return a;
    a.log_set(&Quiet, nullptr);
    load_all(dir.c_str());
    a.backend_init();
    return a;
  }
};

// The reference side of the parity harness: greedy decoding in llama.cpp,
// keeping every step's logits so an engine run can be compared token by
// token and logit by logit.
struct GreedyRun {
  std::vector<llama_token> tokens;  // generated, excluding the prompt
  std::vector<float> logits;        // n_vocab per generated token (the logits it was chosen from)
  int32_t n_vocab = 0;
  std::string error;
};

inline GreedyRun RunGreedy(const LlamaApi& api, const std::string& model_path,
                           std::vector<llama_token> prompt, int n_predict, int n_threads = 1) {
  GreedyRun run;
  auto mp = api.model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = api.model_load_from_file(model_path.c_str(), mp);
  if (model == nullptr) {
    run.error = "llama.cpp could not load " + model_path;
    return run;
  }
  run.n_vocab = api.vocab_n_tokens(api.model_get_vocab(model));
  auto cp = api.context_default_params();
  cp.n_ctx = static_cast<uint32_t>(prompt.size() + n_predict + 16);
  cp.n_batch = cp.n_ctx;
  cp.n_threads = n_threads;
  cp.n_threads_batch = n_threads;
  llama_context* ctx = api.init_from_model(model, cp);
  if (ctx == nullptr) {
    run.error = "llama.cpp could not create a context";
    api.model_free(model);
    return run;
  }
  std::vector<llama_token> next = std::move(prompt);
  for (int i = 0; i < n_predict; ++i) {
    if (api.decode(ctx, api.batch_get_one(next.data(), static_cast<int32_t>(next.size()))) != 0) {
      run.error = "llama_decode failed at step " + std::to_string(i);
      break;
    }
    const float* logits = api.get_logits_ith(ctx, -1);
    run.logits.insert(run.logits.end(), logits, logits + run.n_vocab);
    const auto best =
        static_cast<llama_token>(std::max_element(logits, logits + run.n_vocab) - logits);
    run.tokens.push_back(best);
    next = {best};
  }
  api.free(ctx);
  api.model_free(model);
  return run;
}

}  // namespace llmcache::engine::enginetest

#endif  // LLMCACHE_HAVE_LLAMA_H
