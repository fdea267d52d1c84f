// Where cache misses go: an OpenAI-compatible HTTP endpoint, or (later) the
// in-process engine. The gateway talks only to this interface.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "llmcache/status.h"

namespace llmcache {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct UpstreamRequest {
  std::string method = "POST";
  // Path below the upstream's base URL, e.g. "/chat/completions" for a base
  // of http://host:11434/v1. May carry a query string.
  std::string path;
  HeaderList headers;
  std::string body;
};

// Receives the answer as it arrives. Returning false from either method
// stops the transfer (the connection is then not reused).
class UpstreamSink {
 public:
  virtual ~UpstreamSink() = default;
  virtual boost::asio::awaitable<bool> OnHead(unsigned status, const HeaderList& headers) = 0;
  virtual boost::asio::awaitable<bool> OnBody(std::string_view piece) = 0;
};

// Not thread-safe: one instance per worker thread (it pools connections that
// belong to that thread's event loop).
class Upstream {
 public:
  virtual ~Upstream() = default;
  // OK once the whole answer was delivered to the sink (whatever its HTTP
  // status). Otherwise:
  //   Unavailable - no connection could be made (after bounded retries);
  //     the sink saw nothing.
  //   Timeout     - connecting or reading took too long.
  //   IOError     - the connection broke, or the answer was malformed,
  //     possibly after OnHead/OnBody calls.
  //   Aborted by the sink - Status::OK is not returned; IOError("aborted").
  virtual boost::asio::awaitable<Status> Send(const UpstreamRequest& request,
                                              UpstreamSink& sink) = 0;
};

}  // namespace llmcache
