// The client against a real TLS server on loopback: certificate and host
// name verification are on, and only a trusted certificate for the right
// name gets through.
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "http/client.h"

namespace llmcache::http {
namespace {

namespace fs = std::filesystem;

class TlsClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("llmcache-tls-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    auto make = [](const std::string& name, const std::string& san) {
      std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + name +
                        " -addext subjectAltName=" + san + " -keyout " + (dir_ / (name + ".key")).string() +
                        " -out " + (dir_ / (name + ".pem")).string() + " > /dev/null 2>&1";
      return std::system(cmd.c_str()) == 0;
    };
    ok_ = make("localhost", "IP:127.0.0.1,DNS:localhost") && make("elsewhere", "DNS:elsewhere.test");
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // Serves one HTTPS request with the given certificate, in a thread.
  uint16_t StartServer(const std::string& cert_name) {
    ctx_ = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
    ctx_->use_certificate_chain_file((dir_ / (cert_name + ".pem")).string());
    ctx_->use_private_key_file((dir_ / (cert_name + ".key")).string(), net::ssl::context::pem);
    acceptor_ = std::make_unique<tcp::acceptor>(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    uint16_t port = acceptor_->local_endpoint().port();
    thread_ = std::thread([this] {
      boost::system::error_code ec;
      tcp::socket s(io_);
      acceptor_->accept(s, ec);
      if (ec) return;
      beast::ssl_stream<tcp::socket> tls(std::move(s), *ctx_);
      tls.handshake(net::ssl::stream_base::server, ec);
      if (ec) return;
      beast::flat_buffer buf;
      bhttp::request<bhttp::string_body> req;
      bhttp::read(tls, buf, req, ec);
      if (ec) return;
      bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
      res.body() = "secure " + req.body();
      res.keep_alive(false);
      res.prepare_payload();
      bhttp::write(tls, res, ec);
      tls.shutdown(ec);
    });
    return port;
  }

  void TearDown() override {
    if (acceptor_) {
      boost::system::error_code ec;
      // Unblock accept() if the client never connected.
      tcp::socket poke(io_);
      poke.connect(acceptor_->local_endpoint(), ec);
    }
    if (thread_.joinable()) thread_.join();
  }

  Result<BufferedResponse> Call(const std::string& url, ClientOptions opts) {
    auto base = ParseBaseUrl(url);
    EXPECT_TRUE(base.has_value());
    auto tls = MakeTlsContext(opts);
    EXPECT_TRUE(tls.has_value());
    net::io_context ctx;
    auto fut = net::co_spawn(
        ctx,
        [&]() -> awaitable<Result<BufferedResponse>> {
          HttpClient c(ctx.get_executor(), *base, opts, *tls);
          UpstreamRequest r;
          r.path = "/x";
          r.body = "hi";
          co_return co_await Fetch(c, r);
        },
        net::use_future);
    ctx.run();
    return fut.get();
  }

  static inline fs::path dir_;
  static inline bool ok_ = false;
  net::io_context io_;
  std::unique_ptr<net::ssl::context> ctx_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::thread thread_;
};

TEST_F(TlsClientTest, TrustedCertificateForTheHostSucceeds) {
  ASSERT_TRUE(ok_) << "openssl could not make test certificates";
  uint16_t port = StartServer("localhost");
  ClientOptions o;
  o.ca_file = (dir_ / "localhost.pem").string();
  o.connect_retries = 0;
  auto r = Call("https://127.0.0.1:" + std::to_string(port) + "/v1", o);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, "secure hi");
}

TEST_F(TlsClientTest, UntrustedCertificateIsRefused) {
  ASSERT_TRUE(ok_);
  uint16_t port = StartServer("localhost");
  ClientOptions o;  // system trust store only: the self-signed cert is unknown
  o.connect_retries = 0;
  auto r = Call("https://127.0.0.1:" + std::to_string(port) + "/v1", o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.error().message().find("TLS"), std::string::npos) << r.error().ToString();
}

TEST_F(TlsClientTest, CertificateForAnotherHostIsRefused) {
  ASSERT_TRUE(ok_);
  uint16_t port = StartServer("elsewhere");
  ClientOptions o;
  o.ca_file = (dir_ / "elsewhere.pem").string();  // trusted, but names another host
  o.connect_retries = 0;
  auto r = Call("https://127.0.0.1:" + std::to_string(port) + "/v1", o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace llmcache::http
