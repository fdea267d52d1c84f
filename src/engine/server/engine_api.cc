#include "engine/server/engine_api.h"

#include <openssl/rand.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>

#include "common/hash.h"
#include "engine/server/text_stream.h"
#include "engine/server/token_pipe.h"
#include "http/server.h"
#include "http/sse.h"

namespace llmcache::engine {

namespace json = boost::json;
namespace net = http::net;
using http::awaitable;

struct ApiError {
  unsigned status = 400;
  std::string message;
  std::string param;
  std::string code;
  std::string type = "invalid_request_error";
};

namespace {

ApiError Bad(std::string message, std::string param = {}, std::string code = {}) {
  return {400, std::move(message), std::move(param), std::move(code)};
}

std::string ErrorBody(const ApiError& e) {
  return http::MakeErrorResponse(e.status, e.message, e.type, e.param, e.code).body();
}

ApiError ShuttingDown() {
  return {503, "engine shutting down", {}, "engine_unavailable", "server_error"};
}

ApiError NoSuchRoute(std::string_view path, bool known_path) {
  if (known_path) return {405, "method not allowed", {}, "method_not_allowed"};
  return {404, "unknown route " + std::string(path), {}, "not_found"};
}

// By value: a coroutine must not keep references to temporaries. (Callers
// build errors in plain functions: GCC 12 miscompiles braced temporaries
// inside coroutines.)
awaitable<void> SendError(ApiResponder& out, ApiError e) {
  co_await out.Send(e.status, ErrorBody(e));
}

ApiError FromStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return Bad(s.message());
    case StatusCode::kResourceExhausted:
      return Bad(s.message(), {}, "context_length_exceeded");
    case StatusCode::kUnavailable:
      return {503, s.message(), {}, "engine_unavailable", "server_error"};
    default:
      return {500, s.message(), {}, "engine_error", "server_error"};
  }
}

std::optional<double> Number(const json::value& v) {
  if (v.is_double()) return v.get_double();
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  return std::nullopt;
}

std::optional<int64_t> Integer(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    return static_cast<int64_t>(
        std::min<uint64_t>(v.get_uint64(), std::numeric_limits<int64_t>::max()));
  }
  if (v.is_double() && std::nearbyint(v.get_double()) == v.get_double() &&
      std::abs(v.get_double()) < 9e18) {
    return static_cast<int64_t>(v.get_double());
  }
  return std::nullopt;
}

// A field that is absent or null counts as not given.
const json::value* Field(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v == nullptr || v->is_null() ? nullptr : v;
}

tl::expected<std::string, ApiError> MessageContent(const json::value& v, size_t i) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  if (v.is_null()) return std::string();
  if (v.is_string()) return std::string(v.get_string());
  if (!v.is_array()) return tl::unexpected(Bad("content must be a string or an array", param));
  std::string text;
  for (const auto& part : v.get_array()) {
    const auto* po = part.if_object();
    const auto* type = po ? po->if_contains("type") : nullptr;
    const auto* t = po ? po->if_contains("text") : nullptr;
    if (type == nullptr || !type->is_string() || type->get_string() != "text" || t == nullptr ||
        !t->is_string()) {
      return tl::unexpected(Bad("only text content parts are supported", param));
    }
    text += t->get_string();
  }
  return text;
}

json::object UsageJson(const CompletionUsage& u, uint32_t completion_tokens) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", u.prompt_tokens + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

std::string HealthJson(const std::string& model) {
  return json::serialize(json::object{{"status", "ok"}, {"model", model}});
}

std::string_view FinishName(FinishReason f, bool stop_string) {
  if (stop_string) return "stop";
  return f == FinishReason::kLength ? "length" : "stop";
}

}  // namespace

struct EngineApi::Prepared {
  bool chat = true;
  std::string model;
  CompletionRequest request;
  std::vector<std::string> stops;
  bool stream = false;
  bool include_usage = false;
  std::string id;
  int64_t created = 0;

