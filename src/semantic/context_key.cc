#include "semantic/context_key.h"

#include <boost/json.hpp>

#include "common/hash.h"

namespace llmcache::semantic {
namespace {

namespace json = boost::json;

// Fields of the top-level object that never change the answer (kept in sync
// with kVolatileFields of gateway/canonical.cc by intent, not by code: this
// module must not depend on the gateway).
constexpr std::string_view kVolatile[] = {"user",       "stream", "stream_options", "metadata",
                                          "request_id", "store",  "llmcache"};

void PutPart(std::string* out, std::string_view s) {
  uint64_t n = s.size();
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out->append(s);
}

bool IsSpace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && IsSpace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

SemanticQuery NotEligible(SemanticQuery q, std::string reason) {
  q.eligible = false;
  q.reason = std::move(reason);
  q.text.clear();
  q.context_key.clear();
  return q;
}

}  // namespace

size_t CountCodePoints(std::string_view text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

size_t CountWords(std::string_view text) {
  size_t words = 0;
  bool in_word = false;
  bool ascii_only = true;
  for (unsigned char c : text) {
    if (c >= 0x80) ascii_only = false;
    if (IsSpace(c)) {
      in_word = false;
    } else if (!in_word) {
      in_word = true;
      ++words;
    }
  }
  if (words == 1 && !ascii_only) return (CountCodePoints(text) + 1) / 2;
  return words;
}

std::string IndexPartition(std::string_view context_key, std::string_view embedder_id) {
  std::string p(context_key);
  p.push_back('/');
  p.append(embedder_id);
  return p;
}

SemanticQuery SplitRequest(const json::value& request, const SemanticKey& key,
                           const SplitOptions& options) {
  SemanticQuery q;
  q.ns = std::string(key.ns);
  if (key.route != Route::kChat) return NotEligible(std::move(q), "route");
  if (!options.enabled) return NotEligible(std::move(q), "disabled");
  const json::object* obj = request.if_object();
  if (!obj) return NotEligible(std::move(q), "invalid");
  const json::value* messages_v = obj->if_contains("messages");
  const json::array* messages = messages_v ? messages_v->if_array() : nullptr;
  if (!messages || messages->empty()) return NotEligible(std::move(q), "invalid");
  const json::object* last = messages->back().if_object();
  if (!last) return NotEligible(std::move(q), "invalid");
  const json::value* role = last->if_contains("role");
  if (!role || !role->is_string() || role->get_string() != "user") {
    return NotEligible(std::move(q), "last_not_user");
  }
  // Anything beside role/name/content (tool_calls, audio, ...) may carry
  // meaning the text does not show.
  for (const auto& kv : *last) {
    if (kv.key() != "role" && kv.key() != "name" && kv.key() != "content") {
      return NotEligible(std::move(q), "message_fields");
    }
  }
  const json::value* content = last->if_contains("content");
  std::string text;
  if (!content || content->is_null()) return NotEligible(std::move(q), "empty");
  if (content->is_string()) {
    text = std::string(content->get_string());
  } else if (content->is_array()) {
    bool first = true;
    for (const auto& part : content->get_array()) {
      const json::object* p = part.if_object();
      const json::value* type = p ? p->if_contains("type") : nullptr;
      const json::value* t = p ? p->if_contains("text") : nullptr;
      if (!type || !type->is_string() || type->get_string() != "text" || !t || !t->is_string() ||
          p->size() != 2) {
        return NotEligible(std::move(q), "non_text");
      }
      if (!first) text.push_back('\n');
      first = false;
      text.append(t->get_string().data(), t->get_string().size());
    }
  } else {
    return NotEligible(std::move(q), "non_text");
  }
  std::string_view trimmed = Trim(text);
  if (trimmed.empty()) return NotEligible(std::move(q), "empty");
  if (CountCodePoints(trimmed) > options.max_query_chars) {
    return NotEligible(std::move(q), "too_long");
  }

  json::object context = *obj;
  for (std::string_view f : kVolatile) context.erase(f);
  json::array& ctx_messages = context["messages"].as_array();
  ctx_messages.back().as_object().erase("content");

  std::string buf = "llmcache-semantic-context-v1";
  PutPart(&buf, key.ns);
  PutPart(&buf, key.model);
  PutPart(&buf, key.model_revision);
  PutPart(&buf, std::string_view(reinterpret_cast<const char*>(&key.route), 1));
  PutPart(&buf, json::serialize(context));

  q.eligible = true;
  q.text = std::string(trimmed);
  q.words = CountWords(q.text);
  q.context_key = Sha256Hex(buf);
  return q;
}

}  // namespace llmcache::semantic
