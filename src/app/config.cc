#include "app/config.h"

#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstdlib>

#include <yaml-cpp/yaml.h>

#include "store/redis_url.h"

namespace llmcache::app {
namespace {

Result<double> ParseNumberPrefix(std::string_view text, std::string_view& unit) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return Err(Status::InvalidArgument("expected a number: " + std::string(text)));
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + i, v);
  if (ec != std::errc() || p != text.data() + i)
    return Err(Status::InvalidArgument("bad number: " + std::string(text)));
  unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return v;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// YAML scalars for durations and sizes may be numbers or strings with units.
template <class F>
auto Scalar(const YAML::Node& n, const char* what, F parse) -> decltype(parse(std::string_view{})) {
  if (!n.IsScalar()) return Err(Status::InvalidArgument(std::string(what) + " must be a scalar"));
  auto r = parse(n.as<std::string>());
  if (!r) return Err(Status::InvalidArgument(std::string(what) + ": " + r.error().message()));
  return r;
}

Status ApplyNamespace(const YAML::Node& n, gateway::NamespacePolicy& p) {
  if (!n.IsMap()) return Status::InvalidArgument("a namespace entry must be a map");
  for (const auto& kv : n) {
    std::string k = kv.first.as<std::string>();
    if (k == "cache") p.cache = kv.second.as<bool>();
    else if (k == "ttl") {
      auto t = Scalar(kv.second, "ttl", ParseDurationMs);
      if (!t) return t.error();
      p.ttl_ms = *t;
    } else if (k == "share_across_credentials") p.share_across_credentials = kv.second.as<bool>();
    else if (k == "normalize_whitespace") p.normalize_whitespace = kv.second.as<bool>();
    else if (k == "semantic") p.semantic = kv.second.as<bool>();
    else if (k == "semantic_threshold") p.semantic_threshold = kv.second.as<double>();
    else return Status::InvalidArgument("unknown namespace setting: " + k);
  }
  return Status::OK();
}

Status ApplyModel(const YAML::Node& n, gateway::ModelPolicy& p) {
  if (!n.IsMap()) return Status::InvalidArgument("a model entry must be a map");
  for (const auto& kv : n) {
    std::string k = kv.first.as<std::string>();
    if (k == "cache") p.cache = kv.second.as<bool>();
    else if (k == "ttl") {
      auto t = Scalar(kv.second, "ttl", ParseDurationMs);
      if (!t) return t.error();
      p.ttl_ms = *t;
    } else if (k == "revision") p.revision = kv.second.as<std::string>();
    else if (k == "input_usd_per_mtok") p.input_usd_per_mtok = kv.second.as<double>();
    else if (k == "output_usd_per_mtok") p.output_usd_per_mtok = kv.second.as<double>();
    else return Status::InvalidArgument("unknown model setting: " + k);
  }
  return Status::OK();
}

// `semantic_verify:` at the top level (top != null: grey_band and timeout
// allowed) or in a namespace: false, true, or a map.
Status ApplySemanticVerify(const YAML::Node& n, SemanticVerifyEndpoint& e, ServeConfig* top) {
  if (n.IsScalar()) {
    e.enabled = n.as<bool>();
    if (top && !e.enabled) e.model.clear();
    return Status::OK();
  }
  if (!n.IsMap()) return Status::InvalidArgument("semantic_verify must be a map or a boolean");
  e.enabled = true;
  for (const auto& kv : n) {
    std::string k = kv.first.as<std::string>();
    if (k == "model") e.model = kv.second.as<std::string>();
    else if (k == "url") e.url = kv.second.as<std::string>();
    else if (k == "api_key_env") e.api_key_env = kv.second.as<std::string>();
    else if (top && k == "grey_band") top->semantic_verify_grey_band = kv.second.as<double>();
    else if (top && k == "overrule_content_words")
      top->semantic_verify_overrule_content_words = kv.second.as<bool>();
    else if (top && k == "timeout") {
      auto t = Scalar(kv.second, "timeout", ParseDurationMs);
      if (!t) return t.error();
      top->semantic_verify_timeout_ms = *t;
    } else {
      return Status::InvalidArgument(
          "unknown semantic_verify setting: " + k +
          (top ? "" : " (grey_band, timeout and overrule_content_words are global)"));
    }
  }
  return Status::OK();
}

// Fills what a verify endpoint leaves out from `global`, then the upstream.
Status ResolveVerifyEndpoint(SemanticVerifyEndpoint& e, const SemanticVerifyEndpoint& global,
                             const ServeConfig& c, const std::string& where) {
  if (e.model.empty()) e.model = global.model;
  if (e.url.empty()) e.url = global.url.empty() ? c.gateway.upstream_url : global.url;
  if (e.api_key_env.empty()) e.api_key_env = global.api_key_env;
  if (e.model.empty()) return Status::InvalidArgument(where + "semantic_verify needs a model");
  if (e.api_key_env.empty()) {
    // The upstream's own key, as its requests get; none when clients bring
    // theirs (the check has no client request to borrow one from).
    e.api_key = c.gateway.upstream_api_key;
    return Status::OK();
  }
  const char* key = std::getenv(e.api_key_env.c_str());
  if (!key || !*key) {
    return Status::InvalidArgument(where + "environment variable " + e.api_key_env +
                                   " (semantic_verify api_key_env) is not set");
  }
  e.api_key = key;
  return Status::OK();
}

}  // namespace

