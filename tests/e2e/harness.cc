#include "e2e/harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "http/asio.h"

extern char** environ;

namespace llmcache::e2e {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

// A write to a socket or pipe whose peer is gone must not kill the test.
[[maybe_unused]] const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string ResolveInPath(const std::string& exe) {
  if (exe.find('/') != std::string::npos) return exe;
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    fs::path p = fs::path(dir) / exe;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return exe;
}

// fork + exec with the child's stdin/stdout/stderr set to the given fds (-1:
// inherit). The child dies with its parent (PR_SET_PDEATHSIG) and keeps no
// other descriptor of ours (listening sockets of an in-process gateway, for
// one). Everything the child does between fork and exec is async-signal-safe.
pid_t Spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
            int child_stdin, int child_stdout, int child_stderr) {
  std::string exe = ResolveInPath(args.at(0));
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos && env.count(std::string(kv.substr(0, eq)))) continue;
    env_storage.emplace_back(kv);
  }
  for (const auto& [k, v] : env) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;  // parent (or -1)
  // Child.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (child_stdin >= 0) ::dup2(child_stdin, 0);
  if (child_stdout >= 0) ::dup2(child_stdout, 1);
  if (child_stderr >= 0) ::dup2(child_stderr, 2);
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
  {
    for (int fd = 3; fd < 65536; ++fd) ::close(fd);
  }
  ::execve(exe.c_str(), argv.data(), envp.data());
  ::_exit(127);
}

// Reaps pid, waiting at most `limit`; true when it exited.
bool WaitPid(pid_t pid, std::chrono::milliseconds limit, int* status_out = nullptr) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      if (status_out) *status_out = status;
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

std::string RandomHex(size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::random_device rd;
  std::mt19937_64 rng((uint64_t(rd()) << 32) ^ rd() ^ uint64_t(::getpid()));
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(kHex[rng() % 16]);
  return s;
}

const std::string& Nonce() {
  static const std::string nonce = RandomHex(12);
  return nonce;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string SourceDir() { return LLMCACHE_SOURCE_DIR; }
std::string LlmcacheBinary() { return LLMCACHE_BINARY; }

std::string UniquePrompt(std::string_view tag) {
  std::string test = "no-test";
  if (auto* info = ::testing::UnitTest::GetInstance()->current_test_info())
    test = std::string(info->test_suite_name()) + "." + info->name();
  return std::string(tag) + " [" + test + " " + Nonce() + "]";
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit,
             std::chrono::milliseconds step) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(step);
  }
  return cond();
}

// ---- TempDir ------------------------------------------------------------------

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/llmcache-e2e-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) {
    ADD_FAILURE() << "mkdtemp failed: " << std::strerror(errno);
    return;
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// ---- HTTP client --------------------------------------------------------------

std::string HttpResponse::Header(std::string_view name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? std::string() : it->second;
}

bool HttpResponse::IsStream() const {
  return Header("content-type").starts_with("text/event-stream");
}

boost::json::value HttpResponse::Json() const {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec) return nullptr;
  return v;
}

std::string HttpResponse::Describe() const {
  std::ostringstream o;
  o << "HTTP " << status << (complete ? "" : " (incomplete: " + error + ")")
    << " x-llmcache=" << Cache() << " body=" << body.substr(0, 600);
  return o.str();
}

