#include "store/memory_store.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <utility>

#include "common/hash.h"

namespace llmcache {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

constexpr size_t kNoHeapIndex = std::numeric_limits<size_t>::max();

uint32_t SaturatingIncrement(uint32_t v) {
  return v == std::numeric_limits<uint32_t>::max() ? v : v + 1;
}

// True when at least `interval` ms passed from `since` to `now`, without
// overflowing on extreme (corrupt or default) timestamps.
bool Elapsed(int64_t since, int64_t now, int64_t interval) {
  int64_t d = 0;
  if (__builtin_sub_overflow(now, since, &d)) return now > since;
  return d >= interval;
}

int64_t WritebackInterval(const ExpiryOptions& o) {
  // idle_ttl/64 bounds how stale the persistent tier's idea of "last read"
  // can get (1.6% of the idle window) while costing at most one persistent
  // write per entry per interval however hot the entry is.
  if (o.idle_ttl_ms <= 0) return 3600 * 1000;
  return std::max<int64_t>(1, o.idle_ttl_ms / 64);
}

}  // namespace

// One entry of the index. Allocated with its key bytes right behind it, so
// a hit touches the table slot, this node and its key, all adjacent: no
// separate key allocation, no bucket-to-node indirection. Fields a hit
// reads or writes come first.
struct MemoryStore::Node {
  uint64_t hash = 0;
  Node* prev = nullptr;  // towards the most recently used
  Node* next = nullptr;  // towards the least recently used
  // Authoritative access data; entry's own fields may lag.
  ExpiryFields fields;
  // Clock time of the last insert or read; orders LRU tails across shards.
  int64_t lru_stamp_ms = 0;
  std::shared_ptr<const CacheEntry> entry;
  // True when `entry` was allocated by this store as a non-const object, so
  // writing its access fields (while unshared) is legal.
  bool owned = false;
  uint32_t key_size = 0;
  // What the listener last heard about this entry.
  int64_t reported_access_ms = 0;
  uint32_t reported_hits = 0;
  uint64_t bytes = 0;
  // Min-heap key: never later than the true deadline (which only grows).
  int64_t deadline_ms = kNever;
  size_t heap_index = kNoHeapIndex;

  std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), key_size}; }

  static Node* New(std::string_view key, uint64_t hash) {
    void* mem = ::operator new(sizeof(Node) + key.size());
    Node* n = new (mem) Node();
    n->hash = hash;
    n->key_size = static_cast<uint32_t>(key.size());
    std::memcpy(reinterpret_cast<char*>(n + 1), key.data(), key.size());
    return n;
  }
  static void Delete(Node* n) {
    n->~Node();
    ::operator delete(n);
  }

  bool Unreported() const {
    return fields.last_access_ms > reported_access_ms || fields.hit_count > reported_hits;
  }
  AccessUpdate MarkReported() {
    reported_access_ms = fields.last_access_ms;
    reported_hits = fields.hit_count;
    return AccessUpdate{std::string(key()), AccessData{fields.last_access_ms, fields.hit_count}};
  }
};

// Open addressing with linear probing over (hash, node) slots; deletion
// shifts later slots back, so there are no tombstones and probe sequences
// stay short at the 70% load bound.
class MemoryStore::NodeTable {
 public:
  NodeTable() = default;
  NodeTable(const NodeTable&) = delete;
  NodeTable& operator=(const NodeTable&) = delete;

  size_t size() const { return size_; }

