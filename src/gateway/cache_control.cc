#include "gateway/cache_control.h"

#include <algorithm>
#include <string>

namespace llmcache::gateway {
namespace {

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
}

// Decimal seconds, saturated at kMaxRequestTtlSeconds; nullopt unless `s`
// is one or more ASCII digits.
std::optional<int64_t> ParseSeconds(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = std::min<int64_t>(v * 10 + (c - '0'), kMaxRequestTtlSeconds);
  }
  return v;
}

// The header value quoted safely in an error message: printable ASCII only,
// bounded length.
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 64) out.append("...");
  return out;
}

struct CacheControl {
  bool no_cache = false;
  bool no_store = false;
  std::optional<int64_t> max_age;
};

CacheControl ParseCacheControl(std::string_view h) {
  CacheControl cc;
  size_t i = 0;
  const size_t n = h.size();
  while (i < n) {
    while (i < n && (IsOws(h[i]) || h[i] == ',')) ++i;
    if (i >= n) break;
    const size_t name_begin = i;
    while (i < n && h[i] != '=' && h[i] != ',' && !IsOws(h[i])) ++i;
    const std::string_view name = h.substr(name_begin, i - name_begin);
    while (i < n && IsOws(h[i])) ++i;
    std::string value;
    bool has_value = false;
    bool malformed = false;
    if (i < n && h[i] == '=') {
      ++i;
      has_value = true;
      while (i < n && IsOws(h[i])) ++i;
      if (i < n && h[i] == '"') {
        ++i;
        bool closed = false;
        while (i < n) {
          char c = h[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\' && i < n) c = h[i++];
          value.push_back(c);
        }
        malformed = !closed;
      } else {
        const size_t begin = i;
        while (i < n && h[i] != ',' && !IsOws(h[i])) ++i;
        value.assign(h.substr(begin, i - begin));
      }
      while (i < n && IsOws(h[i])) ++i;
    }
    if (i < n && h[i] != ',') {
      // Junk after the directive: skip to the next comma outside quotes and
      // ignore this directive.
      malformed = true;
      bool quoted = false;
      while (i < n && (quoted || h[i] != ',')) {
        if (h[i] == '"') quoted = !quoted;
        if (quoted && h[i] == '\\') ++i;
        ++i;
      }
    }
    if (malformed) continue;
    if (EqualsIgnoreCase(name, "no-cache")) {
      cc.no_cache = true;
    } else if (EqualsIgnoreCase(name, "no-store")) {
      cc.no_store = true;
    } else if (EqualsIgnoreCase(name, "max-age") && has_value) {
      if (auto s = ParseSeconds(value)) cc.max_age = cc.max_age ? std::min(*cc.max_age, *s) : *s;
    }
  }
  return cc;
}

}  // namespace

tl::expected<RequestCachePolicy, RequestError> ParseRequestCachePolicy(
    std::string_view cache_control_header, std::string_view x_llmcache_ttl_header) {
  RequestCachePolicy policy;
  std::optional<int64_t> ttl_s;

  const std::string_view ttl_text = Trim(x_llmcache_ttl_header);
  if (!ttl_text.empty()) {
    ttl_s = ParseSeconds(ttl_text);
    if (!ttl_s) {
      RequestError e;
      e.http_status = 400;
      e.message =
          "Invalid 'x-llmcache-ttl' header: expected a non-negative integer number of "
          "seconds, but got '" +
          Printable(ttl_text) + "'.";
      e.param = "x-llmcache-ttl";
      e.code = "invalid_header";
      return tl::unexpected(std::move(e));
    }
  }

  if (!cache_control_header.empty()) {
    const CacheControl cc = ParseCacheControl(cache_control_header);
    if (cc.no_cache) policy.lookup = false;
    if (cc.no_store) policy.store = false;
    if (!ttl_s) ttl_s = cc.max_age;
  }

  if (ttl_s) {
    if (*ttl_s == 0) {
      policy.lookup = false;
      policy.store = false;
    } else {
      policy.ttl_ms = *ttl_s * 1000;
    }
  }
  return policy;
}

}  // namespace llmcache::gateway
