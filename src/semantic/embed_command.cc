#include "semantic/embed_command.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "semantic/use_lite.h"

namespace llmcache::semantic {

void AppendEmbeddingJson(const std::vector<float>& v, std::string& out) {
  out += "{\"embedding\":[";
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    // JSON has no NaN or infinity; a normalized vector never holds them, but
    // a broken one must still give valid JSON.
    const float x = std::isfinite(v[i]) ? v[i] : 0.0f;
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
    out.append(buf, ec == std::errc() ? end : buf);
  }
  out += "]}";
}

int RunEmbedCommand(Embedder& embedder, size_t batch_lines, std::istream& in, std::ostream& out,
                    std::ostream& err) {
  if (batch_lines == 0) batch_lines = 1;
  std::vector<std::string> batch;
  std::string line;
  std::string text;
  size_t line_number = 0;
  bool eof = false;
  while (!eof) {
    batch.clear();
    while (batch.size() < batch_lines) {
      if (!std::getline(in, line)) {
        eof = true;
        break;
      }
      // Texts from a CRLF file end at the \r too.
      if (!line.empty() && line.back() == '\r') line.pop_back();
      batch.push_back(std::move(line));
    }
    if (in.bad()) {
      err << "llmcache embed: cannot read the input\n";
      return 1;
    }
    if (batch.empty()) break;
    auto vectors = embedder.Embed(batch);
    if (!vectors) {
      err << "llmcache embed: lines " << line_number + 1 << "-" << line_number + batch.size()
          << ": " << vectors.error().ToString() << "\n";
      return 1;
    }
    line_number += batch.size();
    text.clear();
    for (const std::vector<float>& v : *vectors) {
      AppendEmbeddingJson(v, text);
      text += '\n';
    }
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    if (!out) {
      err << "llmcache embed: cannot write the output\n";
      return 1;
    }
  }
  return 0;
}

Result<std::unique_ptr<Embedder>> MakeEmbedder(const EmbedderChoice& choice) {
  if (choice.embedder == "use-lite") {
    UseLiteOptions use_lite;
    use_lite.model_dir = choice.model_dir.empty() ? DefaultUseLiteModelDir() : choice.model_dir;
    use_lite.threads = choice.threads;
    return NewUseLiteEmbedder(use_lite);
  }
  if (choice.embedder == "openai") {
    if (choice.url.empty() || choice.model.empty()) {
      return Err(
          Status::InvalidArgument("--embedder openai needs --embedder-url and --embedder-model"));
    }
    OpenAiEmbedderOptions openai;
    openai.url = choice.url;
    openai.model = choice.model;
    openai.timeout = choice.timeout;
    if (!choice.api_key_env.empty()) {
      const char* key = std::getenv(choice.api_key_env.c_str());
      if (key == nullptr || *key == '\0') {
        return Err(Status::InvalidArgument("environment variable " + choice.api_key_env +
                                           " (--embedder-api-key-env) is not set"));
      }
      openai.api_key = key;
    }
    return NewOpenAiEmbedder(openai);
  }
  return Err(Status::InvalidArgument("unknown embedder \"" + choice.embedder +
                                     "\" (built in: use-lite, openai)"));
}

int RunEmbedCommand(const EmbedCommandOptions& options, std::istream& in, std::ostream& out,
                    std::ostream& err) {
  auto embedder = MakeEmbedder(options);
  if (!embedder) {
    err << "llmcache embed: " << embedder.error().ToString() << "\n";
    return 2;
  }
  return RunEmbedCommand(**embedder, options.batch_lines, in, out, err);
}

int RunEmbedCommand(const EmbedCommandOptions& options, std::istream& in, std::ostream& out) {
  return RunEmbedCommand(options, in, out, std::cerr);
}

}  // namespace llmcache::semantic
