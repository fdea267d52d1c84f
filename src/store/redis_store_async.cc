#include "store/redis_store_async.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <deque>
#include <thread>
#include <utility>

#include "store/redis_sentinel.h"

namespace llmcache {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

}  // namespace

class RedisAsyncLink::Impl : public std::enable_shared_from_this<Impl> {
 public:
  explicit Impl(RedisPoolOptions options)
      : options_(std::move(options)),
        work_(asio::make_work_guard(io_)),
        socket_(io_),
        timer_(io_),
        reader_(redisReaderCreate()) {}

  ~Impl() {
    if (reader_) redisReaderFree(reader_);
  }

  void Start() {
    thread_ = std::thread([self = shared_from_this()] { self->io_.run(); });
  }

  void Stop() {
    closed_.store(true);
    asio::post(io_, [self = shared_from_this()] {
      self->Fail(Status::Unavailable("redis store closed"), /*count=*/false);
      self->io_.stop();
    });
    if (thread_.joinable()) thread_.join();
    // Calls posted after the closing handler still owe their callbacks.
    io_.restart();
    io_.poll();
  }

  void Send(std::vector<std::string> argv, Callback done) {
    if (closed_.load()) return done(Err(Status::Unavailable("redis store closed")));
    if (down_.load(std::memory_order_acquire) &&
        NowNs() < retry_at_ns_.load(std::memory_order_acquire)) {
      return done(Err(Status::Unavailable("redis unavailable (circuit open)")));
    }
    asio::post(
        io_, [self = shared_from_this(), argv = std::move(argv), done = std::move(done)]() mutable {
          self->Enqueue(std::move(argv), std::move(done));
        });
  }

  bool degraded() const { return closed_.load() || failures_.load() > 0; }

 private:
  enum class State { kDown, kConnecting, kUp };
  struct Pending {
    Callback done;
    int64_t sent_ns;
  };
  struct Waiting {
    std::vector<std::string> argv;
    Callback done;
  };

  // --- everything below runs on the I/O thread ---

  void Enqueue(std::vector<std::string> argv, Callback done) {
    if (closed_.load()) return done(Err(Status::Unavailable("redis store closed")));
    switch (state_) {
      case State::kUp:
        return Write(argv, std::move(done));
      case State::kConnecting:
        waiting_.push_back({std::move(argv), std::move(done)});
        return;
      case State::kDown:
        if (NowNs() < retry_at_ns_.load()) {
          return done(Err(Status::Unavailable("redis unavailable (circuit open)")));
        }
        waiting_.push_back({std::move(argv), std::move(done)});
        StartConnect();
        return;
    }
  }

