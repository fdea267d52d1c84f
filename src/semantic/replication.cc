#include "semantic/replication.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace llmcache::semantic {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// Unique per process: a restarted replica replays its own earlier events
// like anyone else's (they are idempotent), so nothing it did before a crash
// and after its last saved position is lost.
std::string NewOrigin() {
  std::random_device rd;
  std::ostringstream o;
  o << std::hex << rd() << rd() << "-" << ::getpid();
  return o.str();
}

// The saved position: the log's name, then the position, one a line.
std::string LoadPosition(const std::string& path, const std::string& log_name) {
  if (path.empty()) return {};
  std::ifstream in(path);
  std::string name, position;
  if (!in || !std::getline(in, name) || !std::getline(in, position)) return {};
  if (name != log_name) {
    spdlog::warn("semantic replication: the saved position is for log {}, not {}: reading {} from "
                 "its start",
                 name, log_name, log_name);
    return {};
  }
  return position;
}

Status SavePosition(const std::string& path, const std::string& log_name,
                    const std::string& position) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << log_name << "\n" << position << "\n";
    out.flush();
    if (!out) return Status::IOError("semantic replication: cannot write " + tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);  // atomic: a crash leaves the old or the new position
  if (ec) return Status::IOError("semantic replication: " + path + ": " + ec.message());
  return Status::OK();
}

