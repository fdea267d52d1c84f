#include "semantic/semantic_cache.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <boost/json.hpp>
#include <cmath>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "common/hash.h"
#include "semantic/context_key.h"
#include "semantic/guard_overrule.h"
#include "semantic/hit_policy.h"
#include "semantic/semantic_entry.h"

namespace llmcache {

std::string_view ConfiguredNamespace(std::string_view ns) {
  const size_t at = ns.rfind('@');
  if (at == std::string_view::npos || ns.size() - at != 33) return ns;
  const bool hex = std::all_of(ns.begin() + at + 1, ns.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  return hex ? ns.substr(0, at) : ns;
}

namespace semantic {

bool HaveDefaultVectorIndex() {
#ifdef LLMCACHE_HAVE_VECTOR_INDEX
  return true;
#else
  return false;
#endif
}

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMetaKey = "m";
constexpr char kEntryPrefix = 'e';
constexpr size_t kReembedBatch = 32;

std::string EntryDbKey(uint64_t id) {
  std::string k(1, kEntryPrefix);
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((id >> (8 * i)) & 0xff));
  return k;
}

// Remembers verifier answers by answerer and unordered question pair
// (SHA-256 of all three, so a crafted pair cannot borrow another pair's
// "yes"), oldest forgotten first. Questions are compared with case and runs
// of white space folded: no answer turns on those.
class VerifierMemo {
 public:
  explicit VerifierMemo(size_t capacity) : capacity_(capacity) {}

  static std::string Folded(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool space = false;
    for (char ch : text) {
      const auto c = static_cast<unsigned char>(ch);
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
        space = !out.empty();
        continue;
      }
      if (space) out.push_back(' ');
      space = false;
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    }
    return out;
  }
  static std::string Key(std::string_view answerer, std::string_view query,
                         std::string_view cached) {
    std::string a = Folded(query), b = Folded(cached);
    if (b < a) std::swap(a, b);
    std::string buf = std::to_string(answerer.size()) + ":";
    buf.append(answerer);
    buf.append(std::to_string(a.size()) + ":");
    buf.append(a);
    buf.append(b);
    auto h = Sha256(buf);
    return std::string(reinterpret_cast<const char*>(h.data()), h.size());
  }
  std::optional<bool> Get(const std::string& key) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  void Put(const std::string& key, bool same) {
    if (capacity_ == 0) return;
    std::lock_guard<std::mutex> l(mu_);
    if (!map_.emplace(key, same).second) return;
    order_.push_back(key);
    while (order_.size() > capacity_) {
      map_.erase(order_.front());
      order_.pop_front();
    }
  }

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, bool> map_;
  std::deque<std::string> order_;
};

// A candidate copied out of the entry table so the guard and the verifier run
// without the lock.
struct Candidate {
  uint64_t id = 0;
  float similarity = 0;
  std::string text;
  std::string exact_key;
  std::vector<Observation> observations;
};

class SemanticCacheImpl final : public SemanticCache {
 public:
  explicit SemanticCacheImpl(SemanticCacheOptions o)
      : o_(std::move(o)), memo_(o_.verifier_cache_entries), rng_(o_.seed) {}
  ~SemanticCacheImpl() override = default;

  Status Open();

  SemanticQuery Prepare(const boost::json::value& request, const SemanticKey& key) const override {
    SplitOptions so;
    so.max_query_chars = o_.max_query_chars;
    so.enabled = ThresholdsFor(key.ns).enabled;
    return SplitRequest(request, key, so);
  }

  SemanticLookup Lookup(SemanticQuery* q, const SemanticLookupOverrides& ov) override;
  Status Insert(SemanticQuery* q, std::string_view exact_key,
                std::span<const std::string> doc_hashes, int64_t ttl_ms) override;
  Result<std::vector<std::string>> InvalidateDoc(std::string_view doc_hash) override;
  Status Erase(std::string_view exact_key) override;
  Result<SemanticMaintainResult> Maintain() override;
  int64_t TtlFor(std::string_view ns) const override {
    auto it = o_.namespace_ttl_ms.find(ConfiguredNamespace(ns));
    return it == o_.namespace_ttl_ms.end() ? o_.default_ttl_ms : it->second;
  }
  SemanticCacheStats Stats() const override {
    std::lock_guard<std::mutex> l(mu_);
    SemanticCacheStats s = stats_;
    s.entries = entries_.size();
    s.indexed = index_->size();
    return s;
  }
  Status Checkpoint() override;

