#include "store/redis_store.h"

#include <openssl/sha.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <utility>

#include "common/hash.h"
#include "store/entry_codec.h"
#include "store/expiry_internal.h"
#include "store/redis_store_async.h"
#include "store/redis_url.h"

namespace llmcache {

namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
// Redis refuses expiry times that overflow its clock; nothing we store
// needs to outlive ten years.
constexpr int64_t kMaxPexpireMs = 10LL * 365 * 24 * 3600 * 1000;
constexpr size_t kSweepBatch = 128;
constexpr int kSweepBatches = 8;
constexpr int kEvictCandidates = 16;
constexpr int kEvictRounds = 64;
constexpr const char* kScanCount = "512";

// KEYS: entry, lru. ARGV: member, now, touch ttl (0: none), max value bytes.
// Returns nil (absent), {'corrupt', why} or {'ok', v, h, l, pttl} with h/l
// as they were before this read.
constexpr std::string_view kLookupLua = R"lua(
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return false end
if t ~= 'hash' then return {'corrupt', 'a ' .. t .. ' key'} end
if redis.call('HSTRLEN', KEYS[1], 'v') > tonumber(ARGV[4]) then return {'corrupt', 'oversized value'} end
local r = redis.call('HMGET', KEYS[1], 'v', 'h', 'l')
if not r[1] then return {'corrupt', 'no value field'} end
local h = tonumber(r[2])
local l = tonumber(r[3])
if not h or not l or h ~= math.floor(h) or h < 0 then return {'corrupt', 'bad access fields'} end
redis.call('HINCRBY', KEYS[1], 'h', 1)
if tonumber(ARGV[2]) > l then
  redis.call('HSET', KEYS[1], 'l', ARGV[2])
  redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[1])
end
local pttl = redis.call('PTTL', KEYS[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 and pttl >= 0 and pttl < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
  pttl = ttl
end
return {'ok', r[1], r[2], r[3], pttl}
)lua";

// KEYS: entry, lru, exp, sz, bytes. ARGV: member, v, size, h, l, c, t, f,
// deadline (-1: none), pttl (0: none). Returns the new byte total.
constexpr std::string_view kInsertLua = R"lua(
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'h', ARGV[4], 'l', ARGV[5], 'c', ARGV[6], 't', ARGV[7], 'f', ARGV[8])
if tonumber(ARGV[10]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[10]) end
local old = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or 0) or 0
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
if tonumber(ARGV[9]) >= 0 then
  redis.call('ZADD', KEYS[3], ARGV[9], ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return redis.call('INCRBY', KEYS[5], tonumber(ARGV[3]) - old)
)lua";

// KEYS: entry, lru, exp, sz, bytes. ARGV: member, expected c, expected l
// ('' skips a check). Returns {removed (1/0, -1 changed), byte total}.
constexpr std::string_view kRemoveLua = R"lua(
if ARGV[2] ~= '' and redis.call('TYPE', KEYS[1]).ok == 'hash' then
  local r = redis.call('HMGET', KEYS[1], 'c', 'l')
  if (r[1] and r[1] ~= ARGV[2]) or (ARGV[3] ~= '' and r[2] and r[2] ~= ARGV[3]) then
    return {-1, tonumber(redis.call('GET', KEYS[5]) or 0) or 0}
  end
end
local existed = redis.call('DEL', KEYS[1])
local old = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or 0) or 0
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local bytes = redis.call('DECRBY', KEYS[5], old)
if bytes < 0 or redis.call('HLEN', KEYS[4]) == 0 then
  redis.call('SET', KEYS[5], 0)
  bytes = 0
end
return {existed, bytes}
)lua";

// KEYS: entry, lru. ARGV: member, h, l, touch ttl. Merges reads served by
// another tier (maximum of stored and reported). Returns 1 when present.
constexpr std::string_view kTouchLua = R"lua(
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local r = redis.call('HMGET', KEYS[1], 'h', 'l')
if tonumber(ARGV[2]) > (tonumber(r[1]) or 0) then redis.call('HSET', KEYS[1], 'h', ARGV[2]) end
if tonumber(ARGV[3]) > (tonumber(r[2]) or 0) then
  redis.call('HSET', KEYS[1], 'l', ARGV[3])
  redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[1])
