#include "gateway/single_flight.h"

#include <algorithm>
#include <chrono>

namespace llmcache::gateway {

void Flight::WakeLocked() {
  for (auto& w : waiters_) {
    // Timers are not thread-safe: cancel on the follower's own executor. The
    // follower cannot miss it: it registered under mu_ and suspends before
    // its executor runs anything else.
    if (auto t = w.lock()) http::net::post(t->get_executor(), [t] { t->cancel(); });
  }
  waiters_.clear();
}

void Flight::SetHead(unsigned status, std::string content_type, bool stream, Headers headers) {
  std::lock_guard lock(mu_);
  head_known_ = true;
  status_ = status;
  content_type_ = std::move(content_type);
  headers_ = std::move(headers);
  stream_ = stream;
  WakeLocked();
}

void Flight::AppendEvents(const std::vector<std::string>& events) {
  if (events.empty()) return;
  std::lock_guard lock(mu_);
  events_.insert(events_.end(), events.begin(), events.end());
  WakeLocked();
}

void Flight::Finish(std::string body, bool from_cache) {
  std::lock_guard lock(mu_);
  state_ = State::kDone;
  body_ = std::move(body);
  from_cache_ = from_cache;
  WakeLocked();
}

void Flight::Fail(unsigned status, std::string error_body) {
  std::lock_guard lock(mu_);
  state_ = State::kFailed;
  head_known_ = true;
  status_ = status;
  content_type_ = "application/json";
  body_ = std::move(error_body);
  WakeLocked();
}

size_t Flight::followers() const {
  std::lock_guard lock(mu_);
  return followers_;
}

http::awaitable<Flight::View> Flight::Next(size_t& seen, bool want_events) {
  auto executor = co_await http::net::this_coro::executor;
  while (true) {
    std::shared_ptr<http::net::steady_timer> timer;
    {
      std::lock_guard lock(mu_);
      bool fresh = want_events && head_known_ && events_.size() > seen;
      if (state_ != State::kRunning || fresh) {
        View v;
        v.state = state_;
        v.head_known = head_known_;
        v.status = status_;
        v.stream = stream_;
        v.content_type = content_type_;
        v.headers = headers_;
        if (want_events || state_ != State::kRunning) {
          v.events.assign(events_.begin() + static_cast<std::ptrdiff_t>(seen), events_.end());
          seen = events_.size();
        }
        if (state_ != State::kRunning) v.body = body_;
        v.from_cache = from_cache_;
        co_return v;
      }
      timer = std::make_shared<http::net::steady_timer>(executor);
      timer->expires_at(http::net::steady_timer::time_point::max());
      waiters_.push_back(timer);
    }
    co_await timer->async_wait(http::use_nothrow);
  }
}

FlightTable::Ticket FlightTable::Join(const std::string& key) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = flights_.try_emplace(key);
  if (inserted) {
    it->second = std::make_shared<Flight>();
  } else {
    std::lock_guard flock(it->second->mu_);
    ++it->second->followers_;
  }
  return Ticket{it->second, inserted};
}

void FlightTable::Remove(const std::string& key, const std::shared_ptr<Flight>& flight) {
  std::lock_guard lock(mu_);
  auto it = flights_.find(key);
  if (it != flights_.end() && it->second == flight) flights_.erase(it);
}

size_t FlightTable::size() const {
  std::lock_guard lock(mu_);
  return flights_.size();
}

http::awaitable<Status> WaitForSharedLeader(SharedFlight& flight, std::string_view key,
                                            int64_t timeout_ms, PendingCalls& pending) {
  using std::chrono::milliseconds;
  using SteadyClock = std::chrono::steady_clock;
  // A leader's upstream call takes hundreds of milliseconds or more: a few
  // quick polls catch the short ones, then the pace settles.
  constexpr milliseconds kFirstPoll{5}, kMaxPoll{50};
  const auto deadline = SteadyClock::now() + milliseconds(std::max<int64_t>(0, timeout_ms));
  auto executor = co_await http::net::this_coro::executor;
  http::net::steady_timer timer(executor);
  SteadyClock::duration interval = kFirstPoll;
  while (true) {
    const auto now = SteadyClock::now();
    if (now >= deadline) {
      co_return Status::Timeout("shared flight: the other replica's leader is still working");
    }
    timer.expires_after(std::min(interval, deadline - now));
    co_await timer.async_wait(http::use_nothrow);
    interval = std::min<SteadyClock::duration>(interval * 2, kMaxPoll);
    Result<bool> held = co_await AwaitHeld(flight, key, pending);
    if (!held) co_return held.error();
    if (!*held) co_return Status::OK();
  }
}

}  // namespace llmcache::gateway
