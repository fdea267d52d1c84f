#include "store/rocksdb_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <limits>
#include <mutex>
#include <new>
#include <queue>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "llmcache/store.h"
#include "store/access_tracking.h"
#include "store/entry_codec.h"
#include "store/expiry_internal.h"

namespace llmcache {
namespace {

constexpr uint8_t kAccessFormatV1 = 0xA1;
constexpr size_t kAccessRecordSize = 1 + 8 + 4 + 8 + 8 + 8 + 1 + 8;
// Records looked at per Maintain() for expiry; the sweep resumes where the
// previous call stopped, so a large store is covered over several calls
// while each call stays a few milliseconds.
constexpr size_t kSweepBatch = 10000;
// Victims chosen per eviction scan; bounds the scan's memory.
constexpr size_t kMaxVictimsPerScan = 1 << 18;
constexpr size_t kStripes = 64;
constexpr size_t kBlockCacheBytes = 32 << 20;

template <class T>
void PutFixed(std::string* out, T v) {
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(v);
  for (size_t i = 0; i < sizeof(U); ++i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

template <class T>
T GetFixed(const char* p) {
  using U = std::make_unsigned_t<T>;
  U u = 0;
  for (size_t i = 0; i < sizeof(U); ++i) u |= static_cast<U>(static_cast<uint8_t>(p[i])) << (8 * i);
  return static_cast<T>(u);
}

struct AccessRecord {
  int64_t last_access_ms = 0;
  uint32_t hit_count = 0;
  uint64_t bytes = 0;  // accounted against max_disk_bytes
  int64_t created_ms = 0;
  int64_t ttl_ms = 0;
  bool ttl_fixed = false;

  ExpiryFields Fields() const { return {created_ms, last_access_ms, ttl_ms, ttl_fixed, hit_count}; }

  static AccessRecord Of(const CacheEntry& e, uint64_t bytes) {
    return {e.last_access_ms, e.hit_count, bytes, e.created_ms, e.ttl_ms, e.ttl_fixed};
  }

  std::string Encode() const {
    std::string out;
    out.reserve(kAccessRecordSize);
    out.push_back(static_cast<char>(kAccessFormatV1));
    PutFixed<int64_t>(&out, last_access_ms);
    PutFixed<uint32_t>(&out, hit_count);
    PutFixed<uint64_t>(&out, bytes);
    PutFixed<int64_t>(&out, created_ms);
    PutFixed<int64_t>(&out, ttl_ms);
    out.push_back(ttl_fixed ? 1 : 0);
    PutFixed<uint64_t>(&out, Xxh3(out));
    return out;
  }

  bool Decode(std::string_view in) {
    if (in.size() != kAccessRecordSize || static_cast<uint8_t>(in[0]) != kAccessFormatV1) {
      return false;
    }
    const char* p = in.data();
    if (GetFixed<uint64_t>(p + kAccessRecordSize - 8) !=
        Xxh3(in.substr(0, kAccessRecordSize - 8))) {
      return false;
    }
    const uint8_t fixed = static_cast<uint8_t>(p[37]);
    if (fixed > 1) return false;
    last_access_ms = GetFixed<int64_t>(p + 1);
    hit_count = GetFixed<uint32_t>(p + 9);
    bytes = GetFixed<uint64_t>(p + 13);
    created_ms = GetFixed<int64_t>(p + 21);
    ttl_ms = GetFixed<int64_t>(p + 29);
    ttl_fixed = fixed == 1;
    return true;
  }
};

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  std::string msg = "rocksdb " + std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return Status::Corruption(std::move(msg));
  if (s.IsNotFound()) return Status::NotFound(std::move(msg));
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return Status::Unavailable(std::move(msg));
  if (s.IsNoSpace()) return Status::ResourceExhausted(std::move(msg));
  return Status::IOError(std::move(msg));
}

rocksdb::ColumnFamilyOptions TunedCfOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                            size_t block_size, size_t write_buffer_size) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.block_size = block_size;
  // Most lookups of a cache are misses; a bloom filter answers them without
  // touching data blocks.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Index and filter blocks count against the cache, so memory stays bounded
  // however large the database grows; L0's stay pinned because every
  // lookup consults them.
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Partitioned: with a million entries a file's whole index and filter
  // grow past what the cache keeps, and a point read that must re-read and
  // checksum a megabyte-sized index block costs milliseconds. Partitions
  // are block-sized; only their small top level stays pinned.
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.write_buffer_size = write_buffer_size;
  cf.level_compaction_dynamic_level_bytes = true;