end
local ttl = tonumber(ARGV[4])
local pttl = redis.call('PTTL', KEYS[1])
if ttl > 0 and pttl >= 0 and pttl < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
)lua";

std::string Sha1Hex(std::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return HexEncode(digest, sizeof(digest));
}

std::string_view Str(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
               r->type == REDIS_REPLY_ERROR)
             ? std::string_view(r->str, r->len)
             : std::string_view{};
}

bool IsError(const redisReply* r) { return r && r->type == REDIS_REPLY_ERROR; }

Status ErrorReply(const redisReply* r, std::string_view what) {
  return Status::Unavailable("redis " + std::string(what) + ": " + std::string(Str(r)));
}

template <class T>
bool ParseNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

int64_t Integer(const redisReply* r, int64_t fallback = 0) {
  if (!r) return fallback;
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  int64_t v = fallback;
  if (r->type == REDIS_REPLY_STRING && ParseNumber(Str(r), &v)) return v;
  return fallback;
}

// Glob-escapes a literal for SCAN MATCH.
std::string GlobEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

struct RedisLuaScript {
  explicit RedisLuaScript(std::string_view t, int keys)
      : text(t), sha(Sha1Hex(t)), num_keys(keys) {}
  std::string_view text;
  std::string sha;
  int num_keys;
};

namespace {
const RedisLuaScript& LookupScript() {
  static const RedisLuaScript s(kLookupLua, 2);
  return s;
}
const RedisLuaScript& InsertScript() {
  static const RedisLuaScript s(kInsertLua, 5);
  return s;
}
const RedisLuaScript& RemoveScript() {
  static const RedisLuaScript s(kRemoveLua, 5);
  return s;
}
const RedisLuaScript& TouchScript() {
  static const RedisLuaScript s(kTouchLua, 2);
  return s;
}
}  // namespace

RedisStore::RedisStore(RedisStoreOptions options, std::shared_ptr<RedisPool> pool)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : SystemClock()),
      pool_(std::move(pool)),
      lru_key_(options_.key_prefix + "i:lru"),
      exp_key_(options_.key_prefix + "i:exp"),
      sz_key_(options_.key_prefix + "i:sz"),
      bytes_key_(options_.key_prefix + "i:bytes") {}

RedisStore::~RedisStore() {
  // First: the link fails its pending calls, whose callbacks use this store.
  link_started_.store(nullptr);
  link_.reset();
  pool_->Shutdown();
}

std::string RedisStore::EntryKey(std::string_view key) const {
  std::string k = options_.key_prefix;
  k += "e:";
  k += key;
  return k;
}

int64_t RedisStore::TouchTtlMs() const {
  if (options_.expiry.idle_ttl_ms <= 0) return 0;
  return std::min(options_.expiry.idle_ttl_ms, kMaxPexpireMs - options_.expire_grace_ms) +
         options_.expire_grace_ms;
}

Result<std::vector<RedisReplyPtr>> RedisStore::RunScripts(
    const RedisLuaScript& script, std::vector<std::vector<std::string>> calls) {
  const std::string num_keys = std::to_string(script.num_keys);
  std::vector<RedisCommand> commands;
  commands.reserve(calls.size());
  for (const auto& args : calls) {
    RedisCommand c = {"EVALSHA", script.sha, num_keys};
    for (const auto& a : args) c.push_back(a);
    commands.push_back(std::move(c));
  }
  auto replies = pool_->Pipeline(commands);
  if (!replies) return replies;
  // A restarted (or failed-over) Redis has an empty script cache: resend
  // those calls with the script text, which also caches it again.
  std::vector<size_t> missing;
  for (size_t i = 0; i < replies->size(); ++i) {
    if (IsError((*replies)[i].get()) && Str((*replies)[i].get()).starts_with("NOSCRIPT")) {
      missing.push_back(i);
    }
  }
  if (missing.empty()) return replies;
  std::vector<RedisCommand> retry;
  for (size_t i : missing) {
    RedisCommand c = commands[i];
    c[0] = "EVAL";
    c[1] = script.text;
    retry.push_back(std::move(c));
  }
  auto again = pool_->Pipeline(retry);
  if (!again) return Err(again.error());
  for (size_t j = 0; j < missing.size(); ++j) (*replies)[missing[j]] = std::move((*again)[j]);
  return replies;
}