 private:
  const SemanticThresholds& ThresholdsFor(std::string_view ns) const {
    auto it = o_.namespace_thresholds.find(ConfiguredNamespace(ns));
    return it == o_.namespace_thresholds.end() ? o_.thresholds : it->second;
  }
  std::string Partition(const std::string& context_key) const {
    return IndexPartition(context_key, o_.embedder->id());
  }
  std::string SnapshotPath() const { return (fs::path(o_.data_dir) / kIndexSnapshotName).string(); }

  // Whether a vector may join the index: one of an unrepresentable text
  // would only attract false candidates, unless a verifier checks them all.
  bool Indexable(const EmbeddingInfo& info) const {
    return info.vector.size() == o_.embedder->dimension() &&
           (info.unknown_fraction <= o_.max_unknown_fraction ||
            (o_.verifier && o_.verify_unrepresentable));
  }
  // Ensures q->embedding; false on an embedder failure.
  bool EnsureEmbedding(SemanticQuery* q);
  Result<bool> Verify(const std::string& answerer, const std::string& ns,
                      const std::string& query, const std::string& cached);
  SemanticLookup Refuse(SemanticLookup r, std::string reason);

  // REQUIRES: mu_ held. Each writes the database before changing memory.
  Status PutEntryLocked(const SemanticEntry& e, rocksdb::WriteBatch* batch);
  // Writes the batch with the meta record; index_changed voids the snapshot.
  Status CommitLocked(rocksdb::WriteBatch* batch, bool sync = false, bool index_changed = true);
  void RemoveLocked(uint64_t id, rocksdb::WriteBatch* batch);
  void TouchLocked(SemanticEntry* e, int64_t now);
  // Evicts least recently hit entries until `room` more fit.
  void EvictLocked(rocksdb::WriteBatch* batch, size_t room);
  void AddIndexLocked(const SemanticEntry& e);

  Status LoadEntries(SemanticMeta* meta, bool* meta_found);
  void Reembed();
  void BuildIndex(const SemanticMeta& meta, bool meta_found, bool embedder_changed);

  SemanticCacheOptions o_;
  VerifierMemo memo_;
  std::unique_ptr<rocksdb::DB> db_;  // null: memory only

