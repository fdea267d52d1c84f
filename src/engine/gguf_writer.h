// GGUF writer: builds a GGUF version 3 file from metadata and tensors held in
// memory. Used by the test-model tool and tests (including crafting malformed
// files); not meant for multi-gigabyte models.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "llmcache/status.h"

namespace llmcache::engine {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment);

  // Setting an existing key replaces its value in place (order is kept).
  void SetU32(std::string_view key, uint32_t v);
  void SetI32(std::string_view key, int32_t v);
  void SetU64(std::string_view key, uint64_t v);
  void SetF32(std::string_view key, float v);
  void SetBool(std::string_view key, bool v);
  void SetString(std::string_view key, std::string_view v);
  void SetStringArray(std::string_view key, std::span<const std::string> v);
  void SetF32Array(std::string_view key, std::span<const float> v);
  void SetI32Array(std::string_view key, std::span<const int32_t> v);
  // Copies a value read from another file, keeping its exact type.
  void SetValue(std::string_view key, const GgufValue& v);
  void Remove(std::string_view key);

  // `ne[0]` is the row length; `data` must hold exactly the tensor's bytes.
  Status AddTensor(std::string_view name, GgmlType type, std::span<const uint64_t> ne,
                   std::vector<uint8_t> data);

  std::vector<uint8_t> Serialize() const;
  Status WriteFile(const std::string& path) const;

 private:
  struct Kv {
    std::string key;
    std::string encoded;  // type tag + value, as in the file
  };
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> ne;
    std::vector<uint8_t> data;
  };
  void Put(std::string_view key, std::string encoded);
  std::string Header() const;  // everything before the data section, padded
  uint64_t Padding(uint64_t n) const;

  uint32_t alignment_;
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
};

}  // namespace llmcache::engine
