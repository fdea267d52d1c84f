#include "semantic/semantic_entry.h"

#include <bit>
#include <cstring>
#include <type_traits>

#include "common/hash.h"

namespace llmcache::semantic {
namespace {

constexpr uint8_t kMetaV1 = 0x4D;

template <class T>
void Put(std::string* out, T v) {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(v);
  for (size_t i = 0; i < sizeof(U); ++i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}
void PutF(std::string* out, float f) { Put<uint32_t>(out, std::bit_cast<uint32_t>(f)); }
void PutS(std::string* out, std::string_view s) {
  Put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
void Seal(std::string* out) { Put<uint64_t>(out, Xxh3(*out)); }

// Bounds-checked reader over checksummed bytes.
class Reader {
 public:
  explicit Reader(std::string_view d) : d_(d) {}
  template <class T>
  bool Get(T* v) {
    using U = std::make_unsigned_t<T>;
    if (d_.size() < sizeof(U)) return false;
    U u = 0;
    for (size_t i = 0; i < sizeof(U); ++i)
      u |= static_cast<U>(static_cast<uint8_t>(d_[i])) << (8 * i);
    *v = static_cast<T>(u);
    d_.remove_prefix(sizeof(U));
    return true;
  }
  bool GetF(float* f) {
    uint32_t u = 0;
    if (!Get(&u)) return false;
    *f = std::bit_cast<float>(u);
    return true;
  }
  bool GetS(std::string* s) {
    uint32_t n = 0;
    if (!Get(&n) || n > d_.size()) return false;
    s->assign(d_.data(), n);
    d_.remove_prefix(n);
    return true;
  }
  // A count of items of at least `min_item` bytes each that the rest can hold.
  bool Count(uint32_t* n, size_t min_item) { return Get(n) && *n <= d_.size() / min_item; }
  bool done() const { return d_.empty(); }

 private:
  std::string_view d_;
};

// Checks version and checksum; returns the body between them.
Result<std::string_view> Unseal(std::string_view data, uint8_t version, const char* what) {
  if (data.size() < 9 || static_cast<uint8_t>(data[0]) != version) {
    return Err(Status::Corruption(std::string(what) + ": bad version or size"));
  }
  std::string_view body = data.substr(0, data.size() - 8);
  Reader r(data.substr(data.size() - 8));
  uint64_t sum = 0;
  r.Get(&sum);
  if (sum != Xxh3(body)) return Err(Status::Corruption(std::string(what) + ": checksum mismatch"));
  return body.substr(1);
}

}  // namespace

std::string EncodeSemanticEntry(const SemanticEntry& e) {
  std::string out;
  out.reserve(64 + e.exact_key.size() + e.text.size() + 4 * e.embedding.size());
  out.push_back(static_cast<char>(kSemanticEntryV1));
  Put<uint64_t>(&out, e.id);
  PutS(&out, e.exact_key);
  PutS(&out, e.ns);
  PutS(&out, e.context_key);
  PutS(&out, e.text);
  Put<uint32_t>(&out, static_cast<uint32_t>(e.embedding.size()));
  for (float f : e.embedding) PutF(&out, f);
  Put<uint32_t>(&out, static_cast<uint32_t>(e.doc_hashes.size()));
  for (const auto& d : e.doc_hashes) PutS(&out, d);
  Put<int64_t>(&out, e.created_ms);
  Put<int64_t>(&out, e.last_hit_ms);
  Put<int64_t>(&out, e.ttl_ms);
  Put<uint32_t>(&out, e.hit_count);
  Put<uint32_t>(&out, static_cast<uint32_t>(e.observations.size()));
  for (const auto& o : e.observations) {
    PutF(&out, o.similarity);
    out.push_back(o.same ? 1 : 0);
  }
  Seal(&out);
  return out;
}

Result<SemanticEntry> DecodeSemanticEntry(std::string_view data) {
  auto body = Unseal(data, kSemanticEntryV1, "semantic entry");
  if (!body) return Err(body.error());
  Reader r(*body);
  SemanticEntry e;
  uint32_t n = 0;
  bool ok = r.Get(&e.id) && r.GetS(&e.exact_key) && r.GetS(&e.ns) && r.GetS(&e.context_key) &&
            r.GetS(&e.text) && r.Count(&n, 4);
  if (ok) {
    e.embedding.resize(n);
    for (uint32_t i = 0; ok && i < n; ++i) ok = r.GetF(&e.embedding[i]);
  }
  ok = ok && r.Count(&n, 4);
  for (uint32_t i = 0; ok && i < n; ++i) ok = r.GetS(&e.doc_hashes.emplace_back());
  ok = ok && r.Get(&e.created_ms) && r.Get(&e.last_hit_ms) && r.Get(&e.ttl_ms) &&
       r.Get(&e.hit_count) && r.Count(&n, 5) && n <= kMaxObservations;
  for (uint32_t i = 0; ok && i < n; ++i) {
    Observation o;
    uint8_t same = 0;
    ok = r.GetF(&o.similarity) && r.Get(&same) && same <= 1;
    o.same = same == 1;
    e.observations.push_back(o);
  }
  if (!ok || !r.done()) return Err(Status::Corruption("semantic entry: malformed fields"));
  return e;
}

std::string EncodeSemanticMeta(const SemanticMeta& m) {
  std::string out(1, static_cast<char>(kMetaV1));
  PutS(&out, m.embedder_id);
  Put<uint32_t>(&out, m.dimension);
  Put<uint64_t>(&out, m.next_id);
  out.push_back(m.snapshot_valid ? 1 : 0);
  Put<uint64_t>(&out, m.snapshot_vectors);
  Seal(&out);
  return out;
}

Result<SemanticMeta> DecodeSemanticMeta(std::string_view data) {
  auto body = Unseal(data, kMetaV1, "semantic meta");
  if (!body) return Err(body.error());
  Reader r(*body);
  SemanticMeta m;
  uint8_t valid = 0;
  if (!(r.GetS(&m.embedder_id) && r.Get(&m.dimension) && r.Get(&m.next_id) && r.Get(&valid) &&
        valid <= 1 && r.Get(&m.snapshot_vectors) && r.done())) {
    return Err(Status::Corruption("semantic meta: malformed fields"));
  }
  m.snapshot_valid = valid == 1;
  return m;
}

}  // namespace llmcache::semantic
