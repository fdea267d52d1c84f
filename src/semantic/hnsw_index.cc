// The approximate index: hnswlib graphs over normalized vectors, where inner
// product equals cosine. A partition below exact_below keeps its vectors in
// a flat array and is scanned exactly (a graph over a few hundred vectors
// saves nothing and costs memory); it gets a graph when it reaches that size
// and drops it again below half of it.
//
// hnswlib (0.6) has no "replace deleted" mode: a removed vector is marked
// deleted and its slot is handed to the next new id by relabelling it and
// updating its vector in place, which is what later hnswlib versions do.
//
// This is the only file that includes hnswlib: its headers define non-inline
// functions.
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

#include "common/hash.h"
#include "semantic/kernels.h"
#include "semantic/vector_index_impl.h"

namespace llmcache::vindex {

size_t HnswSearchBeam(size_t live, size_t ef_search) {
  constexpr size_t kBase = 500'000;
  size_t beam = ef_search;
  for (size_t n = kBase; n < live && beam < (size_t{1} << 20); n *= 2) beam *= 2;
  return beam;
}

namespace {

using Graph = hnswlib::HierarchicalNSW<float>;
using hnswlib::tableint;

// Bounds on what a snapshot may ask for; far beyond anything Save writes.
constexpr size_t kMaxM = 4096;
constexpr size_t kMaxEfConstruction = 1 << 20;
constexpr uint32_t kMaxLevel = 64;

template <semantic::Isa isa>
float CosineDistance(const void* a, const void* b, const void* dimension) {
  return 1.0f - semantic::Dot(isa, static_cast<const float*>(a), static_cast<const float*>(b),
                              static_cast<int>(*static_cast<const size_t*>(dimension)));
}

// hnswlib's InnerProductSpace picks its SIMD width at compile time (SSE for
// a generic x86-64 build); this one uses the kernels' run-time choice.
class CosineSpace final : public hnswlib::SpaceInterface<float> {
 public:
  explicit CosineSpace(size_t dimension) : dimension_(dimension) {}
  size_t get_data_size() override { return dimension_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override {
    return semantic::BestIsa() == semantic::Isa::kGeneric ? &CosineDistance<semantic::Isa::kGeneric>
                                                          : &CosineDistance<semantic::Isa::kAvx2>;
  }
  void* get_dist_func_param() override { return &dimension_; }

 private:
  size_t dimension_;
};

// What every partition of one index shares; outlives the partitions.
struct HnswShared {
  VectorIndexOptions options;
  CosineSpace space;
};

class HnswPartition final : public Partition {
 public:
  HnswPartition(const HnswShared& shared, uint64_t seed)
      : shared_(shared), seed_(seed), flat_(std::make_unique<FlatVectors>(dimension())) {}

  Status Add(uint64_t id, const float* unit) override;
  bool Remove(uint64_t id) override;
  void Search(const float* unit_query, TopK& top) const override;
  size_t size() const override { return graph_ ? live_ : flat_->size(); }
  size_t memory_bytes() const override;
  void Write(SnapshotWriter& w) const override;

  // A flat block read from a snapshot; gets its graph now if it is large
  // enough under the current options.
  Status AdoptFlat(std::unique_ptr<FlatVectors> flat);
  // Reads a graph block (after its mode byte).
  Status ReadGraph(SnapshotReader& r);

 private:
  size_t dimension() const { return shared_.options.dimension; }
  size_t exact_below() const { return shared_.options.exact_below; }
  Result<std::unique_ptr<Graph>> NewGraph(size_t capacity, size_t m, size_t ef_construction) const;
  Status BuildGraph();
  void DropGraph();
  Status AddToGraph(uint64_t id, const float* unit);
  // Validates a graph read from a file before anything searches it.
  Status CheckGraph(const Graph& g) const;
  // Label lookup, deleted slots and live count, from the graph's own data.
  Status IndexGraph();