class ReplicatedSemanticCache final : public SemanticCache {
 public:
  ReplicatedSemanticCache(std::shared_ptr<SemanticCache> local,
                          std::shared_ptr<SemanticReplicationLog> log,
                          SemanticReplicationOptions o)
      : local_(std::move(local)),
        log_(std::move(log)),
        o_(std::move(o)),
        origin_(NewOrigin()),
        log_name_(log_->name()) {
    if (!o_.clock) o_.clock = SystemClock();
    o_.batch = std::max<size_t>(1, o_.batch);
    position_ = LoadPosition(o_.position_path, log_name_);
    saved_position_ = position_;
    spdlog::info("semantic replication through {}: catching up from {}", log_name_,
                 position_.empty() ? std::string("its start") : position_);
    // The threads block every signal they inherit: a process that waits
    // for SIGTERM with sigwait (llmcache serve) may open the cache before it
    // blocks the signal, and a stop signal delivered to one of these threads
    // would kill the process instead of stopping it cleanly.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    reader_ = std::thread([this] { ReadLoop(); });
    writer_ = std::thread([this] { WriteLoop(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  ~ReplicatedSemanticCache() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (reader_.joinable()) reader_.join();
    if (writer_.joinable()) writer_.join();
    (void)SaveIfMoved(/*force=*/true);
  }

  // Blocks until the first catch-up ended (log read to its end, or found
  // unreachable) or `ms` passed.
  void WaitCaughtUp(int64_t ms) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::milliseconds(ms), [this] { return caught_up_ || stop_; });
    if (!caught_up_) {
      spdlog::warn("semantic replication: still catching up with {} after {} ms; serving meanwhile",
                   log_name_, ms);
    }
  }

  SemanticQuery Prepare(const boost::json::value& request, const SemanticKey& key) const override {
    return local_->Prepare(request, key);
  }
  SemanticLookup Lookup(SemanticQuery* query, const SemanticLookupOverrides& ov) override {
    return local_->Lookup(query, ov);
  }

  Status Insert(SemanticQuery* q, std::string_view exact_key,
                std::span<const std::string> doc_hashes, int64_t ttl_ms) override {
    Status s = local_->Insert(q, exact_key, doc_hashes, ttl_ms);
    if (!s.ok()) return s;
    SemanticEvent ev;
    ev.kind = SemanticEvent::Kind::kInsert;
    SemanticEntry& e = ev.entry;
    e.exact_key = std::string(exact_key);
    e.ns = q->ns;
    e.doc_hashes.assign(doc_hashes.begin(), doc_hashes.end());
    e.created_ms = e.last_hit_ms = o_.clock->NowMillis();
    e.ttl_ms = ttl_ms > 0 ? ttl_ms : local_->TtlFor(q->ns);
    if (q->eligible) {
      e.context_key = q->context_key;
      e.text = q->text;
      // The vector as computed here, even one the local cache found not
      // indexable: the reader decides with the same unknown_fraction.
      if (q->embedding) {
        e.embedding = q->embedding->vector;
        ev.unknown_fraction = q->embedding->unknown_fraction;
      }
    }
    ev.embedder_id = o_.embedder_id;
    Enqueue(std::move(ev));
    return Status::OK();
  }

  Result<std::vector<std::string>> InvalidateDoc(std::string_view doc_hash) override {
    auto keys = local_->InvalidateDoc(doc_hash);
    if (!keys) return keys;
    // Even when nothing here was built on it: another replica's entries may.
    SemanticEvent ev;
    ev.kind = SemanticEvent::Kind::kInvalidate;
    ev.doc_hash = std::string(doc_hash);
    Enqueue(std::move(ev));
    return keys;
  }

  Status Erase(std::string_view exact_key) override {
    Status s = local_->Erase(exact_key);
    if (!s.ok()) return s;
    SemanticEvent ev;
    ev.kind = SemanticEvent::Kind::kErase;
    ev.entry.exact_key = std::string(exact_key);
    Enqueue(std::move(ev));
    return Status::OK();
  }

  // Expiry and eviction are local: every replica applies the same TTLs, and
  // which entries are least recently hit differs per replica anyway.
  Result<SemanticMaintainResult> Maintain() override { return local_->Maintain(); }
  int64_t TtlFor(std::string_view ns) const override { return local_->TtlFor(ns); }

  SemanticCacheStats Stats() const override {
    SemanticCacheStats s = local_->Stats();
    const bool log_down = log_->degraded();
    const std::string log_detail = log_down ? log_->detail() : std::string();
    std::lock_guard<std::mutex> l(mu_);
    s.replicated = true;
    s.replication_appended = appended_;
    s.replication_applied = applied_;
    s.replication_dropped = dropped_;
    s.replication_gaps = gaps_;
    s.replication_errors = errors_;
    s.replication_degraded = log_down || read_failing_ || write_failing_;
    if (s.replication_degraded) s.replication_detail = DegradedDetailLocked(log_detail);
    return s;
  }

  Status Checkpoint() override {
    Status s = local_->Checkpoint();
    Status p = SaveIfMoved(/*force=*/true);
    return s.ok() ? p : s;
  }

  void SetRemoteRemovalListener(RemoteRemovalListener listener) override {
    std::lock_guard<std::mutex> l(listener_mu_);
    listener_ = std::move(listener);
  }

 private:
  // Which of reading and appending fails, why, and what waits: the
  // replica serves locally meanwhile and its changes are held back.
  std::string DegradedDetailLocked(const std::string& log_detail) const {
    std::string d = log_name_ + ":";
    if (read_failing_) d += " cannot read (" + read_error_ + ");";
    if (write_failing_) {
      d += " cannot append (" + write_error_ + "), " + std::to_string(pending_.size()) +
           " changes waiting;";
    }
    if (!log_detail.empty()) d += " " + log_detail;
    if (d.back() == ';') d.pop_back();
    return d;
  }

  void Enqueue(SemanticEvent ev) {
    ev.origin = origin_;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (pending_.size() >= std::max<size_t>(1, o_.max_pending)) {
        pending_.pop_front();
        if (dropped_++ == 0 || dropped_ % 1000 == 0) {
          spdlog::warn("semantic replication: {} changes not shared (log {} unreachable, queue "
                       "full)",
                       dropped_, log_name_);
        }
      }
      pending_.push_back({next_seq_++, std::move(ev)});
    }
    cv_.notify_all();
  }

  // Sleeps up to ms unless stopping; false when stopping.
  bool Pause(int64_t ms) {
    std::unique_lock<std::mutex> l(mu_);
    return !cv_.wait_for(l, std::chrono::milliseconds(ms), [this] { return stop_; });
  }
  bool stopping() {
    std::lock_guard<std::mutex> l(mu_);
    return stop_;
  }