  mutable std::mutex mu_;
  std::unique_ptr<VectorIndex> index_;
  SemanticMeta meta_;
  std::unordered_map<uint64_t, SemanticEntry> entries_;
  std::unordered_map<std::string, uint64_t> by_exact_;
  std::unordered_map<std::string, std::unordered_set<uint64_t>> by_doc_;
  std::set<std::pair<int64_t, uint64_t>> lru_;  // (last_hit_ms, id)
  std::unordered_set<uint64_t> dirty_;          // access times not yet written
  std::vector<std::string> pending_erase_;      // doc-bound keys evicted by Insert
  std::mt19937_64 rng_;
  SemanticCacheStats stats_;
};

Status SemanticCacheImpl::Open() {
  if (!o_.embedder) return Status::InvalidArgument("semantic cache: no embedder");
  if (!o_.clock) o_.clock = SystemClock();
  o_.index.dimension = o_.embedder->dimension();
#ifdef LLMCACHE_HAVE_VECTOR_INDEX
  if (!o_.new_index) o_.new_index = [](const VectorIndexOptions& io) { return NewVectorIndex(io); };
  if (!o_.load_index) {
    o_.load_index = [](const VectorIndexOptions& io, const std::string& path) {
      return LoadVectorIndex(io, path);
    };
  }
#endif
  if (!o_.new_index) {
    return Status::InvalidArgument("semantic cache: no vector index implementation");
  }

  SemanticMeta meta;
  bool meta_found = false;
  if (!o_.data_dir.empty()) {
    std::error_code ec;
    fs::create_directories(fs::path(o_.data_dir) / kEntriesDirName, ec);
    rocksdb::Options dbo;
    dbo.create_if_missing = true;
    dbo.max_open_files = 64;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s =
        rocksdb::DB::Open(dbo, (fs::path(o_.data_dir) / kEntriesDirName).string(), &raw);
    if (!s.ok()) return Status::IOError("semantic cache: " + s.ToString());
    db_.reset(raw);
    Status ls = LoadEntries(&meta, &meta_found);
    if (!ls.ok()) return ls;
  }
  const bool embedder_changed =
      meta_found && (meta.embedder_id != o_.embedder->id() ||
                     meta.dimension != static_cast<uint32_t>(o_.embedder->dimension()));
  if (embedder_changed) {
    spdlog::warn("semantic cache: embedder changed ({} d{} -> {} d{}): re-embedding {} entries",
                 meta.embedder_id, meta.dimension, o_.embedder->id(), o_.embedder->dimension(),
                 entries_.size());
    Reembed();
  }
  BuildIndex(meta, meta_found, embedder_changed);

  meta_.embedder_id = std::string(o_.embedder->id());
  meta_.dimension = static_cast<uint32_t>(o_.embedder->dimension());
  meta_.next_id = std::max<uint64_t>(meta.next_id, meta_.next_id);
  meta_.snapshot_valid = false;  // from now on the entries move ahead of any snapshot
  std::lock_guard<std::mutex> l(mu_);
  rocksdb::WriteBatch batch;
  return CommitLocked(&batch, /*sync=*/true);
}

Status SemanticCacheImpl::LoadEntries(SemanticMeta* meta, bool* meta_found) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kMetaKey, &value);
  if (s.ok()) {
    auto m = DecodeSemanticMeta(value);
    if (m) {
      *meta = *m;
      *meta_found = true;
    } else {
      // Unknown embedder: treat as changed so every vector is recomputed.
      spdlog::warn("semantic cache: {}; re-embedding the entries", m.error().ToString());
      *meta_found = true;
      meta->embedder_id = "";
    }
  } else if (!s.IsNotFound()) {
    return Status::IOError("semantic cache: " + s.ToString());
  }

  const int64_t now = o_.clock->NowMillis();
  uint64_t corrupt = 0, expired = 0;
  rocksdb::WriteBatch drop;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  std::string prefix(1, kEntryPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto e = DecodeSemanticEntry(std::string_view(it->value().data(), it->value().size()));
    if (!e || EntryDbKey(e->id) != it->key().ToString()) {
      ++corrupt;
      drop.Delete(it->key());
      continue;
    }
    if (e->Expired(now)) {
      ++expired;
      drop.Delete(it->key());
      continue;
    }
    meta_.next_id = std::max(meta_.next_id, e->id + 1);
    // A second entry for one exact key can only come from a crash between
    // two writes of one batch, which RocksDB rules out; keep the newest.
    auto [pos, fresh] = by_exact_.emplace(e->exact_key, e->id);
    if (!fresh) {
      drop.Delete(EntryDbKey(pos->second));
      lru_.erase({entries_[pos->second].last_hit_ms, pos->second});
      for (const auto& d : entries_[pos->second].doc_hashes) by_doc_[d].erase(pos->second);
      entries_.erase(pos->second);
      pos->second = e->id;
    }
    for (const auto& d : e->doc_hashes) by_doc_[d].insert(e->id);
    lru_.insert({e->last_hit_ms, e->id});
    uint64_t id = e->id;
    entries_.emplace(id, std::move(*e));
  }
  if (!it->status().ok()) return Status::IOError("semantic cache: " + it->status().ToString());
  if (corrupt > 0) spdlog::error("semantic cache: dropped {} corrupt entries", corrupt);
  stats_.expirations += expired;
  if (drop.Count() > 0) {
    rocksdb::Status ws = db_->Write(rocksdb::WriteOptions(), &drop);
    if (!ws.ok()) return Status::IOError("semantic cache: " + ws.ToString());
  }
  return Status::OK();
}

void SemanticCacheImpl::Reembed() {
  std::vector<SemanticEntry*> todo;
  for (auto& [id, e] : entries_) {
    e.embedding.clear();
    if (!e.context_key.empty() && !e.text.empty()) todo.push_back(&e);
  }
  rocksdb::WriteBatch batch;
  uint64_t failed = 0;
  for (size_t i = 0; i < todo.size(); i += kReembedBatch) {
    size_t n = std::min(kReembedBatch, todo.size() - i);
    std::vector<std::string> texts;
    for (size_t j = 0; j < n; ++j) texts.push_back(todo[i + j]->text);
    auto v = o_.embedder->EmbedWithInfo(texts);
    for (size_t j = 0; j < n; ++j) {
      SemanticEntry* e = todo[i + j];
      if (v && v->size() == n && Indexable((*v)[j])) {
        e->embedding = std::move((*v)[j].vector);
      } else {
        ++failed;  // stays exact-only: its documents are still tracked
      }
    }
  }
  for (auto& [id, e] : entries_) batch.Put(EntryDbKey(id), EncodeSemanticEntry(e));
  if (failed > 0)
    spdlog::warn(
        "semantic cache: {} entries stay exact-only (embedder failure or text it cannot represent)",
        failed);
  if (db_) {
    rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
    if (!s.ok()) spdlog::error("semantic cache: re-embedding not saved: {}", s.ToString());
  }
}

