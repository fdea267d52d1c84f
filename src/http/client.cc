#include "http/client.h"

#include <type_traits>
#include <variant>

#include <boost/url/parse.hpp>
#include <openssl/ssl.h>

namespace llmcache::http {

struct HttpClient::Connection {
  using Plain = beast::tcp_stream;
  using Tls = beast::ssl_stream<beast::tcp_stream>;
  std::variant<Plain, Tls> stream;
  beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point last_used;
  bool reused = false;

  template <class... Args>
  explicit Connection(Args&&... args) : stream(std::forward<Args>(args)...) {
    // Beast sizes each read by the buffer's free capacity (at least 512
    // bytes): an empty buffer would read a typical answer 512 bytes at a
    // time, one reactor round trip each.
    buffer.reserve(16 << 10);
    if (auto* p = std::get_if<Plain>(&stream)) {
      boost::system::error_code ec;
      p->socket().non_blocking(true, ec);  // see kPlain in Exchange
    }
  }

  beast::tcp_stream& tcp() {
    if (auto* p = std::get_if<Plain>(&stream)) return *p;
    return beast::get_lowest_layer(std::get<Tls>(stream));
  }
};

namespace {

bool IsHopByHop(std::string_view name) {
  return beast::iequals(name, "connection") || beast::iequals(name, "keep-alive") ||
         beast::iequals(name, "transfer-encoding") || beast::iequals(name, "te") ||
         beast::iequals(name, "upgrade") || beast::iequals(name, "proxy-connection") ||
         beast::iequals(name, "trailer") || beast::iequals(name, "content-length") ||
         beast::iequals(name, "host");
}

Status FromError(const boost::system::error_code& ec, std::string_view what) {
  std::string m = std::string(what) + ": " + ec.message();
  if (ec == beast::error::timeout) return Status::Timeout(std::move(m));
  return Status::IOError(std::move(m));
}

enum class Phase { kBeforeResponse, kAfterHead };

struct Outcome {
  Status status;
  Phase phase = Phase::kBeforeResponse;
  bool reusable = false;
};

bool WouldBlock(const boost::system::error_code& ec) {
  return ec == net::error::would_block || ec == net::error::try_again;
}

template <class Stream>
awaitable<Outcome> Exchange(Stream& stream, beast::tcp_stream& tcp, beast::flat_buffer& buffer,
                            const bhttp::request<bhttp::string_body>& req,
                            const ClientOptions& options, UpstreamSink& sink) {
  // Plain connections run their sockets non-blocking: each write and read is
  // first tried synchronously and only waits (asynchronously, under
  // read_timeout) when the kernel has no room or no data yet. A request that
  // fits the socket buffer and an answer that arrives with its head cost no
  // timer arming and no reactor round trip; each of those is a syscall.
  constexpr bool kPlain = std::is_same_v<Stream, beast::tcp_stream>;
  Outcome out;
  bhttp::request_serializer<bhttp::string_body> sr{req};
  boost::system::error_code wec;
  if constexpr (kPlain) bhttp::write(tcp.socket(), sr, wec);
  if (!kPlain || WouldBlock(wec)) {
    tcp.expires_after(options.read_timeout);
    std::tie(wec, std::ignore) = co_await bhttp::async_write(stream, sr, use_nothrow);
  }
  if (wec) {
    out.status = FromError(wec, "writing the request upstream");
    co_return out;
  }
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.body_limit(options.max_response_bytes);
  tcp.expires_after(options.read_timeout);
  auto [hec, hn] = co_await bhttp::async_read_header(stream, buffer, parser, use_nothrow);
  if (hec) {
    out.status = FromError(hec, "reading the upstream response");
    co_return out;
  }
  out.phase = Phase::kAfterHead;
  HeaderList headers;
  for (const auto& f : parser.get()) {
    if (!IsHopByHop(f.name_string())) headers.emplace_back(f.name_string(), f.value());
  }
  if (!co_await sink.OnHead(parser.get().result_int(), headers)) {
    out.status = Status::IOError("aborted");
    co_return out;
  }
  char chunk[16384];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    // read_some returns as soon as bytes arrive, so streamed answers are
    // relayed live; what arrived before an error is still delivered.
    boost::system::error_code rec;
    if constexpr (kPlain) bhttp::read_some(tcp.socket(), buffer, parser, rec);
    if (!kPlain || WouldBlock(rec)) {
      tcp.expires_after(options.read_timeout);
      std::tie(rec, std::ignore) =
          co_await bhttp::async_read_some(stream, buffer, parser, use_nothrow);
    }
    size_t got = sizeof(chunk) - parser.get().body().size;
    if (got > 0 && !co_await sink.OnBody(std::string_view(chunk, got))) {
      out.status = Status::IOError("aborted");
      co_return out;
    }
    if (rec && rec != bhttp::error::need_buffer) {
      out.status = FromError(rec, "reading the upstream response body");
      co_return out;
    }
  }
  out.reusable = parser.keep_alive();
  co_return out;
}

}  // namespace

