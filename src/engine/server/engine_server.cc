#include "engine/server/engine_server.h"

#include "engine/server/engine_metrics.h"

namespace llmcache::engine {

namespace bhttp = http::bhttp;
using http::awaitable;

namespace {

class WriterResponder final : public ApiResponder {
 public:
  WriterResponder(const http::Request& req, http::ResponseWriter& w) : req_(req), w_(w) {}

  awaitable<bool> Send(unsigned status, std::string body) override {
    http::Response res{static_cast<bhttp::status>(status), req_.version()};
    res.set(bhttp::field::content_type, "application/json");
    res.keep_alive(req_.keep_alive());
    res.body() = std::move(body);
    co_return co_await w_.Send(std::move(res));
  }
  awaitable<bool> BeginEvents() override {
    bhttp::response_header<> h;
    h.result(bhttp::status::ok);
    h.set(bhttp::field::content_type, "text/event-stream");
    h.set(bhttp::field::cache_control, "no-cache");
    co_return co_await w_.BeginStream(std::move(h));
  }
  awaitable<bool> WriteEvents(std::string_view sse) override {
    co_return co_await w_.WriteChunk(sse);
  }
  awaitable<bool> EndEvents() override { co_return co_await w_.EndStream(); }
  void AbortEvents() override { w_.AbortStream(); }
  bool connected() override { return w_.client_connected(); }

 private:
  const http::Request& req_;
  http::ResponseWriter& w_;
};

}  // namespace

EngineServer::EngineServer(std::shared_ptr<EngineApi> api, http::ServerOptions options)
    : api_(std::move(api)),
      server_(std::move(options),
              [this](http::Request& req, http::ResponseWriter& w) { return Handle(req, w); }) {
  RegisterEngineMetrics(registry_, api_);
}

EngineServer::~EngineServer() { Stop(); }

awaitable<void> EngineServer::Handle(http::Request& req, http::ResponseWriter& w) {
  const std::string_view target = req.target();
  if (req.method() == bhttp::verb::get && target.substr(0, target.find('?')) == "/metrics") {
    http::Response res{bhttp::status::ok, req.version()};
    res.set(bhttp::field::content_type, metrics::kContentType);
    res.keep_alive(req.keep_alive());
    res.body() = registry_.Serialize();
    co_await w.Send(std::move(res));
    co_return;
  }
  WriterResponder out(req, w);
  const ApiRequest r{.method = req.method_string(),
                     .target = req.target(),
                     .body = req.body(),
                     .authorization = req[bhttp::field::authorization],
                     .cache_salt = req["x-llmcache-cache-salt"]};
  co_await api_->Handle(r, out);
}

Status EngineServer::Start() { return server_.Start(); }

void EngineServer::Stop() {
  api_->Shutdown();
  server_.Stop();
}

}  // namespace llmcache::engine
