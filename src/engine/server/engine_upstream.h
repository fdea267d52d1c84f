// `llmcache serve --model M.gguf`: the gateway's upstream is the engine in
// the same process. A request goes from the gateway's coroutine straight to
// EngineApi::Handle on the same event loop, and the answer comes back
// through the UpstreamSink: no socket, no second HTTP parse, and the
// gateway's cache, single-flight and stream handling apply unchanged.
#pragma once

#include <functional>
#include <memory>

#include "engine/server/engine_api.h"
#include "http/asio.h"
#include "llmcache/upstream.h"

namespace llmcache::engine {

class EngineUpstream final : public Upstream {
 public:
  explicit EngineUpstream(std::shared_ptr<EngineApi> api) : api_(std::move(api)) {}
  // OK once the answer (any status) went to the sink; IOError("aborted")
  // when the sink refused more; IOError when the engine failed mid-stream.
  http::awaitable<Status> Send(const UpstreamRequest& request, UpstreamSink& sink) override;

 private:
  std::shared_ptr<EngineApi> api_;
};

// What gateway::Gateway::Create takes as its upstream factory.
using EngineUpstreamFactory = std::function<std::unique_ptr<Upstream>(http::net::any_io_executor)>;
EngineUpstreamFactory MakeEngineUpstreamFactory(std::shared_ptr<EngineApi> api);

}  // namespace llmcache::engine
