// A loopback HTTP server for the openai-embedder and warm tests: answers
// each request with a plain function and counts what it saw.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/server.h"

namespace llmcache::semantic::testing {

struct SeenRequest {
  std::string target;
  std::string authorization;
  std::string ns;  // x-llmcache-namespace
  std::string body;
};

struct FakeAnswer {
  FakeAnswer() = default;
  FakeAnswer(unsigned s, std::string b, std::vector<std::pair<std::string, std::string>> h = {})
      : status(s), body(std::move(b)), headers(std::move(h)) {}
  unsigned status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds delay{0};  // before answering, to trip timeouts
};

class FakeHttpServer {
 public:
  using Answerer = std::function<FakeAnswer(const SeenRequest&)>;

  explicit FakeHttpServer(Answerer answer) : answer_(std::move(answer)) {
    http::ServerOptions o;
    o.port = 0;
    o.threads = 1;
    server_ = std::make_unique<http::Server>(
        o, [this](http::Request& req, http::ResponseWriter& w) { return Handle(req, w); });
    Status s = server_->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  ~FakeHttpServer() { server_->Stop(); }

  std::string base_url() const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + "/v1";
  }
  std::vector<SeenRequest> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  size_t count() const { return seen().size(); }

 private:
  http::awaitable<void> Handle(http::Request& req, http::ResponseWriter& w) {
    SeenRequest r{std::string(req.target()), std::string(req[http::bhttp::field::authorization]),
                  std::string(req["x-llmcache-namespace"]), req.body()};
    {
      std::lock_guard lock(mu_);
      seen_.push_back(r);
    }
    FakeAnswer a = answer_(r);
    if (a.delay.count() > 0) {
      http::net::steady_timer t(co_await http::net::this_coro::executor, a.delay);
      co_await t.async_wait(http::use_nothrow);
    }
    http::Response res{static_cast<http::bhttp::status>(a.status), req.version()};
    res.set(http::bhttp::field::content_type, "application/json");
    for (auto& [k, v] : a.headers) res.set(k, v);
    res.body() = std::move(a.body);
    res.prepare_payload();
    co_await w.Send(std::move(res));
  }

  Answerer answer_;
  std::unique_ptr<http::Server> server_;
  mutable std::mutex mu_;
  std::vector<SeenRequest> seen_;
};

}  // namespace llmcache::semantic::testing
