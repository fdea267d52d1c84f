// End-to-end test harness: the fake OpenAI upstream as a child process, the
// gateway in-process (or the real `llmcache serve` binary as a child
// process), and a small blocking HTTP client for loopback requests.
//
// Everything here is bounded: every request has a timeout, every wait loop a
// deadline, and every child process is killed by its owner's destructor (and
// by the kernel when the test process dies: PR_SET_PDEATHSIG, plus the fake
// upstream's stdin pipe).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "gateway/gateway.h"
#include "llmcache/clock.h"
#include "llmcache/store.h"

namespace llmcache::e2e {

using namespace std::chrono_literals;

// The source tree and the built `llmcache` binary (compile definitions).
std::string SourceDir();
std::string LlmcacheBinary();

// A prompt no other test (or earlier run against a persistent store) uses:
// the tag, the current gtest name and a per-process random nonce.
std::string UniquePrompt(std::string_view tag);

// ---- temporary directory ----------------------------------------------------

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// ---- HTTP client --------------------------------------------------------------

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;  // 0: no response head (connect failed, reset, timeout)
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;       // what arrived, also for a broken message
  bool complete = false;  // the whole message arrived (length or last chunk)
  std::string error;      // transport error, empty when complete

  std::string Header(std::string_view name) const;  // "" when absent
  std::string Cache() const { return Header("x-llmcache"); }
  bool IsStream() const;  // content-type text/event-stream
  // The body parsed as JSON; null when it does not parse.
  boost::json::value Json() const;
  // For logging in assertion messages.
  std::string Describe() const;
};

// Called once the response head has arrived and then each time more of the
// body has, with the response so far (status, headers, body; not complete
// yet). Returning false closes the connection there, like a client that
// goes away mid-response.
using ProgressFn = std::function<bool(const HttpResponse& so_far)>;

// One request on a fresh connection to 127.0.0.1:port. The body is sent
// with a Content-Length when non-empty or when the method is POST.
HttpResponse HttpCall(uint16_t port, std::string_view method, std::string_view target,
                      std::string_view body = {}, const Headers& headers = {},
                      std::chrono::milliseconds timeout = 15s,
                      const ProgressFn& on_progress = nullptr);
inline HttpResponse Post(uint16_t port, std::string_view target, std::string_view body,
                         const Headers& headers = {}, std::chrono::milliseconds timeout = 15s) {
  return HttpCall(port, "POST", target, body, headers, timeout);
}
inline HttpResponse Get(uint16_t port, std::string_view target, const Headers& headers = {},
                        std::chrono::milliseconds timeout = 15s) {
  return HttpCall(port, "GET", target, {}, headers, timeout);
}

// Runs fn(0..n-1) on n threads released together; returns the results in
// index order. For bounded request counts only.
std::vector<HttpResponse> Concurrently(int n, const std::function<HttpResponse(int)>& fn);

// ---- OpenAI bodies and answers --------------------------------------------------

// {"model":model,"messages":[{"role":"user","content":prompt}]} plus `stream`
// when true, plus the members of `extra` (a JSON object text, may be "").
std::string ChatBody(std::string_view prompt, bool stream = false,
                     std::string_view model = "llama3", std::string_view extra = "");
// {"model":"llama3","messages":[{"role":"system",...},{"role":"user",...}]}: one
// question in one context (the semantic cache matches the question, keys the rest).
std::string SystemChatBody(std::string_view system, std::string_view question);
std::string CompletionBody(std::string_view prompt, bool stream = false,
                           std::string_view model = "llama3", std::string_view extra = "");

// The `data:` payloads of an SSE body, in order, "[DONE]" included.
std::vector<std::string> SseData(std::string_view body);
// The stream ends with "data: [DONE]" (and nothing but whitespace follows).
bool EndsWithDone(std::string_view body);

struct Answer {
  bool ok = false;       // well formed: a complete chat.completion, or a
                         // complete stream of parseable chunks ending in [DONE]
  std::string problem;   // why not, when !ok
  std::string content;   // choices[0] message content / text (streams: joined)
  std::string id;
  std::string finish_reason;
  std::optional<boost::json::object> usage;  // the (last) non-null usage
  int chunks = 0;        // streams: data events before [DONE]
};
// Parses a chat (or legacy completions) answer, stream or not (by the
// response's content type). With require_complete false, a stream whose
// HTTP message was cut after its [DONE] event still counts as well formed.
Answer ParseAnswer(const HttpResponse& r, bool require_complete = true);

// ---- fake upstream ---------------------------------------------------------------