std::vector<std::string> RedisStore::RemoveArgs(std::string_view key,
                                                std::string_view expected_created,
                                                std::string_view expected_last) const {
  return {EntryKey(key),
          lru_key_,
          exp_key_,
          sz_key_,
          bytes_key_,
          std::string(key),
          std::string(expected_created),
          std::string(expected_last)};
}

Result<int> RedisStore::RemoveResult(const redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) return Err(ErrorReply(r, "remove"));
  last_bytes_.store(static_cast<uint64_t>(std::max<int64_t>(0, Integer(r->element[1]))));
  return static_cast<int>(Integer(r->element[0]));
}

Result<int> RedisStore::Remove(std::string_view key, std::string_view expected_created,
                               std::string_view expected_last) {
  auto replies = RunScripts(RemoveScript(), {RemoveArgs(key, expected_created, expected_last)});
  if (!replies) return Err(replies.error());
  return RemoveResult(replies->front().get());
}

std::vector<std::string> RedisStore::LookupArgs(std::string_view key, int64_t now) const {
  return {EntryKey(key),
          lru_key_,
          std::string(key),
          std::to_string(now),
          std::to_string(TouchTtlMs()),
          std::to_string(options_.max_value_bytes)};
}

RedisStore::LookupDecision RedisStore::InterpretLookup(std::string_view key, int64_t now,
                                                       const redisReply* r) const {
  LookupDecision d;
  if (r->type == REDIS_REPLY_NIL) {
    d.result = Err(Status::NotFound());
    return d;
  }
  auto corrupt = [&](std::string why) {
    // Written by something else (or damaged): never served, removed so the
    // next request can refill it.
    d.follow_up = LookupDecision::kDropCorrupt;
    d.result = Err(Status::Corruption("redis store: " + why));
    return d;
  };
  if (IsError(r)) {
    d.result = Err(ErrorReply(r, "lookup"));
    return d;
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
    d.result = Err(ErrorReply(r, "lookup"));
    return d;
  }
  if (Str(r->element[0]) == "corrupt") return corrupt(std::string(Str(r->element[1])));
  if (r->elements != 5) {
    d.result = Err(ErrorReply(r, "lookup"));
    return d;
  }
  auto decoded = DecodeEntry(Str(r->element[1]));
  if (!decoded) return corrupt(decoded.error().message());
  if (decoded->key != key) return corrupt("value holds another key");
  uint32_t hits = 0;
  int64_t last = 0;
  if (!ParseNumber(Str(r->element[2]), &hits) || !ParseNumber(Str(r->element[3]), &last)) {
    return corrupt("bad access fields");
  }
  auto entry = std::make_shared<CacheEntry>(std::move(*decoded));
  entry->hit_count = hits;
  entry->last_access_ms = last;
  if (IsExpired(ExpiryFields::Of(*entry), options_.expiry, now)) {
    // Removed only if nobody replaced it meanwhile (same creation time).
    d.follow_up = LookupDecision::kDropExpired;
    d.created = std::to_string(entry->created_ms);
    d.result = Err(Status::NotFound());
    return d;
  }
  entry->hit_count = hits == std::numeric_limits<uint32_t>::max() ? hits : hits + 1;
  entry->last_access_ms = std::max(last, now);
  // The script extended Redis's expiry by the idle window; a hit-extended
  // absolute TTL may need more (rare: only without idle expiry, or with
  // TTLs longer than the idle window).
  const int64_t pttl = Integer(r->element[4], -1);
  const int64_t deadline = ExpiryDeadlineMs(ExpiryFields::Of(*entry), options_.expiry);
  if (deadline != kNever && pttl >= 0) {
    const int64_t remaining = deadline - now;
    const int64_t want = remaining >= kMaxPexpireMs
                             ? kMaxPexpireMs
                             : std::min(remaining + options_.expire_grace_ms, kMaxPexpireMs);
    if (want > pttl) {
      d.follow_up = LookupDecision::kExtendExpiry;
      d.pexpire_ms = want;
    }
  }
  d.result = StoreHit{std::move(entry), "redis"};
  return d;
}

