#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "semantic/kernels.h"
#include "semantic/vector_index_impl.h"

namespace llmcache {
namespace vindex {
namespace {

constexpr char kMagic[8] = {'L', 'L', 'M', 'C', 'V', 'I', 'D', 'X'};
constexpr uint8_t kPartitionTag = 1;
constexpr uint8_t kEndTag = 0;
// Partition names are hashes in practice; this only bounds a damaged file.
constexpr uint32_t kMaxNameSize = 1 << 20;

// Heap order: the worst hit on top.
bool Worse(const IndexHit& a, const IndexHit& b) {
  if (a.similarity != b.similarity) return a.similarity > b.similarity;
  return a.id < b.id;
}

}  // namespace

float Dot(const float* a, const float* b, size_t n) {
  static const semantic::Isa isa = semantic::BestIsa();
  return semantic::Dot(isa, a, b, static_cast<int>(n));
}

bool NormalizeInto(std::span<const float> in, float* out) {
  double norm2 = 0;
  for (float x : in) {
    if (!std::isfinite(x)) return false;
    norm2 += static_cast<double>(x) * x;
  }
  if (!(norm2 > 0) || !std::isfinite(norm2)) return false;
  const double scale = 1.0 / std::sqrt(norm2);
  for (size_t i = 0; i < in.size(); ++i) out[i] = static_cast<float>(in[i] * scale);
  return true;
}

void TopK::Offer(uint64_t id, float similarity) {
  if (k_ == 0) return;
  IndexHit hit{id, similarity};
  if (heap_.size() < k_) {
    heap_.push_back(hit);
    std::push_heap(heap_.begin(), heap_.end(), Worse);
  } else if (Worse(hit, heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), Worse);
    heap_.back() = hit;
    std::push_heap(heap_.begin(), heap_.end(), Worse);
  }
}

std::vector<IndexHit> TopK::Take() {
  std::sort_heap(heap_.begin(), heap_.end(), Worse);
  return std::move(heap_);
}

SnapshotWriter::SnapshotWriter(std::FILE* file)
    : file_(file), hash_(XXH3_createState(), XXH3_freeState) {
  ok_ = hash_ != nullptr && XXH3_64bits_reset(hash_.get()) == XXH_OK;
}

void SnapshotWriter::Write(const void* data, size_t size) {
  if (!ok_ || size == 0) return;
  ok_ = std::fwrite(data, 1, size, file_) == size &&
        XXH3_64bits_update(hash_.get(), data, size) == XXH_OK;
}

void SnapshotWriter::Finish() {
  if (!ok_) return;
  const uint64_t digest = XXH3_64bits_digest(hash_.get());
  ok_ = std::fwrite(&digest, 1, sizeof digest, file_) == sizeof digest;
}

SnapshotReader::SnapshotReader(std::FILE* file, uint64_t payload_size)
    : file_(file), remaining_(payload_size), hash_(XXH3_createState(), XXH3_freeState) {
  if (hash_ == nullptr || XXH3_64bits_reset(hash_.get()) != XXH_OK) remaining_ = 0;
}

bool SnapshotReader::Read(void* data, size_t size) {
  if (size > remaining_) return false;
  if (size == 0) return true;
  if (std::fread(data, 1, size, file_) != size) return false;
  remaining_ -= size;
  return XXH3_64bits_update(hash_.get(), data, size) == XXH_OK;
}

bool SnapshotReader::ChecksumMatches() {
  uint64_t stored = 0;
  if (remaining_ != 0 || std::fread(&stored, 1, sizeof stored, file_) != sizeof stored) {
    return false;
  }
  return stored == XXH3_64bits_digest(hash_.get());
}

void FlatVectors::Put(uint64_t id, const float* unit) {
  auto [it, inserted] = slot_of_.try_emplace(id, static_cast<uint32_t>(ids_.size()));
  if (inserted) {
    ids_.push_back(id);
    data_.insert(data_.end(), unit, unit + dimension_);
  } else {
    std::memcpy(data_.data() + size_t{it->second} * dimension_, unit, dimension_ * sizeof(float));
  }
}

bool FlatVectors::Erase(uint64_t id) {
  auto it = slot_of_.find(id);
  if (it == slot_of_.end()) return false;
  const size_t hole = it->second;
  const size_t last = ids_.size() - 1;
  slot_of_.erase(it);
  if (hole != last) {
    std::memcpy(data_.data() + hole * dimension_, data_.data() + last * dimension_,
                dimension_ * sizeof(float));
    ids_[hole] = ids_[last];
    slot_of_[ids_[hole]] = static_cast<uint32_t>(hole);
  }
  ids_.pop_back();
  data_.resize(last * dimension_);
  return true;
}

void FlatVectors::Scan(const float* unit_query, TopK& top) const {
  for (size_t i = 0; i < ids_.size(); ++i) {
    top.Offer(ids_[i], Dot(unit_query, vector_at(i), dimension_));
  }
}

size_t FlatVectors::memory_bytes() const {
  // unordered_map: a node (key, value, next, cached hash) plus a bucket.
  return data_.capacity() * sizeof(float) + ids_.capacity() * sizeof(uint64_t) +
         slot_of_.size() * 32 + slot_of_.bucket_count() * sizeof(void*);
}

void FlatVectors::Write(SnapshotWriter& w) const {
  w.Put(kFlatBlock);
  w.Put(static_cast<uint64_t>(ids_.size()));
  for (size_t i = 0; i < ids_.size(); ++i) {
    w.Put(ids_[i]);
    w.Write(vector_at(i), dimension_ * sizeof(float));
  }
}

Result<std::unique_ptr<FlatVectors>> FlatVectors::Read(size_t dimension, SnapshotReader& r) {
  uint64_t count = 0;
  if (!r.Get(&count)) return Err(Status::Corruption("vector index: truncated partition"));
  const uint64_t record = sizeof(uint64_t) + dimension * sizeof(float);
  if (count > r.remaining() / record || count > UINT32_MAX) {
    return Err(Status::Corruption("vector index: partition count exceeds the file"));
  }
  auto flat = std::make_unique<FlatVectors>(dimension);
  flat->ids_.resize(count);
  flat->data_.resize(count * dimension);
  flat->slot_of_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    float* v = flat->data_.data() + i * dimension;
    if (!r.Get(&flat->ids_[i]) || !r.Read(v, dimension * sizeof(float))) {
      return Err(Status::Corruption("vector index: truncated partition"));
    }
    if (!std::all_of(v, v + dimension, [](float x) { return std::isfinite(x); })) {
      return Err(Status::Corruption("vector index: non-finite value in snapshot"));
    }
    if (!flat->slot_of_.emplace(flat->ids_[i], static_cast<uint32_t>(i)).second) {
      return Err(Status::Corruption("vector index: duplicate id in snapshot"));
    }
  }
  return flat;
}