HttpResponse HttpCall(uint16_t port, std::string_view method, std::string_view target,
                      std::string_view body, const Headers& headers,
                      std::chrono::milliseconds timeout, const ProgressFn& on_progress) {
  HttpResponse out;
  net::io_context ctx;
  auto run = [&]() -> net::awaitable<void> {
    constexpr auto nothrow = net::as_tuple(net::use_awaitable);
    beast::tcp_stream stream(co_await net::this_coro::executor);
    stream.expires_after(timeout);
    auto [cec] = co_await stream.async_connect(
        tcp::endpoint(net::ip::make_address_v4("127.0.0.1"), port), nothrow);
    if (cec) {
      out.error = "connect: " + cec.message();
      co_return;
    }
    bhttp::request<bhttp::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(bhttp::field::host, "127.0.0.1:" + std::to_string(port));
    for (const auto& [k, v] : headers) req.insert(k, v);
    req.body() = std::string(body);
    if (!body.empty() || method == "POST") req.prepare_payload();
    auto [wec, wn] = co_await bhttp::async_write(stream, req, nothrow);
    if (wec) {
      // The server may have answered and closed early (413): try to read.
      out.error = "write: " + wec.message();
    }
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(256u << 20);
    parser.header_limit(1u << 20);
    auto [hec, hn] = co_await bhttp::async_read_header(stream, buffer, parser, nothrow);
    if (hec) {
      out.error = "read head: " + hec.message();
      co_return;
    }
    out.status = static_cast<int>(parser.get().result_int());
    for (const auto& f : parser.get()) {
      std::string name = Lower(f.name_string());
      auto [it, fresh] = out.headers.emplace(name, std::string(f.value()));
      if (!fresh) it->second += ", " + std::string(f.value());
    }
    // Piece by piece, so that a stream can be observed as it arrives.
    boost::system::error_code rec;
    size_t reported = 0;
    bool go_on = !on_progress || parser.is_done() || on_progress(out);
    while (go_on && !rec && !parser.is_done()) {
      std::tie(rec, std::ignore) = co_await bhttp::async_read_some(stream, buffer, parser, nothrow);
      if (on_progress && parser.get().body().size() > reported && !parser.is_done()) {
        reported = parser.get().body().size();
        out.body = parser.get().body();
        go_on = on_progress(out);
      }
    }
    out.body = parser.get().body();
    if (!go_on) {
      out.error = "closed by the client";
      boost::system::error_code ec;
      stream.socket().close(ec);
      co_return;
    }
    if (rec || !parser.is_done()) {
      out.error = "read body: " + (rec ? rec.message() : std::string("incomplete"));
      co_return;
    }
    out.complete = true;
    out.error.clear();
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  };
  net::co_spawn(ctx, run(), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      out.error = std::string("exception: ") + ex.what();
    }
  });
  ctx.run();
  return out;
}

std::vector<HttpResponse> Concurrently(int n, const std::function<HttpResponse(int)>& fn) {
  if (n < 0 || n > 256) {
    ADD_FAILURE() << "Concurrently: " << n << " requests is not a bounded test load";
    return {};
  }
  std::vector<HttpResponse> out(n);
  std::latch go(n);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      out[i] = fn(i);
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

// ---- OpenAI bodies and answers --------------------------------------------------

namespace {

std::string WithExtra(boost::json::object o, std::string_view extra) {
  if (!extra.empty()) {
    boost::json::value x = boost::json::parse(extra);
    for (auto& [k, v] : x.as_object()) o[k] = v;
  }
  return boost::json::serialize(o);
}

}  // namespace

std::string ChatBody(std::string_view prompt, bool stream, std::string_view model,
                     std::string_view extra) {
  boost::json::object o;
  o["model"] = model;
  o["messages"] = boost::json::array{boost::json::object{{"role", "user"}, {"content", prompt}}};
  if (stream) o["stream"] = true;
  return WithExtra(std::move(o), extra);
}

std::string SystemChatBody(std::string_view system, std::string_view question) {
  boost::json::object body{
      {"model", "llama3"},
      {"messages", boost::json::array{
                       boost::json::object{{"role", "system"}, {"content", system}},
                       boost::json::object{{"role", "user"}, {"content", question}}}}};
  return boost::json::serialize(body);
}

std::string CompletionBody(std::string_view prompt, bool stream, std::string_view model,
                           std::string_view extra) {
  boost::json::object o;
  o["model"] = model;
  o["prompt"] = prompt;
  if (stream) o["stream"] = true;
  return WithExtra(std::move(o), extra);
}

std::vector<std::string> SseData(std::string_view body) {
  std::vector<std::string> out;
  std::string current;
  bool has = false;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find('\n', pos);
    std::string_view line =
        body.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? body.size() : eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (has) out.push_back(current);
      current.clear();
      has = false;
      continue;
    }
    if (line.starts_with("data:")) {
      std::string_view v = line.substr(5);
      if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      if (has) current.push_back('\n');
      current.append(v);
      has = true;
    }
  }
  // An event without its blank line is incomplete: not reported.
  return out;
}

bool EndsWithDone(std::string_view body) {
  auto events = SseData(body);
  if (events.empty() || events.back() != "[DONE]") return false;
  size_t at = body.rfind("data: [DONE]");
  if (at == std::string_view::npos) return false;
  for (char c : body.substr(at + 12)) {
    if (c != '\n' && c != '\r') return false;
  }
  return true;
}

