// The exact reference index: every search scans the whole partition.
#include "semantic/vector_index_impl.h"

namespace llmcache::vindex {
namespace {

class FlatPartition final : public Partition {
 public:
  explicit FlatPartition(std::unique_ptr<FlatVectors> vectors) : vectors_(std::move(vectors)) {}

  Status Add(uint64_t id, const float* unit) override {
    vectors_->Put(id, unit);
    return Status::OK();
  }
  bool Remove(uint64_t id) override { return vectors_->Erase(id); }
  void Search(const float* unit_query, TopK& top) const override {
    vectors_->Scan(unit_query, top);
  }
  size_t size() const override { return vectors_->size(); }
  size_t memory_bytes() const override { return vectors_->memory_bytes(); }
  void Write(SnapshotWriter& w) const override { vectors_->Write(w); }

 private:
  std::unique_ptr<FlatVectors> vectors_;
};

class BruteForceIndex final : public PartitionedIndex {
 public:
  using PartitionedIndex::PartitionedIndex;
  const char* Name() const override { return "brute-force"; }
  uint32_t kind_code() const override { return kKindBruteForce; }

 protected:
  std::unique_ptr<Partition> NewPartition(std::string_view) const override {
    return std::make_unique<FlatPartition>(std::make_unique<FlatVectors>(dimension()));
  }

  Result<std::unique_ptr<Partition>> ReadPartition(std::string_view, uint8_t mode,
                                                   SnapshotReader& r) const override {
    if (mode != kFlatBlock) return Err(Status::Corruption("vector index: bad partition mode"));
    auto vectors = FlatVectors::Read(dimension(), r);
    if (!vectors) return Err(vectors.error());
    return std::unique_ptr<Partition>(std::make_unique<FlatPartition>(std::move(*vectors)));
  }
};

}  // namespace

std::unique_ptr<PartitionedIndex> NewBruteForceIndex(const VectorIndexOptions& options) {
  return std::make_unique<BruteForceIndex>(options);
}

}  // namespace llmcache::vindex