  json::object Chunk() const {
    json::object o{{"id", id},
                   {"object", chat ? "chat.completion.chunk" : "text_completion"},
                   {"created", created},
                   {"model", model}};
    return o;
  }
  // One SSE event of the stream; `usage` only when the client asked for it.
  void AppendChunk(std::string& sse, json::object choice, const json::object* usage) const {
    json::object o = Chunk();
    json::array choices;
    if (!choice.empty()) choices.push_back(std::move(choice));
    o["choices"] = std::move(choices);
    if (include_usage) o["usage"] = usage ? json::value(*usage) : json::value(nullptr);
    http::AppendSseData(sse, json::serialize(o));
  }
  // The event carrying new text (the chat's first one also the role); ""
  // when there is nothing to send.
  std::string DeltaEvent(std::string_view text, bool first) const {
    std::string sse;
    if ((first && chat) || !text.empty())
      AppendChunk(sse, TextChoice(text, first, nullptr), nullptr);
    return sse;
  }
  // The end of a stream: the finish chunk, the usage chunk when asked for, [DONE].
  std::string FinalEvents(std::string_view finish, const CompletionUsage& usage,
                          uint32_t completion_tokens) const {
    std::string sse;
    const std::string reason(finish);
    AppendChunk(sse, TextChoice("", false, reason.c_str()), nullptr);
    const json::object u = UsageJson(usage, completion_tokens);
    if (include_usage) AppendChunk(sse, {}, &u);
    http::AppendSseData(sse, "[DONE]");
    return sse;
  }
  std::string WholeAnswer(const std::string& content, std::string_view finish,
                          const CompletionUsage& usage, uint32_t completion_tokens) const {
    json::object o = Chunk();
    o["object"] = chat ? "chat.completion" : "text_completion";
    json::object choice;
    if (chat) {
      choice = {{"index", 0},
                {"message", {{"role", "assistant"}, {"content", content}}},
                {"logprobs", nullptr},
                {"finish_reason", finish}};
    } else {
      choice = {{"text", content}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
    }
    o["choices"] = json::array{std::move(choice)};
    o["usage"] = UsageJson(usage, completion_tokens);
    return json::serialize(o);
  }
  json::object TextChoice(std::string_view text, bool first, const char* finish) const {
    json::value fin = finish ? json::value(finish) : json::value(nullptr);
    if (!chat) {
      return {{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", fin}};
    }
    json::object delta;
    if (first) delta["role"] = "assistant";
    if (first || !text.empty()) delta["content"] = text;
    return {
        {"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", fin}};
  }
};

Result<std::shared_ptr<EngineApi>> EngineApi::Create(std::shared_ptr<const Model> model,
                                                     std::unique_ptr<EngineBackend> backend,
                                                     EngineApiOptions options) {
  if (!model || !backend)
    return Err(Status::InvalidArgument("engine api: model and backend required"));
  auto vocab = Vocab::FromGguf(model->gguf());
  if (!vocab) return Err(vocab.error());
  if (!options.chat_template.empty()) {
    auto t = DetectChatTemplate(options.chat_template);
    if (!t) return Err(t.error());
  }
  return std::shared_ptr<EngineApi>(
      new EngineApi(std::move(model), std::move(backend), std::move(*vocab), std::move(options)));
}

EngineApi::EngineApi(std::shared_ptr<const Model> model, std::unique_ptr<EngineBackend> backend,
                     Vocab vocab, EngineApiOptions options)
    : model_(std::move(model)),
      vocab_(std::move(vocab)),
      options_(std::move(options)),
      template_(Err(Status::NotFound())),
      n_ctx_(backend->n_ctx()),
      backend_(std::move(backend)) {
  if (!options_.clock) options_.clock = SystemClock();
  created_s_ = options_.clock->NowMillis() / 1000;
  if (!options_.chat_template.empty()) {
    template_ = DetectChatTemplate(options_.chat_template);
  } else {
    auto t = model_->gguf().GetString("tokenizer.chat_template");
    template_ =
        t ? DetectChatTemplate(*t)
          : Result<ChatTemplate>(Err(Status::NotFound(
                "the model has no tokenizer.chat_template; name one with --chat-template")));
  }
}

EngineApi::~EngineApi() { Shutdown(); }

void EngineApi::Shutdown() {
  std::unique_ptr<EngineBackend> backend;
  {
    std::unique_lock lock(backend_mu_);
    if (backend_) last_stats_ = backend_->stats();
    backend = std::move(backend_);
  }
  backend.reset();  // its destructor ends every request (on_done runs)
}

EngineStats EngineApi::stats() {
  std::shared_lock lock(backend_mu_);
  return backend_ ? backend_->stats() : last_stats_;
}

bool EngineApi::Submit(CompletionRequest request, CompletionCallbacks callbacks) {
  std::shared_lock lock(backend_mu_);
  if (!backend_) return false;
  backend_->Submit(std::move(request), std::move(callbacks));
  return true;
}

namespace {

struct PrepareContext {
  const Vocab& vocab;
  const Result<ChatTemplate>& chat_template;
  uint32_t n_ctx;
  uint32_t n_vocab;
  const EngineApiOptions& options;
  uint64_t default_seed;
};

tl::expected<std::vector<int32_t>, ApiError> ChatPrompt(const json::object& o,
                                                        const PrepareContext& c) {
  const json::value* mv = Field(o, "messages");
  if (mv == nullptr || !mv->is_array() || mv->get_array().empty()) {
    return tl::unexpected(Bad("'messages' must be a non-empty array", "messages"));
  }
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < mv->get_array().size(); ++i) {
    const auto* m = mv->get_array()[i].if_object();
    const json::value* role = m ? m->if_contains("role") : nullptr;
    if (role == nullptr || !role->is_string()) {
      return tl::unexpected(
          Bad("each message needs a string 'role'", "messages[" + std::to_string(i) + "].role"));
    }
    static const json::value kNull;
    const json::value* content = m->if_contains("content");
    auto text = MessageContent(content ? *content : kNull, i);
    if (!text) return tl::unexpected(text.error());
    messages.push_back({std::string(role->get_string()), std::move(*text)});
  }
  if (!c.chat_template) {
    return tl::unexpected(ApiError{500,
                                   "chat template: " + c.chat_template.error().message(),
                                   {},
                                   "unsupported_chat_template",
                                   "server_error"});
  }
  const std::string text = RenderChat(*c.chat_template, messages, /*add_assistant=*/true);
  std::vector<int32_t> tokens =
      c.vocab.Tokenize(text, /*add_special=*/true, /*parse_special=*/true);
  // Templates that write BOS themselves would get a second one from the
  // tokenizer (llama.cpp drops it the same way).
  if (tokens.size() >= 2 && tokens[0] == c.vocab.bos() && tokens[1] == c.vocab.bos()) {
    tokens.erase(tokens.begin());
  }
  return tokens;
}

tl::expected<std::vector<int32_t>, ApiError> TokenIds(const json::array& a,
                                                      const PrepareContext& c) {
  std::vector<int32_t> tokens;
  for (const auto& v : a) {
    auto id = Integer(v);
    if (!id || *id < 0 || *id >= c.n_vocab) {
      return tl::unexpected(Bad(
          "prompt token ids must be integers in [0, " + std::to_string(c.n_vocab) + ")", "prompt"));
    }
    tokens.push_back(static_cast<int32_t>(*id));
  }
  return tokens;
}

tl::expected<std::vector<int32_t>, ApiError> CompletionPrompt(const json::object& o,
                                                              const PrepareContext& c) {
  const json::value* pv = Field(o, "prompt");
  if (pv == nullptr) return tl::unexpected(Bad("'prompt' is required", "prompt"));
  auto tokenize = [&](std::string_view text) {
    return c.vocab.Tokenize(text, /*add_special=*/true, /*parse_special=*/true);
  };
  if (pv->is_string()) return tokenize(pv->get_string());
  if (!pv->is_array()) {
    return tl::unexpected(Bad("'prompt' must be a string or an array", "prompt"));
  }
  const auto& a = pv->get_array();
  if (a.size() == 1 && a[0].is_string()) return tokenize(a[0].get_string());
  if (a.size() == 1 && a[0].is_array()) return TokenIds(a[0].get_array(), c);
  if (!a.empty() && (a[0].is_array() || a[0].is_string())) {
    return tl::unexpected(Bad("one prompt per request is supported", "prompt"));
  }
  return TokenIds(a, c);
}

// Fields this engine cannot honour are refused rather than silently ignored.
tl::expected<void, ApiError> RefuseUnsupported(const json::object& o) {
  if (const auto* n = Field(o, "n")) {
    if (Integer(*n) != 1) return tl::unexpected(Bad("only n = 1 is supported", "n"));
  }
  if (const auto* lp = Field(o, "logprobs")) {
    const bool on = lp->is_bool() ? lp->get_bool() : Integer(*lp).value_or(1) != 0;
    if (on) return tl::unexpected(Bad("logprobs are not supported", "logprobs"));
  }
  if (const auto* e = Field(o, "echo"); e && (!e->is_bool() || e->get_bool())) {
    return tl::unexpected(Bad("echo is not supported", "echo"));
  }
  for (const char* name : {"tools", "functions"}) {
    const auto* t = Field(o, name);
    if (t && (!t->is_array() || !t->get_array().empty())) {
      return tl::unexpected(Bad(std::string(name) + " are not supported", name));
    }
  }
  return {};
}

tl::expected<EngineApi::Prepared, ApiError> Prepare(bool chat, const ApiRequest& r,
                                                    const PrepareContext& c) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) return tl::unexpected(Bad("invalid JSON body: " + ec.message()));
  if (!v.is_object()) return tl::unexpected(Bad("the request body must be a JSON object"));
  const json::object& o = v.get_object();
  if (auto u = RefuseUnsupported(o); !u) return tl::unexpected(u.error());

  EngineApi::Prepared p;
  p.chat = chat;
  p.model = c.options.model_name;
  if (const auto* m = Field(o, "model")) {
    if (!m->is_string()) return tl::unexpected(Bad("'model' must be a string", "model"));
    p.model = m->get_string();
  }
  auto prompt = chat ? ChatPrompt(o, c) : CompletionPrompt(o, c);
  if (!prompt) return tl::unexpected(prompt.error());
  const char* prompt_param = chat ? "messages" : "prompt";
  if (prompt->empty()) return tl::unexpected(Bad("the prompt is empty", prompt_param));
  if (prompt->size() >= c.n_ctx) {
    return tl::unexpected(Bad("This model's maximum context length is " + std::to_string(c.n_ctx) +
                                  " tokens. However, your " + (chat ? "messages" : "prompt") +
                                  " resulted in " + std::to_string(prompt->size()) + " tokens.",
                              prompt_param, "context_length_exceeded"));
  }
  CompletionRequest& req = p.request;
  req.prompt = std::move(*prompt);
  const uint32_t room = c.n_ctx - static_cast<uint32_t>(req.prompt.size());

  req.max_tokens = chat ? room : std::min(room, c.options.completions_default_max_tokens);
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    const auto* mt = Field(o, name);
    if (mt == nullptr) continue;
    auto n = Integer(*mt);
    if (!n || *n < 1)
      return tl::unexpected(Bad(std::string(name) + " must be an integer >= 1", name));
    req.max_tokens = static_cast<uint32_t>(std::min<int64_t>(*n, room));
  }

