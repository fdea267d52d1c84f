#include "store/redis_url.h"

#include <charconv>

namespace llmcache {
namespace {

Status Bad(std::string_view url, std::string_view why) {
  // The URL may hold a password: name the problem, never echo the URL.
  (void)url;
  return Status::InvalidArgument("redis url: " + std::string(why));
}

bool ParseInt(std::string_view s, int lo, int hi, int* out) {
  if (s.empty()) return false;
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

Result<RedisHostPort> ParseHostPort(std::string_view url, std::string_view hp, int default_port) {
  RedisHostPort out;
  out.port = default_port;
  std::string_view port_text;
  if (!hp.empty() && hp.front() == '[') {
    const size_t close = hp.find(']');
    if (close == std::string_view::npos) return Err(Bad(url, "unclosed '[' in host"));
    out.host = std::string(hp.substr(1, close - 1));
    std::string_view rest = hp.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Err(Bad(url, "junk after ']' in host"));
      port_text = rest.substr(1);
      if (port_text.empty()) return Err(Bad(url, "empty port"));
    }
  } else {
    const size_t colon = hp.rfind(':');
    if (colon != std::string_view::npos) {
      if (hp.find(':') != colon) return Err(Bad(url, "IPv6 hosts need [brackets]"));
      out.host = std::string(hp.substr(0, colon));
      port_text = hp.substr(colon + 1);
      if (port_text.empty()) return Err(Bad(url, "empty port"));
    } else {
      out.host = std::string(hp);
    }
  }
  if (out.host.empty()) return Err(Bad(url, "empty host"));
  if (!port_text.empty() && !ParseInt(port_text, 1, 65535, &out.port)) {
    return Err(Bad(url, "port must be 1..65535"));
  }
  return out;
}

}  // namespace

Result<RedisUrl> ParseRedisUrl(std::string_view url) {
  RedisUrl out;
  std::string_view rest;
  constexpr std::string_view kRedis = "redis://";
  constexpr std::string_view kSentinel = "redis-sentinel://";
  if (url.starts_with(kRedis)) {
    rest = url.substr(kRedis.size());
  } else if (url.starts_with(kSentinel)) {
    out.sentinel = true;
    rest = url.substr(kSentinel.size());
  } else {
    return Err(Bad(url, "scheme must be redis:// or redis-sentinel://"));
  }

  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path =
      slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);

  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = userinfo.find(':');
    std::string_view user = userinfo.substr(0, colon);
    std::string_view pass =
        colon == std::string_view::npos ? std::string_view{} : userinfo.substr(colon + 1);
    if (colon == std::string_view::npos) {
      // redis://secret@host is how many clients spell a password-only URL.
      pass = user;
      user = {};
    }
    if (!PercentDecode(user, &out.username) || !PercentDecode(pass, &out.password)) {
      return Err(Bad(url, "bad percent escape in user or password"));
    }
  }
  if (authority.empty()) return Err(Bad(url, "missing host"));

  const int default_port = out.sentinel ? 26379 : 6379;
  size_t start = 0;
  while (true) {
    const size_t comma = authority.find(',', start);
    auto hp = ParseHostPort(url, authority.substr(start, comma - start), default_port);
    if (!hp) return Err(hp.error());
    out.hosts.push_back(std::move(*hp));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (!out.sentinel && out.hosts.size() != 1) {
    return Err(Bad(url, "redis:// takes one host; use redis-sentinel:// for several"));
  }

  std::string_view db_text;
  if (out.sentinel) {
    const size_t s2 = path.find('/');
    out.master_name = std::string(path.substr(0, s2));
    if (out.master_name.empty()) return Err(Bad(url, "redis-sentinel:// needs /MASTER_NAME"));
    if (s2 != std::string_view::npos) db_text = path.substr(s2 + 1);
    if (db_text.empty() && s2 != std::string_view::npos) return Err(Bad(url, "empty db"));
  } else {
    db_text = path;
  }
  if (!db_text.empty() && !ParseInt(db_text, 0, 1 << 20, &out.db)) {
    return Err(Bad(url, "db must be a non-negative integer"));
  }
  return out;
}

std::string RedactedRedisUrl(const RedisUrl& url) {
  std::string s = url.sentinel ? "redis-sentinel://" : "redis://";
  if (!url.username.empty() || !url.password.empty()) {
    s += url.username;
    if (!url.password.empty()) s += ":***";
    s += "@";
  }
  for (size_t i = 0; i < url.hosts.size(); ++i) {
    if (i) s += ",";
    const auto& h = url.hosts[i];
    s += h.host.find(':') != std::string::npos ? "[" + h.host + "]" : h.host;
    s += ":" + std::to_string(h.port);
  }
  if (url.sentinel) s += "/" + url.master_name;
  if (url.db != 0) s += "/" + std::to_string(url.db);
  return s;
}

}  // namespace llmcache