  // Appends queued changes in batches; keeps them while the log is down.
  void WriteLoop() {
    int64_t backoff = o_.backoff_initial_ms;
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [this] { return stop_ || !pending_.empty(); });
      if (pending_.empty()) return;  // stopping, and everything is out
      const bool stopping_now = stop_;
      const size_t n = std::min(o_.batch, pending_.size());
      std::vector<SemanticEvent> batch;
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) batch.push_back(pending_[i].event);
      const uint64_t last_seq = pending_[n - 1].seq;
      l.unlock();
      Status s = log_->Append(batch);
      l.lock();
      if (s.ok() || s.code() != StatusCode::kUnavailable) {
        // Appended, or refused for good (retrying would only hold up the
        // rest). Enqueue may have dropped some of the batch meanwhile.
        while (!pending_.empty() && pending_.front().seq <= last_seq) pending_.pop_front();
        if (s.ok()) {
          appended_ += batch.size();
          if (write_failing_) spdlog::info("semantic replication: appending to {} again", log_name_);
          write_failing_ = false;
        } else {
          ++errors_;
          dropped_ += batch.size();
          spdlog::error("semantic replication: {} refused {} changes: {}", log_name_, batch.size(),
                        s.ToString());
        }
        backoff = o_.backoff_initial_ms;
        continue;
      }
      ++errors_;
      write_error_ = s.message();
      if (!write_failing_) {
        spdlog::warn("semantic replication: cannot append to {} (local-only until it answers): {}",
                     log_name_, s.ToString());
      }
      write_failing_ = true;
      if (stopping_now) {
        dropped_ += pending_.size();
        pending_.clear();
        return;
      }
      cv_.wait_for(l, std::chrono::milliseconds(backoff), [this] { return stop_; });
      backoff = std::min(backoff * 2, o_.backoff_max_ms);
    }
  }

  void ReadLoop() {
    int64_t backoff = o_.backoff_initial_ms;
    std::string position;
    {
      std::lock_guard<std::mutex> l(mu_);
      position = position_;
    }
    while (!stopping()) {
      auto r = log_->Read(position, o_.batch, o_.wait_ms);
      if (!r) {
        bool first = false;
        {
          std::lock_guard<std::mutex> l(mu_);
          ++errors_;
          first = !read_failing_;
          read_failing_ = true;
          read_error_ = r.error().message();
          caught_up_ = true;  // fail open: serve locally, do not wait for the log
        }
        cv_.notify_all();
        if (first) {
          spdlog::warn("semantic replication: cannot read {} (local-only until it answers): {}",
                       log_name_, r.error().ToString());
        }
        if (!Pause(backoff)) break;
        backoff = std::min(backoff * 2, o_.backoff_max_ms);
        continue;
      }
      backoff = o_.backoff_initial_ms;
      if (r->gap) {
        spdlog::warn("semantic replication: gap in {} after position {}: {}; keeping the local "
                     "entries and going on with what the log still holds",
                     log_name_, position.empty() ? std::string("(start)") : position,
                     r->gap_reason);
      }
      if (r->undecodable > 0) {
        spdlog::warn("semantic replication: skipped {} undecodable records in {}", r->undecodable,
                     log_name_);
      }
      uint64_t applied = 0;
      for (const SemanticEvent& ev : r->events) {
        if (ev.origin == origin_) continue;
        Apply(ev);
        ++applied;
      }
      position = r->next;
      bool recovered = false;
      {
        std::lock_guard<std::mutex> l(mu_);
        recovered = read_failing_;
        read_failing_ = false;
        applied_ += applied;
        gaps_ += r->gap;
        errors_ += r->undecodable;
        position_ = position;
        if (r->events.empty() && !r->gap) caught_up_ = true;
      }
      if (recovered) spdlog::info("semantic replication: reading {} again", log_name_);
      cv_.notify_all();
      (void)SaveIfMoved(/*force=*/false);
    }
  }

  void Apply(const SemanticEvent& ev) {
    switch (ev.kind) {
      case SemanticEvent::Kind::kInsert:
        ApplyInsert(ev);
        return;
      case SemanticEvent::Kind::kInvalidate: {
        auto keys = local_->InvalidateDoc(ev.doc_hash);
        if (!keys) {
          spdlog::warn("semantic replication: invalidating {}: {}", ev.doc_hash,
                       keys.error().ToString());
          return;
        }
        std::lock_guard<std::mutex> l(listener_mu_);
        if (listener_ && !keys->empty()) listener_(*keys);
        return;
      }
      case SemanticEvent::Kind::kErase: {
        Status s = local_->Erase(ev.entry.exact_key);
        if (!s.ok()) spdlog::warn("semantic replication: erase: {}", s.ToString());
        return;
      }
    }
  }

  void ApplyInsert(const SemanticEvent& ev) {
    const SemanticEntry& e = ev.entry;
    int64_t ttl = e.ttl_ms;
    if (ttl > 0) {
      // The writer's clock started the TTL; keep what is left of it.
      ttl -= std::max<int64_t>(0, o_.clock->NowMillis() - e.created_ms);
      if (ttl <= 0) return;  // expired on the way (or during a long outage)
    }
    SemanticQuery q;
    q.ns = e.ns;
    q.eligible = !e.context_key.empty() && !e.text.empty();
    q.reason = q.eligible ? "" : "remote_exact_only";
    q.context_key = e.context_key;
    q.text = e.text;
    if (q.eligible && !e.embedding.empty() && ev.embedder_id == o_.embedder_id) {
      auto info = std::make_shared<EmbeddingInfo>();
      info->vector = e.embedding;
      info->unknown_fraction = ev.unknown_fraction;
      q.embedding = std::move(info);
    }
    // Without a usable vector (another embedder, or the writer's failed)
    // the local cache embeds the question itself.
    Status s = local_->Insert(&q, e.exact_key, e.doc_hashes, ttl);
    if (!s.ok()) spdlog::warn("semantic replication: insert: {}", s.ToString());
  }

  Status SaveIfMoved(bool force) {
    if (o_.position_path.empty()) return Status::OK();
    std::string position;
    {
      std::lock_guard<std::mutex> l(mu_);
      const auto now = SteadyClock::now();
      if (position_ == saved_position_) return Status::OK();
      if (!force && now - last_save_ < std::chrono::milliseconds(o_.save_position_interval_ms))
        return Status::OK();
      position = position_;
      last_save_ = now;
    }
    std::lock_guard<std::mutex> save(save_mu_);
    Status s = SavePosition(o_.position_path, log_name_, position);
    if (!s.ok()) {
      spdlog::warn("{}", s.ToString());
      return s;
    }
    std::lock_guard<std::mutex> l(mu_);
    saved_position_ = position;
    return Status::OK();
  }

  const std::shared_ptr<SemanticCache> local_;
  const std::shared_ptr<SemanticReplicationLog> log_;
  SemanticReplicationOptions o_;
  const std::string origin_;
  const std::string log_name_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool caught_up_ = false;
  struct Pending {
    uint64_t seq;
    SemanticEvent event;
  };
  std::deque<Pending> pending_;
  uint64_t next_seq_ = 0;
  std::string position_;  // after the last event applied
  std::string saved_position_;
  SteadyClock::time_point last_save_{};
  bool read_failing_ = false;
  bool write_failing_ = false;
  std::string read_error_, write_error_;  // the last failure of each, while failing
  uint64_t appended_ = 0, applied_ = 0, dropped_ = 0, gaps_ = 0, errors_ = 0;

  std::mutex save_mu_;
  std::mutex listener_mu_;  // held while the listener runs
  RemoteRemovalListener listener_;

  std::thread reader_;
  std::thread writer_;
};

}  // namespace

Result<std::shared_ptr<SemanticCache>> NewReplicatedSemanticCache(
    std::shared_ptr<SemanticCache> local, std::shared_ptr<SemanticReplicationLog> log,
    SemanticReplicationOptions options) {
  if (!local || !log || options.embedder_id.empty()) {
    return Err(Status::InvalidArgument(
        "semantic replication: needs the local cache, the log and the embedder id"));
  }
  const int64_t wait = options.catch_up_wait_ms;
  auto cache = std::make_shared<ReplicatedSemanticCache>(std::move(local), std::move(log),
                                                         std::move(options));
  if (wait > 0) cache->WaitCaughtUp(wait);
  return std::shared_ptr<SemanticCache>(std::move(cache));
}

}  // namespace llmcache::semantic