  SamplingOptions& s = req.sampling;
  s.temperature = 1.0f;  // OpenAI's default
  if (const auto* t = Field(o, "temperature")) {
    auto x = Number(*t);
    if (!x || *x < 0 || *x > 2) {
      return tl::unexpected(Bad("temperature must be a number in [0, 2]", "temperature"));
    }
    s.temperature = static_cast<float>(*x);
  }
  if (const auto* t = Field(o, "top_p")) {
    auto x = Number(*t);
    if (!x || *x <= 0 || *x > 1) return tl::unexpected(Bad("top_p must be in (0, 1]", "top_p"));
    s.top_p = static_cast<float>(*x);
  }
  if (const auto* t = Field(o, "top_k")) {
    auto x = Integer(*t);
    if (!x || *x < 0) return tl::unexpected(Bad("top_k must be an integer >= 0", "top_k"));
    s.top_k = static_cast<int32_t>(std::min<int64_t>(*x, std::numeric_limits<int32_t>::max()));
  }
  s.seed = c.default_seed;
  if (const auto* t = Field(o, "seed")) {
    if (t->is_uint64()) {
      s.seed = t->get_uint64();
    } else if (t->is_int64()) {
      s.seed = static_cast<uint64_t>(t->get_int64());
    } else {
      return tl::unexpected(Bad("seed must be an integer", "seed"));
    }
  }

