// An HTTP/1.1 server on Boost.Beast with C++20 coroutines. One io_context per
// worker thread, each with its own SO_REUSEPORT acceptor, so connections never
// migrate between threads and the hot path takes no cross-thread locks.
//
// The server enforces the transport limits (body size, header size, request
// and idle timeouts, connection count) and answers their violations itself
// with an OpenAI-style JSON error; everything else goes to the Handler.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http/asio.h"
#include "llmcache/status.h"

namespace llmcache::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port; see Server::port()
  int threads = 0;       // 0: one per hardware thread
  // Bodies larger than this get 413. Default 8 MiB.
  uint64_t max_body_bytes = 8ull << 20;
  uint32_t max_header_bytes = 64u << 10;
  // A request (headers and body) must arrive within this time once its first
  // byte has; slow or half-sent requests are cut off (408, then closed).
  std::chrono::milliseconds request_timeout{30'000};
  // A keep-alive connection with no request in flight is closed after this.
  std::chrono::milliseconds idle_timeout{75'000};
  // A response write that makes no progress for this long closes the
  // connection (a client that stopped reading).
  std::chrono::milliseconds write_timeout{60'000};
  // Connections beyond this are answered 503 and closed.
  uint32_t max_connections = 4096;
};

using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

// Lets a handler answer once, either whole or as a chunked stream. Every
// method returns false when the client is gone; the handler should then stop.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual awaitable<bool> Send(Response response) = 0;
  // A whole response from prebuilt parts, for hot paths that serve stored
  // bytes: `head` is the status line and header block up to and including
  // the blank line (it must carry Content-Length and, for HTTP/1.1 without
  // keep-alive or HTTP/1.0 with it, the Connection header matching
  // `keep_alive`); `body` follows it without being copied. Both must stay
  // valid until the returned awaitable completes. The default parses `head`
  // and calls Send.
  virtual awaitable<bool> SendPrebuilt(std::string_view head, std::string_view body,
                                       bool keep_alive);
  // Starts a chunked response; `head` must not set a content length.
  virtual awaitable<bool> BeginStream(bhttp::response_header<> head) = 0;
  virtual awaitable<bool> WriteChunk(std::string_view data) = 0;
  // Ends the stream cleanly (terminating chunk).
  virtual awaitable<bool> EndStream() = 0;
  // Ends a started stream without its terminating chunk and closes the
  // connection, so the client sees a broken stream rather than a complete one.
  virtual void AbortStream() = 0;
  // False once the client closed or reset the connection, as far as a
  // non-blocking peek at the socket tells (bytes of a pipelined request keep
  // it true; a client that half-closes after its request counts as gone).
  // For handlers that compute long before writing anything.
  virtual bool client_connected() const { return true; }
  virtual bool sent() const = 0;
  // Index of the worker thread running this connection, in [0, threads).
  virtual int worker() const = 0;
  virtual const std::string& remote_address() const = 0;
};

using Handler = std::function<awaitable<void>(Request& request, ResponseWriter& writer)>;

// An OpenAI-style error response: {"error":{"message","type","param","code"}}.
Response MakeErrorResponse(unsigned status, std::string_view message,
                           std::string_view type = "invalid_request_error",
                           std::string_view param = {}, std::string_view code = {},
                           unsigned version = 11, bool keep_alive = true);

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the worker threads. Returns once the port is listening.
  Status Start();
  // Stops accepting and joins the workers. Idempotent. The io_contexts (and
  // with them open connections) live until the Server is destroyed, so that
  // objects bound to them can be released first.
  void Stop();

  uint16_t port() const { return port_; }
  int threads() const { return static_cast<int>(contexts_.size()); }
  uint32_t active_connections() const { return active_.load(std::memory_order_relaxed); }
  uint64_t accepted_connections() const { return accepted_.load(std::memory_order_relaxed); }
  // The io_context of worker i, for timers and clients that must live on the
  // same thread as a connection.
  net::io_context& context(int i) { return *contexts_[i]; }

 private:
  awaitable<void> AcceptLoop(int worker, tcp::acceptor& acceptor);
  awaitable<void> Session(int worker, tcp::socket socket);

  ServerOptions options_;
  Handler handler_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<net::io_context>> contexts_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::vector<std::thread> threads_;
  std::atomic<uint32_t> active_{0};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace llmcache::http
