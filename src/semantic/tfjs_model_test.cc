// Loading a broken model gives a Status that says what is wrong, never a
// crash: missing files, bad JSON, bad manifests, truncated shards, another
// graph.
#include "semantic/tfjs_model.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>

#include "semantic/test_util.h"
#include "semantic/use_lite.h"

namespace llmcache::semantic {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;

fs::path RealDist() { return fs::path(testing::ModelDir()) / "dist"; }

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A model directory (the package layout, with dist/) whose files link to the
// real model's, except model.json, which holds `json`.
fs::path ModelCopyRaw(const std::string& name, const std::string& json) {
  const fs::path root = fs::path(::testing::TempDir()) / ("use_lite_" + name);
  fs::remove_all(root);
  fs::create_directories(root / "dist");
  for (const auto& entry : fs::directory_iterator(RealDist())) {
    if (entry.path().filename() != "model.json") {
      fs::create_symlink(entry.path(), root / "dist" / entry.path().filename());
    }
  }
  std::ofstream(root / "dist" / "model.json", std::ios::binary) << json;
  return root;
}

// The same with the real model.json, changed by `edit`.
fs::path ModelCopy(const std::string& name, const std::function<void(json::object&)>& edit) {
  json::value model = json::parse(ReadAll(RealDist() / "model.json"));
  edit(model.as_object());
  return ModelCopyRaw(name, json::serialize(model));
}

json::object& Weight(json::object& model, std::string_view name) {
  for (json::value& w : model["weightsManifest"].as_array()[0].as_object()["weights"].as_array()) {
    if (w.as_object()["name"].as_string() == name) return w.as_object();
  }
  throw std::runtime_error("no weight " + std::string(name));
}

json::array& Nodes(json::object& model) {
  return model["modelTopology"].as_object()["node"].as_array();
}

json::array& Paths(json::object& model) {
  return model["weightsManifest"].as_array()[0].as_object()["paths"].as_array();
}

Status LoadError(const fs::path& model_dir) {
  UseLiteOptions options;
  options.model_dir = model_dir.string();
  auto e = UseLiteEmbedder::Create(options);
  return e ? Status::OK() : e.error();
}

class TfjsModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::ModelInstalled()) << testing::MissingModelMessage();
  }
};

TEST_F(TfjsModelTest, LoadsTheRealModel) {
  auto m = LoadTfjsModel(RealDist() / "model.json");
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(m->nodes.size(), 317u);
  EXPECT_EQ(m->weights.size(), 61u);
  const TfjsTensor* emb = m->FindWeight("module/Embeddings_en");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->ShapeString(), "[8002, 256]");
  const TfjsTensor* max_len =
      m->FindWeight("module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y");
  ASSERT_NE(max_len, nullptr);
  EXPECT_EQ(max_len->i32, std::vector<int32_t>{128});
  ASSERT_TRUE(LoadError(ModelCopy("unchanged", [](json::object&) {})).ok());
}

TEST_F(TfjsModelTest, MissingModelSaysToRunInstallDeps) {
  Status s = LoadError("/nonexistent/model-embeddings-en");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("scripts/install-deps"), std::string::npos) << s.ToString();
  s = LoadError("");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  auto direct = LoadTfjsModel("/nonexistent/model.json");
  ASSERT_FALSE(direct.has_value());
  EXPECT_EQ(direct.error().code(), StatusCode::kNotFound);
}

TEST_F(TfjsModelTest, RejectsInvalidJson) {
  const Status s = LoadError(ModelCopyRaw("garbage", "{\"modelTop"));
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("not valid JSON"), std::string::npos) << s.ToString();
  EXPECT_EQ(LoadError(ModelCopyRaw("empty", "")).code(), StatusCode::kCorruption);
  EXPECT_EQ(LoadError(ModelCopyRaw("array", "[]")).code(), StatusCode::kCorruption);
}