  Node* Find(uint64_t hash, std::string_view key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.node == nullptr) return nullptr;
      if (slot.hash == hash && slot.node->key() == key) return slot.node;
    }
  }

  // Makes room for one more node; the only step that can throw (bad_alloc).
  void ReserveOneMore() {
    if ((size_ + 1) * 10 > slots_.size() * 7) Rehash(std::max<size_t>(16, slots_.size() * 2));
  }

  // n's key must be absent; ReserveOneMore() must have been called.
  void Insert(Node* n) {
    size_t i = n->hash & mask_;
    while (slots_[i].node != nullptr) i = (i + 1) & mask_;
    slots_[i] = Slot{n->hash, n};
    ++size_;
  }

  void Remove(const Node* n) {
    size_t i = n->hash & mask_;
    while (slots_[i].node != n) i = (i + 1) & mask_;
    slots_[i] = Slot{};
    // Backward-shift: pull later members of the probe run into the hole
    // unless their home slot lies cyclically in (hole, j].
    for (size_t j = (i + 1) & mask_; slots_[j].node != nullptr; j = (j + 1) & mask_) {
      const size_t home = slots_[j].hash & mask_;
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      slots_[j] = Slot{};
      i = j;
    }
    --size_;
  }

  template <class F>
  void ForEach(F&& f) const {
    for (const Slot& slot : slots_) {
      if (slot.node != nullptr) f(slot.node);
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    Node* node = nullptr;
  };

  void Rehash(size_t capacity) {
    std::vector<Slot> old(capacity);
    old.swap(slots_);
    mask_ = capacity - 1;
    size_ = 0;
    for (const Slot& slot : old) {
      if (slot.node != nullptr) Insert(slot.node);
    }
  }

  std::vector<Slot> slots_;  // size is zero or a power of two
  size_t mask_ = 0;
  size_t size_ = 0;
};

// alignas keeps hot mutexes of neighbouring shards off one cache line.
struct alignas(64) MemoryStore::Shard {
  mutable std::mutex mu;
  NodeTable table;
  Node* head = nullptr;  // most recently used
  Node* tail = nullptr;  // least recently used
  std::vector<Node*> heap;

  void Unlink(Node* n) {
    (n->prev ? n->prev->next : head) = n->next;
    (n->next ? n->next->prev : tail) = n->prev;
    n->prev = n->next = nullptr;
  }
  void PushFront(Node* n) {
    n->prev = nullptr;
    n->next = head;
    (head ? head->prev : tail) = n;
    head = n;
  }
  void MoveToFront(Node* n) {
    if (head == n) return;
    Unlink(n);
    PushFront(n);
  }

  // Intrusive binary min-heap on deadline_ms.
  void HeapSet(size_t i, Node* n) {
    heap[i] = n;
    n->heap_index = i;
  }
  void SiftUp(size_t i) {
    Node* n = heap[i];
    while (i > 0) {
      size_t parent = (i - 1) / 2;
      if (heap[parent]->deadline_ms <= n->deadline_ms) break;
      HeapSet(i, heap[parent]);
      i = parent;
    }
    HeapSet(i, n);
  }
  void SiftDown(size_t i) {
    Node* n = heap[i];
    const size_t size = heap.size();
    while (true) {
      size_t child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && heap[child + 1]->deadline_ms < heap[child]->deadline_ms) ++child;
      if (heap[child]->deadline_ms >= n->deadline_ms) break;
      HeapSet(i, heap[child]);
      i = child;
    }
    HeapSet(i, n);
  }
  void HeapPush(Node* n) {
    heap.push_back(n);
    n->heap_index = heap.size() - 1;
    SiftUp(n->heap_index);
  }
  void HeapRemove(Node* n) {
    const size_t i = n->heap_index;
    Node* last = heap.back();
    heap.pop_back();
    n->heap_index = kNoHeapIndex;
    if (last == n) return;
    HeapSet(i, last);
    HeapFix(last);
  }
  void HeapFix(Node* n) {
    SiftUp(n->heap_index);
    SiftDown(n->heap_index);
  }
};

MemoryStore::MemoryStore(MemoryStoreOptions options)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : SystemClock()),
      writeback_interval_ms_(WritebackInterval(options_.expiry)),
      shards_(new Shard[kShards]) {}

