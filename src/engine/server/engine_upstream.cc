#include "engine/server/engine_upstream.h"

namespace llmcache::engine {

using http::awaitable;

namespace {

class SinkResponder final : public ApiResponder {
 public:
  explicit SinkResponder(UpstreamSink& sink) : sink_(sink) {}

  awaitable<bool> Send(unsigned status, std::string body) override {
    const HeaderList head{{"content-type", "application/json"}};
    bool ok = Keep(co_await sink_.OnHead(status, head));
    if (ok) ok = Keep(co_await sink_.OnBody(body));
    co_return ok;
  }
  awaitable<bool> BeginEvents() override {
    const HeaderList head{{"content-type", "text/event-stream"}, {"cache-control", "no-cache"}};
    co_return Keep(co_await sink_.OnHead(200, head));
  }
  awaitable<bool> WriteEvents(std::string_view sse) override {
    co_return Keep(co_await sink_.OnBody(sse));
  }
  awaitable<bool> EndEvents() override { co_return !refused_; }
  void AbortEvents() override { broken_ = true; }

  Status result() const {
    if (refused_) return Status::IOError("aborted");
    if (broken_) return Status::IOError("the engine failed mid-answer");
    return Status::OK();
  }

 private:
  bool Keep(bool ok) {
    if (!ok) refused_ = true;
    return ok;
  }
  UpstreamSink& sink_;
  bool refused_ = false;
  bool broken_ = false;
};

std::string_view HeaderValue(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (http::beast::iequals(k, name)) return v;
  }
  return {};
}

}  // namespace

awaitable<Status> EngineUpstream::Send(const UpstreamRequest& request, UpstreamSink& sink) {
  SinkResponder out(sink);
  const ApiRequest r{.method = request.method,
                     .target = request.path,
                     .body = request.body,
                     .authorization = HeaderValue(request.headers, "authorization"),
                     .cache_salt = HeaderValue(request.headers, "x-llmcache-cache-salt")};
  co_await api_->Handle(r, out);
  co_return out.result();
}

EngineUpstreamFactory MakeEngineUpstreamFactory(std::shared_ptr<EngineApi> api) {
  return [api = std::move(api)](http::net::any_io_executor) -> std::unique_ptr<Upstream> {
    return std::make_unique<EngineUpstream>(api);
  };
}

}  // namespace llmcache::engine
