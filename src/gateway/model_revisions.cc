#include "gateway/model_revisions.h"

#include <boost/json.hpp>

#include "http/client.h"

namespace llmcache::gateway {

std::string ModelRevisions::Get(std::string_view model) const {
  if (auto it = configured_.find(std::string(model)); it != configured_.end()) return it->second;
  std::shared_lock lock(mu_);
  if (detected_.empty()) return {};
  std::string name(model);
  if (auto it = detected_.find(name); it != detected_.end()) return it->second;
  // Ollama lists "llama3:latest" for a model requested as "llama3".
  if (name.find(':') == std::string::npos) {
    if (auto it = detected_.find(name + ":latest"); it != detected_.end()) return it->second;
  }
  return {};
}

bool ModelRevisions::UpdateFromOllamaTags(std::string_view body) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return false;
  const auto* models = v.as_object().if_contains("models");
  if (!models || !models->is_array()) return false;
  std::unordered_map<std::string, std::string> next;
  for (const auto& m : models->as_array()) {
    if (!m.is_object()) continue;
    const auto& o = m.as_object();
    const auto* digest = o.if_contains("digest");
    if (!digest || !digest->is_string()) continue;
    for (const char* field : {"name", "model"}) {
      if (const auto* n = o.if_contains(field); n && n->is_string()) {
        next[std::string(n->as_string())] = std::string(digest->as_string());
      }
    }
  }
  std::unique_lock lock(mu_);
  detected_ = std::move(next);
  return true;
}

http::awaitable<Status> ModelRevisions::Refresh(Upstream& upstream, std::string path) {
  UpstreamRequest req;
  req.method = "GET";
  req.path = path;
  auto res = co_await http::Fetch(upstream, req, 16u << 20);
  if (!res) co_return res.error();
  if (res->status != 200) {
    co_return Status::NotFound("upstream exposes no model digests (HTTP " +
                               std::to_string(res->status) + ")");
  }
  if (!UpdateFromOllamaTags(res->body)) co_return Status::InvalidArgument("bad /api/tags body");
  co_return Status::OK();
}

std::map<std::string, std::string> ModelRevisions::Snapshot() const {
  std::map<std::string, std::string> out(configured_.begin(), configured_.end());
  std::shared_lock lock(mu_);
  for (const auto& [k, v] : detected_) out.emplace(k, v);
  return out;
}

}  // namespace llmcache::gateway
