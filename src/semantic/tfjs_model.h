// Loader of TF.js graph models (the `tfjs_graph_model` format that
// tensorflowjs_converter writes): model.json holds the graph (a GraphDef as
// JSON) and a weights manifest; the weights are raw little-endian tensors
// concatenated across binary shard files, in manifest order.
//
// Everything read from disk is validated (JSON shape, dtypes, tensor sizes,
// shard sizes, file names), so a malformed or truncated model gives a Status
// that says what is wrong, never a crash.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llmcache/status.h"

namespace llmcache::semantic {

enum class DType { kFloat32, kInt32 };

struct TfjsTensor {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<float> f32;    // when dtype == kFloat32
  std::vector<int32_t> i32;  // when dtype == kInt32

  int64_t elements() const;
  std::string ShapeString() const;  // "[512, 1536]"
};

struct TfjsNode {
  std::string name;
  std::string op;
  std::vector<std::string> inputs;
};

struct TfjsModel {
  std::vector<TfjsNode> nodes;
  std::unordered_map<std::string, TfjsTensor> weights;

  const TfjsNode* FindNode(std::string_view name) const;
  const TfjsTensor* FindWeight(const std::string& name) const;
};

// Bounds on what a loader accepts: far above the models this project ships,
// low enough that a corrupt manifest cannot make it allocate without limit.
inline constexpr int64_t kMaxModelJsonBytes = 64ll << 20;
inline constexpr int64_t kMaxWeightBytes = 2ll << 30;

// Loads model.json and its weight shards (paths relative to model.json's
// directory).
Result<TfjsModel> LoadTfjsModel(const std::filesystem::path& model_json);

}  // namespace llmcache::semantic
