#include "store/entry_codec.h"

#include <cstring>
#include <limits>
#include <type_traits>

#include "common/hash.h"

namespace llmcache {
namespace {

constexpr size_t kFixedSize = 1 + 1 + 1 + 8 * 3 + 4 * 4;
constexpr size_t kChecksumSize = 8;
constexpr size_t kStrHeader = 4;
// Fixed fields, four string headers, the event count and the checksum: the
// smallest valid encoding.
constexpr size_t kMinSize = kFixedSize + 4 * kStrHeader + 4 + kChecksumSize;
constexpr uint8_t kFlagTtlFixed = 1;

template <class T>
void PutFixed(std::string* out, T v) {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(v);
  char buf[sizeof(U)];
  for (size_t i = 0; i < sizeof(U); ++i) buf[i] = static_cast<char>((u >> (8 * i)) & 0xff);
  out->append(buf, sizeof(U));
}

void PutStr(std::string* out, std::string_view s) {
  PutFixed<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

bool Fits32(size_t n) { return n <= std::numeric_limits<uint32_t>::max(); }

// Bounds-checked cursor: every read checks the remaining bytes first, so a
// corrupt length can neither overrun nor make us allocate beyond the input.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  template <class T>
  bool Fixed(T* v) {
    using U = std::make_unsigned_t<T>;
    if (data_.size() < sizeof(U)) return false;
    U u = 0;
    for (size_t i = 0; i < sizeof(U); ++i) {
      u |= static_cast<U>(static_cast<uint8_t>(data_[i])) << (8 * i);
    }
    *v = static_cast<T>(u);
    data_.remove_prefix(sizeof(U));
    return true;
  }

  bool Str(std::string* s) {
    uint32_t n = 0;
    if (!Fixed(&n) || n > data_.size()) return false;
    s->assign(data_.data(), n);
    data_.remove_prefix(n);
    return true;
  }

  size_t remaining() const { return data_.size(); }

 private:
  std::string_view data_;
};

}  // namespace

size_t EncodedEntrySize(const CacheEntry& e) {
  size_t n = kFixedSize + 4 * kStrHeader + e.key.size() + e.ns.size() + e.model.size() +
             e.body.size() + 4 + kChecksumSize;
  for (const auto& ev : e.sse_events) n += kStrHeader + ev.size();
  return n;
}

Status EncodeEntry(const CacheEntry& e, std::string* out) {
  if (!Fits32(e.key.size()) || !Fits32(e.ns.size()) || !Fits32(e.model.size()) ||
      !Fits32(e.body.size()) || !Fits32(e.sse_events.size())) {
    return Status::InvalidArgument("cache entry field exceeds 4 GiB");
  }
  for (const auto& ev : e.sse_events) {
    if (!Fits32(ev.size())) return Status::InvalidArgument("cache entry event exceeds 4 GiB");
  }
  const size_t start = out->size();
  out->reserve(start + EncodedEntrySize(e));
  out->push_back(static_cast<char>(kEntryFormatV1));
  out->push_back(static_cast<char>(e.route));
  out->push_back(static_cast<char>(e.ttl_fixed ? kFlagTtlFixed : 0));
  PutFixed<int64_t>(out, e.created_ms);
  PutFixed<int64_t>(out, e.last_access_ms);
  PutFixed<int64_t>(out, e.ttl_ms);
  PutFixed<uint32_t>(out, e.hit_count);
  PutFixed<int32_t>(out, static_cast<int32_t>(e.http_status));
  PutFixed<uint32_t>(out, e.prompt_tokens);
  PutFixed<uint32_t>(out, e.completion_tokens);
  PutStr(out, e.key);
  PutStr(out, e.ns);
  PutStr(out, e.model);
  PutStr(out, e.body);
  PutFixed<uint32_t>(out, static_cast<uint32_t>(e.sse_events.size()));
  for (const auto& ev : e.sse_events) PutStr(out, ev);
  const uint64_t sum = Xxh3(std::string_view(out->data() + start, out->size() - start));
  PutFixed<uint64_t>(out, sum);
  return Status::OK();
}

Result<CacheEntry> DecodeEntry(std::string_view data) {
  if (data.size() < kMinSize) return Err(Status::Corruption("cache entry too short"));
  const std::string_view payload = data.substr(0, data.size() - kChecksumSize);
  uint64_t stored = 0;
  Reader tail(data.substr(payload.size()));
  tail.Fixed(&stored);
  if (Xxh3(payload) != stored) return Err(Status::Corruption("cache entry checksum mismatch"));

  // The checksum makes the checks below redundant for bytes we wrote; they
  // stay so that a colliding or crafted input still cannot misbehave.
  Reader r(payload);
  uint8_t version = 0, route = 0, flags = 0;
  r.Fixed(&version);
  if (version != kEntryFormatV1) return Err(Status::Corruption("unknown cache entry format"));
  r.Fixed(&route);
  r.Fixed(&flags);
  if (route < static_cast<uint8_t>(Route::kChat) ||
      route > static_cast<uint8_t>(Route::kEmbeddings)) {
    return Err(Status::Corruption("cache entry has an unknown route"));
  }
  if ((flags & ~kFlagTtlFixed) != 0)
    return Err(Status::Corruption("cache entry has unknown flags"));

  CacheEntry e;
  e.route = static_cast<Route>(route);
  e.ttl_fixed = (flags & kFlagTtlFixed) != 0;
  int32_t status = 0;
  uint32_t events = 0;
  bool ok = r.Fixed(&e.created_ms) && r.Fixed(&e.last_access_ms) && r.Fixed(&e.ttl_ms) &&
            r.Fixed(&e.hit_count) && r.Fixed(&status) && r.Fixed(&e.prompt_tokens) &&
            r.Fixed(&e.completion_tokens) && r.Str(&e.key) && r.Str(&e.ns) && r.Str(&e.model) &&
            r.Str(&e.body) && r.Fixed(&events);
  if (!ok) return Err(Status::Corruption("cache entry truncated"));
  e.http_status = status;
  // Each event needs at least its length header, which caps the count by
  // the bytes left and keeps reserve() proportional to the input.
  if (events > r.remaining() / kStrHeader) {
    return Err(Status::Corruption("cache entry event count exceeds its size"));
  }
  e.sse_events.resize(events);
  for (auto& ev : e.sse_events) {
    if (!r.Str(&ev)) return Err(Status::Corruption("cache entry event truncated"));
  }
  if (r.remaining() != 0) return Err(Status::Corruption("cache entry has trailing bytes"));
  return e;
}

}  // namespace llmcache