void SemanticCacheImpl::BuildIndex(const SemanticMeta& meta, bool meta_found,
                                   bool embedder_changed) {
  size_t vectors = 0;
  for (auto& [id, e] : entries_) {
    if (e.semantic() && e.embedding.size() != o_.embedder->dimension()) e.embedding.clear();
    vectors += e.semantic();
  }
  if (!o_.data_dir.empty() && o_.load_index && fs::exists(SnapshotPath())) {
    std::string why;
    if (embedder_changed) {
      why = "the embedder changed";
    } else if (!meta_found || !meta.snapshot_valid) {
      why = "the entries changed after it was written (unclean shutdown)";
    } else {
      auto loaded = o_.load_index(o_.index, SnapshotPath());
      if (!loaded) {
        why = loaded.error().ToString();
      } else if ((*loaded)->size() != vectors || meta.snapshot_vectors != vectors) {
        why = "it holds " + std::to_string((*loaded)->size()) + " vectors, the entries " +
              std::to_string(vectors);
      } else {
        index_ = std::move(*loaded);
        spdlog::info("semantic cache: loaded the index snapshot ({} vectors)", vectors);
        return;
      }
    }
    spdlog::warn("semantic cache: rebuilding the index from {} entries: snapshot unusable: {}",
                 vectors, why);
  }
  index_ = o_.new_index(o_.index);
  for (const auto& [id, e] : entries_) AddIndexLocked(e);
}

void SemanticCacheImpl::AddIndexLocked(const SemanticEntry& e) {
  if (!e.semantic()) return;
  Status s = index_->Add(Partition(e.context_key), e.id, e.embedding);
  if (!s.ok()) spdlog::error("semantic cache: index add {}: {}", e.id, s.ToString());
}

bool SemanticCacheImpl::EnsureEmbedding(SemanticQuery* q) {
  if (q->embedding) return q->embedding->vector.size() == o_.embedder->dimension();
  std::string text = q->text;
  auto r = o_.embedder->EmbedWithInfo(std::span<const std::string>(&text, 1));
  if (!r || r->size() != 1 || (*r)[0].vector.size() != o_.embedder->dimension()) {
    spdlog::debug("semantic cache: embedder failed: {}",
                  r ? std::string("wrong shape") : r.error().ToString());
    return false;
  }
  q->embedding = std::make_shared<const EmbeddingInfo>(std::move((*r)[0]));
  return true;
}

Result<bool> SemanticCacheImpl::Verify(const std::string& answerer, const std::string& ns,
                                       const std::string& query, const std::string& cached) {
  std::string key = VerifierMemo::Key(answerer, query, cached);
  if (auto known = memo_.Get(key)) {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.verifier_cache_hits;
    return *known;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.verifier_calls;
  }
  const auto started = std::chrono::steady_clock::now();
  auto r = o_.verifier->SameAnswerIn(ns, query, cached);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
  if (r) memo_.Put(key, *r);
  std::lock_guard<std::mutex> l(mu_);
  ++(!r ? stats_.verifier_errors : *r ? stats_.verifier_yes : stats_.verifier_no);
  stats_.verifier_seconds += took.count();
  return r;
}

SemanticLookup SemanticCacheImpl::Refuse(SemanticLookup r, std::string reason) {
  r.reason = std::move(reason);
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.lookups;
  ++stats_.refusals[r.reason];
  return r;
}

