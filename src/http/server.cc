#include "http/server.h"

#include <sys/socket.h>

#include <cerrno>
#include <span>

#include <boost/json.hpp>

#include <spdlog/spdlog.h>

namespace llmcache::http {
namespace {

// Sends the error and reports whether the write went through.
awaitable<bool> WriteError(beast::tcp_stream& stream, std::chrono::milliseconds timeout,
                           unsigned status, std::string_view message, std::string_view code) {
  Response res = MakeErrorResponse(status, message, "invalid_request_error", {}, code, 11, false);
  stream.expires_after(timeout);
  auto [ec, n] = co_await bhttp::async_write(stream, res, use_nothrow);
  co_return !ec;
}

bool WouldBlock(const boost::system::error_code& ec) {
  return ec == net::error::would_block || ec == net::error::try_again;
}

// Connections run their sockets in non-blocking mode, so a synchronous
// operation either completes from what the kernel already has or fails with
// would_block, and only then does the caller fall back to the asynchronous
// operation with its deadline. The common case (a request already in the
// buffer, a response that fits the socket buffer) thus costs no timer
// arming, no reactor registration and no trip through the scheduler: each of
// those is a syscall or a wake-up, which is expensive on a virtual machine.
// The deadlines are unchanged: nothing can wait without one.
awaitable<boost::system::error_code> WriteAll(beast::tcp_stream& stream,
                                              std::span<const net::const_buffer> buffers,
                                              std::chrono::milliseconds timeout) {
  boost::system::error_code ec;
  size_t n = stream.socket().write_some(buffers, ec);
  if (ec && !WouldBlock(ec)) co_return ec;
  if (ec) n = 0;
  beast::buffers_suffix<std::span<const net::const_buffer>> rest(buffers);
  rest.consume(n);
  if (beast::buffer_bytes(rest) == 0) co_return boost::system::error_code{};
  stream.expires_after(timeout);
  auto [wec, wn] = co_await net::async_write(stream, rest, use_nothrow);
  co_return wec;
}

class ConnectionWriter final : public ResponseWriter {
 public:
  ConnectionWriter(beast::tcp_stream& stream, const ServerOptions& options, unsigned version,
                   bool keep_alive, int worker, const std::string& remote)
      : stream_(stream),
        options_(options),
        version_(version),
        keep_alive_(keep_alive),
        worker_(worker),
        remote_(remote) {}

  awaitable<bool> Send(Response response) override {
    if (sent_) co_return false;
    sent_ = true;
    response.version(version_);
    if (!keep_alive_) response.keep_alive(false);
    keep_alive_ = response.keep_alive();
    response.prepare_payload();
    bhttp::response_serializer<bhttp::string_body> sr{response};
    boost::system::error_code ec;
    bhttp::write(stream_.socket(), sr, ec);  // see WriteAll
    if (WouldBlock(ec)) {
      stream_.expires_after(options_.write_timeout);
      std::tie(ec, std::ignore) = co_await bhttp::async_write(stream_, sr, use_nothrow);
    }
    if (ec) broken_ = true;
    co_return !ec;
  }

  awaitable<bool> SendPrebuilt(std::string_view head, std::string_view body,
                               bool keep_alive) override {
    if (sent_) co_return false;
    sent_ = true;
    keep_alive_ = keep_alive_ && keep_alive;
    const net::const_buffer parts[] = {net::buffer(head), net::buffer(body)};
    auto ec = co_await WriteAll(stream_, parts, options_.write_timeout);
    if (ec) broken_ = true;
    co_return !ec;
  }

  awaitable<bool> BeginStream(bhttp::response_header<> head) override {
    if (sent_) co_return false;
    sent_ = true;
    streaming_ = true;
    bhttp::response<bhttp::empty_body> res{std::move(head)};
    res.version(version_);
    if (version_ >= 11) {
      res.chunked(true);
      res.keep_alive(keep_alive_);
    } else {
      // HTTP/1.0 has no chunked encoding: the end of the stream is the close.
      keep_alive_ = false;
      res.keep_alive(false);
    }
    bhttp::response_serializer<bhttp::empty_body> sr{res};
    stream_.expires_after(options_.write_timeout);
    auto [ec, n] = co_await bhttp::async_write_header(stream_, sr, use_nothrow);
    if (ec) broken_ = true;
    co_return !ec;
  }

  awaitable<bool> WriteChunk(std::string_view data) override {
    if (!streaming_ || broken_) co_return false;
    if (data.empty()) co_return true;  // an empty chunk would end the stream
    stream_.expires_after(options_.write_timeout);
    boost::system::error_code ec;
    if (version_ >= 11) {
      std::tie(ec, std::ignore) = co_await net::async_write(
          stream_, bhttp::make_chunk(net::const_buffer(data.data(), data.size())), use_nothrow);
    } else {
      std::tie(ec, std::ignore) = co_await net::async_write(
          stream_, net::const_buffer(data.data(), data.size()), use_nothrow);
    }
    if (ec) broken_ = true;
    co_return !ec;
  }