Result<int64_t> ParseDurationMs(std::string_view text) {
  std::string_view unit;
  auto v = ParseNumberPrefix(text, unit);
  if (!v) return Err(v.error());
  std::string u = Lower(unit);
  double ms;
  if (u.empty() || u == "s") ms = *v * 1000;
  else if (u == "ms") ms = *v;
  else if (u == "m" || u == "min") ms = *v * 60'000;
  else if (u == "h") ms = *v * 3'600'000;
  else if (u == "d") ms = *v * 86'400'000;
  else return Err(Status::InvalidArgument("unknown duration unit: " + std::string(text)));
  if (ms > 100.0 * 365 * 86'400'000) return Err(Status::InvalidArgument("duration too long"));
  return static_cast<int64_t>(ms);
}

Result<uint64_t> ParseBytes(std::string_view text) {
  std::string_view unit;
  auto v = ParseNumberPrefix(text, unit);
  if (!v) return Err(v.error());
  std::string u = Lower(unit);
  double mult;
  if (u.empty() || u == "b") mult = 1;
  else if (u == "k" || u == "kb") mult = 1e3;
  else if (u == "kib") mult = 1024;
  else if (u == "m" || u == "mb") mult = 1e6;
  else if (u == "mib") mult = 1024.0 * 1024;
  else if (u == "g" || u == "gb") mult = 1e9;
  else if (u == "gib") mult = 1024.0 * 1024 * 1024;
  else if (u == "t" || u == "tb") mult = 1e12;
  else if (u == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else return Err(Status::InvalidArgument("unknown size unit: " + std::string(text)));
  double bytes = *v * mult;
  if (bytes > 1e18) return Err(Status::InvalidArgument("size too large"));
  return static_cast<uint64_t>(bytes);
}

Status LoadConfigFile(const std::string& path, ServeConfig& c) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("cannot read config " + path + ": " + e.what());
  }
  if (root.IsNull()) return Status::OK();
  if (!root.IsMap()) return Status::InvalidArgument("config root must be a map");
  auto& g = c.gateway;
  try {
    for (const auto& kv : root) {
      std::string k = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      auto duration = [&](int64_t& out) -> Status {
        auto d = Scalar(v, k.c_str(), ParseDurationMs);
        if (!d) return d.error();
        out = *d;
        return Status::OK();
      };
      auto bytes = [&](uint64_t& out) -> Status {
        auto b = Scalar(v, k.c_str(), ParseBytes);
        if (!b) return b.error();
        out = *b;
        return Status::OK();
      };
      Status s;
      if (k == "listen") c.listen = v.as<std::string>();
      else if (k == "upstream") g.upstream_url = v.as<std::string>();
      else if (k == "upstream_api_key_env") c.upstream_api_key_env = v.as<std::string>();
      else if (k == "data_dir") c.data_dir = v.as<std::string>();
      else if (k == "admin_token") g.admin_token = v.as<std::string>();
      else if (k == "admin_token_env") {
        const char* t = std::getenv(v.as<std::string>().c_str());
        if (t) g.admin_token = t;
      } else if (k == "threads") g.server.threads = v.as<int>();
      else if (k == "memory_max") {
        std::string text = v.as<std::string>();
        double f = 0;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), f);
        if (ec == std::errc() && p == text.data() + text.size() && f > 0 && f <= 1) {
          c.memory_bound = f;
        } else {
          uint64_t b = 0;
          s = bytes(b);
          c.memory_bound = static_cast<double>(b);
        }
      } else if (k == "disk_max") s = bytes(c.disk_max_bytes);
      else if (k == "ttl") s = duration(g.default_ttl_ms);
      else if (k == "idle_ttl") s = duration(c.expiry.idle_ttl_ms);
      else if (k == "max_extended_ttl") s = duration(c.expiry.max_extended_ttl_ms);
      else if (k == "sync_writes") c.sync_writes = v.as<bool>();
      else if (k == "store") c.store = v.as<std::string>();
      else if (k == "store_password_env") c.store_password_env = v.as<std::string>();
      else if (k == "store_key_prefix") c.store_key_prefix = v.as<std::string>();
      else if (k == "semantic") c.semantic = v.as<bool>();
      else if (k == "semantic_threshold") c.semantic_threshold = v.as<double>();
      else if (k == "semantic_stream") c.semantic_stream = v.as<std::string>();
      else if (k == "semantic_stream_max_len") c.semantic_stream_max_len = v.as<uint64_t>();
      else if (k == "semantic_verify") s = ApplySemanticVerify(v, c.semantic_verify, &c);
      else if (k == "semantic_threads") c.semantic_threads = v.as<int>();
      else if (k == "normalize_whitespace") g.default_namespace.normalize_whitespace = v.as<bool>();
      else if (k == "share_across_credentials") g.default_namespace.share_across_credentials = v.as<bool>();
      else if (k == "max_body") s = bytes(g.server.max_body_bytes);
      else if (k == "max_connections") g.server.max_connections = v.as<uint32_t>();
      else if (k == "request_timeout") {
        int64_t ms = 0;
        s = duration(ms);
        g.server.request_timeout = std::chrono::milliseconds(ms);
      } else if (k == "idle_timeout") {
        int64_t ms = 0;
        s = duration(ms);
        g.server.idle_timeout = std::chrono::milliseconds(ms);
      } else if (k == "upstream_connect_timeout") {
        int64_t ms = 0;
        s = duration(ms);
        g.client.connect_timeout = std::chrono::milliseconds(ms);
      } else if (k == "upstream_read_timeout") {
        int64_t ms = 0;
        s = duration(ms);
        g.client.read_timeout = std::chrono::milliseconds(ms);
      } else if (k == "upstream_connect_retries") g.client.connect_retries = v.as<int>();
      else if (k == "upstream_ca_file") g.client.ca_file = v.as<std::string>();
      else if (k == "upstream_verify_tls") g.client.verify_tls = v.as<bool>();
      else if (k == "detect_model_revisions") g.detect_model_revisions = v.as<bool>();
      else if (k == "revision_poll_interval") s = duration(g.revision_poll_ms);
      else if (k == "redis_flight_timeout") s = duration(g.shared_flight_timeout_ms);
      else if (k == "namespaces") {
        if (!v.IsMap()) return Status::InvalidArgument("namespaces must be a map");
        for (const auto& ns : v) {
          const std::string name = ns.first.as<std::string>();
          auto& p = g.namespaces[name];
          p = g.default_namespace;
          // The verifier is the semantic cache's, not a gateway policy.
          const YAML::Node& given = ns.second;
          YAML::Node without_verify;
          if (given.IsMap() && given["semantic_verify"]) {
            s = ApplySemanticVerify(given["semantic_verify"], c.semantic_verify_namespaces[name],
                                    nullptr);
            if (!s.ok()) break;
            without_verify = YAML::Clone(given);
            without_verify.remove("semantic_verify");
          }
          s = ApplyNamespace(without_verify.IsNull() ? given : without_verify, p);
          if (!s.ok()) break;
        }
      } else if (k == "models") {
        if (!v.IsMap()) return Status::InvalidArgument("models must be a map");
        for (const auto& m : v) {
          s = ApplyModel(m.second, g.models[m.first.as<std::string>()]);
          if (!s.ok()) break;
        }
      } else {
        return Status::InvalidArgument("unknown config setting: " + k);
      }
      if (!s.ok()) return Status::InvalidArgument(path + ": " + k + ": " + s.message());
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("config " + path + ": " + e.what());
  }
  return Status::OK();
}