  void Write(const std::vector<std::string>& argv, Callback done) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    char* cmd = nullptr;
    const int len =
        redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), ptrs.data(), lens.data());
    if (len < 0) return done(Err(Status::Internal("redis: cannot format command")));
    out_.append(cmd, static_cast<size_t>(len));
    redisFreeCommand(cmd);
    pending_.push_back({std::move(done), NowNs()});
    ArmWatchdog();
    if (!writing_) DoWrite();
  }

  void DoWrite() {
    writing_ = true;
    in_flight_.swap(out_);
    out_.clear();
    asio::async_write(
        socket_, asio::buffer(in_flight_),
        [self = shared_from_this(), gen = generation_](boost::system::error_code ec, size_t) {
          if (gen != self->generation_) return;
          self->writing_ = false;
          if (ec) return self->Fail(Status::Unavailable("redis write: " + ec.message()));
          if (!self->out_.empty()) self->DoWrite();
        });
  }

  void DoRead() {
    socket_.async_read_some(asio::buffer(read_buf_), [self = shared_from_this(), gen = generation_](
                                                         boost::system::error_code ec, size_t n) {
      if (gen != self->generation_) return;
      if (ec) return self->Fail(Status::Unavailable("redis read: " + ec.message()));
      if (redisReaderFeed(self->reader_, self->read_buf_.data(), n) != REDIS_OK) {
        return self->Fail(Status::Unavailable("redis: protocol error"));
      }
      while (true) {
        void* raw = nullptr;
        if (redisReaderGetReply(self->reader_, &raw) != REDIS_OK) {
          return self->Fail(Status::Unavailable("redis: protocol error"));
        }
        if (!raw) break;
        RedisReplyPtr reply(static_cast<redisReply*>(raw));
        if (self->pending_.empty()) {
          return self->Fail(Status::Unavailable("redis: reply nobody asked for"));
        }
        Pending p = std::move(self->pending_.front());
        self->pending_.pop_front();
        if (RedisReplyMeansUnusable(reply.get())) {
          Status why = Status::Unavailable("redis: " + std::string(reply->str, reply->len));
          p.done(Err(why));
          return self->Fail(why);
        }
        p.done(std::move(reply));
        if (gen != self->generation_) return;  // the callback failed the link
      }
      self->DoRead();
    });
  }

  void ArmWatchdog() {
    if (watchdog_armed_ || pending_.empty()) return;
    watchdog_armed_ = true;
    const int64_t due_ns = pending_.front().sent_ns + options_.command_timeout_ms * 1'000'000;
    timer_.expires_after(std::chrono::nanoseconds(std::max<int64_t>(0, due_ns - NowNs())));
    timer_.async_wait([self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
      if (ec || gen != self->generation_) return;
      self->watchdog_armed_ = false;
      if (self->pending_.empty()) return;
      if (NowNs() >=
          self->pending_.front().sent_ns + self->options_.command_timeout_ms * 1'000'000) {
        return self->Fail(Status::Unavailable("redis command timed out"));
      }
      self->ArmWatchdog();
    });
  }

  void StartConnect() {
    state_ = State::kConnecting;
    ++generation_;
    // Blocking, but only while the link is down and nothing else is in
    // flight: Sentinel discovery and name resolution.
    RedisHostPort target = options_.url.hosts.front();
    if (options_.url.sentinel) {
      auto found = DiscoverPrimary(options_.url.hosts, options_.url.master_name,
                                   options_.connect_timeout_ms);
      if (!found) return Fail(found.error());
      target = *found;
    }
    boost::system::error_code ec;
    tcp::resolver resolver(io_);
    auto endpoints = resolver.resolve(target.host, std::to_string(target.port), ec);
    if (ec) return Fail(Status::Unavailable("redis resolve " + target.host + ": " + ec.message()));
    timer_.expires_after(std::chrono::milliseconds(options_.connect_timeout_ms));
    watchdog_armed_ = true;  // the timer guards the connect until the link is up
    timer_.async_wait([self = shared_from_this(), gen = generation_](boost::system::error_code e) {
      if (e || gen != self->generation_) return;
      self->Fail(Status::Unavailable("redis connect timed out"));
    });
    asio::async_connect(socket_, endpoints,
                        [self = shared_from_this(), gen = generation_, target](
                            boost::system::error_code e, const tcp::endpoint&) {
                          if (gen != self->generation_) return;
                          if (e) {
                            return self->Fail(Status::Unavailable(
                                "redis connect to " + target.host + ":" +
                                std::to_string(target.port) + ": " + e.message()));
                          }
                          self->socket_.set_option(tcp::no_delay(true), e);
                          self->Handshake();
                        });
  }

  // AUTH, SELECT and (under Sentinel) ROLE, pipelined ahead of the waiting
  // commands; the link is up when the last one answers as expected.
  void Handshake() {
    timer_.cancel();
    watchdog_armed_ = false;
    DoRead();
    std::vector<std::vector<std::string>> steps;
    if (!options_.password.empty()) {
      std::vector<std::string> auth = {"AUTH"};
      if (!options_.url.username.empty()) auth.push_back(options_.url.username);
      auth.push_back(options_.password);
      steps.push_back(std::move(auth));
    }
    if (options_.url.db != 0) steps.push_back({"SELECT", std::to_string(options_.url.db)});
    if (options_.url.sentinel) steps.push_back({"ROLE"});
    if (steps.empty()) return Up();
    auto left = std::make_shared<size_t>(steps.size());
    const uint64_t gen = generation_;
    for (auto& step : steps) {
      const bool is_role = step.front() == "ROLE";
      Write(step, [self = shared_from_this(), left, gen, is_role](Result<RedisReplyPtr> r) {
        if (gen != self->generation_) return;
        if (!r) return;  // the link failed; Fail already ran
        const redisReply* reply = r->get();
        bool ok = reply->type != REDIS_REPLY_ERROR;
        if (ok && is_role) {
          ok = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
               reply->element[0]->type == REDIS_REPLY_STRING &&
               std::string_view(reply->element[0]->str, reply->element[0]->len) == "master";
        }
        if (!ok) return self->Fail(Status::Unavailable("redis handshake refused"));
        if (--*left == 0) self->Up();
      });
    }
  }

  void Up() {
    state_ = State::kUp;
    failures_.store(0);
    down_.store(false, std::memory_order_release);
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& w : waiting) Write(w.argv, std::move(w.done));
  }

  void Fail(Status why, bool count = true) {
    ++generation_;  // handlers of the old connection see they are stale
    state_ = State::kDown;
    boost::system::error_code ignored;
    socket_.close(ignored);
    timer_.cancel();
    watchdog_armed_ = false;
    writing_ = false;
    out_.clear();
    in_flight_.clear();
    redisReaderFree(reader_);
    reader_ = redisReaderCreate();
    if (count) {
      const int failures = failures_.fetch_add(1) + 1;
      const int64_t backoff = std::min(options_.backoff_max_ms,
                                       options_.backoff_initial_ms << std::min(failures - 1, 20));
      retry_at_ns_.store(NowNs() + backoff * 1'000'000, std::memory_order_release);
    }
    down_.store(true, std::memory_order_release);
    auto pending = std::move(pending_);
    pending_.clear();
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& p : pending) p.done(Err(why));
    for (auto& w : waiting) w.done(Err(why));
  }

  const RedisPoolOptions options_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  redisReader* reader_;
  std::thread thread_;

  State state_ = State::kDown;
  uint64_t generation_ = 0;
  std::deque<Pending> pending_;
  std::vector<Waiting> waiting_;
  std::string out_, in_flight_;
  bool writing_ = false;
  bool watchdog_armed_ = false;
  std::array<char, 64 * 1024> read_buf_;

  // Read by callers' threads for the fail-fast check.
  std::atomic<bool> closed_{false};
  std::atomic<bool> down_{false};
  std::atomic<int64_t> retry_at_ns_{0};
  std::atomic<int> failures_{0};
};

RedisAsyncLink::RedisAsyncLink(RedisPoolOptions options)
    : impl_(std::make_shared<Impl>(std::move(options))) {
  impl_->Start();
}

RedisAsyncLink::~RedisAsyncLink() { impl_->Stop(); }

void RedisAsyncLink::Send(std::vector<std::string> argv, Callback done) {
  impl_->Send(std::move(argv), std::move(done));
}

bool RedisAsyncLink::degraded() const { return impl_->degraded(); }

}  // namespace llmcache