Answer ParseAnswer(const HttpResponse& r, bool require_complete) {
  Answer a;
  auto fail = [&](std::string why) {
    a.ok = false;
    a.problem = std::move(why) + " (" + r.Describe() + ")";
    return a;
  };
  if (r.status != 200) return fail("status is not 200");
  if (!r.complete && (require_complete || !r.IsStream()))
    return fail("the response is incomplete");
  auto str = [](const boost::json::value* v) -> std::string {
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  if (r.IsStream()) {
    auto events = SseData(r.body);
    if (events.empty() || events.back() != "[DONE]") return fail("the stream does not end with [DONE]");
    bool finished = false;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
      if (events[i] == "[DONE]") return fail("[DONE] before the end");
      boost::system::error_code ec;
      auto v = boost::json::parse(events[i], ec);
      if (ec || !v.is_object()) return fail("a chunk is not a JSON object: " + events[i]);
      const auto& o = v.as_object();
      ++a.chunks;
      if (a.id.empty()) a.id = str(o.if_contains("id"));
      if (const auto* u = o.if_contains("usage"); u && u->is_object()) a.usage = u->as_object();
      const auto* choices = o.if_contains("choices");
      if (!choices || !choices->is_array()) return fail("a chunk without choices");
      for (const auto& c : choices->as_array()) {
        if (!c.is_object()) return fail("a choice is not an object");
        const auto& co = c.as_object();
        if (const auto* idx = co.if_contains("index"); idx && idx->is_int64() && idx->as_int64() != 0)
          continue;
        if (const auto* d = co.if_contains("delta"); d && d->is_object())
          a.content += str(d->as_object().if_contains("content"));
        if (const auto* t = co.if_contains("text")) a.content += str(t);
        if (const auto* f = co.if_contains("finish_reason"); f && f->is_string()) {
          a.finish_reason = std::string(f->as_string());
          finished = true;
        }
      }
    }
    if (!finished) return fail("the stream has no finish_reason");
    a.ok = true;
    return a;
  }
  auto v = r.Json();
  if (!v.is_object()) return fail("the body is not a JSON object");
  const auto& o = v.as_object();
  std::string object = str(o.if_contains("object"));
  if (object != "chat.completion" && object != "text_completion")
    return fail("unexpected object type " + object);
  a.id = str(o.if_contains("id"));
  if (const auto* u = o.if_contains("usage"); u && u->is_object()) a.usage = u->as_object();
  const auto* choices = o.if_contains("choices");
  if (!choices || !choices->is_array() || choices->as_array().empty() ||
      !choices->as_array()[0].is_object())
    return fail("no choices");
  const auto& c = choices->as_array()[0].as_object();
  if (const auto* m = c.if_contains("message"); m && m->is_object()) {
    a.content = str(m->as_object().if_contains("content"));
  } else {
    a.content = str(c.if_contains("text"));
  }
  a.finish_reason = str(c.if_contains("finish_reason"));
  if (a.finish_reason.empty()) return fail("no finish_reason");
  a.ok = true;
  return a;
}

// ---- FakeUpstream ---------------------------------------------------------------