  const auto supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType t) {
    return std::find(supported.begin(), supported.end(), t) != supported.end();
  };
  // JSON compresses well; LZ4 is cheap enough for the write path and ZSTD
  // pays off on the bottommost level, which holds most of the data.
  cf.compression = has(rocksdb::kLZ4Compression) ? rocksdb::kLZ4Compression
                   : has(rocksdb::kZSTD)         ? rocksdb::kZSTD
                                                 : rocksdb::kNoCompression;
  cf.bottommost_compression = has(rocksdb::kZSTD) ? rocksdb::kZSTD : cf.compression;
  return cf;
}

// Orders eviction candidates oldest first; the key breaks ties so that the
// choice is deterministic.
struct Candidate {
  int64_t last_access_ms;
  uint64_t bytes;
  std::string key;
  bool operator<(const Candidate& o) const {
    return last_access_ms != o.last_access_ms ? last_access_ms < o.last_access_ms : key < o.key;
  }
};

class RocksDbStore final : public Store, public AccessSink {
 public:
  explicit RocksDbStore(RocksDbStoreOptions options)
      : options_(std::move(options)), clock_(options_.clock ? options_.clock : SystemClock()) {
    insert_options_.sync = options_.sync_writes;
  }

  ~RocksDbStore() override {
    if (!db_) return;
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }

  Status Open();

  const char* Name() const override { return "rocksdb"; }
  Result<StoreHit> Lookup(std::string_view key) override;
  Status Insert(std::shared_ptr<const CacheEntry> entry) override;
  Status Erase(std::string_view key) override;
  Result<uint64_t> EraseIf(const std::function<bool(const CacheEntry&)>& pred) override;
  Status Maintain() override;
  StoreStats Stats() const override;

  Status RecordAccess(const std::vector<AccessUpdate>& updates) override;
  void SetAccessOracle(AccessOracle oracle) override { oracle_ = std::move(oracle); }

 private:
  enum class RecordState { kAbsent, kValid, kCorrupt };

  static size_t StripeIndex(std::string_view key) { return Xxh3(key) % kStripes; }
  std::mutex& StripeFor(std::string_view key) { return stripes_[StripeIndex(key)]; }

  // Reads key's access record. IOError only when RocksDB itself failed.
  Result<RecordState> ReadRecord(std::string_view key, AccessRecord* rec);
  // Raises rec's access data to what the outer tier knows.
  void MergeOracle(std::string_view key, AccessRecord* rec) const;
  // Deletes both halves of key; uncounts rec when it was counted. Caller
  // holds key's stripe.
  Status DeleteLocked(std::string_view key, const AccessRecord* rec);
  // Deletes key if, re-read under its stripe, it is still expired.
  Status ExpireIfStill(std::string_view key, int64_t now, bool* expired);
  Status DropCorruptLocked(std::string_view key, const AccessRecord* rec);

  // Both need maintain_mu_.
  Status SweepExpiredLocked(int64_t now);
  Status EvictLocked(int64_t now);

  Result<StoreHit> LookupImpl(std::string_view key);
  Status InsertImpl(std::shared_ptr<const CacheEntry> entry);
  Result<uint64_t> EraseIfImpl(const std::function<bool(const CacheEntry&)>& pred);
  Status MaintainImpl();

  const RocksDbStoreOptions options_;
  const std::shared_ptr<Clock> clock_;
  rocksdb::WriteOptions insert_options_;
  rocksdb::WriteOptions write_options_;  // access updates and deletes: WAL, no fsync
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* entries_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* access_cf_ = nullptr;
  AccessOracle oracle_;

  // Serialises each key's read-modify-write of its access record against
  // Insert/Erase of the same key, which keeps the byte totals exact.
  std::array<std::mutex, kStripes> stripes_;
  // Per stripe, guarded by it: the last key a Lookup found absent, which
  // spares the Insert that typically follows a miss its read of the old
  // access record. Both halves of an entry are written and deleted in one
  // batch, so an absent entry means an absent record; every write of a key
  // under its stripe clears a hint naming it (only Insert can create one).
  std::array<std::string, kStripes> absent_hint_;
  std::mutex maintain_mu_;
  std::string sweep_cursor_;  // guarded by maintain_mu_

  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> expirations_{0};
  std::atomic<uint64_t> corrupt_dropped_{0};
};

