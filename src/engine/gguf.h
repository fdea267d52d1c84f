// GGUF reader: a memory-mapped view of a GGUF (version 2 or 3) file.
//
// Everything read from the file is untrusted. Open() validates every count,
// length, offset, tensor shape and type before anything uses it; a malformed
// file yields a Corruption status naming the field and byte offset, never a
// crash or an out-of-bounds read. After a successful Open() all accessors are
// bounds-safe by construction.
//
// Strings and tensor bytes are views into the mapping: they stay valid for the
// lifetime of the GgufFile (which is movable, not copyable). Thread-safe for
// concurrent readers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/quant.h"
#include "llmcache/status.h"

namespace llmcache::engine {

// Values are the GGUF file format's gguf_type.
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view GgufTypeName(GgufType t);
// Size of one scalar of type t; 0 for string and array.
size_t GgufScalarSize(GgufType t);

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kGgufDefaultAlignment = 32;
constexpr uint32_t kGgufMaxDims = 4;

// One metadata value. Scalars are widened into u/i/f; arrays of numbers or
// bools keep a pointer to their little-endian bytes in the mapping; arrays of
// strings are split into views. Nested arrays are rejected at Open().
struct GgufValue {
  GgufType type = GgufType::kUint8;
  uint64_t u = 0;  // unsigned integers and bool
  int64_t i = 0;   // signed integers (also set for unsigned ones that fit)
  double f = 0;    // floats
  std::string_view str;
  // Arrays only:
  GgufType elem_type = GgufType::kUint8;
  uint64_t count = 0;
  std::span<const uint8_t> raw;           // numeric/bool array bytes
  std::vector<std::string_view> strings;  // string array elements

  bool is_integer() const;
};

struct GgufTensorInfo {
  std::string_view name;
  uint32_t n_dims = 0;
  uint64_t ne[kGgufMaxDims] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // relative to the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  std::span<const uint8_t> data;  // the tensor's bytes inside the mapping
};

struct GgufKv {
  std::string_view key;
  GgufValue value;
};

class GgufFile {
 public:
  // Maps and validates the file at `path`.
  static Result<GgufFile> Open(const std::string& path);
  // Validates bytes owned by the caller, who keeps them alive and unchanged
  // for the lifetime of the result (used by the fuzzer and tests).
  static Result<GgufFile> Parse(std::span<const uint8_t> bytes);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile();

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  std::span<const uint8_t> bytes() const { return bytes_; }

  const std::vector<GgufKv>& metadata() const { return kvs_; }
  const GgufValue* Find(std::string_view key) const;

  // Typed getters: NotFound when absent; InvalidArgument when the stored type
  // cannot represent the requested one (integers convert when in range).
  Result<uint64_t> GetU64(std::string_view key) const;
  Result<uint32_t> GetU32(std::string_view key) const;
  Result<int64_t> GetI64(std::string_view key) const;
  Result<float> GetF32(std::string_view key) const;
  Result<bool> GetBool(std::string_view key) const;
  Result<std::string_view> GetString(std::string_view key) const;
  Result<const std::vector<std::string_view>*> GetStringArray(std::string_view key) const;
  Result<std::vector<float>> GetF32Array(std::string_view key) const;
  Result<std::vector<int32_t>> GetI32Array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;

 private:
  GgufFile() = default;
  Status ParseAll();

  struct Mapping;
  std::unique_ptr<Mapping> mapping_;  // null when parsing caller-owned bytes
  std::span<const uint8_t> bytes_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKv> kvs_;
  std::unordered_map<std::string_view, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace llmcache::engine