  if (const auto* st = Field(o, "stop")) {
    if (st->is_string()) {
      p.stops.emplace_back(st->get_string());
    } else if (st->is_array() && st->get_array().size() <= 4) {
      for (const auto& x : st->get_array()) {
        if (!x.is_string()) return tl::unexpected(Bad("stop must hold strings", "stop"));
        p.stops.emplace_back(x.get_string());
      }
    } else {
      return tl::unexpected(Bad("stop must be a string or an array of up to 4 strings", "stop"));
    }
  }
  if (const auto* st = Field(o, "stream")) {
    if (!st->is_bool()) return tl::unexpected(Bad("stream must be a boolean", "stream"));
    p.stream = st->get_bool();
  }
  if (const auto* so = Field(o, "stream_options"); so && so->is_object()) {
    if (const auto* iu = Field(so->get_object(), "include_usage"); iu && iu->is_bool()) {
      p.include_usage = p.stream && iu->get_bool();
    }
  }

  if (!r.cache_salt.empty()) {
    req.cache_salt = std::string(r.cache_salt);
  } else if (!r.authorization.empty()) {
    // A hash, so that no credential is kept beside cached blocks.
    req.cache_salt = Sha256Hex(r.authorization);
  }
  return p;
}

}  // namespace

std::string EngineApi::NewId(std::string_view prefix) {
  counter_.fetch_add(1, std::memory_order_relaxed);  // the default sampling seeds
  // 128 random bits: unique across responses, restarts and replicas, which
  // a counter-derived id is not (clients and logs use ids as keys).
  uint8_t bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    std::random_device rd;
    for (size_t i = 0; i < sizeof bytes; i += 4) {
      const uint32_t r = rd();
      std::memcpy(bytes + i, &r, 4);
    }
  }
  return std::string(prefix) + HexEncode(bytes, sizeof bytes);
}