SemanticLookup SemanticCacheImpl::Lookup(SemanticQuery* q, const SemanticLookupOverrides& ov) {
  SemanticLookup out;
  if (!q->eligible) return Refuse(std::move(out), q->reason.empty() ? "invalid" : q->reason);
  if (!EnsureEmbedding(q)) return Refuse(std::move(out), "embedder_error");

  // The verifier's answerer for this namespace; empty: not verified here.
  const std::string answerer =
      o_.verifier && ov.use_verifier ? o_.verifier->AnswererFor(q->ns) : std::string();
  const bool verifier = !answerer.empty();
  const double uf = q->embedding->unknown_fraction;
  const bool unrepresentable = uf > o_.max_unknown_fraction;
  if (unrepresentable && !(verifier && o_.verify_unrepresentable)) {
    return Refuse(std::move(out), "unrepresentable");
  }
  const SemanticThresholds& t = ThresholdsFor(q->ns);
  const bool is_short = q->words <= o_.short_query_words;
  const double base = is_short ? ov.short_threshold.value_or(t.short_threshold)
                               : ov.threshold.value_or(t.threshold);
  const double grey_floor = verifier && o_.grey_band > 0 ? base - o_.grey_band : 2.0;
  const ThresholdBounds bounds{base, std::min(base, grey_floor), o_.target_error_rate};

  auto hits = index_->Search(Partition(q->context_key), q->embedding->vector, o_.top_k);
  if (!hits) {
    spdlog::debug("semantic cache: search failed: {}", hits.error().ToString());
    return Refuse(std::move(out), "index_error");
  }
  std::vector<Candidate> candidates;
  bool explore = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    const int64_t now = o_.clock->NowMillis();
    for (const IndexHit& h : *hits) {
      auto it = entries_.find(h.id);
      if (it == entries_.end() || it->second.Expired(now)) continue;
      candidates.push_back(
          {h.id, h.similarity, it->second.text, it->second.exact_key, it->second.observations});
    }
    if (verifier && o_.explore_rate > 0) {
      explore = std::uniform_real_distribution<double>(0, 1)(rng_) < o_.explore_rate;
    }
  }
  if (candidates.empty()) return Refuse(std::move(out), "no_candidate");

  // Verifier outcomes to record, and the candidate each belongs to.
  std::vector<Observation> learned;
  std::vector<size_t> learned_for;
  for (size_t i = 0; i < candidates.size() && !out.hit; ++i) {
    const Candidate& c = candidates[i];
    PolicyInput in;
    in.similarity = c.similarity;
    in.entry_threshold = verifier ? EntryThreshold(c.observations, bounds) : base;
    in.grey_floor = grey_floor;
    in.have_verifier = verifier;
    in.must_verify = unrepresentable;
    in.explore = explore;
    CandidateAction action = Decide(in);
    if (action == CandidateAction::kRefuse) {
      out.refused.emplace_back(c.id, "below_threshold");
      continue;
    }
    if (o_.guard && ov.use_guard) {
      GuardVerdict v = o_.guard->Check(q->text, c.text);
      if (!v.pass && OverruleByVerifier(v, {o_.overrule_content_words, verifier, c.similarity,
                                            in.entry_threshold})) {
        // The verifier decides; its answer says nothing about this entry's
        // threshold, so it is not learned.
        auto same = Verify(answerer, q->ns, q->text, c.text);
        if (!same || !*same) {
          out.refused.emplace_back(c.id, !same ? "verifier_error" : "verifier");
          continue;
        }
        out.hit = SemanticHit{c.exact_key, c.similarity, c.id, true};
        break;
      }
      if (!v.pass) {
        out.refused.emplace_back(c.id, "guard_" + (v.reason.empty() ? "unknown" : v.reason));
        continue;
      }
      // A loose pass needs more support from the embedding; in the grey
      // band the verifier decides anyway.
      if (action == CandidateAction::kAccept && v.threshold_raise > 0 &&
          c.similarity < in.entry_threshold + v.threshold_raise) {
        out.refused.emplace_back(c.id, "guard_loose");
        continue;
      }
    }
    if (action == CandidateAction::kVerify) {
      auto same = Verify(answerer, q->ns, q->text, c.text);
      if (!same) {
        out.refused.emplace_back(c.id, "verifier_error");
        continue;
      }
      learned.push_back({c.similarity, *same});
      learned_for.push_back(i);
      if (!*same) {
        out.refused.emplace_back(c.id, "verifier");
        continue;
      }
    }
    out.hit = SemanticHit{c.exact_key, c.similarity, c.id, action == CandidateAction::kVerify};
  }

  std::lock_guard<std::mutex> l(mu_);
  ++stats_.lookups;
  const int64_t now = o_.clock->NowMillis();
  if (ov.record && !learned.empty()) {
    rocksdb::WriteBatch batch;
    for (size_t j = 0; j < learned.size(); ++j) {
      auto it = entries_.find(candidates[learned_for[j]].id);
      if (it == entries_.end()) continue;
      AddObservation(&it->second.observations, learned[j]);
      (void)PutEntryLocked(it->second, &batch);
    }
    (void)CommitLocked(&batch, false, false);
  }
  if (!out.hit) {
    out.reason = out.refused.empty() ? "no_candidate" : out.refused.front().second;
    ++stats_.refusals[out.reason];
    return out;
  }
  ++stats_.hits;
  if (out.hit->verified) ++stats_.verified_hits;
  const double sim = out.hit->similarity;
  int bucket = static_cast<int>(std::floor((sim - 0.5) / 0.05));
  ++stats_.hit_similarity_buckets[std::clamp(bucket, 0, 9)];
  stats_.hit_similarity_sum += sim;
  if (ov.record) {
    auto it = entries_.find(out.hit->entry_id);
    if (it != entries_.end()) TouchLocked(&it->second, now);
  }
  return out;
}