PartitionedIndex::PartitionedIndex(const VectorIndexOptions& options) : options_(options) {}

Status PartitionedIndex::CheckDimension(std::span<const float> v) const {
  if (v.size() == options_.dimension) return Status::OK();
  return Status::InvalidArgument("vector index: vector has " + std::to_string(v.size()) +
                                 " dimensions, index has " + std::to_string(options_.dimension));
}

Status PartitionedIndex::Add(std::string_view partition, uint64_t id,
                             std::span<const float> vector) {
  if (Status s = CheckDimension(vector); !s.ok()) return s;
  std::vector<float> unit(vector.size());
  if (!NormalizeInto(vector, unit.data())) {
    return Status::InvalidArgument("vector index: vector is zero or not finite");
  }
  for (;;) {
    std::shared_lock map_lock(map_mu_);
    auto it = partitions_.find(partition);
    if (it == partitions_.end()) {
      map_lock.unlock();
      std::unique_lock map_write(map_mu_);
      auto [slot, inserted] = partitions_.try_emplace(std::string(partition));
      if (inserted) {
        slot->second = std::make_shared<Slot>();
        slot->second->partition = NewPartition(partition);
      }
      // Look again under the shared lock: another writer may erase the
      // new, still empty slot in between.
      continue;
    }
    Slot& slot = *it->second;
    std::unique_lock lock(slot.mu);
    const size_t before = slot.partition->size();
    Status s = slot.partition->Add(id, unit.data());
    const size_t after = slot.partition->size();
    size_.fetch_add(after - before, std::memory_order_relaxed);
    lock.unlock();
    map_lock.unlock();
    if (after == 0) EraseIfEmpty(partition);  // a failed first Add leaves no empty slot
    return s;
  }
}

