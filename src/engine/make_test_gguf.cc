// llmcache-make-test-gguf: writes a random-weight GGUF model of a chosen
// architecture, shape and tensor type, with real tokenizer metadata copied
// from a vocab-only GGUF. See engine/test_model.h.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "engine/test_model.h"

int main(int argc, char** argv) {
  using namespace llmcache::engine;
  TestModelOptions o;
  std::string out, type = "f32", rope;
  std::string chat_template;
  CLI::App app{"Write a random-weight GGUF test model"};
  app.add_option("--out,-o", out, "output GGUF path")->required();
  app.add_option("--vocab", o.vocab_path, "vocab-only GGUF to copy tokenizer.* metadata from")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--arch", o.arch, "llama or qwen2")->capture_default_str();
  app.add_option("--type", type, "f32 f16 bf16 q8_0 q4_0 q4_k q6_k q4_k_m")->capture_default_str();
  app.add_option("--n-layer", o.n_layer)->capture_default_str();
  app.add_option("--n-embd", o.n_embd)->capture_default_str();
  app.add_option("--n-head", o.n_head)->capture_default_str();
  app.add_option("--n-head-kv", o.n_head_kv)->capture_default_str();
  app.add_option("--n-ff", o.n_ff)->capture_default_str();
  app.add_option("--n-ctx", o.n_ctx)->capture_default_str();
  app.add_option("--rope-freq-base", o.rope_freq_base)->capture_default_str();
  app.add_option("--rope-type", rope, "norm or neox (default: what the arch implies)");
  app.add_option("--rms-eps", o.rms_eps)->capture_default_str();
  app.add_option("--seed", o.seed)->capture_default_str();
  app.add_option("--weight-scale", o.weight_scale)->capture_default_str();
  auto* tmpl = app.add_option("--chat-template", chat_template,
                              "replaces the vocab file's tokenizer.chat_template");
  CLI11_PARSE(app, argc, argv);

  auto t = ParseTestModelType(type);
  if (!t) {
    std::fprintf(stderr, "unknown --type %s\n", type.c_str());
    return 2;
  }
  o.type = *t;
  if (rope == "norm")
    o.rope_type = RopeType::kNorm;
  else if (rope == "neox")
    o.rope_type = RopeType::kNeox;
  else if (!rope.empty()) {
    std::fprintf(stderr, "unknown --rope-type %s (norm, neox)\n", rope.c_str());
    return 2;
  }
  if (tmpl->count() > 0) o.chat_template = chat_template;
  if (auto s = WriteTestModel(o, out); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