  const HnswShared& shared_;
  uint64_t seed_;
  // Exactly one of the two is set.
  std::unique_ptr<FlatVectors> flat_;
  std::unique_ptr<Graph> graph_;
  // Deleted slots of graph_ to reuse; may hold slots undeleted since (an id
  // re-added), which are skipped.
  std::vector<tableint> free_;
  size_t live_ = 0;
};

Result<std::unique_ptr<Graph>> HnswPartition::NewGraph(size_t capacity, size_t m,
                                                       size_t ef_construction) const {
  try {
    auto g = std::make_unique<Graph>(const_cast<CosineSpace*>(&shared_.space),
                                     std::max<size_t>(capacity, 16), m, ef_construction, seed_);
    g->setEf(shared_.options.hnsw_ef_search);
    return g;
  } catch (const std::exception& e) {
    return Err(Status::ResourceExhausted(std::string("vector index: ") + e.what()));
  }
}

Status HnswPartition::Add(uint64_t id, const float* unit) {
  if (graph_) return AddToGraph(id, unit);
  flat_->Put(id, unit);
  // The vector is stored either way: a build that fails (out of memory)
  // leaves the partition flat and exact, and the next Add tries again.
  if (flat_->size() >= exact_below()) (void)BuildGraph();
  return Status::OK();
}

Status HnswPartition::BuildGraph() {
  const auto& o = shared_.options;
  auto g = NewGraph(2 * flat_->size(), o.hnsw_m, o.hnsw_ef_construction);
  if (!g) return g.error();
  try {
    for (size_t i = 0; i < flat_->size(); ++i) (*g)->addPoint(flat_->vector_at(i), flat_->id_at(i));
  } catch (const std::exception& e) {
    return Status::ResourceExhausted(std::string("vector index: ") + e.what());
  }
  live_ = flat_->size();
  graph_ = std::move(*g);
  flat_.reset();
  free_.clear();
  return Status::OK();
}

void HnswPartition::DropGraph() {
  auto flat = std::make_unique<FlatVectors>(dimension());
  for (tableint i = 0; i < graph_->cur_element_count; ++i) {
    if (graph_->isMarkedDeleted(i)) continue;
    flat->Put(graph_->getExternalLabel(i),
              reinterpret_cast<const float*>(graph_->getDataByInternalId(i)));
  }
  flat_ = std::move(flat);
  graph_.reset();
  free_.clear();
  live_ = 0;
}

Status HnswPartition::AddToGraph(uint64_t id, const float* unit) {
  Graph& g = *graph_;
  try {
    if (auto it = g.label_lookup_.find(id); it != g.label_lookup_.end()) {
      if (g.isMarkedDeleted(it->second)) ++live_;
      g.addPoint(unit, id);  // an existing label: undeletes and moves it
      return Status::OK();
    }
    while (!free_.empty()) {
      const tableint slot = free_.back();
      free_.pop_back();
      if (!g.isMarkedDeleted(slot)) continue;
      g.label_lookup_.erase(g.getExternalLabel(slot));
      g.label_lookup_[id] = slot;
      g.setExternalLabel(slot, id);
      g.unmarkDeletedInternal(slot);
      g.updatePoint(unit, slot, 1.0f);
      ++live_;
      return Status::OK();
    }
    if (g.cur_element_count >= g.max_elements_) g.resizeIndex(2 * g.max_elements_);
    g.addPoint(unit, id);
    ++live_;
    return Status::OK();
  } catch (const std::exception& e) {
    return Status::ResourceExhausted(std::string("vector index: ") + e.what());
  }
}

bool HnswPartition::Remove(uint64_t id) {
  if (!graph_) return flat_->Erase(id);
  auto it = graph_->label_lookup_.find(id);
  if (it == graph_->label_lookup_.end() || graph_->isMarkedDeleted(it->second)) return false;
  graph_->markDeletedInternal(it->second);
  free_.push_back(it->second);
  --live_;
  if (live_ < exact_below() / 2) DropGraph();
  return true;
}

void HnswPartition::Search(const float* unit_query, TopK& top) const {
  if (!graph_) return flat_->Scan(unit_query, top);
  const Graph& g = *graph_;
  if (live_ < exact_below()) {
    for (tableint i = 0; i < g.cur_element_count; ++i) {
      if (g.isMarkedDeleted(i)) continue;
      top.Offer(
          g.getExternalLabel(i),
          Dot(unit_query, reinterpret_cast<const float*>(g.getDataByInternalId(i)), dimension()));
    }
    return;
  }
  // hnswlib keeps max(ef, k) candidates and returns the best k: asking for
  // more widens the beam; TopK keeps the best k of them.
  const size_t beam = HnswSearchBeam(live_, shared_.options.hnsw_ef_search);
  auto found = g.searchKnn(unit_query, beam > g.ef_ ? beam : top.k());
  while (!found.empty()) {
    top.Offer(found.top().second, 1.0f - found.top().first);
    found.pop();
  }
}

size_t HnswPartition::memory_bytes() const {
  if (!graph_) return flat_->memory_bytes();
  const Graph& g = *graph_;
  size_t upper = 0;
  for (tableint i = 0; i < g.cur_element_count; ++i) {
    if (g.element_levels_[i] > 0) upper += g.size_links_per_element_ * g.element_levels_[i] + 1;
  }
  // Level 0 (links, vector, label) is allocated for the whole capacity; the
  // per-element lock, level and pointer arrays too; one visited list.
  return g.max_elements_ * (g.size_data_per_element_ + sizeof(std::mutex) + sizeof(int) +
                            sizeof(void*) + sizeof(hnswlib::vl_type)) +
         upper + g.label_lookup_.size() * 32 + g.label_lookup_.bucket_count() * sizeof(void*) +
         Graph::max_update_element_locks * sizeof(std::mutex) + free_.capacity() * sizeof(tableint);
}

// Graph block: u8 kGraphBlock, u64 M, u64 ef_construction, u64 count,
// u64 bytes per level-0 element, u64 bytes per upper-level link list,
// i32 max level, u32 entry point, the level-0 memory of count elements,
// then per element u32 level and level upper link lists.
void HnswPartition::Write(SnapshotWriter& w) const {
  if (!graph_) return flat_->Write(w);
  const Graph& g = *graph_;
  w.Put(kGraphBlock);
  w.Put(static_cast<uint64_t>(g.M_));
  w.Put(static_cast<uint64_t>(g.ef_construction_));
  w.Put(static_cast<uint64_t>(g.cur_element_count));
  w.Put(static_cast<uint64_t>(g.size_data_per_element_));
  w.Put(static_cast<uint64_t>(g.size_links_per_element_));
  w.Put(static_cast<int32_t>(g.maxlevel_));
  w.Put(static_cast<uint32_t>(g.enterpoint_node_));
  w.Write(g.data_level0_memory_, g.cur_element_count * g.size_data_per_element_);
  for (tableint i = 0; i < g.cur_element_count; ++i) {
    const uint32_t level = static_cast<uint32_t>(g.element_levels_[i]);
    w.Put(level);
    if (level > 0) w.Write(g.linkLists_[i], g.size_links_per_element_ * level);
  }
}

Status HnswPartition::AdoptFlat(std::unique_ptr<FlatVectors> flat) {
  flat_ = std::move(flat);
  if (flat_->size() >= exact_below()) return BuildGraph();
  return Status::OK();
}

Status HnswPartition::ReadGraph(SnapshotReader& r) {
  const auto truncated = [] { return Status::Corruption("vector index: truncated graph"); };
  uint64_t m = 0, ef_construction = 0, count = 0, element_bytes = 0, links_bytes = 0;
  int32_t max_level = 0;
  uint32_t entry = 0;
  if (!r.Get(&m) || !r.Get(&ef_construction) || !r.Get(&count) || !r.Get(&element_bytes) ||
      !r.Get(&links_bytes) || !r.Get(&max_level) || !r.Get(&entry)) {
    return truncated();
  }
  if (m < 2 || m > kMaxM || ef_construction == 0 || ef_construction > kMaxEfConstruction) {
    return Status::Corruption("vector index: bad graph parameters");
  }
  // hnswlib's layout: a level-0 element is its link list (count word and
  // 2M links), the vector and the label; an upper list has M links.
  using hnswlib::linklistsizeint;
  const size_t expected_links = m * sizeof(tableint) + sizeof(linklistsizeint);
  const size_t expected_element = 2 * m * sizeof(tableint) + sizeof(linklistsizeint) +
                                  dimension() * sizeof(float) + sizeof(hnswlib::labeltype);
  if (element_bytes != expected_element || links_bytes != expected_links) {
    return Status::Corruption("vector index: graph layout does not match its dimension");
  }
  // Checked before anything is allocated for the graph.
  if (count == 0 || count >= UINT32_MAX || count > r.remaining() / element_bytes) {
    return Status::Corruption("vector index: bad graph size");
  }
  auto made = NewGraph(count, m, ef_construction);
  if (!made) return made.error();
  Graph& g = **made;
  if (g.size_data_per_element_ != element_bytes || g.size_links_per_element_ != links_bytes) {
    return Status::Internal("vector index: hnswlib's layout is not the expected one");
  }
  if (!r.Read(g.data_level0_memory_, count * element_bytes)) return truncated();
  // From here the graph owns what it holds: its destructor frees the upper
  // link lists of the first cur_element_count elements with a level > 0.
  g.cur_element_count = count;
  for (tableint i = 0; i < count; ++i) {
    uint32_t level = 0;
    if (!r.Get(&level)) return truncated();
    if (level > kMaxLevel) return Status::Corruption("vector index: bad graph level");
    if (level == 0) continue;
    const size_t bytes = links_bytes * level;
    if (bytes > r.remaining()) return truncated();
    char* lists = static_cast<char*>(std::malloc(bytes + 1));
    if (lists == nullptr) return Status::ResourceExhausted("vector index: out of memory");
    g.linkLists_[i] = lists;
    g.element_levels_[i] = static_cast<int>(level);
    if (!r.Read(lists, bytes)) return truncated();
  }
  if (entry >= count || max_level < 0 || g.element_levels_[entry] != max_level) {
    return Status::Corruption("vector index: bad graph entry point");
  }
  g.enterpoint_node_ = entry;
  g.maxlevel_ = max_level;
  if (Status s = CheckGraph(g); !s.ok()) return s;
  graph_ = std::move(*made);
  flat_.reset();
  return IndexGraph();
}

Status HnswPartition::CheckGraph(const Graph& g) const {
  const size_t n = g.cur_element_count;
  for (tableint i = 0; i < n; ++i) {
    const int levels = g.element_levels_[i];
    if (levels > g.maxlevel_) return Status::Corruption("vector index: bad graph level");
    for (int level = 0; level <= levels; ++level) {
      hnswlib::linklistsizeint* list = g.get_linklist_at_level(i, level);
      const size_t links = g.getListCount(list);
      if (links > (level == 0 ? g.maxM0_ : g.maxM_)) {
        return Status::Corruption("vector index: bad graph link count");
      }
      const tableint* targets = reinterpret_cast<const tableint*>(list + 1);
      for (size_t j = 0; j < links; ++j) {
        // A search at `level` follows the link and reads the target's list
        // at the same level.
        if (targets[j] >= n || g.element_levels_[targets[j]] < level) {
          return Status::Corruption("vector index: bad graph link");
        }
      }
    }
    const float* v = reinterpret_cast<const float*>(g.getDataByInternalId(i));
    if (!std::all_of(v, v + dimension(), [](float x) { return std::isfinite(x); })) {
      return Status::Corruption("vector index: non-finite value in snapshot");
    }
  }
  return Status::OK();
}

Status HnswPartition::IndexGraph() {
  Graph& g = *graph_;
  g.label_lookup_.reserve(g.cur_element_count);
  g.num_deleted_ = 0;
  free_.clear();
  for (tableint i = 0; i < g.cur_element_count; ++i) {
    if (!g.label_lookup_.emplace(g.getExternalLabel(i), i).second) {
      return Status::Corruption("vector index: duplicate id in snapshot");
    }
    if (g.isMarkedDeleted(i)) {
      ++g.num_deleted_;
      free_.push_back(i);
    }
  }
  live_ = g.cur_element_count - g.num_deleted_;
  return Status::OK();
}

class HnswIndex final : public PartitionedIndex {
 public:
  explicit HnswIndex(const VectorIndexOptions& options)
      : PartitionedIndex(options), shared_{options, CosineSpace(options.dimension)} {}
  const char* Name() const override { return "hnsw"; }
  uint32_t kind_code() const override { return kKindHnsw; }