std::string BaseUrl::ToString() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return (tls ? "https://" : "http://") + h + ":" + port + base_path;
}

Result<BaseUrl> ParseBaseUrl(std::string_view text) {
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) return Err(Status::InvalidArgument("not a URL: " + std::string(text)));
  const auto& u = *parsed;
  BaseUrl b;
  if (u.scheme() == "https") {
    b.tls = true;
  } else if (u.scheme() != "http") {
    return Err(Status::InvalidArgument("upstream URL must be http:// or https://: " +
                                       std::string(text)));
  }
  if (u.has_userinfo() || u.has_query() || u.has_fragment()) {
    return Err(Status::InvalidArgument(
        "upstream URL must not carry credentials, a query or a fragment: " + std::string(text)));
  }
  b.host = std::string(u.host_type() == boost::urls::host_type::ipv6
                           ? std::string_view(u.encoded_host_address())
                           : std::string_view(u.encoded_host()));
  if (b.host.empty()) return Err(Status::InvalidArgument("upstream URL has no host"));
  b.port = u.has_port() ? std::string(u.port()) : (b.tls ? "443" : "80");
  b.base_path = std::string(u.encoded_path());
  while (!b.base_path.empty() && b.base_path.back() == '/') b.base_path.pop_back();
  b.host_header = std::string(u.encoded_host_and_port());
  return b;
}

Result<std::shared_ptr<net::ssl::context>> MakeTlsContext(const ClientOptions& options) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_default_verify_paths(ec);
  if (ec) return Err(Status::IOError("cannot load the system CA store: " + ec.message()));
  if (!options.ca_file.empty()) {
    ctx->load_verify_file(options.ca_file, ec);
    if (ec) return Err(Status::InvalidArgument("cannot load CA file " + options.ca_file));
  }
  ctx->set_verify_mode(options.verify_tls ? net::ssl::verify_peer : net::ssl::verify_none);
  return ctx;
}

HttpClient::HttpClient(net::any_io_executor executor, BaseUrl base, ClientOptions options,
                       std::shared_ptr<net::ssl::context> tls)
    : executor_(std::move(executor)),
      base_(std::move(base)),
      options_(std::move(options)),
      tls_(std::move(tls)) {}

HttpClient::~HttpClient() = default;

std::unique_ptr<HttpClient::Connection> HttpClient::TakeIdle() {
  auto now = std::chrono::steady_clock::now();
  while (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    if (now - c->last_used < options_.idle_reuse_limit && c->tcp().socket().is_open()) {
      c->reused = true;
      return c;
    }
  }
  return nullptr;
}