Status RocksDbStore::Open() {
  std::error_code ec;
  std::filesystem::create_directories(options_.path, ec);
  if (ec)
    return Status::IOError("rocksdb store: cannot create " + options_.path + ": " + ec.message());

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.keep_log_file_num = 4;
  db_options.max_background_jobs = 2;
  // Lookups rewrite access records, so the WAL grows with reads; capping it
  // forces flushes and bounds both its disk use and recovery time.
  db_options.max_total_wal_size = 256 << 20;

  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(db_options, options_.path, &names).ok()) names.clear();
  for (const char* required : {rocksdb::kDefaultColumnFamilyName.c_str(),
                               kRocksDbEntriesColumnFamily, kRocksDbAccessColumnFamily}) {
    if (std::find(names.begin(), names.end(), required) == names.end())
      names.emplace_back(required);
  }

  auto cache = rocksdb::NewLRUCache(kBlockCacheBytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) {
    if (name == kRocksDbEntriesColumnFamily) {
      // Values are whole responses (KiBs); larger blocks compress better.
      descriptors.emplace_back(name, TunedCfOptions(cache, 16 << 10, 32 << 20));
    } else if (name == kRocksDbAccessColumnFamily) {
      descriptors.emplace_back(name, TunedCfOptions(cache, 4 << 10, 16 << 20));
    } else {
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options_.path, descriptors, &handles_, &raw);
  if (!s.ok()) return FromRocks(s, "open " + options_.path);
  db_.reset(raw);
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == kRocksDbEntriesColumnFamily) entries_cf_ = handles_[i];
    if (names[i] == kRocksDbAccessColumnFamily) access_cf_ = handles_[i];
  }

  // Rebuild the totals from the small access records (never the blobs).
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::vector<std::string> corrupt;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, access_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      AccessRecord rec;
      if (rec.Decode(std::string_view(it->value().data(), it->value().size()))) {
        entries_.fetch_add(1, std::memory_order_relaxed);
        bytes_.fetch_add(rec.bytes, std::memory_order_relaxed);
      } else {
        corrupt.push_back(it->key().ToString());
      }
    }
    if (!it->status().ok()) return FromRocks(it->status(), "scan access records");
  }
  for (const auto& key : corrupt) {
    std::lock_guard lock(StripeFor(key));
    Status st = DropCorruptLocked(key, nullptr);
    if (!st.ok()) return st;
  }
  return Status::OK();
}

Result<RocksDbStore::RecordState> RocksDbStore::ReadRecord(std::string_view key,
                                                           AccessRecord* rec) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), access_cf_, rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return RecordState::kAbsent;
  if (!s.ok()) return Err(FromRocks(s, "read access record"));
  return rec->Decode(value) ? RecordState::kValid : RecordState::kCorrupt;
}

void RocksDbStore::MergeOracle(std::string_view key, AccessRecord* rec) const {
  if (!oracle_) return;
  try {
    if (auto a = oracle_(key)) {
      rec->last_access_ms = std::max(rec->last_access_ms, a->last_access_ms);
      rec->hit_count = std::max(rec->hit_count, a->hit_count);
    }
  } catch (...) {
    // Without the outer tier's view we decide on our own (staler) data.
  }
}

Status RocksDbStore::DeleteLocked(std::string_view key, const AccessRecord* rec) {
  rocksdb::WriteBatch batch;
  const rocksdb::Slice k(key.data(), key.size());
  batch.Delete(entries_cf_, k);
  batch.Delete(access_cf_, k);
  rocksdb::Status s = db_->Write(write_options_, &batch);
  if (!s.ok()) return FromRocks(s, "delete");
  if (rec) {
    entries_.fetch_sub(1, std::memory_order_relaxed);
    bytes_.fetch_sub(rec->bytes, std::memory_order_relaxed);
  }
  return Status::OK();
}

