#include "engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace llmcache::engine {

std::string_view GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return "unknown";
}

size_t GgufScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

namespace {

bool ValidGgufType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

bool IsSigned(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 ||
         t == GgufType::kInt64;
}

// Bounds-checked little-endian reader over the file bytes. Every read either
// succeeds entirely inside the buffer or returns an error naming what was
// being read and where.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> b) : b_(b) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return b_.size() - pos_; }

  Status Fail(std::string_view what, std::string_view why) const {
    return Status::Corruption("gguf: " + std::string(what) + " at byte " + std::to_string(pos_) +
                              ": " + std::string(why));
  }

  template <class T>
  Status Read(T* out, std::string_view what) {
    if (remaining() < sizeof(T)) return Fail(what, "truncated file");
    std::memcpy(out, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::OK();
  }

  Status ReadBytes(uint64_t n, std::span<const uint8_t>* out, std::string_view what) {
    if (n > remaining()) {
      return Fail(what, "length " + std::to_string(n) + " exceeds the " +
                            std::to_string(remaining()) + " bytes left");
    }
    *out = b_.subspan(pos_, n);
    pos_ += n;
    return Status::OK();
  }

  Status ReadString(std::string_view* out, std::string_view what) {
    uint64_t len = 0;
    if (Status s = Read(&len, what); !s.ok()) return s;
    std::span<const uint8_t> bytes;
    if (Status s = ReadBytes(len, &bytes, what); !s.ok()) return s;
    *out = std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return Status::OK();
  }

 private:
  std::span<const uint8_t> b_;
  uint64_t pos_ = 0;
};

Status ReadScalar(Cursor& c, GgufType t, GgufValue* v, std::string_view what) {
  Status s;
  switch (t) {
    case GgufType::kUint8: {
      uint8_t x = 0;
      s = c.Read(&x, what);
      v->u = x;
      v->i = x;
      break;
    }
    case GgufType::kInt8: {
      int8_t x = 0;
      s = c.Read(&x, what);
      v->i = x;
      break;
    }
    case GgufType::kUint16: {
      uint16_t x = 0;
      s = c.Read(&x, what);
      v->u = x;
      v->i = x;
      break;
    }
    case GgufType::kInt16: {
      int16_t x = 0;
      s = c.Read(&x, what);
      v->i = x;
      break;
    }
    case GgufType::kUint32: {
      uint32_t x = 0;
      s = c.Read(&x, what);
      v->u = x;
      v->i = x;
      break;
    }
    case GgufType::kInt32: {
      int32_t x = 0;
      s = c.Read(&x, what);
      v->i = x;
      break;
    }
    case GgufType::kUint64: {
      uint64_t x = 0;
      s = c.Read(&x, what);
      v->u = x;
      v->i = x <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                 ? static_cast<int64_t>(x)
                 : 0;
      break;
    }
    case GgufType::kInt64: {
      int64_t x = 0;
      s = c.Read(&x, what);
      v->i = x;
      break;
    }
    case GgufType::kFloat32: {
      float x = 0;
      s = c.Read(&x, what);
      v->f = x;
      break;
    }
    case GgufType::kFloat64: {
      double x = 0;
      s = c.Read(&x, what);
      v->f = x;
      break;
    }
    case GgufType::kBool: {
      uint8_t x = 0;
      s = c.Read(&x, what);
      if (s.ok() && x > 1)
        return c.Fail(what, "bool value " + std::to_string(x) + " is not 0 or 1");
      v->u = x;
      break;
    }
    case GgufType::kString:
      s = c.ReadString(&v->str, what);
      break;
    case GgufType::kArray:
      return c.Fail(what, "nested arrays are not supported");
  }
  if (s.ok() && IsSigned(t) && v->i >= 0) v->u = static_cast<uint64_t>(v->i);
  return s;
}

Status ReadValue(Cursor& c, GgufType t, GgufValue* v, std::string_view key) {
  v->type = t;
  if (t != GgufType::kArray) return ReadScalar(c, t, v, key);
  uint32_t et = 0;
  if (Status s = c.Read(&et, key); !s.ok()) return s;
  if (!ValidGgufType(et)) return c.Fail(key, "unknown array element type " + std::to_string(et));
  v->elem_type = static_cast<GgufType>(et);
  if (Status s = c.Read(&v->count, key); !s.ok()) return s;
  if (v->elem_type == GgufType::kArray) return c.Fail(key, "nested arrays are not supported");
  if (v->elem_type == GgufType::kString) {
    // Each string needs at least its 8-byte length: bounds the allocation.
    if (v->count > c.remaining() / 8) {
      return c.Fail(key, "array count " + std::to_string(v->count) + " exceeds the file size");
    }
    v->strings.resize(v->count);
    for (auto& str : v->strings) {
      if (Status s = c.ReadString(&str, key); !s.ok()) return s;
    }
    return Status::OK();
  }
  const size_t es = GgufScalarSize(v->elem_type);
  if (v->count > c.remaining() / es) {
    return c.Fail(key, "array count " + std::to_string(v->count) + " exceeds the file size");
  }
  if (Status s = c.ReadBytes(v->count * es, &v->raw, key); !s.ok()) return s;
  if (v->elem_type == GgufType::kBool) {
    for (uint8_t b : v->raw) {
      if (b > 1) return c.Fail(key, "bool array element is not 0 or 1");
    }
  }
  return Status::OK();
}

bool CheckedMul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
bool CheckedAdd(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

template <class T>
T LoadLe(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

struct GgufFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr != nullptr && size > 0) munmap(addr, size);
  }
};

GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

Result<GgufFile> GgufFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Err(Status::IOError("gguf: open " + path + ": " + std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return Err(Status::IOError("gguf: stat " + path + ": " + std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Err(Status::InvalidArgument("gguf: " + path + " is not a regular file"));
  }
  GgufFile f;
  f.mapping_ = std::make_unique<Mapping>();
  f.mapping_->size = static_cast<size_t>(st.st_size);
  if (st.st_size > 0) {
    void* addr = ::mmap(nullptr, f.mapping_->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      return Err(Status::IOError("gguf: mmap " + path + ": " + std::strerror(e)));
    }
    f.mapping_->addr = addr;
    f.bytes_ = {static_cast<const uint8_t*>(addr), f.mapping_->size};
  }
  ::close(fd);  // the mapping keeps the file referenced
  if (Status s = f.ParseAll(); !s.ok()) {
    return Err(Status(s.code(), s.message() + " (" + path + ")"));
  }
  return f;
}

Result<GgufFile> GgufFile::Parse(std::span<const uint8_t> bytes) {
  GgufFile f;
  f.bytes_ = bytes;
  if (Status s = f.ParseAll(); !s.ok()) return Err(s);
  return f;
}

Status GgufFile::ParseAll() {
  Cursor c(bytes_);
  uint32_t magic = 0;
  if (Status s = c.Read(&magic, "magic"); !s.ok()) return s;
  if (magic != kGgufMagic) return Status::Corruption("gguf: bad magic, not a GGUF file");
  if (Status s = c.Read(&version_, "version"); !s.ok()) return s;
  if (version_ != 2 && version_ != 3) {
    return Status::Corruption("gguf: unsupported version " + std::to_string(version_) +
                              " (supported: 2, 3)");
  }
  uint64_t n_tensors = 0, n_kv = 0;
  if (Status s = c.Read(&n_tensors, "tensor count"); !s.ok()) return s;
  if (Status s = c.Read(&n_kv, "metadata count"); !s.ok()) return s;
  // A KV needs >= 8 (key length) + 4 (type) + 1 bytes; a tensor info needs
  // >= 8 + 4 + 4 + 8. Checking against the bytes left bounds every allocation.
  if (n_kv > c.remaining() / 13) {
    return c.Fail("metadata count", std::to_string(n_kv) + " entries cannot fit in the file");
  }
  if (n_tensors > c.remaining() / 24) {
    return c.Fail("tensor count", std::to_string(n_tensors) + " tensors cannot fit in the file");
  }

  kvs_.resize(n_kv);
  for (auto& kv : kvs_) {
    if (Status s = c.ReadString(&kv.key, "metadata key"); !s.ok()) return s;
    if (kv.key.empty()) return c.Fail("metadata key", "empty key");
    uint32_t t = 0;
    if (Status s = c.Read(&t, kv.key); !s.ok()) return s;
    if (!ValidGgufType(t)) return c.Fail(kv.key, "unknown value type " + std::to_string(t));
    if (Status s = ReadValue(c, static_cast<GgufType>(t), &kv.value, kv.key); !s.ok()) return s;
    if (!kv_index_.emplace(kv.key, &kv - kvs_.data()).second) {
      return c.Fail(kv.key, "duplicate metadata key");
    }
  }

  if (const GgufValue* a = Find("general.alignment")) {
    if (a->type != GgufType::kUint32) {
      return Status::Corruption("gguf: general.alignment has type " +
                                std::string(GgufTypeName(a->type)) + ", want uint32");
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return Status::Corruption("gguf: general.alignment " + std::to_string(a->u) +
                                " is not a power of two");
    }
    alignment_ = static_cast<uint32_t>(a->u);
  }

  tensors_.resize(n_tensors);
  for (auto& t : tensors_) {
    if (Status s = c.ReadString(&t.name, "tensor name"); !s.ok()) return s;
    if (t.name.empty()) return c.Fail("tensor name", "empty name");
    const std::string what = "tensor '" + std::string(t.name) + "'";
    if (Status s = c.Read(&t.n_dims, what); !s.ok()) return s;
    if (t.n_dims == 0 || t.n_dims > kGgufMaxDims) {
      return c.Fail(what, "dimension count " + std::to_string(t.n_dims) + " not in 1..4");
    }
    t.n_elements = 1;
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      if (Status s = c.Read(&t.ne[d], what); !s.ok()) return s;
      if (t.ne[d] == 0 || t.ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c.Fail(what, "dimension " + std::to_string(d) + " has invalid size " +
                                std::to_string(t.ne[d]));
      }
      if (!CheckedMul(t.n_elements, t.ne[d], &t.n_elements) ||
          t.n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c.Fail(what, "element count overflows");
      }
    }
    uint32_t type_id = 0;
    if (Status s = c.Read(&type_id, what); !s.ok()) return s;
    auto traits = GetTypeTraits(type_id);
    if (!traits) return c.Fail(what, "unsupported tensor type " + std::to_string(type_id));
    t.type = traits->type;
    if (t.ne[0] % traits->block_elems != 0) {
      return c.Fail(what, "row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                              std::string(traits->name) + " block size");
    }
    auto row_bytes = RowBytes(t.type, t.ne[0]);
    if (!row_bytes || !CheckedMul(*row_bytes, t.n_elements / t.ne[0], &t.n_bytes)) {
      return c.Fail(what, "byte size overflows");
    }
    if (Status s = c.Read(&t.offset, what); !s.ok()) return s;
    if (t.offset % alignment_ != 0) {
      return c.Fail(what, "data offset " + std::to_string(t.offset) + " is not aligned to " +
                              std::to_string(alignment_));
    }
    if (!tensor_index_.emplace(t.name, &t - tensors_.data()).second) {
      return c.Fail(what, "duplicate tensor name");
    }
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t end_of_infos = c.pos();
  const uint64_t pad = (alignment_ - end_of_infos % alignment_) % alignment_;
  data_offset_ = end_of_infos + pad;
  if (n_tensors > 0 && data_offset_ > bytes_.size()) {
    return Status::Corruption("gguf: data section starts at " + std::to_string(data_offset_) +
                              " beyond the end of the file (" + std::to_string(bytes_.size()) +
                              " bytes)");
  }
  const uint64_t data_size = data_offset_ <= bytes_.size() ? bytes_.size() - data_offset_ : 0;
  for (auto& t : tensors_) {
    uint64_t end;
    if (!CheckedAdd(t.offset, t.n_bytes, &end) || end > data_size) {
      return Status::Corruption("gguf: tensor '" + std::string(t.name) + "' data [" +
                                std::to_string(t.offset) + ", +" + std::to_string(t.n_bytes) +
                                ") lies outside the " + std::to_string(data_size) +
                                "-byte data section");
    }
    t.data = bytes_.subspan(data_offset_ + t.offset, t.n_bytes);
  }
  return Status::OK();
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status Missing(std::string_view key) {
  return Status::NotFound("gguf: metadata key '" + std::string(key) + "' not found");
}
Status WrongType(std::string_view key, const GgufValue& v, std::string_view want) {
  return Status::InvalidArgument("gguf: metadata key '" + std::string(key) + "' has type " +
                                 std::string(GgufTypeName(v.type)) + ", want " + std::string(want));
}

}  // namespace

Result<uint64_t> GgufFile::GetU64(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Err(Missing(key));
  if (!v->is_integer() || (IsSigned(v->type) && v->i < 0)) {
    return Err(WrongType(key, *v, "non-negative integer"));
  }
  return v->u;
}

Result<uint32_t> GgufFile::GetU32(std::string_view key) const {
  auto v = GetU64(key);
  if (!v) return Err(v.error());
  if (*v > std::numeric_limits<uint32_t>::max()) {
    return Err(Status::InvalidArgument("gguf: metadata key '" + std::string(key) +
                                       "' value does not fit uint32"));
  }
  return static_cast<uint32_t>(*v);
}

Result<int64_t> GgufFile::GetI64(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Err(Missing(key));
  if (!v->is_integer() || (v->type == GgufType::kUint64 &&
                           v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
    return Err(WrongType(key, *v, "int64"));
  }
  return v->i;
}

Result<float> GgufFile::GetF32(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Err(Missing(key));
  if (v->type == GgufType::kFloat32 || v->type == GgufType::kFloat64) {
    return static_cast<float>(v->f);
  }
  if (v->is_integer()) return static_cast<float>(IsSigned(v->type) ? v->i : v->u);
  return Err(WrongType(key, *v, "float"));
}

Result<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Err(Missing(key));
  if (v->type != GgufType::kBool) return Err(WrongType(key, *v, "bool"));
  return v->u != 0;
}

Result<std::string_view> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Err(Missing(key));
  if (v->type != GgufType::kString) return Err(WrongType(key, *v, "string"));
  return v->str;
}

Result<const std::vector<std::string_view>*> GgufFile::GetStringArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Err(Missing(key));
  if (v->type != GgufType::kArray || v->elem_type != GgufType::kString) {
    return Err(WrongType(key, *v, "array of string"));
  }
  return &v->strings;
}

Result<std::vector<float>> GgufFile::GetF32Array(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Err(Missing(key));
  if (v->type != GgufType::kArray || v->elem_type != GgufType::kFloat32) {
    return Err(WrongType(key, *v, "array of float32"));
  }
  std::vector<float> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) out[i] = LoadLe<float>(v->raw.data() + 4 * i);
  return out;
}

Result<std::vector<int32_t>> GgufFile::GetI32Array(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Err(Missing(key));
  if (v->type != GgufType::kArray ||
      (v->elem_type != GgufType::kInt32 && v->elem_type != GgufType::kUint32)) {
    return Err(WrongType(key, *v, "array of int32"));
  }
  std::vector<int32_t> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) out[i] = LoadLe<int32_t>(v->raw.data() + 4 * i);
  return out;
}

}  // namespace llmcache::engine
