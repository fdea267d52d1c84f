#include "gateway/canonical.h"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <memory_resource>
#include <new>
#include <system_error>
#include <vector>

#include "common/hash.h"

namespace llmcache::gateway {
namespace {

namespace json = boost::json;

// ---------------------------------------------------------------------------
// A minimal JSON tree built straight from Boost.JSON's SAX parser. We do not
// use boost::json::value because (1) Boost 1.81 keeps only the last of
// duplicate keys, so duplicates could not be detected, and (2) its double
// parsing is not correctly rounded, which would break the fixed-point
// property of the canonical form. All nodes live in one monotonic arena;
// strings without escapes point straight into the request body.

enum class Kind : uint8_t { kNull, kBool, kInt, kUint, kDouble, kString, kArray, kObject };

struct Member;

struct Node {
  Kind kind = Kind::kNull;
  bool b = false;
  uint32_t size = 0;  // string bytes, array elements or object members
  union {
    int64_t i;
    uint64_t u;
    double d;
    const char* s;
    Node* elems;
    Member* members;
  };
  Node() : i(0) {}
  std::string_view str() const { return {s, size}; }
  bool is_integer() const { return kind == Kind::kInt || kind == Kind::kUint; }
  bool is_number() const { return is_integer() || kind == Kind::kDouble; }
};

struct Member {
  std::string_view key;
  Node value;
};

enum class BuildFailure { kNone, kDuplicateKey, kNumberRange };

class TreeBuilder {
 public:
  // Sizes are stored in 32 bits; Boost enforces these limits for us.
  static constexpr std::size_t max_array_size = 0xffffffffu;
  static constexpr std::size_t max_object_size = 0xffffffffu;
  static constexpr std::size_t max_string_size = 0xffffffffu;
  static constexpr std::size_t max_key_size = 0xffffffffu;

  TreeBuilder(std::pmr::memory_resource* mr, std::string_view body)
      : mr_(mr), body_(body), stack_(mr), keys_(mr), buf_(mr) {}

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_array_begin(json::error_code&) {
    keys_.push_back(pending_key_);
    return true;
  }
  bool on_array_end(std::size_t n, json::error_code&) {
    Node v;
    v.kind = Kind::kArray;
    v.size = static_cast<uint32_t>(n);
    v.elems = Alloc<Node>(n);
    auto first = stack_.end() - static_cast<std::ptrdiff_t>(n);
    for (std::size_t k = 0; k < n; ++k) new (&v.elems[k]) Node(first[k].value);
    stack_.erase(first, stack_.end());
    pending_key_ = keys_.back();
    keys_.pop_back();
    Push(v);
    return true;
  }

  bool on_object_begin(json::error_code&) {
    keys_.push_back(pending_key_);
    return true;
  }
  bool on_object_end(std::size_t n, json::error_code& ec) {
    Node v;
    v.kind = Kind::kObject;
    v.size = static_cast<uint32_t>(n);
    v.members = Alloc<Member>(n);
    auto first = stack_.end() - static_cast<std::ptrdiff_t>(n);
    std::uninitialized_copy(first, stack_.end(), v.members);
    stack_.erase(first, stack_.end());
    // Sorting here, once, gives both the canonical order and an O(n log n)
    // duplicate check; lookups later are binary searches.
    Member* m = v.members;
    std::sort(m, m + n, [](const Member& a, const Member& b) { return a.key < b.key; });
    for (std::size_t k = 1; k < n; ++k) {
      if (m[k - 1].key == m[k].key) {
        failure_ = BuildFailure::kDuplicateKey;
        failure_key_ = m[k].key;
        ec = json::error::syntax;
        return false;
      }
    }
    pending_key_ = keys_.back();
    keys_.pop_back();
    Push(v);
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    buf_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    pending_key_ = Finish(s);
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    buf_.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    std::string_view str = Finish(s);
    Node v;
    v.kind = Kind::kString;
    v.size = static_cast<uint32_t>(str.size());
    v.s = str.data();
    Push(v);
    return true;
  }

