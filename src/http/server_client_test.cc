#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "http/client.h"
#include "http/server.h"
#include "http/sse.h"

namespace llmcache::http {
namespace {

// Runs one coroutine to completion on a private io_context.
template <class T>
T RunSync(std::function<awaitable<T>(net::any_io_executor)> f) {
  net::io_context ctx;
  auto fut = net::co_spawn(ctx, f(ctx.get_executor()), net::use_future);
  ctx.run();
  return fut.get();
}

// Raw bytes in, raw bytes out: for requests no well-behaved client sends.
std::string RawExchange(uint16_t port, std::string_view bytes, bool half_close = true) {
  net::io_context ctx;
  tcp::socket s(ctx);
  s.connect({net::ip::make_address("127.0.0.1"), port});
  net::write(s, net::buffer(bytes));
  boost::system::error_code ec;
  if (half_close) s.shutdown(tcp::socket::shutdown_send, ec);
  std::string out;
  char buf[4096];
  for (;;) {
    size_t n = s.read_some(net::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

class ServerClientTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions o = {}) {
    o.port = 0;
    o.threads = 2;
    server_ = std::make_unique<Server>(o, [this](Request& req, ResponseWriter& w) {
      return Handle(req, w);
    });
    ASSERT_TRUE(server_->Start().ok());
    base_ = *ParseBaseUrl("http://127.0.0.1:" + std::to_string(server_->port()) + "/v1");
  }

  awaitable<void> Handle(Request& req, ResponseWriter& w) {
    ++requests_;
    if (req.target() == "/v1/stream") {
      bhttp::response_header<> h;
      h.result(bhttp::status::ok);
      h.set(bhttp::field::content_type, "text/event-stream");
      co_await w.BeginStream(std::move(h));
      for (int i = 0; i < 5; ++i) co_await w.WriteChunk(FormatSseData("chunk" + std::to_string(i)));
      co_await w.EndStream();
      co_return;
    }
    if (req.target() == "/v1/abort") {
      bhttp::response_header<> h;
      h.result(bhttp::status::ok);
      co_await w.BeginStream(std::move(h));
      co_await w.WriteChunk("partial");
      w.AbortStream();
      co_return;
    }
    if (req.target() == "/v1/slow") {
      net::steady_timer t(co_await net::this_coro::executor, std::chrono::milliseconds(500));
      co_await t.async_wait(use_nothrow);
    }
    Response res{bhttp::status::ok, 11};
    res.set(bhttp::field::content_type, "text/plain");
    res.set("x-seen-auth", req[bhttp::field::authorization]);
    res.body() = std::string(req.method_string()) + " " + std::string(req.target()) + " " +
                 req.body();
    co_await w.Send(std::move(res));
  }

  Result<BufferedResponse> Call(std::string path, std::string body = "x",
                                ClientOptions opts = {}) {
    return RunSync<Result<BufferedResponse>>([&](net::any_io_executor ex)
                                                 -> awaitable<Result<BufferedResponse>> {
      HttpClient c(ex, base_, opts, nullptr);
      UpstreamRequest r;
      r.path = path;
      r.body = body;
      r.headers = {{"Authorization", "Bearer k"}};
      co_return co_await Fetch(c, r);
    });
  }

  std::unique_ptr<Server> server_;
  BaseUrl base_;
  std::atomic<int> requests_{0};
};

TEST(BaseUrlTest, ParsesLikeAnOpenAiBaseUrl) {
  auto b = ParseBaseUrl("http://127.0.0.1:11434/v1/");
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(b->tls);
  EXPECT_EQ(b->host, "127.0.0.1");
  EXPECT_EQ(b->port, "11434");
  EXPECT_EQ(b->base_path, "/v1");
  auto s = ParseBaseUrl("https://api.example.com/v1");
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(s->tls);
  EXPECT_EQ(s->port, "443");
  auto v6 = ParseBaseUrl("http://[::1]:8000");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->base_path, "");
  EXPECT_FALSE(ParseBaseUrl("ftp://x/").has_value());
  EXPECT_FALSE(ParseBaseUrl("http://user:pw@x/").has_value());
  EXPECT_FALSE(ParseBaseUrl("not a url").has_value());
}

TEST_F(ServerClientTest, RoundTripWithHeadersAndBody) {
  StartServer();
  auto r = Call("/chat/completions", "hello");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, "POST /v1/chat/completions hello");
  EXPECT_EQ(r->Header("x-seen-auth"), "Bearer k");
}

TEST_F(ServerClientTest, KeepAliveConnectionIsReused) {
  StartServer();
  auto n = RunSync<int>([&](net::any_io_executor ex) -> awaitable<int> {
    HttpClient c(ex, base_, {}, nullptr);
    int ok = 0;
    for (int i = 0; i < 20; ++i) {
      UpstreamRequest r;
      r.path = "/x";
      auto res = co_await Fetch(c, r);
      ok += res.has_value() && res->status == 200;
    }
    co_return ok;
  });
  EXPECT_EQ(n, 20);
  EXPECT_EQ(server_->accepted_connections(), 1u);
}

TEST_F(ServerClientTest, ChunkedStreamArrivesWhole) {
  StartServer();
  auto r = Call("/stream");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  std::string expect;
  for (int i = 0; i < 5; ++i) expect += FormatSseData("chunk" + std::to_string(i));
  EXPECT_EQ(r->body, expect);
}

TEST_F(ServerClientTest, AbortedStreamIsAnErrorForTheClient) {
  StartServer();
  auto r = Call("/abort");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kIOError);
}

