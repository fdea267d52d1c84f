// Coalesces concurrent identical misses: the first request for a key leads
// and calls the upstream; requests for the same key that arrive while it is
// in flight follow and receive the same answer, streaming followers chunk by
// chunk as the leader receives them. Followers may run on other worker
// threads; they are woken by a post to their own executor.
//
// Across replicas that share a store, a local leader additionally takes a
// SharedFlight lock (see WaitForSharedLeader and the gateway's Lead).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gateway/store_await.h"
#include "http/asio.h"
#include "llmcache/shared_flight.h"

namespace llmcache::gateway {

class Flight {
 public:
  enum class State { kRunning, kDone, kFailed };
  using Headers = std::vector<std::pair<std::string, std::string>>;

  // What a follower has been able to read so far.
  struct View {
    State state = State::kRunning;
    bool head_known = false;
    unsigned status = 0;
    bool stream = false;  // the leader relays an SSE stream
    std::string content_type;
    Headers headers;  // the upstream's end-to-end headers (Retry-After, rate limits)
    std::vector<std::string> events;  // new SSE payloads since the last read
    std::string body;                 // whole body, once done (non-stream)
    bool from_cache = false;          // the answer came from the store, not the upstream
  };

  // Leader side. Each call wakes the followers.
  void SetHead(unsigned status, std::string content_type, bool stream, Headers headers = {});
  void AppendEvents(const std::vector<std::string>& events);
  // Success (any HTTP status); body empty for streams. from_cache: the
  // leader found the answer in the store (another replica's) after all.
  void Finish(std::string body, bool from_cache = false);
  // The leader could not produce an answer; followers get this error.
  void Fail(unsigned status, std::string error_body);

  // Follower side: waits until something newer than `seen` events exists or
  // the flight ends, then returns it. `seen` advances.
  http::awaitable<View> Next(size_t& seen, bool want_events);

  size_t followers() const;

 private:
  friend class FlightTable;
  void WakeLocked();

  mutable std::mutex mu_;
  State state_ = State::kRunning;
  bool head_known_ = false;
  unsigned status_ = 0;
  bool stream_ = false;
  std::string content_type_;
  Headers headers_;
  std::vector<std::string> events_;
  std::string body_;
  bool from_cache_ = false;
  size_t followers_ = 0;
  // Weak: the waiting follower's frame owns its timer. A flight can outlive
  // the io_context of a follower (a gateway stopped mid-flight), and a timer
  // must not be destroyed after its io_context.
  std::vector<std::weak_ptr<http::net::steady_timer>> waiters_;
};

class FlightTable {
 public:
  struct Ticket {
    std::shared_ptr<Flight> flight;
    bool leader = false;
  };
  // Joins the flight for key, creating it (and becoming its leader) if none.
  Ticket Join(const std::string& key);
  // The leader removes its flight once the answer is complete or failed;
  // later requests start a new one (or hit the cache).
  void Remove(const std::string& key, const std::shared_ptr<Flight>& flight);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
};

// Waits until no replica holds key's shared lock any more (OK: its leader
// finished or gave up, or the lock expired), for at most timeout_ms
// (Timeout); Unavailable when the lock cannot be asked about. Polls on
// timers of the calling coroutine's executor, every few milliseconds at
// first and backing off, so the event loop is never held.
http::awaitable<Status> WaitForSharedLeader(SharedFlight& flight, std::string_view key,
                                            int64_t timeout_ms, PendingCalls& pending);

}  // namespace llmcache::gateway