void RedisStore::CountRemoval(LookupDecision::FollowUp why, const Result<int>& removed) {
  if (!removed || *removed != 1) return;
  if (why == LookupDecision::kDropCorrupt) corrupt_dropped_.fetch_add(1, std::memory_order_relaxed);
  if (why == LookupDecision::kDropExpired) expirations_.fetch_add(1, std::memory_order_relaxed);
}

Result<StoreHit> RedisStore::Lookup(std::string_view key) {
  const int64_t now = Now();
  auto replies = RunScripts(LookupScript(), {LookupArgs(key, now)});
  if (!replies) return Err(replies.error());
  LookupDecision d = InterpretLookup(key, now, replies->front().get());
  switch (d.follow_up) {
    case LookupDecision::kNone:
      break;
    case LookupDecision::kDropCorrupt:
    case LookupDecision::kDropExpired:
      CountRemoval(d.follow_up, Remove(key, d.created));
      break;
    case LookupDecision::kExtendExpiry: {
      const std::string k = EntryKey(key), ms = std::to_string(d.pexpire_ms);
      (void)pool_->Command({"PEXPIRE", k, ms, "GT"});
      break;
    }
  }
  return std::move(d.result);
}

Result<std::vector<std::string>> RedisStore::InsertArgs(const CacheEntry& entry) const {
  std::string value;
  Status s = EncodeEntry(entry, &value);
  if (!s.ok()) return Err(s);
  if (value.size() > options_.max_value_bytes ||
      (options_.max_bytes > 0 && value.size() > options_.max_bytes)) {
    return Err(Status::ResourceExhausted("redis store: entry of " + std::to_string(value.size()) +
                                         " bytes exceeds the bound"));
  }
  const int64_t now = Now();
  const int64_t deadline = ExpiryDeadlineMs(ExpiryFields::Of(entry), options_.expiry);
  int64_t pttl = 0;
  if (deadline != kNever) {
    // Saturating: a far deadline must not wrap into "expire now".
    const int64_t remaining = deadline - now;
    pttl = remaining >= kMaxPexpireMs
               ? kMaxPexpireMs
               : std::clamp<int64_t>(remaining + options_.expire_grace_ms, 1, kMaxPexpireMs);
  }
  const int64_t last = std::max(entry.created_ms, entry.last_access_ms);
  std::string size = std::to_string(value.size());
  return std::vector<std::string>{EntryKey(entry.key),
                                  lru_key_,
                                  exp_key_,
                                  sz_key_,
                                  bytes_key_,
                                  entry.key,
                                  std::move(value),
                                  std::move(size),
                                  std::to_string(entry.hit_count),
                                  std::to_string(last),
                                  std::to_string(entry.created_ms),
                                  std::to_string(entry.ttl_ms),
                                  entry.ttl_fixed ? "1" : "0",
                                  deadline == kNever ? "-1" : std::to_string(deadline),
                                  std::to_string(pttl)};
}

Result<int64_t> RedisStore::InsertResult(const redisReply* r) {
  if (r->type != REDIS_REPLY_INTEGER) return Err(ErrorReply(r, "insert"));
  last_bytes_.store(static_cast<uint64_t>(std::max<int64_t>(0, r->integer)));
  return r->integer;
}

Status RedisStore::Insert(std::shared_ptr<const CacheEntry> entry) {
  if (!entry) return Status::InvalidArgument("redis store: null entry");
  auto args = InsertArgs(*entry);
  if (!args) return args.error();
  auto replies = RunScripts(InsertScript(), {std::move(*args)});
  if (!replies) return replies.error();
  auto bytes = InsertResult(replies->front().get());
  if (!bytes) return bytes.error();
  if (options_.max_bytes > 0 && static_cast<uint64_t>(*bytes) > options_.max_bytes) {
    // The entry is stored; a failed eviction only leaves Redis over our
    // bound until the next Insert or Maintain.
    (void)EvictToBound(*bytes);
  }
  return Status::OK();
}

RedisAsyncLink& RedisStore::Link() {
  std::call_once(link_once_, [this] {
    link_ = std::make_unique<RedisAsyncLink>(pool_->options());
    link_started_.store(link_.get(), std::memory_order_release);
  });
  return *link_;
}

