#include "gateway/stream_convert.h"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_stack.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>

namespace llmcache::gateway {
namespace {

namespace json = boost::json;

using Error = tl::unexpected<std::string>;

Error Fail(std::string message) { return Error(std::move(message)); }

// ---------------------------------------------------------------------------
// Parsing with correctly rounded doubles. Boost 1.81's own conversion can be
// an ulp off, so values like logprobs would drift each time an answer is
// converted between its stream and non-stream shapes.

class PreciseHandler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  explicit PreciseHandler(json::storage_ptr sp) : st_(sp) { st_.reset(sp); }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t n, json::error_code&) {
    st_.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    st_.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    st_.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    st_.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    st_.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    st_.push_string(s);
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    num_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(int64_t i, json::string_view, json::error_code&) {
    num_.clear();
    st_.push_int64(i);
    return true;
  }
  bool on_uint64(uint64_t u, json::string_view, json::error_code&) {
    num_.clear();
    st_.push_uint64(u);
    return true;
  }
  bool on_double(double boost_value, json::string_view s, json::error_code& ec) {
    num_.append(s.data(), s.size());
    double v = 0;
    auto r = std::from_chars(num_.data(), num_.data() + num_.size(), v);
    num_.clear();
    if (r.ec == std::errc::result_out_of_range) {
      if (!std::isfinite(boost_value) || std::fabs(boost_value) >= 1) {
        ec = json::error::exponent_overflow;
        return false;
      }
      v = 0;  // underflow
    } else if (r.ec != std::errc()) {
      v = boost_value;
    }
    if (!std::isfinite(v)) {
      ec = json::error::exponent_overflow;
      return false;
    }
    st_.push_double(v);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    st_.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    st_.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  json::value Release() { return st_.release(); }

 private:
  json::value_stack st_;
  std::string num_;
};

// Parses `text` into a value allocated from `sp`. nullopt on any error.
// Throws only std::bad_alloc / std::length_error (caught by the callers).
std::optional<json::value> Parse(std::string_view text, const json::storage_ptr& sp) {
  json::parse_options po;
  po.max_depth = 64;
  json::basic_parser<PreciseHandler> p(po, sp);
  json::error_code ec;
  p.write_some(false, text.data(), text.size(), ec);
  if (ec) return std::nullopt;
  return p.handler().Release();
}

std::optional<uint64_t> AsIndex(const json::value& v) {
  if (const int64_t* i = v.if_int64()) {
    if (*i >= 0) return static_cast<uint64_t>(*i);
    return std::nullopt;
  }
  if (const uint64_t* u = v.if_uint64()) return *u;
  return std::nullopt;
}

// The "index" of a choice or tool call; `fallback` when absent or null.
std::optional<uint64_t> IndexOf(const json::object& o, uint64_t fallback) {
  const json::value* v = o.if_contains("index");
  if (v == nullptr || v->is_null()) return fallback;
  return AsIndex(*v);
}

std::string_view View(const json::string& s) { return {s.data(), s.size()}; }

template <class T>
T& FindOrAdd(std::vector<T>& items, uint64_t index) {
  for (T& item : items) {
    if (item.index == index) return item;
  }
  items.emplace_back();
  items.back().index = index;
  return items.back();
}

template <class T>
T* FindByKey(std::vector<T>& items, std::string_view key) {
  for (T& item : items) {
    if (item.key == key) return &item;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Accumulators for AssembleFromStream.

// An object inside a tool call ("function", "custom") or a legacy
// function_call: "name" is set once, other strings are concatenated.
struct SubObject {
  struct Field {
    std::string key;
    std::string text;
  };
  std::string key;
  std::vector<Field> fields;

  tl::expected<void, std::string> Merge(const json::object& o) {
    for (const auto& kv : o) {
      if (kv.value().is_null()) continue;
      const json::string* s = kv.value().if_string();
      if (s == nullptr)
        return Fail("tool call field '" + std::string(kv.key()) + "' is not a string");
      Field* f = FindByKey(fields, kv.key());
      if (f == nullptr) {
        fields.push_back(Field{std::string(kv.key()), {}});
        f = &fields.back();
      }
      if (kv.key() == "name") {
        if (f->text.empty()) f->text.assign(View(*s));
      } else {
        f->text.append(View(*s));
      }
    }
    return {};
  }

  json::object ToJson(const json::storage_ptr& sp) const {
    json::object o(sp);
    for (const Field& f : fields) o.emplace(f.key, json::string_view(f.text));
    return o;
  }
};

struct ToolCallAcc {
  uint64_t index = 0;
  std::string id;
  std::string type;
  std::vector<SubObject> objects;
};

// A message field other than role/tool_calls/function_call.
struct FieldAcc {
  enum class State { kNull, kString, kOther };
  std::string key;
  State state = State::kNull;
  std::string text;
  json::value other;
};

struct ChoiceAcc {
  uint64_t index = 0;
  // chat
  std::string role;
  std::vector<FieldAcc> fields;  // "content" first
  std::vector<ToolCallAcc> tool_calls;
  std::optional<SubObject> function_call;
  // completions
  std::string text;
  // both
  json::value logprobs;  // null unless seen
  json::value finish_reason;
  std::vector<std::pair<std::string, json::value>> extras;
};

// Merges a logprobs object: arrays are concatenated, nulls fill gaps,
// anything else replaces.
void MergeLogprobs(json::value& acc, const json::value& in, const json::storage_ptr& sp) {
  const json::object* src = in.if_object();
  if (src == nullptr) return;
  if (!acc.is_object()) acc = json::object(sp);
  json::object& dst = acc.get_object();
  for (const auto& kv : *src) {
    json::value* cur = dst.if_contains(kv.key());
    if (kv.value().is_null()) {
      if (cur == nullptr) dst.emplace(kv.key(), nullptr);
    } else if (cur != nullptr && cur->is_array() && kv.value().is_array()) {
      for (const json::value& e : kv.value().get_array()) cur->get_array().push_back(e);
    } else if (cur != nullptr) {
      *cur = kv.value();
    } else {
      dst.emplace(kv.key(), kv.value());
    }
  }
}

tl::expected<void, std::string> MergeToolCalls(ChoiceAcc& c, const json::array& calls) {
  for (size_t pos = 0; pos < calls.size(); ++pos) {
    const json::object* tc = calls[pos].if_object();
    if (tc == nullptr) return Fail("tool_calls element is not an object");
    auto index = IndexOf(*tc, pos);
    if (!index) return Fail("tool call index is not a non-negative integer");
    ToolCallAcc& acc = FindOrAdd(c.tool_calls, *index);
    for (const auto& kv : *tc) {
      const json::value& v = kv.value();
      if (kv.key() == "index" || v.is_null()) continue;
      if (kv.key() == "id" || kv.key() == "type") {
        const json::string* s = v.if_string();
        if (s == nullptr) return Fail("tool call '" + std::string(kv.key()) + "' is not a string");
        std::string& dst = kv.key() == "id" ? acc.id : acc.type;
        if (dst.empty()) dst.assign(View(*s));
      } else if (const json::object* o = v.if_object()) {
        SubObject* so = FindByKey(acc.objects, kv.key());
        if (so == nullptr) {
          acc.objects.push_back(SubObject{std::string(kv.key()), {}});
          so = &acc.objects.back();
        }
        if (auto r = so->Merge(*o); !r) return r;
      } else {
        return Fail("tool call field '" + std::string(kv.key()) + "' has an unexpected type");
      }
    }
  }
  return {};
}

tl::expected<void, std::string> MergeDelta(ChoiceAcc& c, const json::object& delta,
                                           const json::storage_ptr& sp) {
  for (const auto& kv : delta) {
    const std::string_view key = kv.key();
    const json::value& v = kv.value();
    if (key == "role") {
      if (v.is_null()) continue;
      const json::string* s = v.if_string();
      if (s == nullptr) return Fail("delta role is not a string");
      if (c.role.empty()) c.role.assign(View(*s));
    } else if (key == "tool_calls") {
      if (v.is_null()) continue;
      const json::array* a = v.if_array();
      if (a == nullptr) return Fail("delta tool_calls is not an array");
      if (auto r = MergeToolCalls(c, *a); !r) return r;
    } else if (key == "function_call") {
      if (v.is_null()) continue;
      const json::object* o = v.if_object();
      if (o == nullptr) return Fail("delta function_call is not an object");
      if (!c.function_call) c.function_call = SubObject{"function_call", {}};
      if (auto r = c.function_call->Merge(*o); !r) return r;
    } else {
      FieldAcc* f = FindByKey(c.fields, key);
      if (f == nullptr) {
        c.fields.push_back(FieldAcc{std::string(key), FieldAcc::State::kNull, {}, json::value(sp)});
        f = &c.fields.back();
      }
      if (v.is_null()) continue;
      if (key == "content" && !v.is_string()) return Fail("delta content is not a string");
      if (const json::string* s = v.if_string()) {
        if (f->state == FieldAcc::State::kOther)
          return Fail("delta field '" + f->key + "' changes type");
        f->state = FieldAcc::State::kString;
        f->text.append(View(*s));
      } else {
        if (f->state == FieldAcc::State::kString)
          return Fail("delta field '" + f->key + "' changes type");
        f->state = FieldAcc::State::kOther;
        f->other = json::value(v, sp);
      }
    }
  }
  return {};
}

tl::expected<void, std::string> MergeChoice(Route route, std::vector<ChoiceAcc>& choices,
                                            const json::object& in, size_t pos,
                                            const json::storage_ptr& sp) {
  auto index = IndexOf(in, pos);
  if (!index) return Fail("choice index is not a non-negative integer");
  const bool is_new = std::none_of(choices.begin(), choices.end(),
                                   [&](const ChoiceAcc& c) { return c.index == *index; });
  ChoiceAcc& c = FindOrAdd(choices, *index);
  if (is_new) {
    c.logprobs = json::value(sp);
    c.finish_reason = json::value(sp);
    if (route == Route::kChat) {
      c.fields.push_back(FieldAcc{"content", FieldAcc::State::kNull, {}, json::value(sp)});
    }
  }
  for (const auto& kv : in) {
    const std::string_view key = kv.key();
    const json::value& v = kv.value();
    if (key == "index") continue;
    if (key == "logprobs") {
      if (v.is_null()) continue;
      if (!v.is_object()) return Fail("logprobs is not an object");
      MergeLogprobs(c.logprobs, v, sp);
    } else if (key == "finish_reason") {
      if (!v.is_null()) c.finish_reason = json::value(v, sp);
    } else if (route == Route::kChat && key == "delta") {
      if (v.is_null()) continue;
      const json::object* d = v.if_object();
      if (d == nullptr) return Fail("delta is not an object");
      if (auto r = MergeDelta(c, *d, sp); !r) return r;
    } else if (route == Route::kChat && key == "message") {
      continue;  // not part of a chunk; never let it clash with ours
    } else if (route == Route::kCompletions && key == "text") {
      if (v.is_null()) continue;
      const json::string* s = v.if_string();
      if (s == nullptr) return Fail("choice text is not a string");
      c.text.append(View(*s));
    } else {
      auto it = std::find_if(c.extras.begin(), c.extras.end(),
                             [&](const auto& e) { return e.first == key; });
      if (it == c.extras.end()) {
        c.extras.emplace_back(std::string(key), json::value(v, sp));
      } else if (!v.is_null()) {
        it->second = json::value(v, sp);
      }
    }
  }
  return {};
}

// Top-level fields copied from the chunks into the assembled response, in
// the order they are written.
constexpr std::string_view kHeaderFields[] = {"id", "created", "model", "service_tier",
                                              "system_fingerprint"};

std::string_view ChunkObject(Route route) {
  return route == Route::kChat ? "chat.completion.chunk" : "text_completion";
}
std::string_view ResponseObject(Route route) {
  return route == Route::kChat ? "chat.completion" : "text_completion";
}

json::object ChoiceToJson(Route route, const ChoiceAcc& c, const json::storage_ptr& sp) {
  json::object out(sp);
  if (route == Route::kChat) {
    out.emplace("index", c.index);
    json::object msg(sp);
    msg.emplace("role",
                c.role.empty() ? json::string_view("assistant") : json::string_view(c.role));
    for (const FieldAcc& f : c.fields) {
      switch (f.state) {
        case FieldAcc::State::kNull:
          msg.emplace(f.key, nullptr);
          break;
        case FieldAcc::State::kString:
          msg.emplace(f.key, json::string_view(f.text));
          break;
        case FieldAcc::State::kOther:
          msg.emplace(f.key, f.other);
          break;
      }
    }
    if (!c.tool_calls.empty()) {
      std::vector<const ToolCallAcc*> sorted;
      for (const ToolCallAcc& t : c.tool_calls) sorted.push_back(&t);
      std::sort(sorted.begin(), sorted.end(),
                [](const ToolCallAcc* a, const ToolCallAcc* b) { return a->index < b->index; });
      json::array calls(sp);
      for (const ToolCallAcc* t : sorted) {
        json::object call(sp);
        if (!t->id.empty()) call.emplace("id", json::string_view(t->id));
        call.emplace("type",
                     t->type.empty() ? json::string_view("function") : json::string_view(t->type));
        for (const SubObject& so : t->objects) call.emplace(so.key, so.ToJson(sp));
        calls.emplace_back(std::move(call));
      }
      msg.emplace("tool_calls", std::move(calls));
    }
    if (c.function_call) msg.emplace("function_call", c.function_call->ToJson(sp));
    out.emplace("message", std::move(msg));
  } else {
    out.emplace("text", json::string_view(c.text));
    out.emplace("index", c.index);
  }
  out.emplace("logprobs", c.logprobs);
  out.emplace("finish_reason", c.finish_reason);
  for (const auto& [key, value] : c.extras) out.emplace(key, value);
  return out;
}

tl::expected<std::string, std::string> Assemble(Route route,
                                                const std::vector<std::string>& events) {
  if (route == Route::kEmbeddings) return Fail("embeddings are never streamed");
  if (events.empty()) return Fail("empty stream");
  json::monotonic_resource mr;
  json::storage_ptr sp(&mr);

  std::vector<std::pair<std::string_view, json::value>> header;
  std::vector<ChoiceAcc> choices;
  json::value usage(sp);
  bool has_usage = false;

  for (size_t e = 0; e < events.size(); ++e) {
    auto doc = Parse(events[e], sp);
    if (!doc) return Fail("stream event " + std::to_string(e) + " is not valid JSON");
    const json::object* chunk = doc->if_object();
    if (chunk == nullptr)
      return Fail("stream event " + std::to_string(e) + " is not a JSON object");
    if (chunk->contains("error")) return Fail("stream event " + std::to_string(e) + " is an error");
    if (const json::value* obj = chunk->if_contains("object")) {
      const json::string* s = obj->if_string();
      if (s == nullptr || View(*s) != ChunkObject(route)) {
        return Fail("stream event " + std::to_string(e) + " is not a " +
                    std::string(ChunkObject(route)));
      }
    }
    for (std::string_view field : kHeaderFields) {
      const json::value* v = chunk->if_contains(field);
      if (v == nullptr) continue;
      auto it = std::find_if(header.begin(), header.end(),
                             [&](const auto& h) { return h.first == field; });
      if (it == header.end()) {
        header.emplace_back(field, json::value(*v, sp));
      } else if (it->second.is_null()) {
        it->second = json::value(*v, sp);
      }
    }
    if (const json::value* ch = chunk->if_contains("choices"); ch != nullptr && !ch->is_null()) {
      const json::array* arr = ch->if_array();
      if (arr == nullptr) return Fail("choices is not an array");
      for (size_t pos = 0; pos < arr->size(); ++pos) {
        const json::object* choice = (*arr)[pos].if_object();
        if (choice == nullptr) return Fail("choice is not an object");
        if (auto r = MergeChoice(route, choices, *choice, pos, sp); !r) return Error(r.error());
      }
    }
    if (const json::value* u = chunk->if_contains("usage"); u != nullptr && !u->is_null()) {
      if (!u->is_object()) return Fail("usage is not an object");
      usage = json::value(*u, sp);
      has_usage = true;
    }
  }

  std::sort(choices.begin(), choices.end(),
            [](const ChoiceAcc& a, const ChoiceAcc& b) { return a.index < b.index; });
  auto header_value = [&](std::string_view f) -> const json::value* {
    for (const auto& h : header) {
      if (h.first == f) return &h.second;
    }
    return nullptr;
  };
  json::object out(sp);
  if (auto* v = header_value("id")) out.emplace("id", *v);
  out.emplace("object", ResponseObject(route));
  if (auto* v = header_value("created")) out.emplace("created", *v);
  if (auto* v = header_value("model")) out.emplace("model", *v);
  json::array arr(sp);
  for (const ChoiceAcc& c : choices) arr.emplace_back(ChoiceToJson(route, c, sp));
  out.emplace("choices", std::move(arr));
  if (has_usage) out.emplace("usage", usage);
  if (auto* v = header_value("service_tier")) out.emplace("service_tier", *v);
  if (auto* v = header_value("system_fingerprint")) out.emplace("system_fingerprint", *v);
  return json::serialize(out);
}

// ---------------------------------------------------------------------------
// SynthesizeStream.

class ChunkWriter {
 public:
  ChunkWriter(Route route, const json::object& body, const json::storage_ptr& sp)
      : route_(route), body_(body), sp_(sp) {}

  // A chunk carrying `choice` (or no choice at all when null).
  std::string Make(json::object* choice, const json::value* usage = nullptr) const {
    json::object c(sp_);
    for (std::string_view f : {"id"}) {
      if (const json::value* v = body_.if_contains(f)) c.emplace(f, *v);
    }
    c.emplace("object", ChunkObject(route_));
    for (std::string_view f : {"created", "model", "service_tier", "system_fingerprint"}) {
      if (const json::value* v = body_.if_contains(f)) c.emplace(f, *v);
    }
    json::array choices(sp_);
    if (choice != nullptr) choices.emplace_back(std::move(*choice));
    c.emplace("choices", std::move(choices));
    if (usage != nullptr) c.emplace("usage", *usage);
    return json::serialize(c);
  }

 private:
  Route route_;
  const json::object& body_;
  json::storage_ptr sp_;
};

json::object ChatChoice(uint64_t index, json::object delta, const json::value& logprobs,
                        const json::value& finish_reason, const json::storage_ptr& sp) {
  json::object c(sp);
  c.emplace("index", index);
  c.emplace("delta", std::move(delta));
  c.emplace("logprobs", logprobs);
  c.emplace("finish_reason", finish_reason);
  return c;
}

tl::expected<void, std::string> SynthesizeChatChoice(const json::object& choice, uint64_t index,
                                                     const ChunkWriter& w,
                                                     std::vector<std::string>& out,
                                                     const json::storage_ptr& sp) {
  const json::value null_value(sp);
  const json::object* msg = nullptr;
  if (const json::value* m = choice.if_contains("message")) msg = m->if_object();
  if (msg == nullptr) return Fail("choice has no message object");
  const json::value* logprobs = choice.if_contains("logprobs");
  if (logprobs == nullptr) logprobs = &null_value;
  if (!logprobs->is_null() && !logprobs->is_object()) return Fail("logprobs is not an object");
  const json::value* finish = choice.if_contains("finish_reason");
  if (finish == nullptr) finish = &null_value;

  // 1. The opening delta: role, then every field's initial value.
  json::object first(sp);
  std::string_view role = "assistant";
  if (const json::value* r = msg->if_contains("role"); r != nullptr && !r->is_null()) {
    const json::string* s = r->if_string();
    if (s == nullptr) return Fail("message role is not a string");
    if (!s->empty()) role = View(*s);
  }
  first.emplace("role", role);
  const json::value* content = msg->if_contains("content");
  if (content == nullptr) content = &null_value;
  if (content->is_string()) {
    first.emplace("content", "");
  } else if (content->is_null()) {
    first.emplace("content", nullptr);
  } else {
    return Fail("message content is neither a string nor null");
  }
  auto is_special = [](std::string_view k) {
    return k == "role" || k == "content" || k == "tool_calls" || k == "function_call";
  };
  for (const auto& kv : *msg) {
    if (is_special(kv.key())) continue;
    if (kv.value().is_string()) {
      first.emplace(kv.key(), "");
    } else {
      first.emplace(kv.key(), kv.value());
    }
  }
  {
    json::object c = ChatChoice(index, std::move(first), null_value, null_value, sp);
    out.push_back(w.Make(&c));
  }

  // 2. The text of every string field, content first, logprobs with it.
  bool logprobs_sent = logprobs->is_null();
  auto emit_text = [&](std::string_view key, const json::string& text) {
    if (text.empty()) return;
    json::object delta(sp);
    delta.emplace(key, text);
    const bool with_logprobs = key == "content" && !logprobs_sent;
    json::object c =
        ChatChoice(index, std::move(delta), with_logprobs ? *logprobs : null_value, null_value, sp);
    logprobs_sent = logprobs_sent || with_logprobs;
    out.push_back(w.Make(&c));
  };
  if (const json::string* s = content->if_string()) emit_text("content", *s);
  for (const auto& kv : *msg) {
    if (is_special(kv.key())) continue;
    if (const json::string* s = kv.value().if_string()) emit_text(kv.key(), *s);
  }

  // 3. Tool calls, one chunk each, and the legacy function_call.
  auto string_fields = [&](const json::object& o) -> tl::expected<json::object, std::string> {
    json::object r(sp);
    for (const auto& kv : o) {
      if (kv.value().is_null()) continue;
      if (!kv.value().is_string()) return Fail("tool call field is not a string");
      r.emplace(kv.key(), kv.value());
    }
    return r;
  };
  if (const json::value* tcv = msg->if_contains("tool_calls"); tcv != nullptr && !tcv->is_null()) {
    const json::array* calls = tcv->if_array();
    if (calls == nullptr) return Fail("tool_calls is not an array");
    for (size_t k = 0; k < calls->size(); ++k) {
      const json::object* tc = (*calls)[k].if_object();
      if (tc == nullptr) return Fail("tool call is not an object");
      json::object call(sp);
      call.emplace("index", k);
      std::string_view type = "function";
      if (const json::value* id = tc->if_contains("id"); id != nullptr && !id->is_null()) {
        if (!id->is_string()) return Fail("tool call id is not a string");
        if (!id->get_string().empty()) call.emplace("id", *id);
      }
      if (const json::value* t = tc->if_contains("type"); t != nullptr && !t->is_null()) {
        if (!t->is_string()) return Fail("tool call type is not a string");
        if (!t->get_string().empty()) type = View(t->get_string());
      }
      call.emplace("type", type);
      for (const auto& kv : *tc) {
        if (kv.key() == "id" || kv.key() == "type" || kv.key() == "index" || kv.value().is_null()) {
          continue;
        }
        const json::object* o = kv.value().if_object();
        if (o == nullptr) return Fail("tool call field has an unexpected type");
        auto fields = string_fields(*o);
        if (!fields) return Error(fields.error());
        call.emplace(kv.key(), std::move(*fields));
      }
      json::array arr(sp);
      arr.emplace_back(std::move(call));
      json::object delta(sp);
      delta.emplace("tool_calls", std::move(arr));
      json::object c = ChatChoice(index, std::move(delta), null_value, null_value, sp);
      out.push_back(w.Make(&c));
    }
  }
  if (const json::value* fc = msg->if_contains("function_call"); fc != nullptr && !fc->is_null()) {
    const json::object* o = fc->if_object();
    if (o == nullptr) return Fail("function_call is not an object");
    auto fields = string_fields(*o);
    if (!fields) return Error(fields.error());
    json::object delta(sp);
    delta.emplace("function_call", std::move(*fields));
    json::object c = ChatChoice(index, std::move(delta), null_value, null_value, sp);
    out.push_back(w.Make(&c));
  }

  // 4. The closing chunk.
  json::object c =
      ChatChoice(index, json::object(sp), logprobs_sent ? null_value : *logprobs, *finish, sp);
  for (const auto& kv : choice) {
    const std::string_view k = kv.key();
    if (k == "index" || k == "message" || k == "delta" || k == "logprobs" || k == "finish_reason") {
      continue;
    }
    c.emplace(k, kv.value());
  }
  out.push_back(w.Make(&c));
  return {};
}

tl::expected<void, std::string> SynthesizeCompletionChoice(const json::object& choice,
                                                           uint64_t index, const ChunkWriter& w,
                                                           std::vector<std::string>& out,
                                                           const json::storage_ptr& sp) {
  json::object c(sp);
  const json::value* text = choice.if_contains("text");
  if (text == nullptr || text->is_null()) {
    c.emplace("text", "");
  } else if (text->is_string()) {
    c.emplace("text", *text);
  } else {
    return Fail("choice text is not a string");
  }
  c.emplace("index", index);
  const json::value* logprobs = choice.if_contains("logprobs");
  if (logprobs != nullptr && !logprobs->is_null() && !logprobs->is_object()) {
    return Fail("logprobs is not an object");
  }
  c.emplace("logprobs", logprobs ? *logprobs : json::value(sp));
  const json::value* finish = choice.if_contains("finish_reason");
  c.emplace("finish_reason", finish ? *finish : json::value(sp));
  for (const auto& kv : choice) {
    const std::string_view k = kv.key();
    if (k == "text" || k == "index" || k == "logprobs" || k == "finish_reason") continue;
    c.emplace(k, kv.value());
  }
  out.push_back(w.Make(&c));
  return {};
}

tl::expected<std::vector<std::string>, std::string> Synthesize(Route route, std::string_view body) {
  if (route == Route::kEmbeddings) return Fail("embeddings are never streamed");
  json::monotonic_resource mr;
  json::storage_ptr sp(&mr);
  auto doc = Parse(body, sp);
  if (!doc) return Fail("response body is not valid JSON");
  const json::object* obj = doc->if_object();
  if (obj == nullptr) return Fail("response body is not a JSON object");
  if (obj->contains("error")) return Fail("response body is an error");
  if (const json::value* o = obj->if_contains("object")) {
    const json::string* s = o->if_string();
    if (s == nullptr || View(*s) != ResponseObject(route)) {
      return Fail("response body is not a " + std::string(ResponseObject(route)));
    }
  }
  const json::value* cv = obj->if_contains("choices");
  if (cv == nullptr || !cv->is_array()) return Fail("response body has no choices array");
  const json::array& choices = cv->get_array();

  ChunkWriter w(route, *obj, sp);
  std::vector<std::string> out;
  out.reserve(choices.size() * 3 + 1);
  for (size_t pos = 0; pos < choices.size(); ++pos) {
    const json::object* choice = choices[pos].if_object();
    if (choice == nullptr) return Fail("choice is not an object");
    auto index = IndexOf(*choice, pos);
    if (!index) return Fail("choice index is not a non-negative integer");
    auto r = route == Route::kChat ? SynthesizeChatChoice(*choice, *index, w, out, sp)
                                   : SynthesizeCompletionChoice(*choice, *index, w, out, sp);
    if (!r) return Error(r.error());
  }
  if (const json::value* u = obj->if_contains("usage"); u != nullptr && !u->is_null()) {
    if (!u->is_object()) return Fail("usage is not an object");
    out.push_back(w.Make(nullptr, u));
  }
  // A stream has at least one event, even for an answer without choices.
  if (out.empty()) out.push_back(w.Make(nullptr));
  return out;
}

// ---------------------------------------------------------------------------
// Usage.

// True when every "usage" in `event` is followed by `:null` (as OpenAI
// writes the usage field of ordinary chunks when include_usage is on), so
// the event needs no parsing.
bool MayCarryUsage(std::string_view event) {
  static constexpr std::string_view kKey = "\"usage\"";
  for (size_t pos = event.find(kKey); pos != std::string_view::npos;
       pos = event.find(kKey, pos + 1)) {
    size_t i = pos + kKey.size();
    while (i < event.size() &&
           (event[i] == ' ' || event[i] == '\t' || event[i] == '\n' || event[i] == '\r'))
      ++i;
    if (i >= event.size() || event[i] != ':') return true;
    ++i;
    while (i < event.size() &&
           (event[i] == ' ' || event[i] == '\t' || event[i] == '\n' || event[i] == '\r'))
      ++i;
    if (event.substr(i, 4) != "null") return true;
  }
  return false;
}

uint32_t TokenCount(const json::object& usage, std::string_view field) {
  const json::value* v = usage.if_contains(field);
  if (v == nullptr) return 0;
  if (const int64_t* i = v->if_int64()) {
    if (*i <= 0) return 0;
    return static_cast<uint32_t>(std::min<int64_t>(*i, std::numeric_limits<uint32_t>::max()));
  }
  if (const uint64_t* u = v->if_uint64()) {
    return static_cast<uint32_t>(std::min<uint64_t>(*u, std::numeric_limits<uint32_t>::max()));
  }
  return 0;
}

// The usage of one parsed document, if it has a usage object.
std::optional<Usage> UsageOf(std::string_view text) {
  if (text.find("\"usage\"") == std::string_view::npos) return std::nullopt;
  json::monotonic_resource mr;
  auto doc = Parse(text, json::storage_ptr(&mr));
  if (!doc || !doc->is_object()) return std::nullopt;
  const json::value* u = doc->get_object().if_contains("usage");
  if (u == nullptr || !u->is_object()) return std::nullopt;
  Usage usage;
  usage.present = true;
  usage.prompt_tokens = TokenCount(u->get_object(), "prompt_tokens");
  usage.completion_tokens = TokenCount(u->get_object(), "completion_tokens");
  return usage;
}

}  // namespace

tl::expected<std::string, std::string> AssembleFromStream(Route route,
                                                          const std::vector<std::string>& events) {
  try {
    return Assemble(route, events);
  } catch (const std::exception& e) {
    return Fail(std::string("cannot assemble stream: ") + e.what());
  }
}

tl::expected<std::vector<std::string>, std::string> SynthesizeStream(Route route,
                                                                     std::string_view body) {
  try {
    return Synthesize(route, body);
  } catch (const std::exception& e) {
    return Fail(std::string("cannot synthesize stream: ") + e.what());
  }
}

std::vector<std::string> AdaptStreamForClient(const std::vector<std::string>& events,
                                              bool include_usage) {
  if (include_usage) return events;
  std::vector<std::string> out;
  out.reserve(events.size());
  for (const std::string& event : events) {
    if (!MayCarryUsage(event)) {
      out.push_back(event);
      continue;
    }
    try {
      json::monotonic_resource mr;
      auto doc = Parse(event, json::storage_ptr(&mr));
      json::object* chunk = doc ? doc->if_object() : nullptr;
      const json::value* usage = chunk ? chunk->if_contains("usage") : nullptr;
      if (usage == nullptr || usage->is_null()) {
        out.push_back(event);
        continue;
      }
      const json::value* choices = chunk->if_contains("choices");
      const bool no_choices = choices == nullptr || choices->is_null() ||
                              (choices->is_array() && choices->get_array().empty());
      if (no_choices) continue;  // a usage-only chunk
      chunk->erase("usage");
      out.push_back(json::serialize(*chunk));
    } catch (const std::exception&) {
      out.push_back(event);
    }
  }
  return out;
}

Usage ExtractUsage(std::string_view body) {
  try {
    return UsageOf(body).value_or(Usage{});
  } catch (const std::exception&) {
    return Usage{};
  }
}

std::optional<Usage> ParseAnswerUsage(std::string_view body) {
  try {
    json::monotonic_resource mr;
    auto doc = Parse(body, json::storage_ptr(&mr));
    if (!doc || !doc->is_object()) return std::nullopt;
    Usage usage;
    const json::value* u = doc->get_object().if_contains("usage");
    if (u != nullptr && u->is_object()) {
      usage.present = true;
      usage.prompt_tokens = TokenCount(u->get_object(), "prompt_tokens");
      usage.completion_tokens = TokenCount(u->get_object(), "completion_tokens");
    }
    return usage;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Usage ExtractUsageFromStream(const std::vector<std::string>& events) {
  try {
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (auto u = UsageOf(*it)) return *u;
    }
  } catch (const std::exception&) {
  }
  return Usage{};
}

}  // namespace llmcache::gateway