Status PartitionedIndex::Remove(std::string_view partition, uint64_t id) {
  bool empty = false;
  {
    std::shared_lock map_lock(map_mu_);
    auto it = partitions_.find(partition);
    if (it == partitions_.end()) return Status::OK();
    Slot& slot = *it->second;
    std::unique_lock lock(slot.mu);
    if (slot.partition->Remove(id)) size_.fetch_sub(1, std::memory_order_relaxed);
    empty = slot.partition->size() == 0;
  }
  if (empty) EraseIfEmpty(partition);
  return Status::OK();
}

// Context keys come and go; an empty partition should not cost memory
// forever.
void PartitionedIndex::EraseIfEmpty(std::string_view partition) {
  std::unique_lock map_write(map_mu_);
  auto it = partitions_.find(partition);
  if (it == partitions_.end()) return;
  std::unique_lock lock(it->second->mu);
  if (it->second->partition->size() != 0) return;
  lock.unlock();
  partitions_.erase(it);
}

Result<std::vector<IndexHit>> PartitionedIndex::Search(std::string_view partition,
                                                       std::span<const float> query,
                                                       size_t k) const {
  if (Status s = CheckDimension(query); !s.ok()) return Err(std::move(s));
  std::vector<float> unit(query.size());
  if (!NormalizeInto(query, unit.data())) {
    return Err(Status::InvalidArgument("vector index: query is zero or not finite"));
  }
  TopK top(k);
  if (k == 0) return top.Take();
  std::shared_lock map_lock(map_mu_);
  auto it = partitions_.find(partition);
  if (it == partitions_.end()) return top.Take();
  std::shared_lock lock(it->second->mu);
  it->second->partition->Search(unit.data(), top);
  return top.Take();
}

size_t PartitionedIndex::memory_bytes() const {
  std::shared_lock map_lock(map_mu_);
  size_t total = sizeof(*this) + partitions_.bucket_count() * sizeof(void*);
  for (const auto& [name, slot] : partitions_) {
    std::shared_lock lock(slot->mu);
    total += name.capacity() + sizeof(Slot) + 64 + slot->partition->memory_bytes();
  }
  return total;
}

Status PartitionedIndex::Save(const std::string& path) const {
  namespace fs = std::filesystem;
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (dir / (target.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = mkstemp(tmp.data());
  if (fd < 0) return Status::IOError("vector index: cannot create a file next to " + path);
  std::FILE* file = fdopen(fd, "wb");
  if (file == nullptr) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::IOError("vector index: cannot open " + tmp);
  }

  // Slots are copied out so that partitions can be created or erased while
  // the (possibly long) write runs; an erased one is empty and skipped.
  std::vector<std::pair<std::string, std::shared_ptr<Slot>>> slots;
  {
    std::shared_lock map_lock(map_mu_);
    slots.assign(partitions_.begin(), partitions_.end());
  }
  std::sort(slots.begin(), slots.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  SnapshotWriter w(file);
  w.Write(kMagic, sizeof kMagic);
  w.Put(kSnapshotVersion);
  w.Put(static_cast<uint32_t>(options_.dimension));
  w.Put(kind_code());
  w.Put(uint32_t{0});
  for (const auto& [name, slot] : slots) {
    std::shared_lock lock(slot->mu);
    if (slot->partition->size() == 0) continue;
    w.Put(kPartitionTag);
    w.Put(static_cast<uint32_t>(name.size()));
    w.Write(name.data(), name.size());
    slot->partition->Write(w);
  }
  w.Put(kEndTag);
  w.Finish();
  bool ok = w.ok() && std::fflush(file) == 0 && ::fsync(fileno(file)) == 0;
  ok = std::fclose(file) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::IOError("vector index: cannot write " + path);
  }
  return Status::OK();
}

Status PartitionedIndex::ReadPartitions(SnapshotReader& r) {
  for (;;) {
    uint8_t tag = 0;
    if (!r.Get(&tag)) return Status::Corruption("vector index: truncated snapshot");
    if (tag == kEndTag) break;
    if (tag != kPartitionTag) return Status::Corruption("vector index: bad partition tag");
    uint32_t name_size = 0;
    if (!r.Get(&name_size) || name_size > kMaxNameSize || name_size > r.remaining()) {
      return Status::Corruption("vector index: bad partition name");
    }
    std::string name(name_size, '\0');
    uint8_t mode = 0;
    if (!r.Read(name.data(), name_size) || !r.Get(&mode)) {
      return Status::Corruption("vector index: truncated snapshot");
    }
    auto partition = ReadPartition(name, mode, r);
    if (!partition) return partition.error();
    if ((*partition)->size() == 0) return Status::Corruption("vector index: empty partition");
    const size_t n = (*partition)->size();
    auto slot = std::make_shared<Slot>();
    slot->partition = std::move(*partition);
    if (!partitions_.emplace(std::move(name), std::move(slot)).second) {
      return Status::Corruption("vector index: duplicate partition");
    }
    size_.fetch_add(n, std::memory_order_relaxed);
  }
  if (!r.ChecksumMatches()) return Status::Corruption("vector index: checksum mismatch");
  return Status::OK();
}

}  // namespace vindex