// `node tests/fake-upstream/fake_upstream.mjs --port 0` as a child process.
class FakeUpstream {
 public:
  explicit FakeUpstream(std::vector<std::string> extra_args = {});
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  bool ok() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  std::string url() const;  // http://127.0.0.1:PORT/v1

  boost::json::object Stats();
  // Applies a /__config patch; returns false (and logs) when it was refused.
  bool Config(std::string_view json);
  void Reset();
  // Calls counted on a path (default: chat completions) since the last Reset.
  int64_t Calls(std::string_view path = "/v1/chat/completions");
  // Calls of the three model endpoints (chat, completions, embeddings); the
  // gateway's /api/tags polls are not counted.
  int64_t ModelCalls();

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
};

// ---- in-process gateway -------------------------------------------------------

enum class StoreKind { kTiered, kMemory };

// Options for a gateway in front of `upstream_url`: loopback, port 0, two
// threads, revision detection on with the default poll interval.
gateway::GatewayOptions DefaultGatewayOptions(const std::string& upstream_url);

// A Gateway with its own store over a data directory that outlives restarts.
class TestGateway {
 public:
  TestGateway(gateway::GatewayOptions options, StoreKind kind = StoreKind::kTiered,
              std::shared_ptr<ManualClock> clock = nullptr);
  ~TestGateway();
  TestGateway(const TestGateway&) = delete;
  TestGateway& operator=(const TestGateway&) = delete;

  // Opens the store and starts the gateway; false (and a gtest failure) on
  // error. Start after Stop reopens the same data directory.
  bool Start();
  // Stops the gateway and closes its store.
  void Stop();
  bool Restart() {
    Stop();
    return Start();
  }

  uint16_t port() const { return port_; }
  gateway::GatewayOptions& options() { return options_; }
  const std::string& data_dir() const { return dir_.path(); }
  ManualClock* clock() const { return clock_.get(); }

  HttpResponse Post(std::string_view target, std::string_view body, const Headers& h = {}) const {
    return e2e::Post(port_, target, body, h);
  }
  HttpResponse Chat(std::string_view body, const Headers& h = {}) const {
    return e2e::Post(port_, "/v1/chat/completions", body, h);
  }
  HttpResponse Get(std::string_view target, const Headers& h = {}) const {
    return e2e::Get(port_, target, h);
  }
  // GET /admin/stats with the configured admin token, parsed.
  boost::json::object AdminStats() const;
  // Total entries over the tiers named (empty: the outermost tier).
  int64_t Entries(std::string_view tier = "") const;
  std::string Metrics() const;

 private:
  gateway::GatewayOptions options_;
  StoreKind kind_;
  std::shared_ptr<ManualClock> clock_;
  TempDir dir_;
  std::unique_ptr<gateway::Gateway> gw_;
  uint16_t port_ = 0;
};

// ---- metrics ------------------------------------------------------------------------

// The value of the sample `name{labels}` in a Prometheus text exposition,
// where `labels` lists label="value" pairs that must all match (others are
// ignored) and values of matching samples are summed; nullopt when no sample
// matches.
std::optional<double> MetricValue(std::string_view exposition, std::string_view name,
                                  const std::map<std::string, std::string>& labels = {});

// ---- the real binary ----------------------------------------------------------------

struct GatewayProcessOptions {
  std::string upstream_url;
  std::string data_dir;
  int threads = 2;
  std::string config_yaml;  // written to a file and passed with --config when set
  std::vector<std::string> extra_args;
  std::map<std::string, std::string> env;
};

// `llmcache serve --listen 127.0.0.1:0 ...` as a child process; its output
// goes to a log file, from which the listening port is read.
class GatewayProcess {
 public:
  explicit GatewayProcess(GatewayProcessOptions options);
  ~GatewayProcess();
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  // Spawns and waits (bounded) for the port and /healthz.
  bool Start();
  // SIGKILL, then reaps the process.
  void Kill9();
  // SIGTERM, waits up to `grace` for a clean exit (then SIGKILL); returns the
  // exit status (-1 when it had to be killed).
  int Terminate(std::chrono::milliseconds grace = 10s);
  bool running() const { return pid_ > 0; }
  uint16_t port() const { return port_; }
  std::string Log() const;

 private:
  GatewayProcessOptions options_;
  TempDir scratch_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_path_;
};

// Polls cond every `step` until it holds or `limit` passes; returns cond().
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit,
             std::chrono::milliseconds step = 20ms);

}  // namespace llmcache::e2e