MemoryStore::~MemoryStore() {
  for (size_t i = 0; i < kShards; ++i) shards_[i].table.ForEach([](Node* n) { Node::Delete(n); });
}

MemoryStore::Shard& MemoryStore::ShardFor(size_t hash) const {
  // The table probes from the low bits; the shard takes the top ones.
  return shards_[(hash >> 60) & (kShards - 1)];
}

void MemoryStore::RemoveLocked(Shard& s, Node* n) {
  s.Unlink(n);
  s.HeapRemove(n);
  bytes_.fetch_sub(n->bytes, std::memory_order_relaxed);
  entries_.fetch_sub(1, std::memory_order_relaxed);
  s.table.Remove(n);
  Node::Delete(n);
}

void MemoryStore::Report(const std::vector<AccessUpdate>& reports) const {
  if (reports.empty() || !listener_) return;
  try {
    listener_(reports);
  } catch (...) {
    // Reporting is best effort: a lost report only makes the persistent
    // tier's access data staler, which the oracle compensates for.
  }
}

Result<StoreHit> MemoryStore::Lookup(std::string_view key) {
  try {
    const int64_t now = clock_->NowMillis();
    const uint64_t hash = Xxh3(key);
    Shard& s = ShardFor(hash);
    std::shared_ptr<const CacheEntry> hit;
    ExpiryFields access;
    bool copy_outside_lock = false;
    std::vector<AccessUpdate> reports;
    {
      std::lock_guard lock(s.mu);
      Node* n = s.table.Find(hash, key);
      if (n == nullptr) return Err(Status::NotFound());
      if (IsExpired(n->fields, options_.expiry, now)) {
        RemoveLocked(s, n);
        expirations_.fetch_add(1, std::memory_order_relaxed);
        return Err(Status::NotFound("expired"));
      }
      // max() keeps access data (and so the heap's deadlines) monotonic if
      // the wall clock steps back.
      n->fields.last_access_ms = std::max(n->fields.last_access_ms, now);
      n->fields.hit_count = SaturatingIncrement(n->fields.hit_count);
      n->lru_stamp_ms = now;
      s.MoveToFront(n);
      if (listener_ && Elapsed(n->reported_access_ms, now, writeback_interval_ms_)) {
        reports.push_back(n->MarkReported());
      }
      access = n->fields;
      // use_count() == 1 under the shard lock is exact: only this store holds
      // the entry and nobody can take a new reference without the lock. The
      // acquire fence pairs with the release in the last reader's reference
      // drop, so that reader's accesses happen before our writes.
      if (kUpdatesInPlace && n->owned && n->entry.use_count() == 1) {
        std::atomic_thread_fence(std::memory_order_acquire);
        auto* mutable_entry = const_cast<CacheEntry*>(n->entry.get());
        mutable_entry->last_access_ms = access.last_access_ms;
        mutable_entry->hit_count = access.hit_count;
        hit = n->entry;
      } else if (!n->owned) {
        // First hit since Insert: take a private copy once, so later hits
        // can update it in place.
        auto fresh = std::make_shared<CacheEntry>(*n->entry);
        fresh->last_access_ms = access.last_access_ms;
        fresh->hit_count = access.hit_count;
        n->entry = fresh;
        n->owned = true;
        hit = std::move(fresh);
      } else {
        // Still held by an earlier reader: its snapshot must not change.
        hit = n->entry;
        copy_outside_lock = true;
      }
    }
    Report(reports);
    if (copy_outside_lock) {
      auto fresh = std::make_shared<CacheEntry>(*hit);
      fresh->last_access_ms = access.last_access_ms;
      fresh->hit_count = access.hit_count;
      hit = std::move(fresh);
    }
    return StoreHit{std::move(hit), Name()};
  } catch (const std::bad_alloc&) {
    return Err(Status::ResourceExhausted("memory store: out of memory"));
  } catch (...) {
    return Err(Status::Internal("memory store: unexpected exception in Lookup"));
  }
}

