#include "semantic/redis_replication.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <string_view>
#include <utility>
#include <vector>

#include "store/redis_store_pool.h"

namespace llmcache::semantic {
namespace {

// A blocking XREAD waits at most this long, so that the pool's command
// timeout (command_timeout_ms plus this) never cuts a healthy wait short.
constexpr int64_t kMaxWaitMs = 1000;
constexpr std::string_view kStart = "0-0";

constexpr std::string_view KindName(SemanticEvent::Kind k) {
  switch (k) {
    case SemanticEvent::Kind::kInsert:
      return "insert";
    case SemanticEvent::Kind::kInvalidate:
      return "invalidate";
    case SemanticEvent::Kind::kErase:
      return "erase";
  }
  return "";
}

std::string_view Str(const redisReply* r) {
  if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS &&
             r->type != REDIS_REPLY_ERROR)) {
    return {};
  }
  return std::string_view(r->str, r->len);
}

bool ParseStreamId(std::string_view id, uint64_t* ms, uint64_t* seq) {
  const size_t dash = id.find('-');
  if (dash == std::string_view::npos) return false;
  auto a = std::from_chars(id.data(), id.data() + dash, *ms);
  auto b = std::from_chars(id.data() + dash + 1, id.data() + id.size(), *seq);
  return a.ec == std::errc() && a.ptr == id.data() + dash && b.ec == std::errc() &&
         b.ptr == id.data() + id.size();
}

// One stream entry ([id, [field, value, ...]]) as an event; false when it
// is not one of ours (or damaged).
bool DecodeEvent(const redisReply* entry, size_t max_bytes, std::string* id, SemanticEvent* ev) {
  if (!entry || entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) return false;
  *id = std::string(Str(entry->element[0]));
  const redisReply* fields = entry->element[1];
  if (id->empty() || !fields || fields->type != REDIS_REPLY_ARRAY || fields->elements % 2 != 0)
    return false;
  std::string_view kind, payload, embedder, unknown, doc, exact;
  size_t bytes = 0;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    const std::string_view name = Str(fields->element[i]);
    const std::string_view value = Str(fields->element[i + 1]);
    bytes += value.size();
    if (name == "o") ev->origin = std::string(value);
    else if (name == "k") kind = value;
    else if (name == "e") payload = value;
    else if (name == "m") embedder = value;
    else if (name == "u") unknown = value;
    else if (name == "d") doc = value;
    else if (name == "x") exact = value;
  }
  if (bytes > max_bytes || ev->origin.empty()) return false;
  if (kind == KindName(SemanticEvent::Kind::kInsert)) {
    auto e = DecodeSemanticEntry(payload);
    if (!e || e->exact_key.empty() || e->embedding.size() > (1u << 16)) return false;
    ev->kind = SemanticEvent::Kind::kInsert;
    ev->entry = std::move(*e);
    ev->embedder_id = std::string(embedder);
    double uf = -1;
    auto r = std::from_chars(unknown.data(), unknown.data() + unknown.size(), uf);
    if (r.ec != std::errc() || r.ptr != unknown.data() + unknown.size()) return false;
    ev->unknown_fraction = uf;
    return true;
  }
  if (kind == KindName(SemanticEvent::Kind::kInvalidate) && !doc.empty()) {
    ev->kind = SemanticEvent::Kind::kInvalidate;
    ev->doc_hash = std::string(doc);
    return true;
  }
  if (kind == KindName(SemanticEvent::Kind::kErase) && !exact.empty()) {
    ev->kind = SemanticEvent::Kind::kErase;
    ev->entry.exact_key = std::string(exact);
    return true;
  }
  return false;
}

class RedisSemanticLog final : public SemanticReplicationLog {
 public:
  RedisSemanticLog(RedisSemanticLogOptions o, std::shared_ptr<RedisPool> pool)
      : o_(std::move(o)), pool_(std::move(pool)), max_len_(std::to_string(o_.max_len)) {}
  ~RedisSemanticLog() override { pool_->Shutdown(); }

  std::string name() const override { return o_.stream_key; }
  bool degraded() const override { return pool_->degraded(); }
  std::string detail() const override { return pool_->detail(); }