  awaitable<bool> EndStream() override {
    if (!streaming_ || broken_) co_return false;
    streaming_ = false;
    if (version_ < 11) co_return true;
    stream_.expires_after(options_.write_timeout);
    auto [ec, n] = co_await net::async_write(stream_, bhttp::make_chunk_last(), use_nothrow);
    if (ec) broken_ = true;
    co_return !ec;
  }

  void AbortStream() override {
    broken_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  bool client_connected() const override {
    if (broken_) return false;
    char byte;
    const ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return true;
    if (n == 0) return false;  // orderly close
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
  bool sent() const override { return sent_; }
  int worker() const override { return worker_; }
  const std::string& remote_address() const override { return remote_; }

  // The connection can carry another request.
  bool reusable() const { return keep_alive_ && !broken_ && !streaming_; }

 private:
  beast::tcp_stream& stream_;
  const ServerOptions& options_;
  unsigned version_;
  bool keep_alive_;
  int worker_;
  const std::string& remote_;
  bool sent_ = false;
  bool streaming_ = false;
  bool broken_ = false;
};

}  // namespace

awaitable<bool> ResponseWriter::SendPrebuilt(std::string_view head, std::string_view body,
                                             bool keep_alive) {
  bhttp::response_parser<bhttp::empty_body> parser;
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(net::buffer(head), ec);
  if (!parser.is_header_done()) {
    co_return co_await Send(MakeErrorResponse(500, "malformed prebuilt response", "server_error",
                                              {}, "internal_error", 11, false));
  }
  Response res;
  res.base() = parser.get().base();
  res.body() = std::string(body);
  res.keep_alive(keep_alive);
  co_return co_await Send(std::move(res));
}

Response MakeErrorResponse(unsigned status, std::string_view message, std::string_view type,
                           std::string_view param, std::string_view code, unsigned version,
                           bool keep_alive) {
  boost::json::object err;
  err["message"] = message;
  err["type"] = type;
  err["param"] = param.empty() ? boost::json::value(nullptr) : boost::json::value(param);
  err["code"] = code.empty() ? boost::json::value(nullptr) : boost::json::value(code);
  boost::json::object root;
  root["error"] = std::move(err);
  Response res{static_cast<bhttp::status>(status), version};
  res.set(bhttp::field::content_type, "application/json");
  res.keep_alive(keep_alive);
  res.body() = boost::json::serialize(root);
  res.prepare_payload();
  return res;
}

Server::Server(ServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

Server::~Server() {
  Stop();
  // Destroying a context destroys the coroutine frames still parked in it,
  // whose destructors touch this object: do it while all members live.
  acceptors_.clear();
  contexts_.clear();
}

Status Server::Start() {
  int n = options_.threads > 0 ? options_.threads
                               : std::max(1u, std::thread::hardware_concurrency());
  boost::system::error_code ec;
  auto address = net::ip::make_address(options_.host, ec);
  if (ec) return Status::InvalidArgument("bad listen address: " + options_.host);
  uint16_t port = options_.port;
  for (int i = 0; i < n; ++i) {
    contexts_.push_back(std::make_unique<net::io_context>(1));
    auto acceptor = std::make_unique<tcp::acceptor>(*contexts_.back());
    tcp::endpoint ep(address, port);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
        ec.assign(errno, boost::system::system_category());
    }
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      contexts_.clear();
      acceptors_.clear();
      return Status::IOError("cannot listen on " + options_.host + ":" + std::to_string(port) +
                             ": " + ec.message());
    }
    // The first acceptor picks the port when asked for port 0; the others
    // share it through SO_REUSEPORT.
    port = acceptor->local_endpoint().port();
    acceptors_.push_back(std::move(acceptor));
  }
  port_ = port;
  for (int i = 0; i < n; ++i) {
    net::co_spawn(*contexts_[i], AcceptLoop(i, *acceptors_[i]), net::detached);
    threads_.emplace_back([ctx = contexts_[i].get()] { ctx->run(); });
  }
  return Status::OK();
}

void Server::Stop() {
  if (stopped_.exchange(true)) return;
  for (size_t i = 0; i < acceptors_.size(); ++i) {
    net::post(*contexts_[i], [a = acceptors_[i].get()] {
      boost::system::error_code ec;
      a->close(ec);
    });
  }
  for (auto& c : contexts_) c->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

awaitable<void> Server::AcceptLoop(int worker, tcp::acceptor& acceptor) {
  while (!stopped_.load(std::memory_order_relaxed)) {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
      // Out of file descriptors and the like: back off instead of spinning.
      spdlog::warn("accept failed: {}", ec.message());
      net::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await t.async_wait(use_nothrow);
      continue;
    }
    accepted_.fetch_add(1, std::memory_order_relaxed);
    net::co_spawn(acceptor.get_executor(), Session(worker, std::move(socket)), net::detached);
  }
}

awaitable<void> Server::Session(int worker, tcp::socket socket) {
  struct Count {
    std::atomic<uint32_t>& n;
    explicit Count(std::atomic<uint32_t>& a) : n(a) { n.fetch_add(1, std::memory_order_relaxed); }
    ~Count() { n.fetch_sub(1, std::memory_order_relaxed); }
  } count(active_);

  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  std::string remote;
  if (auto ep = socket.remote_endpoint(ec); !ec) remote = ep.address().to_string();
  socket.non_blocking(true, ec);  // see WriteAll
  beast::tcp_stream stream(std::move(socket));

  if (active_.load(std::memory_order_relaxed) > options_.max_connections) {
    co_await WriteError(stream, std::chrono::seconds(1), 503,
                        "too many connections to the gateway; retry later", "too_many_connections");
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    co_return;
  }

  beast::flat_buffer buffer;
  // Request bodies of one connection reuse one allocation.
  std::string spare_body;
  while (true) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(options_.max_body_bytes);
    parser.header_limit(options_.max_header_bytes);
    spare_body.clear();
    parser.get().body() = std::move(spare_body);

    if (buffer.size() == 0) {
      // Idle keep-alive wait: nothing of the next request has arrived yet.
      stream.expires_after(options_.idle_timeout);
      auto [rec, n] = co_await stream.async_read_some(buffer.prepare(4096), use_nothrow);
      if (rec) break;  // closed, reset or idle timeout: nothing to answer
      buffer.commit(n);
    }
    stream.expires_after(options_.request_timeout);
    // What already arrived is parsed without waiting (see WriteAll).
    boost::system::error_code hec;
    bhttp::read_header(stream.socket(), buffer, parser, hec);
    if (WouldBlock(hec))
      std::tie(hec, std::ignore) =
          co_await bhttp::async_read_header(stream, buffer, parser, use_nothrow);
    if (!hec && parser.get()[bhttp::field::expect] == "100-continue" && !parser.is_done()) {
      if (parser.content_length() && *parser.content_length() > options_.max_body_bytes) {
        hec = bhttp::error::body_limit;
      } else {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [wec, wn] = co_await net::async_write(stream, net::buffer(kContinue), use_nothrow);
        if (wec) break;
      }
    }
    boost::system::error_code rec = hec;
    if (!rec && !parser.is_done()) {
      bhttp::read(stream.socket(), buffer, parser, rec);
      if (WouldBlock(rec))
        std::tie(rec, std::ignore) = co_await bhttp::async_read(stream, buffer, parser, use_nothrow);
    }
    if (rec) {
      if (rec == bhttp::error::end_of_stream || rec == net::error::eof ||
          rec == net::error::connection_reset) {
        break;
      }
      if (rec == bhttp::error::body_limit) {
        co_await WriteError(stream, options_.write_timeout, 413,
                            "request body exceeds the limit of " +
                                std::to_string(options_.max_body_bytes) + " bytes",
                            "request_too_large");
      } else if (rec == bhttp::error::header_limit) {
        co_await WriteError(stream, options_.write_timeout, 431, "request headers too large",
                            "headers_too_large");
      } else if (rec == beast::error::timeout) {
        // The stream closed the socket when the deadline fired: a slow or
        // half-sent request gets a closed connection.
      } else {
        co_await WriteError(stream, options_.write_timeout, 400,
                            "malformed HTTP request: " + rec.message(), "bad_http_request");
      }
      break;
    }

    Request& req = parser.get();
    ConnectionWriter writer(stream, options_, req.version(), req.keep_alive(), worker, remote);
    // No deadline while the handler waits on the upstream; the writer sets
    // its own per write.
    stream.expires_never();
    bool failed = false;
    try {
      co_await handler_(req, writer);
    } catch (const std::exception& e) {
      spdlog::error("handler failed: {}", e.what());
      failed = true;
    }
    if (failed) {
      if (!writer.sent()) {
        co_await writer.Send(MakeErrorResponse(500, "internal error in the gateway",
                                               "server_error", {}, "internal_error", 11, false));
      }
      break;
    }
    if (!writer.sent()) {
      co_await writer.Send(
          MakeErrorResponse(500, "no response produced", "server_error", {}, "internal_error"));
    }
    if (!writer.reusable()) break;
    spare_body = std::move(req.body());
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.close();
}

}  // namespace llmcache::http