TEST_F(TfjsModelTest, RejectsABadManifest) {
  struct Case {
    const char* name;
    std::function<void(json::object&)> edit;
    std::string expect;
  };
  const std::string emb = "module/Embeddings_en";
  const Case cases[] = {
      {"dtype", [&](json::object& m) { Weight(m, emb)["dtype"] = "float16"; },
       "unsupported weight dtype"},
      {"shape",
       [&](json::object& m) {
         Weight(m, emb)["shape"] = json::array{8003, 256};
       },
       "the shards hold"},
      {"negative",
       [&](json::object& m) {
         Weight(m, emb)["shape"] = json::array{-1, 256};
       },
       "dimension"},
      {"huge",
       [&](json::object& m) {
         Weight(m, emb)["shape"] = json::array{4000000000, 4000000000};
       },
       "dimension"},
      {"rank",
       [&](json::object& m) {
         Weight(m, emb)["shape"] = json::array{8002, "256"};
       },
       "dimension"},
      {"quantized",
       [&](json::object& m) {
         Weight(m, emb)["quantization"] = json::object{{"dtype", "uint8"}};
       },
       "quantized"},
      {"escape", [](json::object& m) { Paths(m)[0] = "../group1-shard1of7"; }, "relative path"},
      {"absolute", [](json::object& m) { Paths(m)[0] = "/etc/passwd"; }, "relative path"},
      {"nameless", [&](json::object& m) { Weight(m, emb).erase("name"); }, "without a name"},
      {"weights", [](json::object& m) { m.erase("weightsManifest"); }, "no weightsManifest"},
      {"nodes", [](json::object& m) { m["modelTopology"].as_object().erase("node"); },
       "no modelTopology.node"},
      {"dangling",
       [](json::object& m) { Nodes(m).back().as_object()["input"].as_array()[0] = "nowhere"; },
       "missing node nowhere"},
      {"const",
       [](json::object& m) {
         Weight(m, "module/Encoder_en/hidden_layers/tanh_layer_0/bias")["name"] = "renamed";
       },
       "has no weight"},
  };
  for (const Case& c : cases) {
    const Status s = LoadError(ModelCopy(c.name, c.edit));
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << c.name << ": " << s.ToString();
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << c.name << ": " << s.ToString();
  }
}

TEST_F(TfjsModelTest, RejectsTruncatedOrMissingShards) {
  const fs::path dir = ModelCopy("truncated", [](json::object&) {});
  const fs::path last = dir / "dist" / "group1-shard7of7";
  const std::string bytes = ReadAll(last);
  fs::remove(last);
  {
    std::ofstream out(last, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 1000));
  }
  Status s = LoadError(dir);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.ToString();

  fs::remove(last);
  s = LoadError(dir);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("group1-shard7of7"), std::string::npos) << s.ToString();

  // Longer than the manifest says is as wrong as shorter.
  {
    std::ofstream out(last, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out << "extra";
  }
  EXPECT_EQ(LoadError(dir).code(), StatusCode::kCorruption);
}

TEST_F(TfjsModelTest, RejectsAnotherGraph) {
  // One op changed: the forward pass would no longer be the graph's.
  Status s = LoadError(ModelCopy("tanh", [](json::object& m) {
    for (json::value& n : Nodes(m)) {
      if (n.as_object()["op"] == "Tanh") n.as_object()["op"] = "Sigmoid";
    }
  }));
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("not the Universal Sentence Encoder Lite graph"), std::string::npos)
      << s.ToString();
  // A weight of the right name but another shape.
  s = LoadError(ModelCopy("reshaped", [](json::object& m) {
    json::object& w = Weight(m, "module/Encoder_en/hidden_layers/tanh_layer_0/weights");
    w["shape"] = json::array{256, 1024};
  }));
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("expected [512, 512]"), std::string::npos) << s.ToString();
}

TEST_F(TfjsModelTest, RejectsABrokenVocabulary) {
  const fs::path dir = ModelCopy("vocab", [](json::object&) {});
  fs::remove(dir / "dist" / "vocab.json");
  EXPECT_EQ(LoadError(dir).code(), StatusCode::kNotFound);
  std::ofstream(dir / "dist" / "vocab.json") << "[[\"a\", 1], [\"b\"";
  EXPECT_EQ(LoadError(dir).code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace llmcache::semantic
