#include "engine/generate_command.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <ostream>

#include "engine/model.h"
#include "engine/sampling.h"
#include "engine/thread_pool.h"
#include "engine/vocab.h"

namespace llmcache::engine {

CLI::App* AddGenerateCommand(CLI::App& app, GenerateOptions& o) {
  auto* cmd = app.add_subcommand("generate", "Run a GGUF model (llama, qwen2) on one prompt");
  cmd->add_option("--model", o.model, "GGUF model file")->required();
  auto* text =
      cmd->add_option("--prompt", o.prompt, "Prompt text (tokenized with the model's vocabulary)");
  auto* ids =
      cmd->add_option("--prompt-tokens", o.prompt_tokens, "Prompt token ids, comma separated")
          ->delimiter(',');
  text->excludes(ids);
  cmd->add_option("--n-predict", o.n_predict, "Tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("--temp", o.temperature, "Sampling temperature; 0 is greedy");
  cmd->add_option("--top-k", o.top_k, "Top-k cut when sampling (0: off)");
  cmd->add_option("--top-p", o.top_p, "Top-p (nucleus) cut when sampling (1: off)");
  cmd->add_option("--seed", o.seed, "Sampling seed");
  cmd->add_option("--threads", o.threads, "Compute threads")->check(CLI::Range(1, 256));
  cmd->add_flag("--ignore-eos", o.ignore_eos, "Do not stop at end-of-generation tokens");
  cmd->add_flag(
      "--json", o.json,
      "Print {\"prompt_tokens\":[...],\"generated\":[...],\"text\":...,\"timings\":{...}}");
  return cmd;
}

int RunGenerate(const GenerateOptions& o, std::ostream& out, std::ostream& err) {
  using Clock = std::chrono::steady_clock;
  const auto t_load = Clock::now();
  auto model = Model::Open(o.model);
  if (!model.has_value()) {
    err << "generate: " << model.error().ToString() << "\n";
    return 1;
  }
  auto vocab = Vocab::FromGguf((*model)->gguf());
  if (!vocab.has_value() && o.prompt.has_value()) {
    err << "generate: " << vocab.error().ToString() << "\n";
    return 1;
  }
  std::vector<int32_t> prompt = o.prompt.has_value()
                                    ? vocab->Tokenize(*o.prompt, /*add_special=*/true,
                                                      /*parse_special=*/true)
                                    : o.prompt_tokens;
  if (prompt.empty()) {
    err << "generate: empty prompt (give --prompt or --prompt-tokens)\n";
    return 2;
  }
  ThreadPool pool(o.threads);
  Session session(**model, &pool,
                  {.n_ctx = static_cast<uint32_t>(prompt.size() + std::max(0, o.n_predict))});
  Sampler sampler(
      {.temperature = o.temperature, .top_k = o.top_k, .top_p = o.top_p, .seed = o.seed});
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_load).count();

  std::vector<int32_t> generated;
  double prefill_ms = 0;
  const auto t_start = Clock::now();
  std::vector<int32_t> next = prompt;
  for (int i = 0; i < o.n_predict; ++i) {
    auto logits = session.Eval(next);
    if (!logits.has_value()) {
      err << "generate: " << logits.error().ToString() << "\n";
      return 1;
    }
    if (i == 0)
      prefill_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_start).count();
    const int32_t token = sampler.Sample(*logits);
    generated.push_back(token);
    if (!o.ignore_eos && vocab.has_value() && vocab->IsEog(token)) break;
    next = {token};
  }
  const double total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_start).count();
  const std::string text = vocab.has_value() ? vocab->Detokenize(generated, false) : std::string();
  if (!o.json) {
    out << text << "\n";
    return 0;
  }
  boost::json::object j;
  j["prompt_tokens"] = boost::json::value_from(prompt);
  j["generated"] = boost::json::value_from(generated);
  j["text"] = text;
  const double decode_ms = total_ms - prefill_ms;
  const size_t n_decode = generated.empty() ? 0 : generated.size() - 1;
  j["timings"] = {
      {"load_ms", load_ms},
      {"prefill_ms", prefill_ms},
      {"prefill_tokens_per_s", prefill_ms > 0 ? prompt.size() * 1000.0 / prefill_ms : 0.0},
      {"decode_ms", decode_ms},
      {"decode_tokens_per_s", decode_ms > 0 ? n_decode * 1000.0 / decode_ms : 0.0},
      {"threads", o.threads},
      {"isa", std::string(KernelIsaName(BestKernelIsa()))},
  };
  out << boost::json::serialize(j) << "\n";
  return 0;
}

}  // namespace llmcache::engine