FakeUpstream::FakeUpstream(std::vector<std::string> extra_args) {
  std::string script = SourceDir() + "/tests/fake-upstream/fake_upstream.mjs";
  std::vector<std::string> args = {"node", script, "--port", "0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return;
  }
  pid_ = Spawn(args, {}, in[0], out[1], -1);
  ::close(in[0]);
  ::close(out[1]);
  stdin_fd_ = in[1];
  stdout_fd_ = out[0];
  if (pid_ < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return;
  }
  // Read {"port": N} (one line), at most 20 s.
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (line.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{stdout_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    char buf[256];
    ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(line.substr(0, line.find('\n')), ec);
  if (ec || !v.is_object() || !v.as_object().contains("port")) {
    ADD_FAILURE() << "the fake upstream did not report its port; got: " << line;
    return;
  }
  port_ = static_cast<uint16_t>(v.as_object().at("port").to_number<int>());
}

FakeUpstream::~FakeUpstream() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    WaitPid(pid_, 10s);
  }
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

std::string FakeUpstream::url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

boost::json::object FakeUpstream::Stats() {
  auto r = e2e::Get(port_, "/__stats");
  auto v = r.Json();
  if (r.status != 200 || !v.is_object()) {
    ADD_FAILURE() << "fake upstream /__stats: " << r.Describe();
    return {};
  }
  return v.as_object();
}

bool FakeUpstream::Config(std::string_view json) {
  auto r = e2e::Post(port_, "/__config", json);
  if (r.status != 200) {
    ADD_FAILURE() << "fake upstream /__config " << json << ": " << r.Describe();
    return false;
  }
  return true;
}

void FakeUpstream::Reset() {
  auto r = e2e::Post(port_, "/__reset", "");
  if (r.status != 200) ADD_FAILURE() << "fake upstream /__reset: " << r.Describe();
}

int64_t FakeUpstream::Calls(std::string_view path) {
  auto s = Stats();
  const auto* calls = s.if_contains("calls");
  if (!calls || !calls->is_object()) return -1;
  const auto* n = calls->as_object().if_contains(path);
  return n ? n->to_number<int64_t>() : 0;
}

int64_t FakeUpstream::ModelCalls() {
  auto s = Stats();
  const auto* calls = s.if_contains("calls");
  if (!calls || !calls->is_object()) return -1;
  int64_t sum = 0;
  for (const char* path : {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}) {
    if (const auto* n = calls->as_object().if_contains(path)) sum += n->to_number<int64_t>();
  }
  return sum;
}

// ---- TestGateway ---------------------------------------------------------------

gateway::GatewayOptions DefaultGatewayOptions(const std::string& upstream_url) {
  gateway::GatewayOptions o;
  o.server.host = "127.0.0.1";
  o.server.port = 0;
  o.server.threads = 2;
  o.upstream_url = upstream_url;
  o.client.connect_timeout = 2s;
  o.client.read_timeout = 10s;
  o.client.retry_backoff = 10ms;
  o.admin_token = "e2e-admin-token";
  return o;
}

TestGateway::TestGateway(gateway::GatewayOptions options, StoreKind kind,
                         std::shared_ptr<ManualClock> clock)
    : options_(std::move(options)), kind_(kind), clock_(std::move(clock)) {}

TestGateway::~TestGateway() { Stop(); }

bool TestGateway::Start() {
  if (gw_) return true;
  std::shared_ptr<Clock> clock = clock_;
  MemoryStoreOptions mo;
  mo.max_bytes = 64u << 20;
  mo.clock = clock;
  std::unique_ptr<Store> store;
  if (kind_ == StoreKind::kTiered) {
    RocksDbStoreOptions ro;
    ro.path = dir_.Sub("rocksdb");
    ro.clock = clock;
    auto disk = OpenRocksDbStore(ro);
    if (!disk) {
      ADD_FAILURE() << "OpenRocksDbStore: " << disk.error().ToString();
      return false;
    }
    store = NewTieredStore(NewMemoryStore(mo), std::move(*disk));
  } else {
    store = NewMemoryStore(mo);
  }
  auto gw = gateway::Gateway::Create(options_, std::move(store), clock);
  if (!gw) {
    ADD_FAILURE() << "Gateway::Create: " << gw.error().ToString();
    return false;
  }
  Status s = (*gw)->Start();
  if (!s.ok()) {
    ADD_FAILURE() << "Gateway::Start: " << s.ToString();
    return false;
  }
  gw_ = std::move(*gw);
  port_ = gw_->port();
  return true;
}

void TestGateway::Stop() {
  if (!gw_) return;
  gw_->Stop();
  gw_.reset();  // closes the store
  port_ = 0;
}

boost::json::object TestGateway::AdminStats() const {
  auto r = Get("/admin/stats", {{"Authorization", "Bearer " + options_.admin_token}});
  auto v = r.Json();
  if (r.status != 200 || !v.is_object()) {
    ADD_FAILURE() << "/admin/stats: " << r.Describe();
    return {};
  }
  return v.as_object();
}

int64_t TestGateway::Entries(std::string_view tier) const {
  auto s = AdminStats();
  const auto* tiers = s.if_contains("tiers");
  if (!tiers || !tiers->is_array() || tiers->as_array().empty()) return -1;
  for (const auto& t : tiers->as_array()) {
    const auto& o = t.as_object();
    if (tier.empty() || o.at("tier").as_string() == tier) return o.at("entries").to_number<int64_t>();
  }
  return -1;
}

std::string TestGateway::Metrics() const {
  auto r = Get("/metrics");
  if (r.status != 200) ADD_FAILURE() << "/metrics: " << r.Describe();
  return r.body;
}

// ---- metrics ------------------------------------------------------------------------

std::optional<double> MetricValue(std::string_view text, std::string_view name,
                                  const std::map<std::string, std::string>& want) {
  std::optional<double> sum;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (line.empty() || line.front() == '#') continue;
    if (!line.starts_with(name)) continue;
    std::string_view rest = line.substr(name.size());
    std::map<std::string, std::string> labels;
    if (!rest.empty() && rest.front() == '{') {
      size_t i = 1;
      while (i < rest.size() && rest[i] != '}') {
        size_t eq = rest.find('=', i);
        if (eq == std::string_view::npos || eq + 1 >= rest.size() || rest[eq + 1] != '"') break;
        std::string key(rest.substr(i, eq - i));
        std::string value;
        size_t j = eq + 2;
        for (; j < rest.size() && rest[j] != '"'; ++j) {
          if (rest[j] == '\\' && j + 1 < rest.size()) {
            ++j;
            value.push_back(rest[j] == 'n' ? '\n' : rest[j]);
          } else {
            value.push_back(rest[j]);
          }
        }
        labels[key] = value;
        i = j + 1;
        if (i < rest.size() && rest[i] == ',') ++i;
      }
      size_t close = rest.find('}');
      if (close == std::string_view::npos) continue;
      rest = rest.substr(close + 1);
    }
    if (rest.empty() || rest.front() != ' ') continue;  // a longer metric name
    bool match = true;
    for (const auto& [k, v] : want) {
      auto it = labels.find(k);
      if (it == labels.end() || it->second != v) match = false;
    }
    if (!match) continue;
    sum = sum.value_or(0) + std::strtod(std::string(rest.substr(1)).c_str(), nullptr);
  }
  return sum;
}