Status RocksDbStore::DropCorruptLocked(std::string_view key, const AccessRecord* rec) {
  Status s = DeleteLocked(key, rec);
  if (s.ok()) corrupt_dropped_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

Result<StoreHit> RocksDbStore::Lookup(std::string_view key) {
  try {
    return LookupImpl(key);
  } catch (const std::bad_alloc&) {
    return Err(Status::ResourceExhausted("rocksdb store: out of memory"));
  } catch (...) {
    return Err(Status::Internal("rocksdb store: unexpected exception in Lookup"));
  }
}

Result<StoreHit> RocksDbStore::LookupImpl(std::string_view key) {
  const int64_t now = clock_->NowMillis();
  const rocksdb::Slice k(key.data(), key.size());
  const size_t stripe = StripeIndex(key);
  std::lock_guard lock(stripes_[stripe]);

  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), entries_cf_, k, &value);
  if (s.IsNotFound()) {
    absent_hint_[stripe].assign(key);
    return Err(Status::NotFound());
  }
  if (s.IsCorruption()) {
    // RocksDB's own block checksum failed: same outcome as ours.
    AccessRecord rec;
    auto state = ReadRecord(key, &rec);
    (void)DropCorruptLocked(key, state && *state == RecordState::kValid ? &rec : nullptr);
    return Err(FromRocks(s, "read entry"));
  }
  if (!s.ok()) return Err(FromRocks(s, "read entry"));

  AccessRecord rec;
  auto state = ReadRecord(key, &rec);
  if (!state) return Err(state.error());
  const bool counted = *state == RecordState::kValid;
  auto decoded = DecodeEntry(std::string_view(value.data(), value.size()));
  if (!decoded || *state == RecordState::kCorrupt || decoded->key != key) {
    Status dropped = DropCorruptLocked(key, counted ? &rec : nullptr);
    if (!dropped.ok()) return Err(dropped);
    return Err(decoded ? Status::Corruption("rocksdb store: entry record does not match its key")
                       : decoded.error());
  }
  CacheEntry& e = *decoded;
  if (counted) {
    e.last_access_ms = rec.last_access_ms;
    e.hit_count = rec.hit_count;
  } else {
    // An entry without its access record (written by another tool, or half
    // of a pair lost to corruption): adopt it and start accounting for it.
    rec = AccessRecord::Of(e, k.size() + value.size() + kAccessRecordSize);
  }
  if (IsExpired(ExpiryFields::Of(e), options_.expiry, now)) {
    Status st = DeleteLocked(key, counted ? &rec : nullptr);
    if (!st.ok()) return Err(st);
    expirations_.fetch_add(1, std::memory_order_relaxed);
    return Err(Status::NotFound("expired"));
  }
  e.last_access_ms = std::max(e.last_access_ms, now);
  if (e.hit_count != std::numeric_limits<uint32_t>::max()) ++e.hit_count;
  rec.last_access_ms = e.last_access_ms;
  rec.hit_count = e.hit_count;
  s = db_->Put(write_options_, access_cf_, k, rec.Encode());
  // A failed access write loses one read's recency, not the entry: still a
  // hit.
  if (s.ok() && !counted) {
    entries_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(rec.bytes, std::memory_order_relaxed);
  }
  // Not a const object: an outer tier may adopt it (see MemoryStore).
  return StoreHit{std::make_shared<CacheEntry>(std::move(e)), Name()};
}

Status RocksDbStore::Insert(std::shared_ptr<const CacheEntry> entry) {
  try {
    return InsertImpl(std::move(entry));
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("rocksdb store: out of memory");
  } catch (...) {
    return Status::Internal("rocksdb store: unexpected exception in Insert");
  }
}

