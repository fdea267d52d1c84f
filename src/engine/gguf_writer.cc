#include "engine/gguf_writer.h"

#include <cstring>
#include <fstream>

namespace llmcache::engine {
namespace {

template <class T>
void Append(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

void AppendString(std::string& out, std::string_view s) {
  Append<uint64_t>(out, s.size());
  out.append(s);
}

std::string Tagged(GgufType t) {
  std::string out;
  Append<uint32_t>(out, static_cast<uint32_t>(t));
  return out;
}

template <class T>
std::string Scalar(GgufType t, T v) {
  std::string out = Tagged(t);
  Append<T>(out, v);
  return out;
}

template <class T>
std::string NumericArray(GgufType et, std::span<const T> v) {
  std::string out = Tagged(GgufType::kArray);
  Append<uint32_t>(out, static_cast<uint32_t>(et));
  Append<uint64_t>(out, v.size());
  out.append(reinterpret_cast<const char*>(v.data()), v.size_bytes());
  return out;
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (alignment_ != kGgufDefaultAlignment) SetU32("general.alignment", alignment_);
}

void GgufWriter::Put(std::string_view key, std::string encoded) {
  for (auto& kv : kvs_) {
    if (kv.key == key) {
      kv.encoded = std::move(encoded);
      return;
    }
  }
  kvs_.push_back({std::string(key), std::move(encoded)});
}

void GgufWriter::Remove(std::string_view key) {
  std::erase_if(kvs_, [&](const Kv& kv) { return kv.key == key; });
}

void GgufWriter::SetU32(std::string_view key, uint32_t v) {
  Put(key, Scalar(GgufType::kUint32, v));
}
void GgufWriter::SetI32(std::string_view key, int32_t v) { Put(key, Scalar(GgufType::kInt32, v)); }
void GgufWriter::SetU64(std::string_view key, uint64_t v) {
  Put(key, Scalar(GgufType::kUint64, v));
}
void GgufWriter::SetF32(std::string_view key, float v) { Put(key, Scalar(GgufType::kFloat32, v)); }
void GgufWriter::SetBool(std::string_view key, bool v) {
  Put(key, Scalar<uint8_t>(GgufType::kBool, v ? 1 : 0));
}
void GgufWriter::SetString(std::string_view key, std::string_view v) {
  std::string out = Tagged(GgufType::kString);
  AppendString(out, v);
  Put(key, std::move(out));
}
void GgufWriter::SetStringArray(std::string_view key, std::span<const std::string> v) {
  std::string out = Tagged(GgufType::kArray);
  Append<uint32_t>(out, static_cast<uint32_t>(GgufType::kString));
  Append<uint64_t>(out, v.size());
  for (const auto& s : v) AppendString(out, s);
  Put(key, std::move(out));
}
void GgufWriter::SetF32Array(std::string_view key, std::span<const float> v) {
  Put(key, NumericArray(GgufType::kFloat32, v));
}
void GgufWriter::SetI32Array(std::string_view key, std::span<const int32_t> v) {
  Put(key, NumericArray(GgufType::kInt32, v));
}

void GgufWriter::SetValue(std::string_view key, const GgufValue& v) {
  std::string out = Tagged(v.type);
  switch (v.type) {
    case GgufType::kArray:
      Append<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      Append<uint64_t>(out, v.count);
      if (v.elem_type == GgufType::kString) {
        for (auto s : v.strings) AppendString(out, s);
      } else {
        out.append(reinterpret_cast<const char*>(v.raw.data()), v.raw.size());
      }
      break;
    case GgufType::kString:
      AppendString(out, v.str);
      break;
    case GgufType::kFloat32:
      Append<float>(out, static_cast<float>(v.f));
      break;
    case GgufType::kFloat64:
      Append<double>(out, v.f);
      break;
    case GgufType::kInt8:
      Append<int8_t>(out, static_cast<int8_t>(v.i));
      break;
    case GgufType::kInt16:
      Append<int16_t>(out, static_cast<int16_t>(v.i));
      break;
    case GgufType::kInt32:
      Append<int32_t>(out, static_cast<int32_t>(v.i));
      break;
    case GgufType::kInt64:
      Append<int64_t>(out, v.i);
      break;
    case GgufType::kUint8:
    case GgufType::kBool:
      Append<uint8_t>(out, static_cast<uint8_t>(v.u));
      break;
    case GgufType::kUint16:
      Append<uint16_t>(out, static_cast<uint16_t>(v.u));
      break;
    case GgufType::kUint32:
      Append<uint32_t>(out, static_cast<uint32_t>(v.u));
      break;
    case GgufType::kUint64:
      Append<uint64_t>(out, v.u);
      break;
  }
  Put(key, std::move(out));
}

Status GgufWriter::AddTensor(std::string_view name, GgmlType type, std::span<const uint64_t> ne,
                             std::vector<uint8_t> data) {
  if (ne.empty() || ne.size() > kGgufMaxDims) {
    return Status::InvalidArgument("gguf writer: tensor needs 1..4 dimensions");
  }
  uint64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
  auto row_bytes = RowBytes(type, ne[0]);
  if (!row_bytes) return row_bytes.error();
  if (*row_bytes * rows != data.size()) {
    return Status::InvalidArgument("gguf writer: tensor '" + std::string(name) + "' has " +
                                   std::to_string(data.size()) + " bytes, shape needs " +
                                   std::to_string(*row_bytes * rows));
  }
  tensors_.push_back({std::string(name), type, {ne.begin(), ne.end()}, std::move(data)});
  return Status::OK();
}

std::string GgufWriter::Header() const {
  std::string head;
  Append<uint32_t>(head, kGgufMagic);
  Append<uint32_t>(head, 3);
  Append<uint64_t>(head, tensors_.size());
  Append<uint64_t>(head, kvs_.size());
  for (const auto& kv : kvs_) {
    AppendString(head, kv.key);
    head += kv.encoded;
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    AppendString(head, t.name);
    Append<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) Append<uint64_t>(head, d);
    Append<uint32_t>(head, static_cast<uint32_t>(t.type));
    Append<uint64_t>(head, offset);
    offset += t.data.size() + Padding(t.data.size());
  }
  head.append(Padding(head.size()), '\0');
  return head;
}

uint64_t GgufWriter::Padding(uint64_t n) const {
  return (alignment_ - n % alignment_) % alignment_;
}

std::vector<uint8_t> GgufWriter::Serialize() const {
  const std::string head = Header();
  std::vector<uint8_t> out(head.begin(), head.end());
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.insert(out.end(), Padding(t.data.size()), 0);
  }
  return out;
}

Status GgufWriter::WriteFile(const std::string& path) const {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return Status::IOError("gguf writer: cannot create " + path);
  const std::string head = Header();
  f.write(head.data(), static_cast<std::streamsize>(head.size()));
  const std::string zeros(alignment_, '\0');
  for (const auto& t : tensors_) {
    f.write(reinterpret_cast<const char*>(t.data.data()),
            static_cast<std::streamsize>(t.data.size()));
    f.write(zeros.data(), static_cast<std::streamsize>(Padding(t.data.size())));
  }
  f.close();
  if (!f) return Status::IOError("gguf writer: write failed for " + path);
  return Status::OK();
}

}  // namespace llmcache::engine
