#include "semantic/llm_verifier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <boost/json.hpp>
#include <optional>
#include <utility>

#include "common/hash.h"
#include "http/client.h"

namespace llmcache::semantic {
namespace {

namespace json = boost::json;
namespace net = http::net;
using http::awaitable;

// Short, and explicit about details: the cheap model must say "no" when a
// deciding word differs, which is the case the cache cannot afford to get
// wrong.
constexpr std::string_view kInstruction =
    "You decide whether two questions sent to an assistant ask for the same answer, so that "
    "one answer serves both. Questions that differ in a detail that changes the answer "
    "(a number, name, place, product, date, negation or direction) do not. Reply with one "
    "word: yes or no.";

// Collapses white space: a multi-line question stays one line of the prompt.
std::string OneLine(std::string_view text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

class LlmVerifier final : public PairVerifier {
 public:
  LlmVerifier(LlmVerifierOptions options, http::BaseUrl base,
              std::shared_ptr<net::ssl::context> tls)
      : options_(std::move(options)),
        base_(std::move(base)),
        tls_(std::move(tls)),
        answerer_(options_.model + " at " + base_.ToString()) {}

  Result<bool> SameAnswer(std::string_view query, std::string_view cached) override;
  std::string AnswererFor(std::string_view) const override { return answerer_; }

 private:
  static awaitable<void> FetchInto(http::BaseUrl base, http::ClientOptions client_options,
                                   std::shared_ptr<net::ssl::context> tls,
                                   UpstreamRequest request,
                                   std::optional<Result<http::BufferedResponse>>& out) {
    http::HttpClient client(co_await net::this_coro::executor, std::move(base), client_options,
                            std::move(tls));
    out = co_await http::Fetch(client, request, 1 << 20);
  }

  Result<bool> Failed(Status s) {
    // A broken verifier refuses every grey-band candidate; say so in the log
    // without flooding it (the 1st, 2nd, 4th, 8th, ... failure).
    const uint64_t n = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
    if ((n & (n - 1)) == 0) {
      spdlog::warn("semantic verifier ({}): {} (failure {}; the candidates are refused)",
                   answerer_, s.ToString(), n);
    }
    return Err(std::move(s));
  }

  const LlmVerifierOptions options_;
  const http::BaseUrl base_;
  const std::shared_ptr<net::ssl::context> tls_;
  const std::string answerer_;
  std::atomic<uint64_t> failures_{0};
};

Result<bool> LlmVerifier::SameAnswer(std::string_view query, std::string_view cached) {
  UpstreamRequest request;
  request.path = "/chat/completions";
  request.body = LlmVerifierRequestBody(options_, query, cached);
  request.headers = {{"Content-Type", "application/json"},
                     {"Accept", "application/json"},
                     // Should the endpoint be a llmcache gateway (even this
                     // one), the check neither reads nor fills its cache: no
                     // recursion into a semantic lookup.
                     {"Cache-Control", "no-cache, no-store"}};
  if (!options_.api_key.empty()) {
    request.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
  }
  http::ClientOptions client_options;
  client_options.ca_file = options_.ca_file;
  client_options.verify_tls = options_.verify_tls;
  client_options.connect_timeout = options_.timeout;
  client_options.read_timeout = options_.timeout;
  client_options.connect_retries = 0;

  std::optional<Result<http::BufferedResponse>> answer;
  {
    // A private loop per call, as the openai embedder does: SameAnswer runs
    // on any thread of the cache's caller, and nothing is shared.
    net::io_context ctx(1);
    net::co_spawn(ctx, FetchInto(base_, client_options, tls_, std::move(request), answer),
                  net::detached);
    ctx.run_for(options_.timeout);
  }
  if (!answer) {
    return Failed(Status::Timeout("no answer within " + std::to_string(options_.timeout.count()) +
                                  " ms"));
  }
  if (!*answer) return Failed(answer->error());
  const http::BufferedResponse& res = **answer;
  if (res.status < 200 || res.status >= 300) {
    return Failed(Status::Unavailable("HTTP " + std::to_string(res.status) + ": " +
                                      OneLine(res.body.substr(0, 200))));
  }
  auto same = ParseLlmVerifierAnswer(res.body);
  if (!same) return Failed(same.error());
  return same;
}

class NamespaceVerifier final : public PairVerifier {
 public:
  NamespaceVerifier(std::shared_ptr<PairVerifier> fallback,
                    std::map<std::string, std::shared_ptr<PairVerifier>, std::less<>> by_ns)
      : fallback_(std::move(fallback)), by_ns_(std::move(by_ns)) {}

  Result<bool> SameAnswer(std::string_view query, std::string_view cached) override {
    if (!fallback_) return Err(Status::InvalidArgument("no verifier outside its namespaces"));
    return fallback_->SameAnswer(query, cached);
  }
  Result<bool> SameAnswerIn(std::string_view ns, std::string_view query,
                            std::string_view cached) override {
    PairVerifier* v = For(ns);
    if (!v) return Err(Status::InvalidArgument("namespace is not verified"));
    return v->SameAnswerIn(ns, query, cached);
  }
  std::string AnswererFor(std::string_view ns) const override {
    PairVerifier* v = For(ns);
    return v ? v->AnswererFor(ns) : std::string();
  }

 private:
  PairVerifier* For(std::string_view ns) const {
    auto it = by_ns_.find(ConfiguredNamespace(ns));
    return it != by_ns_.end() ? it->second.get() : fallback_.get();
  }

  const std::shared_ptr<PairVerifier> fallback_;
  const std::map<std::string, std::shared_ptr<PairVerifier>, std::less<>> by_ns_;
};

class OracleVerifier final : public PairVerifier {
 public:
  explicit OracleVerifier(OracleVerifierOptions o) : o_(std::move(o)) {}

  Result<bool> SameAnswer(std::string_view query, std::string_view cached) override {
    auto a = o_.label_of.find(std::string(query));
    auto b = o_.label_of.find(std::string(cached));
    if (a == o_.label_of.end() || b == o_.label_of.end()) {
      return Err(Status::NotFound("oracle verifier: a question without a label"));
    }
    const bool truth = a->second == b->second;
    if (o_.accuracy >= 1) return truth;
    // The draw depends on the unordered pair and the seed only: asked again,
    // the oracle errs the same way, as a model at temperature 0 would.
    std::string_view x = query, y = cached;
    if (y < x) std::swap(x, y);
    std::string buf = std::to_string(x.size()) + ":";
    buf.append(x);
    buf.append(y);
    const double u =
        static_cast<double>(Xxh3(buf.data(), buf.size(), o_.seed) >> 11) * 0x1.0p-53;
    return u < o_.accuracy ? truth : !truth;
  }
  std::string AnswererFor(std::string_view) const override {
    return "oracle:" + std::to_string(o_.accuracy) + ":" + std::to_string(o_.seed);
  }

 private:
  const OracleVerifierOptions o_;
};

}  // namespace

std::string LlmVerifierRequestBody(const LlmVerifierOptions& options, std::string_view query,
                                   std::string_view cached) {
  std::string user = "Question 1: " + json::serialize(json::string(OneLine(query))) +
                     "\nQuestion 2: " + json::serialize(json::string(OneLine(cached))) +
                     "\nSame answer (yes or no)?";
  json::object body{
      {"model", options.model},
      {"messages", json::array{json::object{{"role", "system"}, {"content", kInstruction}},
                               json::object{{"role", "user"}, {"content", user}}}},
      {"temperature", 0},
      {"max_tokens", options.max_tokens},
      {"stream", false},
  };
  return json::serialize(body);
}

Result<bool> ParseLlmVerifierAnswer(std::string_view body) {
  auto bad = [](std::string what) {
    return Err(Status::Corruption("verifier answer: " + std::move(what)));
  };
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  const json::object* o = ec ? nullptr : v.if_object();
  if (!o) return bad("not a JSON object");
  const json::value* choices = o->if_contains("choices");
  if (!choices || !choices->is_array() || choices->as_array().empty()) return bad("no choices");
  const json::object* first = choices->as_array()[0].if_object();
  const json::value* message = first ? first->if_contains("message") : nullptr;
  if (!message || !message->is_object()) return bad("no message");
  const json::value* content = message->as_object().if_contains("content");
  // A refusal, a tool call or an empty answer: not a yes.
  if (!content || !content->is_string()) return false;
  std::string_view text = content->as_string();
  auto trimmable = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' ||
           c == '`' || c == '*' || c == '.' || c == '!' || c == ',';
  };
  while (!text.empty() && trimmable(text.front())) text.remove_prefix(1);
  while (!text.empty() && trimmable(text.back())) text.remove_suffix(1);
  return Lower(text) == "yes";
}

Result<std::unique_ptr<PairVerifier>> NewLlmVerifier(const LlmVerifierOptions& options) {
  if (options.url.empty()) return Err(Status::InvalidArgument("semantic verifier: no url"));
  if (options.model.empty()) return Err(Status::InvalidArgument("semantic verifier: no model"));
  if (options.timeout.count() <= 0) {
    return Err(Status::InvalidArgument("semantic verifier: timeout must be positive"));
  }
  if (options.max_tokens <= 0) {
    return Err(Status::InvalidArgument("semantic verifier: max_tokens must be positive"));
  }
  auto base = http::ParseBaseUrl(options.url);
  if (!base) {
    return Err(Status::InvalidArgument("semantic verifier: bad url \"" + options.url +
                                       "\": " + base.error().message()));
  }
  std::shared_ptr<net::ssl::context> tls;
  if (base->tls) {
    http::ClientOptions tls_options;
    tls_options.ca_file = options.ca_file;
    tls_options.verify_tls = options.verify_tls;
    auto t = http::MakeTlsContext(tls_options);
    if (!t) return Err(t.error());
    tls = std::move(*t);
  }
  return std::unique_ptr<PairVerifier>(
      std::make_unique<LlmVerifier>(options, std::move(*base), std::move(tls)));
}

std::shared_ptr<PairVerifier> NewNamespaceVerifier(
    std::shared_ptr<PairVerifier> fallback,
    std::map<std::string, std::shared_ptr<PairVerifier>, std::less<>> by_namespace) {
  return std::make_shared<NamespaceVerifier>(std::move(fallback), std::move(by_namespace));
}

std::unique_ptr<PairVerifier> NewOracleVerifier(OracleVerifierOptions options) {
  return std::make_unique<OracleVerifier>(std::move(options));
}

Result<OracleVerifierOptions> ParseOracleSpec(std::string_view spec) {
  auto bad = [&] {
    return Err(Status::InvalidArgument("verifier must be oracle or oracle:ACCURACY (0..1), not \"" +
                                       std::string(spec) + "\""));
  };
  OracleVerifierOptions o;
  if (spec == "oracle") return o;
  if (!spec.starts_with("oracle:")) return bad();
  const std::string_view number = spec.substr(7);
  double accuracy = -1;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), accuracy);
  if (ec != std::errc() || end != number.data() + number.size() || !(accuracy >= 0) ||
      accuracy > 1)
    return bad();
  o.accuracy = accuracy;
  return o;
}

}  // namespace llmcache::semantic
