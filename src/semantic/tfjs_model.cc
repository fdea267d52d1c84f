#include "semantic/tfjs_model.h"

#include <simdjson.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>
#include <unordered_set>

namespace llmcache::semantic {
namespace fs = std::filesystem;

int64_t TfjsTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TfjsTensor::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

const TfjsNode* TfjsModel::FindNode(std::string_view name) const {
  for (const TfjsNode& n : nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

const TfjsTensor* TfjsModel::FindWeight(const std::string& name) const {
  auto it = weights.find(name);
  return it == weights.end() ? nullptr : &it->second;
}

namespace {

Result<int64_t> FileSize(const fs::path& path, std::string_view what) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    return Err(Status::NotFound(std::string(what) + " " + path.string() + " does not exist"));
  }
  if (!fs::is_regular_file(st)) {
    return Err(Status::Corruption(std::string(what) + " " + path.string() + " is not a file"));
  }
  const auto size = fs::file_size(path, ec);
  if (ec) return Err(Status::IOError("cannot stat " + path.string() + ": " + ec.message()));
  return static_cast<int64_t>(size);
}

// Appends the file's bytes to `out`, which must then have grown by `size`.
Status AppendFile(const fs::path& path, int64_t size, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::IOError("cannot open " + path.string() + ": " +
                           std::error_code(errno, std::generic_category()).message());
  }
  const size_t old = out.size();
  out.resize(old + static_cast<size_t>(size));
  in.read(out.data() + old, size);
  if (in.gcount() != size) {
    return Status::IOError("short read of " + path.string() + " (it changed while loading?)");
  }
  return Status::OK();
}

Result<DType> ParseDType(std::string_view s) {
  if (s == "float32") return DType::kFloat32;
  if (s == "int32") return DType::kInt32;
  return Err(Status::Corruption("unsupported weight dtype \"" + std::string(s) +
                                "\" (this loader reads float32 and int32)"));
}

// A shard path must stay inside the model directory.
bool SafeRelativePath(std::string_view p) {
  if (p.empty()) return false;
  const fs::path path{std::string(p)};
  if (path.is_absolute() || path.has_root_name()) return false;
  for (const fs::path& part : path) {
    if (part == "..") return false;
  }
  return true;
}

}  // namespace