void SemanticCacheImpl::TouchLocked(SemanticEntry* e, int64_t now) {
  lru_.erase({e->last_hit_ms, e->id});
  e->last_hit_ms = std::max(now, e->last_hit_ms);
  ++e->hit_count;
  lru_.insert({e->last_hit_ms, e->id});
  dirty_.insert(e->id);
}

Status SemanticCacheImpl::PutEntryLocked(const SemanticEntry& e, rocksdb::WriteBatch* batch) {
  if (db_) batch->Put(EntryDbKey(e.id), EncodeSemanticEntry(e));
  return Status::OK();
}

Status SemanticCacheImpl::CommitLocked(rocksdb::WriteBatch* batch, bool sync, bool index_changed) {
  if (!db_) return Status::OK();
  if (index_changed) meta_.snapshot_valid = false;
  batch->Put(kMetaKey, EncodeSemanticMeta(meta_));
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = db_->Write(wo, batch);
  if (!s.ok()) return Status::IOError("semantic cache: " + s.ToString());
  return Status::OK();
}

void SemanticCacheImpl::RemoveLocked(uint64_t id, rocksdb::WriteBatch* batch) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  SemanticEntry& e = it->second;
  if (db_) batch->Delete(EntryDbKey(id));
  if (e.semantic()) (void)index_->Remove(Partition(e.context_key), id);
  for (const auto& d : e.doc_hashes) {
    auto dit = by_doc_.find(d);
    if (dit == by_doc_.end()) continue;
    dit->second.erase(id);
    if (dit->second.empty()) by_doc_.erase(dit);
  }
  auto xit = by_exact_.find(e.exact_key);
  if (xit != by_exact_.end() && xit->second == id) by_exact_.erase(xit);
  lru_.erase({e.last_hit_ms, id});
  dirty_.erase(id);
  entries_.erase(it);
}

void SemanticCacheImpl::EvictLocked(rocksdb::WriteBatch* batch, size_t room) {
  while (entries_.size() + room > o_.max_entries && !lru_.empty()) {
    uint64_t id = lru_.begin()->second;
    const SemanticEntry& e = entries_.at(id);
    if (!e.doc_hashes.empty()) pending_erase_.push_back(e.exact_key);
    RemoveLocked(id, batch);
    ++stats_.evictions;
  }
}