bool SemanticVerifyConfigured(const ServeConfig& c) {
  if (!c.semantic_verify.model.empty()) return true;
  for (const auto& [name, e] : c.semantic_verify_namespaces) {
    if (e.enabled) return true;
  }
  return false;
}

RedisStoreOptions RedisStoreOptionsFor(const ServeConfig& c) {
  RedisStoreOptions o;
  o.url = c.store;
  o.password_env = c.store_password_env;
  o.key_prefix = c.store_key_prefix;
  o.expiry = c.expiry;
  return o;
}

uint64_t MemoryBoundBytes(const ServeConfig& c) {
  if (c.memory_bound > 1) return static_cast<uint64_t>(c.memory_bound);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  uint64_t phys = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : (4ull << 30);
  return static_cast<uint64_t>(static_cast<double>(phys) * c.memory_bound);
}

Status FinalizeConfig(ServeConfig& c) {
  auto valid_threshold = [](double t) { return t > 0 && t <= 1; };
  if (c.semantic_threshold && !valid_threshold(*c.semantic_threshold))
    return Status::InvalidArgument("semantic_threshold must be in (0, 1]");
  for (const auto& [name, ns] : c.gateway.namespaces) {
    if (ns.semantic_threshold && !valid_threshold(*ns.semantic_threshold))
      return Status::InvalidArgument("namespace " + name + ": semantic_threshold must be in (0, 1]");
  }
  auto colon = c.listen.rfind(':');
  if (colon == std::string::npos) return Status::InvalidArgument("--listen must be HOST:PORT");
  std::string host = c.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  std::string_view ps = std::string_view(c.listen).substr(colon + 1);
  auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc() || p != ps.data() + ps.size() || port > 65535)
    return Status::InvalidArgument("bad port in --listen " + c.listen);
  c.gateway.server.host = host;
  c.gateway.server.port = static_cast<uint16_t>(port);
  if (!c.upstream_api_key_env.empty()) {
    const char* key = std::getenv(c.upstream_api_key_env.c_str());
    if (!key || !*key)
      return Status::InvalidArgument("environment variable " + c.upstream_api_key_env +
                                     " (--upstream-api-key-env) is not set");
    c.gateway.upstream_api_key = key;
  }
  if (c.semantic_verify_grey_band &&
      !(*c.semantic_verify_grey_band >= 0 && *c.semantic_verify_grey_band < 1))
    return Status::InvalidArgument("semantic_verify grey_band must be in [0, 1)");
  if (c.semantic_verify_timeout_ms <= 0)
    return Status::InvalidArgument("semantic_verify timeout must be positive");
  if (c.semantic_threads && (*c.semantic_threads < 1 || *c.semantic_threads > 256))
    return Status::InvalidArgument("semantic_threads must be in [1, 256]");
  if (!c.semantic_verify.model.empty()) {
    Status s = ResolveVerifyEndpoint(c.semantic_verify, SemanticVerifyEndpoint{}, c, "");
    if (!s.ok()) return s;
  }
  for (auto& [name, e] : c.semantic_verify_namespaces) {
    if (!e.enabled) continue;
    Status s = ResolveVerifyEndpoint(e, c.semantic_verify, c, "namespace " + name + ": ");
    if (!s.ok()) return s;
  }
  if (c.store.empty()) c.store = "embedded";
  if (c.store != "embedded") {
    auto url = ParseRedisUrl(c.store);
    if (!url) {
      return Status::InvalidArgument("--store: " + url.error().message() +
                                     " (use embedded, redis://... or redis-sentinel://...)");
    }
    if (c.store_key_prefix.empty()) return Status::InvalidArgument("store_key_prefix is empty");
    if (c.semantic_stream.empty() || c.semantic_stream_max_len == 0)
      return Status::InvalidArgument("semantic_stream is empty or semantic_stream_max_len is 0");
  }
  return Status::OK();
}

}  // namespace llmcache::app
