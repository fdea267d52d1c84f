#include "semantic/openai_embedder.h"

#include <boost/json.hpp>
#include <cmath>
#include <optional>
#include <string_view>

#include "common/hash.h"
#include "http/client.h"

namespace llmcache {
namespace semantic {

namespace json = boost::json;
using http::awaitable;
namespace net = http::net;

std::optional<std::vector<float>> EmbeddingLru::Get(const std::string& text) {
  if (max_entries_ == 0) return std::nullopt;
  const uint64_t h = Xxh3(text);
  std::lock_guard lock(mu_);
  auto it = index_.find(h);
  if (it == index_.end() || it->second->text != text) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->vector;
}

void EmbeddingLru::Put(const std::string& text, const std::vector<float>& vector) {
  if (max_entries_ == 0) return;
  const uint64_t h = Xxh3(text);
  std::lock_guard lock(mu_);
  if (auto it = index_.find(h); it != index_.end()) {
    // Same text again, or a colliding one: the newer text wins the slot.
    it->second->text = text;
    it->second->vector = vector;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(Entry{h, text, vector});
  index_.emplace(h, lru_.begin());
  while (lru_.size() > max_entries_) {
    index_.erase(lru_.back().hash);
    lru_.pop_back();
  }
}

size_t EmbeddingLru::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

struct OpenAiEmbedder::Transport {
  http::BaseUrl base;
  std::shared_ptr<net::ssl::context> tls;  // null for http://
};

OpenAiEmbedder::OpenAiEmbedder(OpenAiEmbedderOptions options, std::unique_ptr<Transport> transport)
    : options_(std::move(options)),
      id_("openai:" + options_.model),
      transport_(std::move(transport)),
      dimension_(options_.dimension),
      cache_(options_.cache_max_entries) {}

OpenAiEmbedder::~OpenAiEmbedder() = default;

namespace {

awaitable<void> FetchInto(http::BaseUrl base, http::ClientOptions client_options,
                          std::shared_ptr<net::ssl::context> tls, UpstreamRequest request,
                          std::optional<Result<http::BufferedResponse>>& out) {
  http::HttpClient client(co_await net::this_coro::executor, std::move(base), client_options,
                          std::move(tls));
  out = co_await http::Fetch(client, request, 64ull << 20);
}

// The message of an OpenAI-style error body, or the start of the body.
std::string ErrorMessage(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (const json::value* e = v.as_object().if_contains("error")) {
      if (e->is_string()) return std::string(e->as_string());
      if (e->is_object()) {
        if (const json::value* m = e->as_object().if_contains("message"); m && m->is_string()) {
          return std::string(m->as_string());
        }
      }
    }
  }
  return std::string(body.substr(0, 200));
}

}  // namespace

Result<std::vector<std::vector<float>>> OpenAiEmbedder::FetchBatch(
    std::span<const std::string* const> texts) {
  json::object body;
  body["model"] = options_.model;
  json::array input;
  input.reserve(texts.size());
  for (const std::string* t : texts) input.emplace_back(*t);
  body["input"] = std::move(input);

  UpstreamRequest request;
  request.path = "/embeddings";
  request.body = json::serialize(body);
  request.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  if (!options_.api_key.empty()) {
    request.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
  }

  http::ClientOptions client_options;
  client_options.connect_timeout = options_.timeout;
  client_options.read_timeout = options_.timeout;
  client_options.connect_retries = 1;

  requests_.fetch_add(1, std::memory_order_relaxed);
  std::optional<Result<http::BufferedResponse>> answer;
  {
    // A private loop per call: Embed may run on any thread, and the
    // connection dies with the loop, so nothing is shared between callers.
    net::io_context ctx(1);
    net::co_spawn(
        ctx,
        FetchInto(transport_->base, client_options, transport_->tls, std::move(request), answer),
        net::detached);
    // The client's own timeouts bound each wait; this bounds the whole
    // exchange (a server trickling bytes never trips a silence timeout).
    ctx.run_for(options_.timeout);
    // Leaving the block destroys the loop and an unfinished exchange with it.
  }
  if (!answer) {
    return Err(Status::Timeout("embeddings endpoint did not answer within " +
                               std::to_string(options_.timeout.count()) + " ms"));
  }
  if (!*answer) return Err(answer->error());
  const http::BufferedResponse& res = **answer;
  if (res.status < 200 || res.status >= 300) {
    std::string what = "embeddings endpoint answered HTTP " + std::to_string(res.status) + ": " +
                       ErrorMessage(res.body);
    // 4xx: this request is wrong (bad model name, text too long); 5xx: the
    // endpoint is in trouble. Both are misses for the cache.
    if (res.status >= 400 && res.status < 500 && res.status != 408 && res.status != 429) {
      return Err(Status::InvalidArgument(std::move(what)));
    }
    return Err(Status::Unavailable(std::move(what)));
  }
  return ParseAnswer(res.body, texts.size());
}

Result<std::vector<std::vector<float>>> OpenAiEmbedder::ParseAnswer(std::string_view body,
                                                                    size_t expected) {
  auto bad = [](std::string what) {
    return Err(Status::Corruption("embeddings answer: " + std::move(what)));
  };
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return bad("not a JSON object");
  const json::value* data = v.as_object().if_contains("data");
  if (!data || !data->is_array()) return bad("no \"data\" array");
  if (data->as_array().size() != expected) {
    return bad(std::to_string(data->as_array().size()) + " items for " + std::to_string(expected) +
               " inputs");
  }
  std::vector<std::vector<float>> out(expected);
  for (size_t pos = 0; pos < expected; ++pos) {
    const json::value& item = data->as_array()[pos];
    if (!item.is_object()) return bad("an item is not an object");
    // Items carry their input's index; servers need not keep the order.
    size_t index = pos;
    if (const json::value* ix = item.as_object().if_contains("index")) {
      if (!ix->is_int64() || ix->as_int64() < 0 || static_cast<size_t>(ix->as_int64()) >= expected)
        return bad("bad \"index\"");
      index = static_cast<size_t>(ix->as_int64());
    }
    if (!out[index].empty()) return bad("index " + std::to_string(index) + " twice");
    const json::value* emb = item.as_object().if_contains("embedding");
    if (!emb || !emb->is_array()) return bad("no \"embedding\" array (base64 is not requested)");
    const json::array& arr = emb->as_array();
    if (arr.empty()) return bad("empty embedding");
    std::vector<float>& vec = out[index];
    vec.reserve(arr.size());
    double norm2 = 0;
    for (const json::value& x : arr) {
      if (!x.is_number()) return bad("a non-number in an embedding");
      const double d = x.to_number<double>();
      norm2 += d * d;
      vec.push_back(static_cast<float>(d));
    }
    const double norm = std::sqrt(norm2);
    if (!(norm > 0) || !std::isfinite(norm)) return bad("a zero or non-finite vector");
    for (float& x : vec) x = static_cast<float>(x / norm);

    size_t dim = dimension_.load(std::memory_order_acquire);
    if (dim == 0) {
      // The first answer fixes the dimension; a racing call may win.
      dimension_.compare_exchange_strong(dim, vec.size(), std::memory_order_acq_rel);
      dim = dimension_.load(std::memory_order_acquire);
    }
    if (vec.size() != dim) {
      return bad("dimension " + std::to_string(vec.size()) + ", expected " + std::to_string(dim) +
                 " (did the model behind the endpoint change?)");
    }
  }
  return out;
}

Result<std::vector<std::vector<float>>> OpenAiEmbedder::Embed(std::span<const std::string> texts) {
  std::vector<std::vector<float>> out(texts.size());
  // Texts to fetch, each once, and the positions that want each of them.
  std::vector<const std::string*> missing;
  std::vector<std::vector<size_t>> wanted_at;
  std::unordered_map<std::string_view, size_t> missing_slot;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (auto hit = cache_.Get(texts[i])) {
      cache_hits_.fetch_add(1, std::memory_order_relaxed);
      out[i] = std::move(*hit);
      continue;
    }
    auto [it, inserted] = missing_slot.emplace(texts[i], missing.size());
    if (inserted) {
      missing.push_back(&texts[i]);
      wanted_at.emplace_back();
    }
    wanted_at[it->second].push_back(i);
  }
  const size_t batch = std::max<size_t>(1, options_.batch_size);
  for (size_t start = 0; start < missing.size(); start += batch) {
    const size_t n = std::min(batch, missing.size() - start);
    auto vectors = FetchBatch(std::span<const std::string* const>(missing).subspan(start, n));
    if (!vectors) return Err(vectors.error());
    for (size_t k = 0; k < n; ++k) {
      cache_.Put(*missing[start + k], (*vectors)[k]);
      for (size_t i : wanted_at[start + k]) out[i] = (*vectors)[k];
    }
  }
  return out;
}

}  // namespace semantic

Result<std::unique_ptr<Embedder>> NewOpenAiEmbedder(const OpenAiEmbedderOptions& options) {
  if (options.url.empty()) return Err(Status::InvalidArgument("openai embedder: no url"));
  if (options.model.empty()) return Err(Status::InvalidArgument("openai embedder: no model"));
  if (options.timeout.count() <= 0) {
    return Err(Status::InvalidArgument("openai embedder: timeout must be positive"));
  }
  auto base = http::ParseBaseUrl(options.url);
  if (!base) {
    return Err(Status::InvalidArgument("openai embedder: bad url \"" + options.url +
                                       "\": " + base.error().message()));
  }
  auto transport = std::make_unique<semantic::OpenAiEmbedder::Transport>();
  transport->base = std::move(*base);
  if (transport->base.tls) {
    auto tls = http::MakeTlsContext(http::ClientOptions{});
    if (!tls) return Err(tls.error());
    transport->tls = std::move(*tls);
  }
  return std::unique_ptr<Embedder>(
      std::make_unique<semantic::OpenAiEmbedder>(options, std::move(transport)));
}

}  // namespace llmcache
