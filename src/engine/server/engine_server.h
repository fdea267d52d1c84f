// `llmcache engine serve`: the EngineApi on our HTTP server, and the
// engine's Prometheus metrics on GET /metrics (engine_metrics.h).
#pragma once

#include <memory>

#include "engine/server/engine_api.h"
#include "http/server.h"
#include "metrics/metrics.h"

namespace llmcache::engine {

class EngineServer {
 public:
  EngineServer(std::shared_ptr<EngineApi> api, http::ServerOptions options);
  ~EngineServer();
  EngineServer(const EngineServer&) = delete;
  EngineServer& operator=(const EngineServer&) = delete;

  // Listens; returns once the port accepts connections.
  Status Start();
  // Ends running requests (EngineApi::Shutdown), then stops the server.
  // Idempotent.
  void Stop();
  uint16_t port() const { return server_.port(); }

 private:
  http::awaitable<void> Handle(http::Request& req, http::ResponseWriter& w);

  std::shared_ptr<EngineApi> api_;
  metrics::Registry registry_;
  http::Server server_;
};

}  // namespace llmcache::engine
