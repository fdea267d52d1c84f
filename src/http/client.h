// An HTTP/1.1 client for upstreams: HTTP and HTTPS (certificate and host
// name verification on), a keep-alive pool, connect and read timeouts, and
// retries only where the request cannot have reached the upstream.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "http/asio.h"
#include "llmcache/upstream.h"

namespace llmcache::http {

struct BaseUrl {
  bool tls = false;
  std::string host;       // without brackets for IPv6
  std::string port;       // always set: "80"/"443" when the URL omits it
  std::string base_path;  // no trailing slash; "" or "/v1"
  std::string host_header;
  std::string ToString() const;
};
// Accepts http:// and https:// URLs like an OpenAI client's base_url.
Result<BaseUrl> ParseBaseUrl(std::string_view url);

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  // Longest silence while waiting for any byte of the answer. Generous:
  // models can think for minutes before the first token.
  std::chrono::milliseconds read_timeout{600'000};
  // Extra attempts after a failed connect (resolve, TCP or TLS handshake).
  int connect_retries = 2;
  std::chrono::milliseconds retry_backoff{50};
  size_t max_idle_connections = 128;
  // Pooled connections idle longer than this are not reused: servers close
  // idle keep-alive connections (Node.js after 5 s), and a request written
  // into a connection the server is closing may be lost.
  std::chrono::milliseconds idle_reuse_limit{4'000};
  uint64_t max_response_bytes = 256ull << 20;
  bool verify_tls = true;
  std::string ca_file;  // extra trust anchors (PEM); system store is always used
};

// Makes the TLS context shared by every client of one process.
Result<std::shared_ptr<net::ssl::context>> MakeTlsContext(const ClientOptions& options);

class HttpClient final : public Upstream {
 public:
  HttpClient(net::any_io_executor executor, BaseUrl base, ClientOptions options,
             std::shared_ptr<net::ssl::context> tls);
  ~HttpClient() override;

  awaitable<Status> Send(const UpstreamRequest& request, UpstreamSink& sink) override;

  const BaseUrl& base() const { return base_; }

  struct Connection;

 private:
  awaitable<Result<std::unique_ptr<Connection>>> Connect();
  std::unique_ptr<Connection> TakeIdle();

  net::any_io_executor executor_;
  BaseUrl base_;
  ClientOptions options_;
  std::shared_ptr<net::ssl::context> tls_;
  std::deque<std::unique_ptr<Connection>> idle_;
};

// A whole answer, for callers that do not stream.
struct BufferedResponse {
  unsigned status = 0;
  HeaderList headers;
  std::string body;
  std::string_view Header(std::string_view name) const;
};
awaitable<Result<BufferedResponse>> Fetch(Upstream& upstream, const UpstreamRequest& request,
                                          uint64_t max_bytes = 256ull << 20);

}  // namespace llmcache::http