  Status Append(std::span<const SemanticEvent> events) override {
    if (events.empty()) return Status::OK();
    // The encoded fields must outlive the pipeline's string_views.
    std::vector<std::vector<std::string>> owned(events.size());
    std::vector<RedisCommand> commands;
    commands.reserve(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      const SemanticEvent& ev = events[i];
      std::vector<std::string>& f = owned[i];
      f = {"o", ev.origin, "k", std::string(KindName(ev.kind))};
      switch (ev.kind) {
        case SemanticEvent::Kind::kInsert:
          f.insert(f.end(), {"e", EncodeSemanticEntry(ev.entry), "m", ev.embedder_id, "u",
                             std::to_string(ev.unknown_fraction)});
          break;
        case SemanticEvent::Kind::kInvalidate:
          f.insert(f.end(), {"d", ev.doc_hash});
          break;
        case SemanticEvent::Kind::kErase:
          f.insert(f.end(), {"x", ev.entry.exact_key});
          break;
      }
      RedisCommand c = {"XADD", o_.stream_key, "MAXLEN", "~", max_len_, "*"};
      for (const auto& s : f) c.push_back(s);
      commands.push_back(std::move(c));
    }
    auto replies = pool_->Pipeline(commands);
    if (!replies) return replies.error();
    for (const auto& r : *replies) {
      if (r->type == REDIS_REPLY_ERROR) {
        // WRONGTYPE (the key holds something else), OOM (noeviction): not
        // a connection problem, so retrying would not help.
        return Status::IOError("semantic log: XADD: " + std::string(r->str, r->len));
      }
    }
    return Status::OK();
  }

  Result<SemanticLogRead> Read(const std::string& position, size_t max_events,
                               int64_t wait_ms) override {
    const std::string after = position.empty() ? std::string(kStart) : position;
    auto first = Snapshot(after, max_events);
    if (!first || !first->events.empty() || first->gap || first->undecodable > 0 || wait_ms <= 0)
      return first;
    // Nothing new: wait on a blocking XREAD (its own pooled connection),
    // then take what arrived with the gap check of a fresh snapshot.
    const std::string block = std::to_string(std::min(wait_ms, kMaxWaitMs));
    auto woke = pool_->Command({"XREAD", "COUNT", "1", "BLOCK", block, "STREAMS", o_.stream_key,
                                first->next});
    if (!woke) return Err(woke.error());
    if ((*woke)->type != REDIS_REPLY_ARRAY) return first;  // nil: timed out, nothing new
    return Snapshot(after, max_events);
  }

 private:
  // One atomic look at the stream: whether `after` is still there, and what
  // follows it.
  Result<SemanticLogRead> Snapshot(const std::string& after, size_t max_events) {
    const std::string count = std::to_string(std::max<size_t>(1, max_events));
    auto replies = pool_->Pipeline({{"MULTI"},
                                    {"XINFO", "STREAM", o_.stream_key},
                                    {"XRANGE", o_.stream_key, after, after},
                                    {"XREAD", "COUNT", count, "STREAMS", o_.stream_key, after},
                                    {"EXEC"}});
    if (!replies) return Err(replies.error());
    const redisReply* exec = replies->back().get();
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != 3) {
      return Err(Status::Unavailable("semantic log: transaction failed: " +
                                     std::string(Str(exec).empty() ? "no reply" : Str(exec))));
    }
    const redisReply* info = exec->element[0];
    const redisReply* at = exec->element[1];
    const redisReply* read = exec->element[2];

