// The semantic cache across gateway replicas. Every replica keeps its own
// entries and vector index (RocksDB under <data-dir>/semantic); the answers
// themselves already live in the shared Store. What replicas must share is
// the index: so every insert, document invalidation and erase is appended to
// a shared, ordered log (a Redis stream, see redis_replication.h), and each
// replica applies the others' changes to its local cache.
//
// Start: the local cache opens from its own entries and snapshot, then the
// replica catches up from the log position it saved beside them (or from the
// log's start). A gap (the log was trimmed past that position, or lost in a
// Redis flush or restart) is logged and counted; the local entries are kept
// and reading continues with what the log still holds. A replica never serves
// a wrong answer because of a gap: answers come from the shared Store, which
// the invalidating replica erased; what a gap can cost is a semantic entry
// whose answer is gone, which reads as a miss (the gateway then erases it).
//
// Fail open: while the log is unreachable the cache works locally; changes
// wait in a bounded queue and are appended once the log is back (the oldest
// are dropped, and counted, when the queue is full). Calls on the cache never
// wait for the log.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "llmcache/clock.h"
#include "llmcache/semantic_cache.h"
#include "llmcache/status.h"
#include "semantic/semantic_entry.h"

namespace llmcache::semantic {

// One change of a replica's semantic cache.
struct SemanticEvent {
  enum class Kind { kInsert, kInvalidate, kErase };
  Kind kind = Kind::kInsert;
  // The writing replica (random per process): readers skip their own events.
  std::string origin;

  // kInsert: the entry as the writer recorded it. Its id, hit count, access
  // time and observations are the writer's own and not applied elsewhere;
  // created_ms and ttl_ms are (the reader keeps the remaining TTL). An empty
  // context_key marks an exact-only entry (documents tracked, no question).
  // The embedding is the writer's embedder's (embedder_id) and may be empty
  // (the writer's embedder failed): a reader with another embedder, or
  // without a vector, embeds the question itself.
  SemanticEntry entry;
  std::string embedder_id;
  double unknown_fraction = -1;
  // kInvalidate: the document.
  std::string doc_hash;
  // kErase uses entry.exact_key.
};

// Where the log stands after a read, and what it gave.
struct SemanticLogRead {
  // Events after the position read from, oldest first. Records that do not
  // decode (written by something else, or corrupt) are skipped and counted.
  std::vector<SemanticEvent> events;
  uint64_t undecodable = 0;
  // The position to read from next time.
  std::string next;
  // Events after the position read from were lost (trimmed, or the whole
  // log vanished): `gap_reason` says what was seen; `events` then start at
  // the oldest one the log still holds (or the next read does).
  bool gap = false;
  std::string gap_reason;
};

// A shared, ordered log of semantic cache changes. Thread-safe: Append and
// Read may run at the same time on different threads.
class SemanticReplicationLog {
 public:
  virtual ~SemanticReplicationLog() = default;

  // Appends the events, in order, in one round trip. Unavailable when the log
  // cannot be reached (retry later); another error when it refused them
  // (retrying would not help).
  virtual Status Append(std::span<const SemanticEvent> events) = 0;

  // Up to max_events events after `position` ("" = the log's start). With
  // none there, waits up to wait_ms for one to arrive. Unavailable when the
  // log cannot be reached.
  virtual Result<SemanticLogRead> Read(const std::string& position, size_t max_events,
                                       int64_t wait_ms) = 0;

  // Names the log, so that a saved position is never used on another one.
  virtual std::string name() const = 0;
  // Whether the log is unreachable now.
  virtual bool degraded() const = 0;
  // One line on the log's connection (last error, next retry); no secrets.
  virtual std::string detail() const { return degraded() ? "unreachable" : "ok"; }
};

struct SemanticReplicationOptions {
  // Required: the id of the local cache's embedder. Vectors of another
  // embedder are never inserted; such questions are embedded again here.
  std::string embedder_id;
  // Where the last applied log position is saved (beside the cache's own
  // entries, e.g. <data-dir>/semantic/stream.pos); empty: not saved, every
  // start reads the whole log.
  std::string position_path;
  // Changes waiting for the log while it is unreachable; the oldest are
  // dropped past this.
  size_t max_pending = 10'000;
  // Events per append and per read.
  size_t batch = 256;
  // How long one read waits for new events: bounds how long stopping takes.
  int64_t wait_ms = 250;
  // At start, how long the constructor waits for the catch-up to finish
  // before serving (it goes on in the background afterwards). Not waited for
  // when the log is unreachable.
  int64_t catch_up_wait_ms = 5'000;
  // Retry delays while the log is unreachable: doubling from initial to max.
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 5'000;
  // The saved position is rewritten at most this often (and on Checkpoint).
  int64_t save_position_interval_ms = 1'000;
  // For the remaining TTL of remote entries; null: SystemClock().
  std::shared_ptr<Clock> clock;
};

// Wraps `local`: every Insert, InvalidateDoc and Erase that succeeds locally
// is appended to `log`; a reader thread applies the other replicas' events
// to `local` (their invalidations reach the RemoteRemovalListener too).
// Lookup, Maintain and the rest are local. InvalidArgument without an
// embedder id, local cache or log.
Result<std::shared_ptr<SemanticCache>> NewReplicatedSemanticCache(
    std::shared_ptr<SemanticCache> local, std::shared_ptr<SemanticReplicationLog> log,
    SemanticReplicationOptions options);

}  // namespace llmcache::semantic