Status MemoryStore::Insert(std::shared_ptr<const CacheEntry> entry) {
  try {
    if (!entry) return Status::InvalidArgument("memory store: null entry");
    if (entry->key.empty()) return Status::InvalidArgument("memory store: empty key");
    const uint64_t size = entry->ByteSize();
    if (size > options_.max_bytes) {
      return Status::ResourceExhausted("memory store: entry of " + std::to_string(size) +
                                       " bytes exceeds the bound of " +
                                       std::to_string(options_.max_bytes));
    }
    const int64_t now = clock_->NowMillis();
    // The caller's only reference, handed over: nobody else can reach the
    // object (and so see it change), so the store adopts it instead of
    // copying it on the first hit. Exact without the lock: a reference can
    // only be copied by its holder, and we hold the only one.
    const bool adopt = entry.use_count() == 1;
    const CacheEntry* raw = entry.get();
    const uint64_t hash = Xxh3(entry->key);
    Shard& s = ShardFor(hash);
    {
      std::lock_guard lock(s.mu);
      Node* n = s.table.Find(hash, entry->key);
      const bool inserted = n == nullptr;
      if (inserted) {
        // Allocate everything first, so nothing can throw once the node is
        // linked into the table, the LRU list and the heap.
        if (s.heap.size() == s.heap.capacity()) {
          s.heap.reserve(std::max<size_t>(64, 2 * s.heap.size()));
        }
        s.table.ReserveOneMore();
        n = Node::New(entry->key, hash);
        s.table.Insert(n);
        entries_.fetch_add(1, std::memory_order_relaxed);
        s.PushFront(n);
      } else {
        bytes_.fetch_sub(n->bytes, std::memory_order_relaxed);
        s.MoveToFront(n);
      }
      n->fields = ExpiryFields::Of(*entry);
      n->bytes = size;
      n->lru_stamp_ms = now;
      // What the caller inserted is what the layer below already has.
      n->reported_access_ms = n->fields.last_access_ms;
      n->reported_hits = n->fields.hit_count;
      n->deadline_ms = ExpiryDeadlineMs(n->fields, options_.expiry);
      n->entry = std::move(entry);
      n->owned = adopt;
      if (inserted) {
        s.HeapPush(n);
      } else {
        s.HeapFix(n);
      }
      bytes_.fetch_add(size, std::memory_order_relaxed);
    }
    std::vector<AccessUpdate> reports;
    if (bytes_.load(std::memory_order_relaxed) > options_.max_bytes) EvictForSpace(raw, &reports);
    Report(reports);
    return Status::OK();
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("memory store: out of memory");
  } catch (...) {
    return Status::Internal("memory store: unexpected exception in Insert");
  }
}