Status RocksDbStore::InsertImpl(std::shared_ptr<const CacheEntry> entry) {
  if (!entry) return Status::InvalidArgument("rocksdb store: null entry");
  if (entry->key.empty()) return Status::InvalidArgument("rocksdb store: empty key");
  std::string value;
  Status st = EncodeEntry(*entry, &value);
  if (!st.ok()) return st;
  const uint64_t size = entry->key.size() + value.size() + kAccessRecordSize;
  if (size > options_.max_disk_bytes) {
    return Status::ResourceExhausted("rocksdb store: entry of " + std::to_string(size) +
                                     " bytes exceeds the bound of " +
                                     std::to_string(options_.max_disk_bytes));
  }
  const AccessRecord rec = AccessRecord::Of(*entry, size);
  const rocksdb::Slice k(entry->key);
  {
    const size_t stripe = StripeIndex(entry->key);
    std::lock_guard lock(stripes_[stripe]);
    AccessRecord old;
    Result<RecordState> state = RecordState::kAbsent;
    if (absent_hint_[stripe] != entry->key) state = ReadRecord(entry->key, &old);
    absent_hint_[stripe].clear();
    if (!state) return state.error();
    rocksdb::WriteBatch batch;
    batch.Put(entries_cf_, k, value);
    batch.Put(access_cf_, k, rec.Encode());
    rocksdb::Status s = db_->Write(insert_options_, &batch);
    if (!s.ok()) return FromRocks(s, "insert");
    if (*state == RecordState::kValid) {
      bytes_.fetch_sub(old.bytes, std::memory_order_relaxed);
    } else {
      entries_.fetch_add(1, std::memory_order_relaxed);
    }
    bytes_.fetch_add(size, std::memory_order_relaxed);
  }
  if (bytes_.load(std::memory_order_relaxed) > options_.max_disk_bytes) {
    // If another thread is already maintaining, it will see our bytes (or
    // the next Insert/Maintain will); waiting for its scan gains nothing.
    std::unique_lock lock(maintain_mu_, std::try_to_lock);
    if (lock.owns_lock()) {
      Status evicted = EvictLocked(clock_->NowMillis());
      // The entry is durably stored; a failed eviction is for Maintain to
      // retry, not a failed Insert.
      (void)evicted;
    }
  }
  return Status::OK();
}

Status RocksDbStore::Erase(std::string_view key) {
  try {
    std::lock_guard lock(StripeFor(key));
    AccessRecord rec;
    auto state = ReadRecord(key, &rec);
    if (!state) return state.error();
    return DeleteLocked(key, *state == RecordState::kValid ? &rec : nullptr);
  } catch (...) {
    return Status::Internal("rocksdb store: unexpected exception in Erase");
  }
}

Result<uint64_t> RocksDbStore::EraseIf(const std::function<bool(const CacheEntry&)>& pred) {
  try {
    return EraseIfImpl(pred);
  } catch (const std::bad_alloc&) {
    return Err(Status::ResourceExhausted("rocksdb store: out of memory"));
  } catch (...) {
    return Err(Status::Internal("rocksdb store: EraseIf predicate or scan threw"));
  }
}

Result<uint64_t> RocksDbStore::EraseIfImpl(const std::function<bool(const CacheEntry&)>& pred) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a purge scan must not flush the hot set out of the cache
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, entries_cf_));
  uint64_t erased = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string key = it->key().ToString();
    auto decoded = DecodeEntry(std::string_view(it->value().data(), it->value().size()));
    bool erase = false;
    if (decoded && decoded->key == key) {
      AccessRecord rec;
      auto state = ReadRecord(key, &rec);
      if (!state) return Err(state.error());
      if (*state == RecordState::kValid) {
        decoded->last_access_ms = rec.last_access_ms;
        decoded->hit_count = rec.hit_count;
      }
      // No lock is held while pred runs, so it may do anything, even call
      // this store.
      erase = pred(*decoded);
      if (!erase) continue;
    }
    std::lock_guard lock(StripeFor(key));
    if (!erase) {
      // Corrupt in the scan's snapshot; drop it unless rewritten since.
      rocksdb::PinnableSlice now_value;
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), entries_cf_, key, &now_value);
      if (s.IsNotFound()) continue;
      auto again = DecodeEntry(std::string_view(now_value.data(), now_value.size()));
      if (s.ok() && again && again->key == key) continue;
    }
    AccessRecord rec;
    auto state = ReadRecord(key, &rec);
    if (!state) return Err(state.error());
    const AccessRecord* counted = *state == RecordState::kValid ? &rec : nullptr;
    Status st = erase ? DeleteLocked(key, counted) : DropCorruptLocked(key, counted);
    if (!st.ok()) return Err(st);
    if (erase) ++erased;
  }
  if (!it->status().ok()) return Err(FromRocks(it->status(), "scan entries"));
  return erased;
}