awaitable<Result<std::unique_ptr<HttpClient::Connection>>> HttpClient::Connect() {
  Status last;
  for (int attempt = 0; attempt <= options_.connect_retries; ++attempt) {
    if (attempt > 0) {
      net::steady_timer t(executor_, options_.retry_backoff * attempt);
      co_await t.async_wait(use_nothrow);
    }
    tcp::resolver resolver(executor_);
    auto [rec, results] = co_await resolver.async_resolve(base_.host, base_.port, use_nothrow);
    if (rec) {
      last = Status::Unavailable("cannot resolve " + base_.host + ": " + rec.message());
      continue;
    }
    beast::tcp_stream tcp_stream(executor_);
    tcp_stream.expires_after(options_.connect_timeout);
    auto [cec, ep] = co_await tcp_stream.async_connect(results, use_nothrow);
    if (cec) {
      last = Status::Unavailable("cannot connect to " + base_.ToString() + ": " + cec.message());
      continue;
    }
    boost::system::error_code ec;
    tcp_stream.socket().set_option(tcp::no_delay(true), ec);
    if (!base_.tls) {
      co_return std::make_unique<Connection>(std::in_place_type<Connection::Plain>,
                                             std::move(tcp_stream));
    }
    auto conn = std::make_unique<Connection>(std::in_place_type<Connection::Tls>,
                                             std::move(tcp_stream), *tls_);
    auto& tls = std::get<Connection::Tls>(conn->stream);
    if (!SSL_set_tlsext_host_name(tls.native_handle(), base_.host.c_str())) {
      last = Status::Unavailable("cannot set TLS server name");
      continue;
    }
    tls.set_verify_callback(net::ssl::host_name_verification(base_.host));
    conn->tcp().expires_after(options_.connect_timeout);
    auto [hec] = co_await tls.async_handshake(net::ssl::stream_base::client, use_nothrow);
    if (hec) {
      last = Status::Unavailable("TLS handshake with " + base_.ToString() +
                                 " failed: " + hec.message());
      continue;
    }
    co_return conn;
  }
  co_return Err(last);
}

awaitable<Status> HttpClient::Send(const UpstreamRequest& request, UpstreamSink& sink) {
  bhttp::request<bhttp::string_body> req;
  auto verb = bhttp::string_to_verb(request.method);
  if (verb == bhttp::verb::unknown) co_return Status::InvalidArgument("bad method");
  req.method(verb);
  req.target(base_.base_path + request.path);
  req.version(11);
  req.set(bhttp::field::host, base_.host_header);
  for (const auto& [k, v] : request.headers) {
    if (!IsHopByHop(k)) req.insert(k, v);
  }
  req.keep_alive(true);
  req.body() = request.body;
  if (verb != bhttp::verb::get || !request.body.empty()) req.prepare_payload();

  // A pooled connection may have been closed by the server while idle; when
  // such a connection fails before any byte of the answer came back, the
  // request is sent once more on a fresh connection.
  for (int round = 0; round < 2; ++round) {
    std::unique_ptr<Connection> conn = round == 0 ? TakeIdle() : nullptr;
    if (!conn) {
      auto made = co_await Connect();
      if (!made) co_return made.error();
      conn = std::move(*made);
    }
    Outcome out = co_await std::visit(
        [&](auto& s) { return Exchange(s, conn->tcp(), conn->buffer, req, options_, sink); },
        conn->stream);
    if (out.status.ok()) {
      if (out.reusable && idle_.size() < options_.max_idle_connections) {
        conn->last_used = std::chrono::steady_clock::now();
        idle_.push_back(std::move(conn));
      }
      co_return Status::OK();
    }
    bool retry = conn->reused && out.phase == Phase::kBeforeResponse &&
                 out.status.code() != StatusCode::kTimeout;
    if (!retry) co_return out.status;
  }
  co_return Status::IOError("upstream connection failed");
}

std::string_view BufferedResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return v;
  }
  return {};
}

awaitable<Result<BufferedResponse>> Fetch(Upstream& upstream, const UpstreamRequest& request,
                                          uint64_t max_bytes) {
  struct Collector final : UpstreamSink {
    BufferedResponse r;
    uint64_t max;
    bool too_big = false;
    awaitable<bool> OnHead(unsigned status, const HeaderList& headers) override {
      r.status = status;
      r.headers = headers;
      co_return true;
    }
    awaitable<bool> OnBody(std::string_view piece) override {
      if (r.body.size() + piece.size() > max) {
        too_big = true;
        co_return false;
      }
      r.body.append(piece);
      co_return true;
    }
  } c;
  c.max = max_bytes;
  Status s = co_await upstream.Send(request, c);
  if (c.too_big) co_return Err(Status::ResourceExhausted("upstream response too large"));
  if (!s.ok()) co_return Err(s);
  co_return std::move(c.r);
}

}  // namespace llmcache::http