 protected:
  std::unique_ptr<Partition> NewPartition(std::string_view name) const override {
    return NewHnswPartition(name);
  }

  Result<std::unique_ptr<Partition>> ReadPartition(std::string_view name, uint8_t mode,
                                                   SnapshotReader& r) const override {
    auto partition = NewHnswPartition(name);
    Status s;
    if (mode == kFlatBlock) {
      auto flat = FlatVectors::Read(dimension(), r);
      if (!flat) return Err(flat.error());
      s = partition->AdoptFlat(std::move(*flat));
    } else if (mode == kGraphBlock) {
      s = partition->ReadGraph(r);
    } else {
      s = Status::Corruption("vector index: bad partition mode");
    }
    if (!s.ok()) return Err(std::move(s));
    return std::unique_ptr<Partition>(std::move(partition));
  }

 private:
  // Each partition's graph levels come from its own seed, so a partition's
  // graph does not depend on which other partitions exist.
  std::unique_ptr<HnswPartition> NewHnswPartition(std::string_view name) const {
    return std::make_unique<HnswPartition>(shared_, options().seed ^ Xxh3(name));
  }

  HnswShared shared_;
};

}  // namespace

std::unique_ptr<PartitionedIndex> NewHnswIndex(const VectorIndexOptions& options) {
  return std::make_unique<HnswIndex>(options);
}

}  // namespace llmcache::vindex