  bool on_number_part(json::string_view s, json::error_code&) {
    num_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(int64_t i, json::string_view, json::error_code&) {
    num_.clear();
    PushInt(i);
    return true;
  }
  bool on_uint64(uint64_t u, json::string_view, json::error_code&) {
    num_.clear();
    if (u <= static_cast<uint64_t>(INT64_MAX)) {
      PushInt(static_cast<int64_t>(u));
    } else {
      Node v;
      v.kind = Kind::kUint;
      v.u = u;
      Push(v);
    }
    return true;
  }
  bool on_double(double boost_value, json::string_view s, json::error_code& ec) {
    std::string_view text(s.data(), s.size());
    if (!num_.empty()) {
      num_.append(s.data(), s.size());
      text = num_;
    }
    // Re-parse with correct rounding; Boost 1.81's own conversion can be off
    // by an ulp, which would make the canonical form drift on re-parsing.
    double v = 0;
    auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    if (r.ec == std::errc::result_out_of_range) {
      // Overflow cannot be represented; underflow is zero for every
      // consumer that parses into doubles.
      if (!std::isfinite(boost_value) || std::fabs(boost_value) >= 1) {
        failure_ = BuildFailure::kNumberRange;
        num_.clear();
        ec = json::error::syntax;
        return false;
      }
      v = 0;
    } else if (r.ec != std::errc() || r.ptr != text.data() + text.size()) {
      v = boost_value;  // not expected: JSON numbers are a from_chars subset
    }
    if (!std::isfinite(v)) {  // never written as JSON; unreachable in practice
      failure_ = BuildFailure::kNumberRange;
      num_.clear();
      ec = json::error::syntax;
      return false;
    }
    num_.clear();
    PushDouble(v);
    return true;
  }

  bool on_bool(bool b, json::error_code&) {
    Node v;
    v.kind = Kind::kBool;
    v.b = b;
    Push(v);
    return true;
  }
  bool on_null(json::error_code&) {
    Push(Node());
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  Node* root() { return stack_.size() == 1 ? &stack_.front().value : nullptr; }
  BuildFailure failure() const { return failure_; }
  std::string_view failure_key() const { return failure_key_; }

 private:
  template <class T>
  T* Alloc(std::size_t n) {
    if (n == 0) return nullptr;
    return static_cast<T*>(mr_->allocate(n * sizeof(T), alignof(T)));
  }

  // The final text of a key or string. Unescaped text inside the body is
  // used in place; anything else is copied into the arena.
  std::string_view Finish(json::string_view last) {
    std::string_view s(last.data(), last.size());
    if (!buf_.empty()) {
      buf_.append(last.data(), last.size());
      s = buf_;
    } else if (s.data() >= body_.data() && s.data() + s.size() <= body_.data() + body_.size()) {
      return s;
    }
    char* p = Alloc<char>(s.size());
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    buf_.clear();
    return {p, s.size()};
  }

  void Push(const Node& v) { stack_.push_back(Member{pending_key_, v}); }

  void PushInt(int64_t i) {
    Node v;
    v.kind = Kind::kInt;
    v.i = i;
    Push(v);
  }

  // Numbers are stored by value so that every spelling of one value gives
  // the same node: integral doubles become integers when they fit.
  void PushDouble(double d) {
    Node v;
    if (d == std::trunc(d) && d >= -0x1p63 && d < 0x1p63) {
      v.kind = Kind::kInt;
      v.i = static_cast<int64_t>(d);
    } else if (d == std::trunc(d) && d >= 0 && d < 0x1p64) {
      v.kind = Kind::kUint;
      v.u = static_cast<uint64_t>(d);
    } else {
      v.kind = Kind::kDouble;
      v.d = d;
    }
    Push(v);
  }

  std::pmr::memory_resource* mr_;
  std::string_view body_;
  std::pmr::vector<Member> stack_;
  std::pmr::vector<std::string_view> keys_;  // keys of the open containers
  std::pmr::string buf_;                     // a key/string split in parts
  std::string num_;                          // a number split in parts (rare)
  std::string_view pending_key_;
  BuildFailure failure_ = BuildFailure::kNone;
  std::string_view failure_key_;
};

// ---------------------------------------------------------------------------
// Serialization.

constexpr char kHex[] = "0123456789abcdef";

void AppendString(std::string_view s, std::string& out) {
  out.push_back('"');
  const char* p = s.data();
  const char* end = p + s.size();
  const char* run = p;
  for (; p != end; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(run, p);
    if (c == '"') {
      out.append("\\\"");
    } else if (c == '\\') {
      out.append("\\\\");
    } else {
      char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out.append(esc, 6);
    }
    run = p + 1;
  }
  out.append(run, end);
  out.push_back('"');
}

void AppendNumber(const Node& n, std::string& out) {
  char buf[32];
  std::to_chars_result r{};
  switch (n.kind) {
    case Kind::kInt:
      r = std::to_chars(buf, buf + sizeof buf, n.i);
      break;
    case Kind::kUint:
      r = std::to_chars(buf, buf + sizeof buf, n.u);
      break;
    default:
      r = std::to_chars(buf, buf + sizeof buf, n.d);
      break;
  }
  out.append(buf, r.ptr);
}

// Top-level fields that never change the answer (see the header).
bool IsVolatileTopLevel(std::string_view key) {
  static constexpr std::string_view kVolatileFields[] = {
      "llmcache", "metadata", "request_id", "store", "stream", "stream_options", "user",
  };
  for (std::string_view v : kVolatileFields) {
    if (key == v) return true;
  }
  return false;
}

// Recursion depth is bounded by CanonicalOptions::max_depth, which the
// parser enforced.
void AppendValue(const Node& n, std::string& out, bool top_level) {
  switch (n.kind) {
    case Kind::kNull:
      out.append("null");
      return;
    case Kind::kBool:
      out.append(n.b ? "true" : "false");
      return;
    case Kind::kInt:
    case Kind::kUint:
    case Kind::kDouble:
      AppendNumber(n, out);
      return;
    case Kind::kString:
      AppendString(n.str(), out);
      return;
    case Kind::kArray:
      out.push_back('[');
      for (uint32_t k = 0; k < n.size; ++k) {
        if (k) out.push_back(',');
        AppendValue(n.elems[k], out, false);
      }
      out.push_back(']');
      return;
    case Kind::kObject: {
      out.push_back('{');
      bool first = true;
      for (uint32_t k = 0; k < n.size; ++k) {
        const Member& m = n.members[k];
        if (top_level && IsVolatileTopLevel(m.key)) continue;
        if (!first) out.push_back(',');
        first = false;
        AppendString(m.key, out);
        out.push_back(':');
        AppendValue(m.value, out, false);
      }
      out.push_back('}');
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// Errors.

RequestError MakeError(std::string message, std::string param = {}, std::string code = {}) {
  RequestError e;
  e.http_status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

tl::unexpected<RequestError> Fail(std::string message, std::string param = {},
                                  std::string code = {}) {
  return tl::unexpected<RequestError>(
      MakeError(std::move(message), std::move(param), std::move(code)));
}

std::string_view KindName(const Node& n) {
  switch (n.kind) {
    case Kind::kNull:
      return "null";
    case Kind::kBool:
      return "a boolean";
    case Kind::kInt:
    case Kind::kUint:
      return "an integer";
    case Kind::kDouble:
      return "a decimal";
    case Kind::kString:
      return "a string";
    case Kind::kArray:
      return "an array";
    case Kind::kObject:
      return "an object";
  }
  return "a value";
}

tl::unexpected<RequestError> InvalidType(const std::string& param, std::string_view expected,
                                         const Node& got) {
  std::string msg = "Invalid type for '";
  msg.append(param).append("': expected ").append(expected).append(", but got ");
  msg.append(KindName(got)).append(" instead.");
  return Fail(std::move(msg), param, "invalid_type");
}

tl::unexpected<RequestError> Missing(const std::string& param) {
  return Fail("Missing required parameter: '" + param + "'.", param, "missing_required_parameter");
}

// Index of the first byte of an invalid UTF-8 sequence, or npos. Used only
// to explain a parse failure, so it need not be fast.
size_t FindInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;  // max U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// `s` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view Truncated(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xc0) == 0x80) --end;
  return s.substr(0, end);
}

RequestError ParseError(std::string_view body, size_t offset, const json::error_code& ec,
                        const TreeBuilder& builder, const CanonicalOptions& options) {
  if (builder.failure() == BuildFailure::kDuplicateKey) {
    std::string msg = "Invalid JSON body: duplicate key '";
    msg.append(Truncated(builder.failure_key(), 64));
    msg.append("' in an object.");
    return MakeError(std::move(msg), {}, "duplicate_key");
  }
  if (builder.failure() == BuildFailure::kNumberRange) {
    return MakeError(
        "Invalid JSON body: number at byte offset " + std::to_string(offset) + " is too large.", {},
        "invalid_json");
  }
  if (ec == json::error::too_deep) {
    return MakeError("JSON nesting exceeds " + std::to_string(options.max_depth) + " levels", {},
                     "invalid_json");
  }
  if (size_t bad = FindInvalidUtf8(body); bad != std::string_view::npos) {
    return MakeError("Request body is not valid UTF-8 (byte offset " + std::to_string(bad) + ").",
                     {}, "invalid_encoding");
  }
  offset = std::min(offset, body.size());
  size_t line = 1, column = 1;
  for (size_t k = 0; k < offset; ++k) {
    if (body[k] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  std::string msg = "We could not parse the JSON body of your request: ";
  msg.append(ec.message());
  msg.append(" at line ").append(std::to_string(line));
  msg.append(", column ").append(std::to_string(column));
  msg.append(" (byte offset ").append(std::to_string(offset)).append(").");
  return MakeError(std::move(msg), {}, "invalid_json");
}

// ---------------------------------------------------------------------------
// Request inspection.

Node* Find(const Node& obj, std::string_view key) {
  if (obj.kind != Kind::kObject) return nullptr;
  Member* first = obj.members;
  Member* last = obj.members + obj.size;
  Member* it = std::lower_bound(first, last, key,
                                [](const Member& m, std::string_view k) { return m.key < k; });
  return it != last && it->key == key ? &it->value : nullptr;
}

template <class Pred>
tl::expected<void, RequestError> CheckOptional(const Node& body, std::string_view field,
                                               std::string_view expected, Pred ok) {
  const Node* v = Find(body, field);
  if (v == nullptr || v->kind == Kind::kNull || ok(*v)) return {};
  return InvalidType(std::string(field), expected, *v);
}

// prompt / input: string, array of strings, array of integers, or array of
// arrays of integers.
bool IsPromptLike(const Node& n) {
  if (n.kind == Kind::kString) return true;
  if (n.kind != Kind::kArray) return false;
  if (n.size == 0) return true;
  const Kind first = n.elems[0].kind;
  for (uint32_t k = 0; k < n.size; ++k) {
    const Node& e = n.elems[k];
    if (first == Kind::kString) {
      if (e.kind != Kind::kString) return false;
    } else if (n.elems[0].is_integer()) {
      if (!e.is_integer()) return false;
    } else if (first == Kind::kArray) {
      if (e.kind != Kind::kArray) return false;
      for (uint32_t j = 0; j < e.size; ++j) {
        if (!e.elems[j].is_integer()) return false;
      }
    } else {
      return false;
    }
  }
  return true;
}

// Length of the whitespace character starting at p[0] (p valid UTF-8), or 0.
size_t WhitespaceLen(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = p[0];
  if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
  if (c < 0xc2) return 0;
  const size_t left = static_cast<size_t>(end - p);
  if (c == 0xc2) return left >= 2 && (p[1] == 0x85 || p[1] == 0xa0) ? 2 : 0;
  if (left < 3) return 0;
  if (c == 0xe1) return p[1] == 0x9a && p[2] == 0x80 ? 3 : 0;  // U+1680
  if (c == 0xe2) {
    if (p[1] == 0x80) {
      // U+2000..U+200A, U+2028, U+2029, U+202F
      return (p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf ? 3 : 0;
    }
    return p[1] == 0x81 && p[2] == 0x9f ? 3 : 0;  // U+205F
  }
  if (c == 0xe3) return p[1] == 0x80 && p[2] == 0x80 ? 3 : 0;  // U+3000
  return 0;
}

// Trims and collapses whitespace runs of a string node in place. Allocates
// only when the text actually changes.
void NormalizeWhitespace(Node& n, std::pmr::memory_resource* mr) {
  if (n.kind != Kind::kString || n.size == 0) return;
  const auto* begin = reinterpret_cast<const unsigned char*>(n.s);
  const auto* end = begin + n.size;
  // Fast check: already normalized?
  bool changed = false;
  bool prev_space = true;  // a leading space must go
  for (const unsigned char* p = begin; p < end;) {
    size_t w = WhitespaceLen(p, end);
    if (w) {
      if (prev_space || w != 1 || *p != ' ') {
        changed = true;
        break;
      }
      prev_space = true;
      p += w;
    } else {
      prev_space = false;
      ++p;
    }
  }
  if (!changed && !prev_space) return;
  auto* out = static_cast<char*>(mr->allocate(n.size, 1));
  size_t len = 0;
  bool pending_space = false;
  for (const unsigned char* p = begin; p < end;) {
    size_t w = WhitespaceLen(p, end);
    if (w) {
      pending_space = len > 0;
      p += w;
      continue;
    }
    if (pending_space) {
      out[len++] = ' ';
      pending_space = false;
    }
    out[len++] = static_cast<char>(*p++);
  }
  n.s = out;
  n.size = static_cast<uint32_t>(len);
}

bool IsTextPart(const Node& part) {
  const Node* type = Find(part, "type");
  return type != nullptr && type->kind == Kind::kString && type->str() == "text";
}

void NormalizeChat(Node& messages, std::pmr::memory_resource* mr) {
  for (uint32_t k = 0; k < messages.size; ++k) {
    Node* content = Find(messages.elems[k], "content");
    if (content == nullptr) continue;
    if (content->kind == Kind::kString) {
      NormalizeWhitespace(*content, mr);
    } else if (content->kind == Kind::kArray) {
      for (uint32_t j = 0; j < content->size; ++j) {
        Node& part = content->elems[j];
        if (!IsTextPart(part)) continue;
        if (Node* text = Find(part, "text")) NormalizeWhitespace(*text, mr);
      }
    }
  }
}

std::string LastUserText(const Node& messages) {
  std::string out;
  if (messages.size == 0) return out;
  const Node& last = messages.elems[messages.size - 1];
  const Node* role = Find(last, "role");
  if (role == nullptr || role->str() != "user") return out;
  const Node* content = Find(last, "content");
  if (content == nullptr) return out;
  if (content->kind == Kind::kString) return std::string(content->str());
  if (content->kind != Kind::kArray) return out;
  bool first = true;
  for (uint32_t j = 0; j < content->size; ++j) {
    const Node& part = content->elems[j];
    if (!IsTextPart(part)) continue;
    const Node* text = Find(part, "text");
    if (text == nullptr || text->kind != Kind::kString) continue;
    if (!first) out.push_back('\n');
    first = false;
    out.append(text->str());
  }
  return out;
}

tl::expected<void, RequestError> ValidateCommon(Route route, const Node& body,
                                                CanonicalRequest& req) {
  const Node* model = Find(body, "model");
  if (model == nullptr) return Missing("model");
  if (model->kind != Kind::kString) return InvalidType("model", "a string", *model);
  if (model->size == 0) return Fail("Invalid 'model': empty string.", "model", "invalid_value");
  req.model.assign(model->str());

  auto is_bool = [](const Node& n) { return n.kind == Kind::kBool; };
  auto is_int = [](const Node& n) { return n.is_integer(); };
  auto is_num = [](const Node& n) { return n.is_number(); };
  auto is_obj = [](const Node& n) { return n.kind == Kind::kObject; };
  if (auto r = CheckOptional(body, "stream", "a boolean", is_bool); !r) return r;
  if (auto r = CheckOptional(body, "stream_options", "an object", is_obj); !r) return r;
  for (std::string_view f : {"n", "max_tokens", "max_completion_tokens"}) {
    if (auto r = CheckOptional(body, f, "an integer", is_int); !r) return r;
  }
  for (std::string_view f : {"temperature", "top_p"}) {
    if (auto r = CheckOptional(body, f, "a number", is_num); !r) return r;
  }
  if (const Node* s = Find(body, "stream"); s != nullptr && s->kind == Kind::kBool) {
    req.stream = s->b;
  }
  if (const Node* so = Find(body, "stream_options"); so != nullptr && so->kind == Kind::kObject) {
    if (const Node* iu = Find(*so, "include_usage"); iu != nullptr && iu->kind != Kind::kNull) {
      if (iu->kind != Kind::kBool) {
        return InvalidType("stream_options.include_usage", "a boolean", *iu);
      }
      req.include_usage = iu->b;
    }
  }
  if (route == Route::kEmbeddings && req.stream) {
    return Fail("Streaming is not supported for embeddings.", "stream", "invalid_value");
  }
  return {};
}

tl::expected<void, RequestError> ValidateRoute(Route route, Node& body, CanonicalRequest& req,
                                               const CanonicalOptions& options,
                                               std::pmr::memory_resource* mr) {
  switch (route) {
    case Route::kChat: {
      Node* messages = Find(body, "messages");
      if (messages == nullptr) return Missing("messages");
      if (messages->kind != Kind::kArray) return InvalidType("messages", "an array", *messages);
      if (messages->size == 0) {
        return Fail(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            "messages", "empty_array");
      }
      for (uint32_t k = 0; k < messages->size; ++k) {
        const Node& m = messages->elems[k];
        std::string param = "messages[" + std::to_string(k) + "]";
        if (m.kind != Kind::kObject) return InvalidType(param, "an object", m);
        const Node* role = Find(m, "role");
        if (role == nullptr) return Missing(param + ".role");
        if (role->kind != Kind::kString) return InvalidType(param + ".role", "a string", *role);
      }
      if (options.normalize_whitespace) NormalizeChat(*messages, mr);
      req.last_user_text = LastUserText(*messages);
      return {};
    }
    case Route::kCompletions: {
      Node* prompt = Find(body, "prompt");
      if (prompt == nullptr) return Missing("prompt");
      if (!IsPromptLike(*prompt)) {
        return InvalidType("prompt",
                           "a string, an array of strings, an array of integers or an array of "
                           "arrays of integers",
                           *prompt);
      }
      if (options.normalize_whitespace) {
        if (prompt->kind == Kind::kString) {
          NormalizeWhitespace(*prompt, mr);
        } else {
          for (uint32_t k = 0; k < prompt->size; ++k) NormalizeWhitespace(prompt->elems[k], mr);
        }
      }
      if (prompt->kind == Kind::kString) req.last_user_text.assign(prompt->str());
      return {};
    }
    case Route::kEmbeddings: {
      const Node* input = Find(body, "input");
      if (input == nullptr) return Missing("input");
      if (!IsPromptLike(*input)) {
        return InvalidType("input",
                           "a string, an array of strings, an array of integers or an array of "
                           "arrays of integers",
                           *input);
      }
      return {};
    }
  }
  return Fail("Unsupported route.");
}

void AppendLengthPrefixed(std::string& out, std::string_view s) {
  uint64_t n = s.size();
  char len[8];
  for (int k = 0; k < 8; ++k) len[k] = static_cast<char>((n >> (8 * k)) & 0xff);
  out.append(len, 8);
  out.append(s);
}

}  // namespace

std::string RequestErrorJson(const RequestError& e) {
  std::string out;
  out.reserve(96 + e.message.size() + e.param.size());
  out.append("{\"error\":{\"message\":");
  AppendString(e.message, out);
  out.append(",\"type\":");
  AppendString(e.type, out);
  out.append(",\"param\":");
  if (e.param.empty()) {
    out.append("null");
  } else {
    AppendString(e.param, out);
  }
  out.append(",\"code\":");
  if (e.code.empty()) {
    out.append("null");
  } else {
    AppendString(e.code, out);
  }
  out.append("}}");
  return out;
}

tl::expected<CanonicalRequest, RequestError> Canonicalize(Route route, std::string_view body,
                                                          const CanonicalOptions& options) {
  try {
    // A ~1 KB request fits the stack buffer; larger ones spill to the heap.
    alignas(std::max_align_t) char initial[8192];
    std::pmr::monotonic_buffer_resource arena(initial, sizeof initial);

    json::parse_options po;
    po.max_depth = options.max_depth;
    json::basic_parser<TreeBuilder> parser(po, &arena, body);
    json::error_code ec;
    const size_t used = parser.write_some(false, body.data(), body.size(), ec);
    if (ec) return tl::unexpected(ParseError(body, used, ec, parser.handler(), options));
    Node* root = parser.handler().root();
    if (root == nullptr) return Fail("We could not parse the JSON body of your request.");
    if (root->kind != Kind::kObject) {
      return Fail("Invalid type for request body: expected an object, but got " +
                      std::string(KindName(*root)) + " instead.",
                  {}, "invalid_type");
    }

    CanonicalRequest req;
    if (auto r = ValidateCommon(route, *root, req); !r) return tl::unexpected(r.error());
    if (auto r = ValidateRoute(route, *root, req, options, &arena); !r) {
      return tl::unexpected(r.error());
    }
    req.canonical.reserve(body.size() + 16);
    AppendValue(*root, req.canonical, /*top_level=*/true);
    return req;
  } catch (const std::bad_alloc&) {
    RequestError e = MakeError("Request too large to process.", {}, "request_too_large");
    e.http_status = 413;
    return tl::unexpected(std::move(e));
  } catch (const std::exception& ex) {
    // Boost.JSON reports errors through codes; this is a safety net so that
    // no exception crosses the API.
    return Fail(std::string("Invalid request: ") + ex.what());
  }
}

std::string CacheKey(const KeyParts& parts) {
  static constexpr std::string_view kTag("llmcache-key-v1\0", 16);
  std::string buf;
  buf.reserve(kTag.size() + 1 + 24 + parts.ns.size() + parts.model_revision.size() +
              parts.canonical.size());
  buf.append(kTag);
  buf.push_back(static_cast<char>(parts.route));
  AppendLengthPrefixed(buf, parts.ns);
  AppendLengthPrefixed(buf, parts.model_revision);
  AppendLengthPrefixed(buf, parts.canonical);
  return Sha256Hex(buf);
}

uint64_t FastKeyHash(std::string_view key) { return Xxh3(key); }

}  // namespace llmcache::gateway