Result<TfjsModel> LoadTfjsModel(const fs::path& model_json) {
  auto size = FileSize(model_json, "model file");
  if (!size) return Err(size.error());
  if (*size > kMaxModelJsonBytes) {
    return Err(Status::Corruption(model_json.string() + " is " + std::to_string(*size) +
                                  " bytes, more than a model.json can be"));
  }
  std::string text;
  if (Status s = AppendFile(model_json, *size, text); !s.ok()) return Err(s);

  const std::string where = model_json.string();
  auto bad = [&](const std::string& why) { return Err(Status::Corruption(where + ": " + why)); };

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  const simdjson::padded_string padded(text);
  if (auto err = parser.parse(padded).get(doc)) {
    return bad(std::string("not valid JSON: ") + simdjson::error_message(err));
  }

  TfjsModel model;
  simdjson::dom::array nodes;
  if (doc["modelTopology"]["node"].get_array().get(nodes)) {
    return bad("no modelTopology.node array (not a TF.js graph model)");
  }
  std::unordered_set<std::string> node_names;
  for (simdjson::dom::element n : nodes) {
    TfjsNode node;
    std::string_view name, op;
    if (n["name"].get_string().get(name) || n["op"].get_string().get(op)) {
      return bad("a graph node without a string name and op");
    }
    node.name = std::string(name);
    node.op = std::string(op);
    simdjson::dom::element inputs;
    if (n["input"].get(inputs) == simdjson::SUCCESS) {
      simdjson::dom::array arr;
      if (inputs.get_array().get(arr)) return bad("node " + node.name + ": input is not an array");
      for (simdjson::dom::element i : arr) {
        std::string_view input;
        if (i.get_string().get(input)) return bad("node " + node.name + ": non-string input");
        node.inputs.emplace_back(input);
      }
    }
    if (!node_names.insert(node.name).second) return bad("duplicate node " + node.name);
    model.nodes.push_back(std::move(node));
  }
  // Every input names a node ("name", "name:output" or the control input
  // "^name").
  for (const TfjsNode& node : model.nodes) {
    for (std::string_view input : node.inputs) {
      if (!input.empty() && input.front() == '^') input.remove_prefix(1);
      const size_t colon = input.rfind(':');
      if (colon != std::string_view::npos &&
          input.find_first_not_of("0123456789", colon + 1) == std::string_view::npos) {
        input = input.substr(0, colon);
      }
      if (node_names.count(std::string(input)) == 0) {
        return bad("node " + node.name + " reads the missing node " + std::string(input));
      }
    }
  }

  simdjson::dom::array groups;
  if (doc["weightsManifest"].get_array().get(groups)) return bad("no weightsManifest array");
  const fs::path dir = model_json.parent_path();
  int64_t total_bytes = 0;
  size_t group_index = 0;
  for (simdjson::dom::element group : groups) {
    const std::string g = "weightsManifest[" + std::to_string(group_index++) + "]";
    struct Spec {
      std::string name;
      DType dtype;
      std::vector<int64_t> shape;
      int64_t bytes;
    };
    std::vector<Spec> specs;
    int64_t needed = 0;
    simdjson::dom::array weights;
    if (group["weights"].get_array().get(weights)) return bad(g + ": no weights array");
    for (simdjson::dom::element w : weights) {
      Spec spec;
      std::string_view name, dtype;
      if (w["name"].get_string().get(name)) return bad(g + ": a weight without a name");
      spec.name = std::string(name);
      const std::string at = g + " weight " + spec.name;
      if (w["dtype"].get_string().get(dtype)) return bad(at + ": no dtype");
      auto dt = ParseDType(dtype);
      if (!dt) return bad(at + ": " + dt.error().message());
      spec.dtype = *dt;
      simdjson::dom::element quantization;
      if (w["quantization"].get(quantization) == simdjson::SUCCESS) {
        return bad(at + ": quantized weights are not supported");
      }
      simdjson::dom::array shape;
      if (w["shape"].get_array().get(shape)) return bad(at + ": no shape array");
      int64_t elements = 1;
      for (simdjson::dom::element d : shape) {
        int64_t dim = 0;
        if (d.get_int64().get(dim) || dim < 0 || dim > kMaxWeightBytes) {
          return bad(at + ": a dimension is not an integer in [0, 2^31]");
        }
        spec.shape.push_back(dim);
        elements *= dim;
        if (elements > kMaxWeightBytes) return bad(at + ": too large");
      }
      if (spec.shape.size() > 8) return bad(at + ": more than 8 dimensions");
      spec.bytes = elements * 4;
      needed += spec.bytes;
      total_bytes += spec.bytes;
      if (total_bytes > kMaxWeightBytes) {
        return bad("the weights add up to more than " + std::to_string(kMaxWeightBytes) + " bytes");
      }
      if (model.weights.count(spec.name) != 0) return bad("duplicate weight " + spec.name);
      for (const Spec& other : specs) {
        if (other.name == spec.name) return bad("duplicate weight " + spec.name);
      }
      specs.push_back(std::move(spec));
    }

    simdjson::dom::array paths;
    if (group["paths"].get_array().get(paths)) return bad(g + ": no paths array");
    std::vector<fs::path> shard_paths;
    int64_t available = 0;
    for (simdjson::dom::element p : paths) {
      std::string_view rel;
      if (p.get_string().get(rel) || !SafeRelativePath(rel)) {
        return bad(g + ": a shard path that is not a relative path inside the model directory");
      }
      fs::path shard = dir / std::string(rel);
      auto shard_size = FileSize(shard, "weight shard");
      if (!shard_size) return Err(shard_size.error());
      available += *shard_size;
      if (available > kMaxWeightBytes) return bad(g + ": the shards are too large");
      shard_paths.push_back(std::move(shard));
    }
    if (available != needed) {
      return bad(g + ": the shards hold " + std::to_string(available) +
                 " bytes but the manifest describes " + std::to_string(needed) +
                 (available < needed ? " (a truncated or missing shard?)" : ""));
    }
    std::string data;
    data.reserve(static_cast<size_t>(needed));
    for (const fs::path& shard : shard_paths) {
      if (Status s = AppendFile(shard, FileSize(shard, "weight shard").value_or(0), data);
          !s.ok()) {
        return Err(s);
      }
    }
    if (static_cast<int64_t>(data.size()) != needed) {
      return bad(g + ": the shards changed size while loading");
    }
    size_t offset = 0;
    for (Spec& spec : specs) {
      TfjsTensor t;
      t.dtype = spec.dtype;
      t.shape = std::move(spec.shape);
      const auto n = static_cast<size_t>(spec.bytes / 4);
      // Raw little-endian values, the byte order of every machine we build for.
      if (t.dtype == DType::kFloat32) {
        t.f32.resize(n);
        std::memcpy(t.f32.data(), data.data() + offset, n * 4);
      } else {
        t.i32.resize(n);
        std::memcpy(t.i32.data(), data.data() + offset, n * 4);
      }
      offset += n * 4;
      model.weights.emplace(std::move(spec.name), std::move(t));
    }
  }
  // A Const node gets its value from the weight of the same name.
  for (const TfjsNode& node : model.nodes) {
    if (node.op == "Const" && model.weights.count(node.name) == 0) {
      return bad("the constant " + node.name + " has no weight in the manifest");
    }
  }
  return model;
}

}  // namespace llmcache::semantic