Status RocksDbStore::ExpireIfStill(std::string_view key, int64_t now, bool* expired) {
  *expired = false;
  std::lock_guard lock(StripeFor(key));
  AccessRecord rec;
  auto state = ReadRecord(key, &rec);
  if (!state) return state.error();
  if (*state == RecordState::kAbsent) return Status::OK();
  if (*state == RecordState::kCorrupt) return DropCorruptLocked(key, nullptr);
  MergeOracle(key, &rec);
  if (!IsExpired(rec.Fields(), options_.expiry, now)) return Status::OK();
  Status s = DeleteLocked(key, &rec);
  if (s.ok()) {
    expirations_.fetch_add(1, std::memory_order_relaxed);
    *expired = true;
  }
  return s;
}

Status RocksDbStore::SweepExpiredLocked(int64_t now) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, access_cf_));
  const std::string start = sweep_cursor_;
  bool wrapped = start.empty();
  it->Seek(start);
  size_t scanned = 0;
  while (true) {
    if (!it->Valid()) {
      if (!it->status().ok()) return FromRocks(it->status(), "sweep");
      if (wrapped) {
        sweep_cursor_.clear();
        return Status::OK();
      }
      wrapped = true;
      it->SeekToFirst();
      continue;
    }
    const std::string_view key(it->key().data(), it->key().size());
    if (wrapped && !start.empty() && key >= start) {
      sweep_cursor_.clear();  // a full cycle: start over next time
      return Status::OK();
    }
    if (scanned == kSweepBatch) {
      sweep_cursor_.assign(key);
      return Status::OK();
    }
    ++scanned;
    AccessRecord rec;
    bool maybe_expired = true;  // corrupt records are re-read and dropped
    if (rec.Decode(std::string_view(it->value().data(), it->value().size()))) {
      MergeOracle(key, &rec);
      maybe_expired = IsExpired(rec.Fields(), options_.expiry, now);
    }
    if (maybe_expired) {
      bool expired = false;
      Status s = ExpireIfStill(key, now, &expired);
      if (!s.ok()) return s;
    }
    it->Next();
  }
}

Status RocksDbStore::EvictLocked(int64_t now) {
  const uint64_t bound = options_.max_disk_bytes;
  const uint64_t target =
      static_cast<uint64_t>(static_cast<double>(bound) * kRocksDbEvictTargetFraction);
  // Each round scans all access records once, keeping only the oldest
  // entries that together cover the excess; rounds repeat only if the
  // victims were re-read in between or the victim cap was hit.
  for (int round = 0; round < 8 && bytes_.load(std::memory_order_relaxed) > bound; ++round) {
    std::priority_queue<Candidate> oldest;  // max-heap: top is the newest kept
    uint64_t kept_bytes = 0;
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, access_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      AccessRecord rec;
      bool decoded = rec.Decode(std::string_view(it->value().data(), it->value().size()));
      if (decoded) MergeOracle(key, &rec);
      if (!decoded || IsExpired(rec.Fields(), options_.expiry, now)) {
        // Expired space is free space: reclaim it before evicting live data.
        bool expired = false;
        Status s = ExpireIfStill(key, now, &expired);
        if (!s.ok()) return s;
        continue;
      }
      const uint64_t total = bytes_.load(std::memory_order_relaxed);
      const uint64_t need = total > target ? total - target : 0;
      oldest.push(Candidate{rec.last_access_ms, rec.bytes, std::string(key)});
      kept_bytes += rec.bytes;
      while (!oldest.empty() &&
             (oldest.size() > kMaxVictimsPerScan || kept_bytes - oldest.top().bytes >= need)) {
        kept_bytes -= oldest.top().bytes;
        oldest.pop();
      }
    }
    if (!it->status().ok()) return FromRocks(it->status(), "eviction scan");
    it.reset();

    std::vector<Candidate> victims;
    victims.reserve(oldest.size());
    while (!oldest.empty()) {
      victims.push_back(std::move(const_cast<Candidate&>(oldest.top())));
      oldest.pop();
    }
    bool progress = false;
    for (auto v = victims.rbegin(); v != victims.rend(); ++v) {  // oldest first
      if (bytes_.load(std::memory_order_relaxed) <= target) break;
      std::lock_guard lock(StripeFor(v->key));
      AccessRecord rec;
      auto state = ReadRecord(v->key, &rec);
      if (!state) return state.error();
      if (*state != RecordState::kValid) continue;
      MergeOracle(v->key, &rec);
      // Read (or replaced) since the scan: no longer the oldest.
      if (rec.last_access_ms != v->last_access_ms) continue;
      Status s = DeleteLocked(v->key, &rec);
      if (!s.ok()) return s;
      evictions_.fetch_add(1, std::memory_order_relaxed);
      progress = true;
    }
    if (!progress) break;
  }
  return Status::OK();
}