void RedisStore::SendScript(const RedisLuaScript& script, std::vector<std::string> args,
                            RedisAsyncLink::Callback done) {
  std::vector<std::string> argv = {"EVALSHA", script.sha, std::to_string(script.num_keys)};
  argv.insert(argv.end(), std::make_move_iterator(args.begin()),
              std::make_move_iterator(args.end()));
  // Kept for the NOSCRIPT retry (a restarted Redis has no scripts cached).
  auto retry = std::make_shared<std::vector<std::string>>(argv);
  Link().Send(std::move(argv),
              [this, &script, retry, done = std::move(done)](Result<RedisReplyPtr> r) mutable {
                if (r && IsError(r->get()) && Str(r->get()).starts_with("NOSCRIPT")) {
                  (*retry)[0] = "EVAL";
                  (*retry)[1] = std::string(script.text);
                  return Link().Send(std::move(*retry), std::move(done));
                }
                done(std::move(r));
              });
}

void RedisStore::LookupAsync(std::string_view key, LookupCallback done) {
  const int64_t now = Now();
  SendScript(LookupScript(), LookupArgs(key, now),
             [this, key = std::string(key), now, done = std::move(done)](Result<RedisReplyPtr> r) {
               if (!r) return done(Err(r.error()));
               LookupDecision d = InterpretLookup(key, now, r->get());
               switch (d.follow_up) {
                 case LookupDecision::kNone:
                   break;
                 case LookupDecision::kDropCorrupt:
                 case LookupDecision::kDropExpired:
                   SendScript(RemoveScript(), RemoveArgs(key, d.created),
                              [this, why = d.follow_up](Result<RedisReplyPtr> removed) {
                                if (removed) CountRemoval(why, RemoveResult(removed->get()));
                              });
                   break;
                 case LookupDecision::kExtendExpiry:
                   Link().Send({"PEXPIRE", EntryKey(key), std::to_string(d.pexpire_ms), "GT"},
                               [](Result<RedisReplyPtr>) {});
                   break;
               }
               done(std::move(d.result));
             });
}

void RedisStore::InsertAsync(std::shared_ptr<const CacheEntry> entry, InsertCallback done) {
  // Eviction to our own byte bound takes several dependent round trips; it
  // stays on the blocking path (the production setup bounds Redis with
  // maxmemory instead, and max_bytes is 0).
  if (!entry || options_.max_bytes > 0) return done(Insert(std::move(entry)));
  auto args = InsertArgs(*entry);
  if (!args) return done(args.error());
  SendScript(InsertScript(), std::move(*args),
             [this, done = std::move(done)](Result<RedisReplyPtr> r) {
               if (!r) return done(r.error());
               auto bytes = InsertResult(r->get());
               done(bytes ? Status::OK() : bytes.error());
             });
}

Status RedisStore::Erase(std::string_view key) {
  auto removed = Remove(key);
  return removed ? Status::OK() : removed.error();
}

Status RedisStore::EvictToBound(int64_t bytes) {
  const std::string stop = std::to_string(kEvictCandidates - 1);
  for (int round = 0; round<kEvictRounds&& static_cast<uint64_t>(bytes)> options_.max_bytes;
       ++round) {
    auto range = pool_->Command({"ZRANGE", lru_key_, "0", stop, "WITHSCORES"});
    if (!range) return range.error();
    const redisReply* r = range->get();
    if (r->type != REDIS_REPLY_ARRAY) return ErrorReply(r, "ZRANGE");
    if (r->elements == 0) return Status::OK();  // nothing indexed: the total is stale
    std::vector<AccessUpdate> fresher;
    for (size_t i = 0; i + 1 < r->elements && static_cast<uint64_t>(bytes) > options_.max_bytes;
         i += 2) {
      const std::string member(Str(r->element[i]));
      double score = 0;
      ParseNumber(Str(r->element[i + 1]), &score);
      if (oracle_) {
        // An entry hot in the memory tier is not the least recently used,
        // whatever Redis last heard.
        if (auto a = oracle_(member); a && static_cast<double>(a->last_access_ms) > score) {
          fresher.push_back({member, *a});
          continue;
        }
      }
      auto removed = Remove(member);
      if (!removed) return removed.error();
      if (*removed == 1) evictions_.fetch_add(1, std::memory_order_relaxed);
      bytes = static_cast<int64_t>(last_bytes_.load());
    }
    if (!fresher.empty()) {
      Status s = RecordAccess(fresher);
      if (!s.ok()) return s;
    }
  }
  return Status::OK();
}