    SemanticLogRead out;
    out.next = after;
    const bool exists = info->type == REDIS_REPLY_ARRAY;
    if (info->type == REDIS_REPLY_ERROR && Str(info).find("no such key") == std::string_view::npos) {
      // WRONGTYPE: the key holds something else; nothing to read from it.
      return Err(Status::IOError("semantic log: XINFO: " + std::string(Str(info))));
    }
    if (after != kStart) {
      const bool still_there = at->type == REDIS_REPLY_ARRAY && at->elements == 1;
      if (!exists) {
        out.gap = true;
        out.gap_reason = "the stream is gone (flushed, evicted, or Redis restarted without it)";
        out.next = std::string(kStart);
        return out;
      }
      if (!still_there) {
        std::string max_deleted;
        for (size_t i = 0; i + 1 < info->elements; i += 2) {
          if (Str(info->element[i]) == "max-deleted-entry-id")
            max_deleted = std::string(Str(info->element[i + 1]));
        }
        // Trimmed exactly up to our position: nothing unread was lost.
        if (max_deleted != after) {
          out.gap = true;
          out.gap_reason = CompareStreamIds(max_deleted, after) > 0
                               ? "entries after it were trimmed (raise the stream's max length)"
                               : "the stream no longer holds it (trimmed past it, or recreated)";
          // The oldest surviving entry follows our position in a trimmed
          // stream but maybe not in a recreated one: read from the start.
          out.next = std::string(kStart);
          return out;
        }
      }
    }
    if (read->type != REDIS_REPLY_ARRAY || read->elements == 0) return out;
    const redisReply* stream = read->element[0];
    if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
        stream->element[1]->type != REDIS_REPLY_ARRAY) {
      return Err(Status::IOError("semantic log: unexpected XREAD reply"));
    }
    const redisReply* entries = stream->element[1];
    for (size_t i = 0; i < entries->elements; ++i) {
      std::string id;
      SemanticEvent ev;
      if (DecodeEvent(entries->element[i], o_.max_entry_bytes, &id, &ev)) {
        out.events.push_back(std::move(ev));
      } else {
        ++out.undecodable;
      }
      if (!id.empty()) out.next = std::move(id);
    }
    return out;
  }

  const RedisSemanticLogOptions o_;
  const std::shared_ptr<RedisPool> pool_;
  const std::string max_len_;
};

// RedisPoolOptions from our options (the field names ResolvePoolOptions
// expects).
struct PoolFields {
  std::string url;
  std::string password_env;
  int max_connections = 3;  // appends, snapshots, one blocking read
  int64_t connect_timeout_ms;
  int64_t command_timeout_ms;
  int64_t backoff_initial_ms;
  int64_t backoff_max_ms;
};

}  // namespace

int CompareStreamIds(std::string_view a, std::string_view b) {
  uint64_t am = 0, as = 0, bm = 0, bs = 0;
  const bool av = ParseStreamId(a, &am, &as), bv = ParseStreamId(b, &bm, &bs);
  if (!av || !bv) return av == bv ? 0 : (av ? 1 : -1);
  if (am != bm) return am < bm ? -1 : 1;
  if (as != bs) return as < bs ? -1 : 1;
  return 0;
}

Result<std::unique_ptr<SemanticReplicationLog>> OpenRedisSemanticLog(
    RedisSemanticLogOptions options) {
  if (options.stream_key.empty() || options.max_len == 0 || options.max_entry_bytes == 0) {
    return Err(Status::InvalidArgument("semantic log: empty stream key or zero limits"));
  }
  PoolFields f;
  f.url = options.url;
  f.password_env = options.password_env;
  f.connect_timeout_ms = options.connect_timeout_ms;
  f.command_timeout_ms = options.command_timeout_ms + kMaxWaitMs;
  f.backoff_initial_ms = options.backoff_initial_ms;
  f.backoff_max_ms = options.backoff_max_ms;
  auto po = ResolvePoolOptions(f);
  if (!po) return Err(po.error());
  auto pool = std::make_shared<RedisPool>(std::move(*po));
  return std::unique_ptr<SemanticReplicationLog>(
      new RedisSemanticLog(std::move(options), std::move(pool)));
}

Result<std::shared_ptr<SemanticCache>> ReplicateThroughRedis(std::shared_ptr<SemanticCache> local,
                                                             std::string embedder_id,
                                                             const std::string& data_dir,
                                                             RedisSemanticLogOptions options) {
  auto log = OpenRedisSemanticLog(std::move(options));
  if (!log) return Err(log.error());
  SemanticReplicationOptions ro;
  ro.embedder_id = std::move(embedder_id);
  if (!data_dir.empty()) ro.position_path = (std::filesystem::path(data_dir) / "stream.pos").string();
  return NewReplicatedSemanticCache(std::move(local),
                                    std::shared_ptr<SemanticReplicationLog>(std::move(*log)), ro);
}

}  // namespace llmcache::semantic