void MemoryStore::EvictForSpace(const CacheEntry* keep, std::vector<AccessUpdate>* reports) {
  auto victim_of = [keep](const Shard& s) -> Node* {
    Node* n = s.tail;
    if (n && n->entry.get() == keep) n = n->prev;
    return n;
  };
  while (bytes_.load(std::memory_order_relaxed) > options_.max_bytes) {
    // One lock at a time (never two), so eviction cannot deadlock with
    // anything; the tails may move between the scan and the eviction, which
    // only costs LRU precision under concurrent writes.
    size_t best = kShards;
    int64_t best_stamp = kNever;
    for (size_t i = 0; i < kShards; ++i) {
      std::lock_guard lock(shards_[i].mu);
      Node* n = victim_of(shards_[i]);
      if (n && (best == kShards || n->lru_stamp_ms < best_stamp)) {
        best = i;
        best_stamp = n->lru_stamp_ms;
      }
    }
    if (best == kShards) return;  // nothing evictable but `keep`
    Shard& s = shards_[best];
    std::lock_guard lock(s.mu);
    Node* n = victim_of(s);
    if (!n) continue;
    if (listener_ && n->Unreported()) reports->push_back(n->MarkReported());
    RemoveLocked(s, n);
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
}

Status MemoryStore::Erase(std::string_view key) {
  const uint64_t hash = Xxh3(key);
  Shard& s = ShardFor(hash);
  std::lock_guard lock(s.mu);
  if (Node* n = s.table.Find(hash, key)) RemoveLocked(s, n);
  return Status::OK();
}

Result<uint64_t> MemoryStore::EraseIf(const std::function<bool(const CacheEntry&)>& pred) {
  uint64_t erased = 0;
  try {
    for (size_t i = 0; i < kShards; ++i) {
      Shard& s = shards_[i];
      std::lock_guard lock(s.mu);
      // Removal reorders the table; decide first, then remove.
      std::vector<Node*> doomed;
      s.table.ForEach([&](Node* n) {
        if (pred(*n->entry)) doomed.push_back(n);
      });
      for (Node* n : doomed) RemoveLocked(s, n);
      erased += doomed.size();
    }
  } catch (...) {
    return Err(Status::Internal("memory store: EraseIf predicate threw after erasing " +
                                std::to_string(erased) + " entries"));
  }
  return erased;
}

Status MemoryStore::Maintain() {
  try {
    const int64_t now = clock_->NowMillis();
    for (size_t i = 0; i < kShards; ++i) {
      Shard& s = shards_[i];
      std::lock_guard lock(s.mu);
      while (!s.heap.empty() && s.heap[0]->deadline_ms != kNever && s.heap[0]->deadline_ms <= now) {
        Node* n = s.heap[0];
        const int64_t deadline = ExpiryDeadlineMs(n->fields, options_.expiry);
        if (deadline != kNever && deadline <= now) {
          RemoveLocked(s, n);
          expirations_.fetch_add(1, std::memory_order_relaxed);
        } else {
          // Reads moved the deadline since it was indexed.
          n->deadline_ms = deadline;
          s.SiftDown(0);
        }
      }
    }
    std::vector<AccessUpdate> reports;
    if (bytes_.load(std::memory_order_relaxed) > options_.max_bytes)
      EvictForSpace(nullptr, &reports);
    Report(reports);
    return Status::OK();
  } catch (...) {
    return Status::Internal("memory store: unexpected exception in Maintain");
  }
}

StoreStats MemoryStore::Stats() const {
  StoreStats st;
  st.entries = entries_.load(std::memory_order_relaxed);
  st.bytes = bytes_.load(std::memory_order_relaxed);
  st.evictions = evictions_.load(std::memory_order_relaxed);
  st.expirations = expirations_.load(std::memory_order_relaxed);
  return st;
}

void MemoryStore::SetAccessListener(AccessListener listener) { listener_ = std::move(listener); }

std::optional<AccessData> MemoryStore::PeekAccess(std::string_view key) const {
  const uint64_t hash = Xxh3(key);
  Shard& s = ShardFor(hash);
  std::lock_guard lock(s.mu);
  const Node* n = s.table.Find(hash, key);
  if (n == nullptr) return std::nullopt;
  return AccessData{n->fields.last_access_ms, n->fields.hit_count};
}

void MemoryStore::FlushAccess() {
  if (!listener_) return;
  try {
    for (size_t i = 0; i < kShards; ++i) {
      std::vector<AccessUpdate> reports;
      {
        std::lock_guard lock(shards_[i].mu);
        shards_[i].table.ForEach([&](Node* n) {
          if (n->Unreported()) reports.push_back(n->MarkReported());
        });
      }
      Report(reports);
    }
  } catch (...) {
    // Out of memory while collecting: the unreported reads stay unreported.
  }
}

std::unique_ptr<Store> NewMemoryStore(MemoryStoreOptions options) {
  return std::make_unique<MemoryStore>(std::move(options));
}

}  // namespace llmcache