bool EngineApi::running() {
  std::shared_lock lock(backend_mu_);
  return backend_ != nullptr;
}

awaitable<void> EngineApi::Models(std::string_view path, ApiResponder& out) {
  // JSON is built outside the coroutine (see SendError).
  ApiError error;
  std::string body = ModelsJson(path, error);
  if (body.empty()) {
    co_await SendError(out, std::move(error));
  } else {
    co_await out.Send(200, std::move(body));
  }
}

std::string EngineApi::ModelsJson(std::string_view path, ApiError& error) const {
  json::object model{{"id", options_.model_name},
                     {"object", "model"},
                     {"created", created_s_},
                     {"owned_by", "llmcache"},
                     {"meta",
                      {{"n_ctx", n_ctx_},
                       {"n_vocab", model_->config().n_vocab},
                       {"arch", model_->config().arch}}}};
  if (path == "/models") {
    return json::serialize(json::object{{"object", "list"}, {"data", json::array{model}}});
  }
  const std::string_view id = path.substr(std::string_view("/models/").size());
  if (id == options_.model_name) return json::serialize(model);
  error = {404, "The model '" + std::string(id) + "' does not exist", "model", "model_not_found"};
  return {};
}

awaitable<void> EngineApi::Handle(const ApiRequest& r, ApiResponder& out) {
  std::string_view path = r.target.substr(0, r.target.find('?'));
  if (path.starts_with("/v1/")) path.remove_prefix(3);
  const bool get = r.method == "GET";
  const bool post = r.method == "POST";
  if (path == "/healthz" && get) {
    if (running()) {
      co_await out.Send(200, HealthJson(options_.model_name));
    } else {
      co_await SendError(out, ShuttingDown());
    }
    co_return;
  }
  if ((path == "/models" || path.starts_with("/models/")) && get) {
    co_await Models(path, out);
    co_return;
  }
  const bool chat = path == "/chat/completions";
  if (!chat && path != "/completions") {
    const bool known = path == "/healthz" || path == "/models" || path.starts_with("/models/");
    co_await SendError(out, NoSuchRoute(path, known));
    co_return;
  }
  if (!post) {
    co_await SendError(out, NoSuchRoute(path, true));
    co_return;
  }
  const uint64_t n = counter_.load(std::memory_order_relaxed);
  const PrepareContext context{vocab_,   template_,
                               n_ctx_,   model_->config().n_vocab,
                               options_, Xxh3(&n, sizeof n, options_.seed)};
  auto p = Prepare(chat, r, context);
  if (!p) {
    co_await SendError(out, p.error());
    co_return;
  }
  p->id = NewId(chat ? "chatcmpl-" : "cmpl-");
  p->created = options_.clock->NowMillis() / 1000;
  co_await Complete(std::move(*p), out);
}