namespace vindex {
namespace {

std::unique_ptr<PartitionedIndex> NewPartitionedIndex(const VectorIndexOptions& options) {
  if (options.dimension == 0) return nullptr;
  if (options.kind == "brute-force") return NewBruteForceIndex(options);
  if (options.kind == "hnsw") return NewHnswIndex(options);
  return nullptr;
}

}  // namespace
}  // namespace vindex

std::unique_ptr<VectorIndex> NewVectorIndex(const VectorIndexOptions& options) {
  return vindex::NewPartitionedIndex(options);
}

Result<std::unique_ptr<VectorIndex>> LoadVectorIndex(const VectorIndexOptions& options,
                                                     const std::string& path) {
  std::unique_ptr<vindex::PartitionedIndex> index = vindex::NewPartitionedIndex(options);
  if (!index) {
    return Err(Status::InvalidArgument("vector index: unknown kind '" + options.kind +
                                       "' or dimension 0"));
  }

  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return Err(Status::IOError("vector index: cannot open " + path));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(file, std::fclose);
  struct stat st {};
  if (::fstat(fileno(file), &st) != 0) return Err(Status::IOError("vector index: cannot stat"));
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  constexpr uint64_t kHeaderSize = sizeof(vindex::kMagic) + 4 * sizeof(uint32_t);
  if (file_size < kHeaderSize + 1 + sizeof(uint64_t)) {
    return Err(Status::Corruption("vector index: snapshot too short"));
  }
  vindex::SnapshotReader r(file, file_size - sizeof(uint64_t));
  char magic[sizeof(vindex::kMagic)];
  uint32_t version = 0, dimension = 0, kind = 0, reserved = 0;
  if (!r.Read(magic, sizeof magic) || !r.Get(&version) || !r.Get(&dimension) || !r.Get(&kind) ||
      !r.Get(&reserved)) {
    return Err(Status::Corruption("vector index: truncated header"));
  }
  if (std::memcmp(magic, vindex::kMagic, sizeof magic) != 0) {
    return Err(Status::Corruption("vector index: not a vector index snapshot"));
  }
  if (version != vindex::kSnapshotVersion) {
    return Err(Status::Corruption("vector index: unsupported snapshot version " +
                                  std::to_string(version)));
  }
  // A header damaged in exactly these fields is reported as a mismatch; the
  // caller rebuilds either way.
  if (dimension != options.dimension) {
    return Err(Status::InvalidArgument("vector index: snapshot has dimension " +
                                       std::to_string(dimension) + ", expected " +
                                       std::to_string(options.dimension)));
  }
  if (kind != index->kind_code()) {
    return Err(
        Status::InvalidArgument("vector index: snapshot is of another kind than " + options.kind));
  }
  if (Status s = index->ReadPartitions(r); !s.ok()) return Err(std::move(s));
  return std::unique_ptr<VectorIndex>(std::move(index));
}

}  // namespace llmcache