TEST_F(ServerClientTest, ConnectFailureIsUnavailable) {
  // A port nobody listens on: bind one, remember it, close it.
  uint16_t port;
  {
    net::io_context ctx;
    tcp::acceptor a(ctx, {net::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  base_ = *ParseBaseUrl("http://127.0.0.1:" + std::to_string(port));
  ClientOptions o;
  o.connect_retries = 1;
  o.retry_backoff = std::chrono::milliseconds(1);
  auto r = Call("/x", "x", o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kUnavailable);
}

TEST_F(ServerClientTest, ReadTimeoutIsTimeout) {
  StartServer();
  ClientOptions o;
  o.read_timeout = std::chrono::milliseconds(100);
  auto r = Call("/slow", "x", o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kTimeout);
}

TEST_F(ServerClientTest, StalePooledConnectionIsRetriedOnce) {
  ServerOptions so;
  so.idle_timeout = std::chrono::milliseconds(50);
  StartServer(so);
  auto statuses = RunSync<std::vector<unsigned>>(
      [&](net::any_io_executor ex) -> awaitable<std::vector<unsigned>> {
        ClientOptions o;
        o.idle_reuse_limit = std::chrono::seconds(60);
        HttpClient c(ex, base_, o, nullptr);
        std::vector<unsigned> out;
        for (int i = 0; i < 2; ++i) {
          UpstreamRequest r;
          r.path = "/x";
          auto res = co_await Fetch(c, r);
          out.push_back(res ? res->status : 0);
          // Let the server drop the idle connection.
          net::steady_timer t(ex, std::chrono::milliseconds(200));
          co_await t.async_wait(use_nothrow);
        }
        co_return out;
      });
  EXPECT_EQ(statuses, (std::vector<unsigned>{200, 200}));
  EXPECT_EQ(requests_.load(), 2);
}

TEST_F(ServerClientTest, OversizedBodyGets413) {
  ServerOptions so;
  so.max_body_bytes = 1000;
  StartServer(so);
  std::string big(5000, 'a');
  std::string out = RawExchange(server_->port(), "POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + big);
  EXPECT_NE(out.find("HTTP/1.1 413"), std::string::npos) << out;
  EXPECT_NE(out.find("\"error\""), std::string::npos);
  EXPECT_EQ(requests_.load(), 0);
  // The server keeps serving.
  auto r = Call("/x");
  ASSERT_TRUE(r.has_value());
}

TEST_F(ServerClientTest, Expect100ContinueIsHonoured) {
  StartServer();
  std::string out = RawExchange(server_->port(),
                                "POST /v1/e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                "Content-Length: 3\r\nConnection: close\r\n\r\nabc");
  EXPECT_EQ(out.rfind("HTTP/1.1 100 Continue", 0), 0u) << out;
  EXPECT_NE(out.find("POST /v1/e abc"), std::string::npos);
}

TEST_F(ServerClientTest, MalformedRequestGets400AndServerSurvives) {
  StartServer();
  std::string out = RawExchange(server_->port(), "GARBAGE\x01\x02 nonsense\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 400"), std::string::npos) << out;
  auto r = Call("/x");
  ASSERT_TRUE(r.has_value());
}

TEST_F(ServerClientTest, HalfSentRequestTimesOut) {
  ServerOptions so;
  so.request_timeout = std::chrono::milliseconds(200);
  StartServer(so);
  // Content-Length promises more than is sent; the socket stays open.
  std::string out = RawExchange(server_->port(),
                                "POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
                                /*half_close=*/false);
  // The deadline closes the connection without handing the request on.
  EXPECT_EQ(out, "");
  EXPECT_EQ(requests_.load(), 0);
  auto r = Call("/x");
  ASSERT_TRUE(r.has_value());
}

TEST_F(ServerClientTest, TooManyConnectionsGet503) {
  ServerOptions so;
  so.max_connections = 2;
  so.threads = 1;
  StartServer(so);
  net::io_context ctx;
  std::vector<tcp::socket> held;
  for (int i = 0; i < 2; ++i) {
    held.emplace_back(ctx);
    held.back().connect({net::ip::make_address("127.0.0.1"), server_->port()});
  }
  // Wait until the server has accepted both; bounded.
  for (int i = 0; i < 200 && server_->active_connections() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::string out = RawExchange(server_->port(), "GET /v1/x HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 503"), std::string::npos) << out;
}

TEST_F(ServerClientTest, Http10StreamEndsWithClose) {
  StartServer();
  std::string out = RawExchange(server_->port(), "GET /v1/stream HTTP/1.0\r\n\r\n");
  EXPECT_EQ(out.find("chunked"), std::string::npos);
  EXPECT_NE(out.find("data: chunk4\n\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace llmcache::http