Status RedisStore::SweepExpired() {
  const int64_t now = Now();
  const std::string now_text = std::to_string(now);
  for (int batch = 0; batch < kSweepBatches; ++batch) {
    auto due = pool_->Command(
        {"ZRANGEBYSCORE", exp_key_, "-inf", now_text, "LIMIT", "0", std::to_string(kSweepBatch)});
    if (!due) return due.error();
    const redisReply* d = due->get();
    if (d->type != REDIS_REPLY_ARRAY) return ErrorReply(d, "ZRANGEBYSCORE");
    if (d->elements == 0) return Status::OK();
    std::vector<std::string> members, keys;
    std::vector<RedisCommand> reads;
    for (size_t i = 0; i < d->elements; ++i) {
      members.emplace_back(Str(d->element[i]));
      keys.push_back(EntryKey(members.back()));
    }
    for (const auto& k : keys) reads.push_back({"HMGET", k, "c", "t", "f", "h", "l"});
    auto fields = pool_->Pipeline(reads);
    if (!fields) return fields.error();
    std::vector<RedisCommand> rescore;
    std::vector<std::string> scores;
    scores.reserve(members.size());
    for (size_t i = 0; i < members.size(); ++i) {
      const redisReply* f = (*fields)[i].get();
      if (IsError(f)) {  // not a hash: written by something else
        auto removed = Remove(members[i]);
        if (!removed) return removed.error();
        if (*removed == 1) corrupt_dropped_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      ExpiryFields ef;
      int ttl_fixed = 0;
      if (f->type != REDIS_REPLY_ARRAY || f->elements != 5 ||
          f->element[0]->type == REDIS_REPLY_NIL) {
        // Gone from Redis (its own expiry or eviction): drop the index rows.
        auto removed = Remove(members[i]);
        if (!removed) return removed.error();
        continue;
      }
      const bool ok = ParseNumber(Str(f->element[0]), &ef.created_ms) &&
                      ParseNumber(Str(f->element[1]), &ef.ttl_ms) &&
                      ParseNumber(Str(f->element[2]), &ttl_fixed) &&
                      ParseNumber(Str(f->element[3]), &ef.hit_count) &&
                      ParseNumber(Str(f->element[4]), &ef.last_access_ms);
      if (!ok) {
        auto removed = Remove(members[i]);
        if (!removed) return removed.error();
        if (*removed == 1) corrupt_dropped_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      ef.ttl_fixed = ttl_fixed != 0;
      if (oracle_) {
        if (auto a = oracle_(members[i])) {
          ef.last_access_ms = std::max(ef.last_access_ms, a->last_access_ms);
          ef.hit_count = std::max(ef.hit_count, a->hit_count);
        }
      }
      const int64_t deadline = ExpiryDeadlineMs(ef, options_.expiry);
      if (deadline != kNever && now >= deadline) {
        auto removed = Remove(members[i], Str(f->element[0]), Str(f->element[4]));
        if (!removed) return removed.error();
        if (*removed == 1) expirations_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      // Read since it was indexed: file it under its real deadline.
      scores.push_back(deadline == kNever ? "+inf" : std::to_string(deadline));
      rescore.push_back({"ZADD", exp_key_, "XX", scores.back(), members[i]});
    }
    if (!rescore.empty()) {
      auto done = pool_->Pipeline(rescore);
      if (!done) return done.error();
    }
    if (d->elements < kSweepBatch) return Status::OK();
  }
  return Status::OK();
}

Status RedisStore::Maintain() {
  Status s = SweepExpired();
  if (!s.ok()) return s;
  if (options_.max_bytes == 0) return Status::OK();
  auto bytes = pool_->Command({"GET", bytes_key_});
  if (!bytes) return bytes.error();
  const int64_t total = Integer(bytes->get());
  if (static_cast<uint64_t>(total) > options_.max_bytes) return EvictToBound(total);
  return Status::OK();
}

Result<uint64_t> RedisStore::EraseIf(const std::function<bool(const CacheEntry&)>& pred) {
  const std::string match = GlobEscape(options_.key_prefix) + "e:*";
  const size_t member_offset = options_.key_prefix.size() + 2;
  std::string cursor = "0";
  uint64_t erased = 0;
  do {
    auto scan = pool_->Command({"SCAN", cursor, "MATCH", match, "COUNT", kScanCount});
    if (!scan) return Err(scan.error());
    const redisReply* r = scan->get();
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
      return Err(ErrorReply(r, "SCAN"));
    }
    cursor = std::string(Str(r->element[0]));
    const redisReply* keys = r->element[1];
    if (keys->elements == 0) continue;
    std::vector<RedisCommand> reads;
    for (size_t i = 0; i < keys->elements; ++i)
      reads.push_back({"HGET", Str(keys->element[i]), "v"});
    auto values = pool_->Pipeline(reads);
    if (!values) return Err(values.error());
    for (size_t i = 0; i < keys->elements; ++i) {
      const std::string_view full = Str(keys->element[i]);
      if (full.size() < member_offset) continue;
      const std::string member(full.substr(member_offset));
      const redisReply* v = (*values)[i].get();
      if (v->type == REDIS_REPLY_NIL) continue;  // gone since the SCAN
      Result<CacheEntry> entry = Err(Status::Corruption("not a hash"));
      if (v->type == REDIS_REPLY_STRING && v->len <= options_.max_value_bytes) {
        entry = DecodeEntry(Str(v));
      }
      if (!entry || entry->key != member) {
        auto removed = Remove(member);
        if (!removed) return Err(removed.error());
        if (*removed == 1) corrupt_dropped_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (!pred(*entry)) continue;
      auto removed = Remove(member);
      if (!removed) return Err(removed.error());
      if (*removed == 1) ++erased;  // SCAN may return a key twice
    }
  } while (cursor != "0");
  return erased;
}

StoreStats RedisStore::Stats() const {
  auto replies = pool_->Pipeline({{"HLEN", sz_key_}, {"GET", bytes_key_}});
  if (replies) {
    last_entries_.store(static_cast<uint64_t>(std::max<int64_t>(0, Integer((*replies)[0].get()))));
    last_bytes_.store(static_cast<uint64_t>(std::max<int64_t>(0, Integer((*replies)[1].get()))));
  }
  StoreStats st;
  st.entries = last_entries_.load();
  st.bytes = last_bytes_.load();
  st.evictions = evictions_.load();
  st.expirations = expirations_.load();
  st.corrupt_dropped = corrupt_dropped_.load();
  return st;
}

bool RedisStore::degraded() const {
  const RedisAsyncLink* link = link_started_.load(std::memory_order_acquire);
  return pool_->degraded() || (link && link->degraded());
}

Status RedisStore::RecordAccess(const std::vector<AccessUpdate>& updates) {
  if (updates.empty()) return Status::OK();
  std::vector<std::vector<std::string>> calls;
  const std::string touch = std::to_string(TouchTtlMs());
  for (const auto& u : updates) {
    calls.push_back({EntryKey(u.key), lru_key_, u.key, std::to_string(u.access.hit_count),
                     std::to_string(u.access.last_access_ms), touch});
  }
  auto replies = RunScripts(TouchScript(), std::move(calls));
  return replies ? Status::OK() : replies.error();
}

void RedisStore::SetAccessOracle(AccessOracle oracle) { oracle_ = std::move(oracle); }

Result<std::unique_ptr<Store>> OpenRedisStore(RedisStoreOptions options,
                                              std::shared_ptr<const StoreHealth>* health) {
  auto po = ResolvePoolOptions(options);
  if (!po) return Err(po.error());
  if (options.key_prefix.empty()) {
    return Err(Status::InvalidArgument("redis store: key_prefix must not be empty"));
  }
  if (options.expire_grace_ms < 0 || options.expire_grace_ms >= kMaxPexpireMs ||
      options.max_value_bytes == 0) {
    return Err(Status::InvalidArgument("redis store: bad expire_grace_ms or max_value_bytes"));
  }
  auto pool = std::make_shared<RedisPool>(std::move(*po));
  auto store = std::make_unique<RedisStore>(std::move(options), pool);
  // Connect now so a reachable Redis is used from the first request and an
  // unreachable one shows as degraded at once; neither is an error.
  (void)store->Stats();
  if (health) *health = store->health();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace llmcache