Status RocksDbStore::Maintain() {
  try {
    return MaintainImpl();
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("rocksdb store: out of memory");
  } catch (...) {
    return Status::Internal("rocksdb store: unexpected exception in Maintain");
  }
}

Status RocksDbStore::MaintainImpl() {
  std::lock_guard lock(maintain_mu_);
  const int64_t now = clock_->NowMillis();
  Status s = SweepExpiredLocked(now);
  if (!s.ok()) return s;
  if (bytes_.load(std::memory_order_relaxed) > options_.max_disk_bytes) return EvictLocked(now);
  return Status::OK();
}

StoreStats RocksDbStore::Stats() const {
  StoreStats st;
  st.entries = entries_.load(std::memory_order_relaxed);
  st.bytes = bytes_.load(std::memory_order_relaxed);
  st.evictions = evictions_.load(std::memory_order_relaxed);
  st.expirations = expirations_.load(std::memory_order_relaxed);
  st.corrupt_dropped = corrupt_dropped_.load(std::memory_order_relaxed);
  return st;
}

Status RocksDbStore::RecordAccess(const std::vector<AccessUpdate>& updates) {
  try {
    // One write per stripe rather than per key: a shutdown flush can carry
    // a million updates. Each stripe's reads and its write happen under the
    // stripe's lock, so a concurrent delete cannot be undone by a stale put.
    std::vector<const AccessUpdate*> order;
    order.reserve(updates.size());
    for (const auto& u : updates) order.push_back(&u);
    std::stable_sort(order.begin(), order.end(), [](const AccessUpdate* a, const AccessUpdate* b) {
      return StripeIndex(a->key) < StripeIndex(b->key);
    });
    Status first_error;
    for (size_t begin = 0; begin < order.size();) {
      const size_t stripe = StripeIndex(order[begin]->key);
      size_t end = begin;
      while (end < order.size() && StripeIndex(order[end]->key) == stripe) ++end;
      std::lock_guard lock(stripes_[stripe]);
      rocksdb::WriteBatch batch;
      // Later updates of a key in this call must see the earlier ones.
      std::unordered_map<std::string_view, AccessRecord> pending;
      for (size_t i = begin; i < end; ++i) {
        const AccessUpdate& u = *order[i];
        AccessRecord rec;
        if (auto it = pending.find(u.key); it != pending.end()) {
          rec = it->second;
        } else {
          auto state = ReadRecord(u.key, &rec);
          if (!state) {
            if (first_error.ok()) first_error = state.error();
            continue;
          }
          if (*state != RecordState::kValid) continue;
        }
        if (u.access.last_access_ms <= rec.last_access_ms && u.access.hit_count <= rec.hit_count) {
          continue;
        }
        rec.last_access_ms = std::max(rec.last_access_ms, u.access.last_access_ms);
        rec.hit_count = std::max(rec.hit_count, u.access.hit_count);
        batch.Put(access_cf_, rocksdb::Slice(u.key), rec.Encode());
        pending[u.key] = rec;
      }
      if (batch.Count() > 0) {
        rocksdb::Status s = db_->Write(write_options_, &batch);
        if (!s.ok() && first_error.ok()) first_error = FromRocks(s, "record access");
      }
      begin = end;
    }
    return first_error;
  } catch (...) {
    return Status::Internal("rocksdb store: unexpected exception in RecordAccess");
  }
}

}  // namespace

Result<std::unique_ptr<Store>> OpenRocksDbStore(RocksDbStoreOptions options) {
  try {
    if (options.path.empty()) return Err(Status::InvalidArgument("rocksdb store: empty path"));
    auto store = std::make_unique<RocksDbStore>(std::move(options));
    Status s = store->Open();
    if (!s.ok()) return Err(std::move(s));
    return std::unique_ptr<Store>(std::move(store));
  } catch (const std::bad_alloc&) {
    return Err(Status::ResourceExhausted("rocksdb store: out of memory while opening"));
  } catch (...) {
    return Err(Status::Internal("rocksdb store: unexpected exception while opening"));
  }
}

}  // namespace llmcache