awaitable<void> EngineApi::Complete(Prepared p, ApiResponder& out) {
  TokenPipe pipe(co_await net::this_coro::executor);
  TextStream text(vocab_, std::move(p.stops));
  if (!Submit(std::move(p.request), pipe.Callbacks())) {
    co_await SendError(out, ShuttingDown());
    co_return;
  }
  std::string content;  // the whole answer, when not streaming
  uint32_t n_tokens = 0;
  bool started = false;
  CompletionUsage usage;
  auto next_poll = std::chrono::steady_clock::now() + options_.disconnect_poll;
  for (;;) {
    TokenPipe::Batch batch = co_await pipe.Next(options_.disconnect_poll);
    // A whole answer writes nothing until it is done, and a stream nothing
    // before its first token, so only a check notices a client that left.
    const auto now = std::chrono::steady_clock::now();
    const bool poll = now >= next_poll;
    if (poll) next_poll = now + options_.disconnect_poll;
    const bool gone = poll && !out.connected();
    if (gone) co_return;  // ~TokenPipe cancels the generation
    if (batch.tokens.empty() && !batch.done.has_value()) continue;  // only the poll was due
    std::string delta;
    for (int32_t t : batch.tokens) {
      if (text.stopped()) break;  // tokens the backend made before it saw the cancel
      ++n_tokens;
      delta += text.Push(t);
      if (text.stopped()) pipe.CancelAtStopString();
    }
    if (batch.done.has_value()) {
      if (!batch.done->has_value()) {
        if (started) {
          out.AbortEvents();
        } else {
          co_await SendError(out, FromStatus(batch.done->error()));
        }
        co_return;
      }
      usage = **batch.done;
      delta += text.Finish();
    }
    if (!p.stream) {
      content += delta;
    } else {
      const bool first = !started && (p.chat || !delta.empty() || batch.done.has_value());
      // No `if (co_await ...) co_return;` in a branch that may be skipped:
      // GCC 12 miscompiles it.
      bool writable = true;
      if (first) {
        started = true;
        writable = co_await out.BeginEvents();
      }
      const std::string sse = writable ? p.DeltaEvent(delta, first) : std::string();
      if (!sse.empty()) writable = co_await out.WriteEvents(sse);
      if (!writable) co_return;  // ~TokenPipe cancels the generation
    }
    if (batch.done.has_value()) break;
  }

  const std::string_view finish = FinishName(usage.finish, text.stopped());
  if (p.stream) {
    if (co_await out.WriteEvents(p.FinalEvents(finish, usage, n_tokens))) co_await out.EndEvents();
    co_return;
  }
  co_await out.Send(200, p.WholeAnswer(content, finish, usage, n_tokens));
}

}  // namespace llmcache::engine