// ---- GatewayProcess ------------------------------------------------------------------

GatewayProcess::GatewayProcess(GatewayProcessOptions options) : options_(std::move(options)) {}

GatewayProcess::~GatewayProcess() {
  if (pid_ > 0) Kill9();
}

bool GatewayProcess::Start() {
  if (pid_ > 0) return true;
  std::vector<std::string> args = {LlmcacheBinary(), "serve", "--listen", "127.0.0.1:0",
                                   "--upstream", options_.upstream_url, "--data-dir",
                                   options_.data_dir, "--threads",
                                   std::to_string(options_.threads)};
  if (!options_.config_yaml.empty()) {
    std::string cfg = scratch_.Sub("config.yaml");
    std::ofstream(cfg) << options_.config_yaml;
    args.push_back("--config");
    args.push_back(cfg);
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  log_path_ = scratch_.Sub("gateway-" + std::to_string(std::rand()) + ".log");
  int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_ = Spawn(args, options_.env, devnull, log, log);
  ::close(log);
  ::close(devnull);
  if (pid_ < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return false;
  }
  constexpr std::string_view kMarker = "listening on http://127.0.0.1:";
  bool listening = WaitFor(
      [&] {
        std::string text = ReadFile(log_path_);
        size_t at = text.find(kMarker);
        if (at != std::string::npos) {
          port_ = static_cast<uint16_t>(std::atoi(text.c_str() + at + kMarker.size()));
          return port_ != 0;
        }
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          return true;
        }
        return false;
      },
      30s, 10ms);
  if (!listening || pid_ < 0 || port_ == 0) {
    ADD_FAILURE() << "llmcache serve did not start; log:\n" << Log();
    if (pid_ > 0) Kill9();
    return false;
  }
  bool healthy = WaitFor([&] { return e2e::Get(port_, "/healthz", {}, 2s).status == 200; }, 10s);
  if (!healthy) ADD_FAILURE() << "llmcache serve: /healthz never answered; log:\n" << Log();
  return healthy;
}

void GatewayProcess::Kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  WaitPid(pid_, 10s);
  pid_ = -1;
}

int GatewayProcess::Terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  if (!WaitPid(pid_, grace, &status)) {
    Kill9();
    return -1;
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string GatewayProcess::Log() const { return log_path_.empty() ? "" : ReadFile(log_path_); }

}  // namespace llmcache::e2e