Status SemanticCacheImpl::Insert(SemanticQuery* q, std::string_view exact_key,
                                 std::span<const std::string> doc_hashes, int64_t ttl_ms) {
  SemanticEntry e;
  e.exact_key = std::string(exact_key);
  e.ns = q->ns;
  e.doc_hashes.assign(doc_hashes.begin(), doc_hashes.end());
  std::sort(e.doc_hashes.begin(), e.doc_hashes.end());
  e.doc_hashes.erase(std::unique(e.doc_hashes.begin(), e.doc_hashes.end()), e.doc_hashes.end());
  e.ttl_ms = ttl_ms > 0 ? ttl_ms : TtlFor(q->ns);
  if (q->eligible) {
    e.context_key = q->context_key;
    e.text = q->text;
    if (EnsureEmbedding(q) && Indexable(*q->embedding)) e.embedding = q->embedding->vector;
  }

  std::lock_guard<std::mutex> l(mu_);
  e.created_ms = e.last_hit_ms = o_.clock->NowMillis();
  e.id = meta_.next_id++;
  rocksdb::WriteBatch batch;
  if (auto old = by_exact_.find(e.exact_key); old != by_exact_.end()) {
    RemoveLocked(old->second, &batch);
  }
  (void)PutEntryLocked(e, &batch);
  EvictLocked(&batch, 1);  // before adding, so the new entry is never the victim
  Status s = CommitLocked(&batch);
  if (!s.ok()) return s;
  AddIndexLocked(e);
  by_exact_[e.exact_key] = e.id;
  for (const auto& d : e.doc_hashes) by_doc_[d].insert(e.id);
  lru_.insert({e.last_hit_ms, e.id});
  ++stats_.inserts;
  uint64_t id = e.id;
  entries_.emplace(id, std::move(e));
  return Status::OK();
}

Result<std::vector<std::string>> SemanticCacheImpl::InvalidateDoc(std::string_view doc_hash) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> keys;
  auto it = by_doc_.find(std::string(doc_hash));
  if (it == by_doc_.end()) return keys;
  std::vector<uint64_t> ids(it->second.begin(), it->second.end());
  rocksdb::WriteBatch batch;
  for (uint64_t id : ids) {
    keys.push_back(entries_.at(id).exact_key);
    RemoveLocked(id, &batch);
  }
  Status s = CommitLocked(&batch);
  if (!s.ok()) return Err(s);
  stats_.invalidations += ids.size();
  return keys;
}

Status SemanticCacheImpl::Erase(std::string_view exact_key) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_exact_.find(std::string(exact_key));
  if (it == by_exact_.end()) return Status::OK();
  rocksdb::WriteBatch batch;
  RemoveLocked(it->second, &batch);
  return CommitLocked(&batch);
}

Result<SemanticMaintainResult> SemanticCacheImpl::Maintain() {
  std::lock_guard<std::mutex> l(mu_);
  SemanticMaintainResult r;
  const int64_t now = o_.clock->NowMillis();
  rocksdb::WriteBatch batch;
  std::vector<uint64_t> expired;
  for (const auto& [id, e] : entries_) {
    if (e.Expired(now)) expired.push_back(id);
  }
  for (uint64_t id : expired) {
    const SemanticEntry& e = entries_.at(id);
    if (!e.doc_hashes.empty()) r.erase_exact_keys.push_back(e.exact_key);
    RemoveLocked(id, &batch);
  }
  r.expired = expired.size();
  stats_.expirations += r.expired;
  const uint64_t evictions_before = stats_.evictions;
  EvictLocked(&batch, 0);
  r.evicted = stats_.evictions - evictions_before;
  for (uint64_t id : dirty_) (void)PutEntryLocked(entries_.at(id), &batch);
  dirty_.clear();
  r.erase_exact_keys.insert(r.erase_exact_keys.end(), pending_erase_.begin(), pending_erase_.end());
  pending_erase_.clear();
  if (batch.Count() > 0) {
    Status s = CommitLocked(&batch, false, r.expired + r.evicted > 0);
    if (!s.ok()) return Err(s);
  }
  return r;
}

Status SemanticCacheImpl::Checkpoint() {
  if (!db_) return Status::OK();
  std::lock_guard<std::mutex> l(mu_);
  rocksdb::WriteBatch batch;
  for (uint64_t id : dirty_) (void)PutEntryLocked(entries_.at(id), &batch);
  dirty_.clear();
  Status s = index_->Save(SnapshotPath());
  if (!s.ok()) return s;
  meta_.snapshot_vectors = index_->size();
  meta_.snapshot_valid = true;
  batch.Put(kMetaKey, EncodeSemanticMeta(meta_));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status ws = db_->Write(wo, &batch);
  if (!ws.ok()) return Status::IOError("semantic cache: " + ws.ToString());
  return Status::OK();
}

}  // namespace
}  // namespace semantic

Result<std::unique_ptr<SemanticCache>> OpenSemanticCache(SemanticCacheOptions options) {
  auto cache = std::make_unique<semantic::SemanticCacheImpl>(std::move(options));
  Status s = cache->Open();
  if (!s.ok()) return Err(s);
  return std::unique_ptr<SemanticCache>(std::move(cache));
}

}  // namespace llmcache
