#include "semantic/warm.h"

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <iostream>
#include <optional>
#include <unordered_map>

#include "http/client.h"

namespace llmcache::semantic {

namespace json = boost::json;
namespace net = http::net;
using http::awaitable;

namespace {

// Paraphrase merging compares every wording with every cluster of its
// partition; beyond this many distinct wordings (the most frequent ones) the
// rest only merge as exact repeats, which keeps a huge log's run bounded.
constexpr size_t kMaxEmbeddedWordings = 5000;
constexpr size_t kEmbedBatch = 128;
constexpr int kMaxReportedLineErrors = 5;

Result<std::string> UserText(const json::value& content) {
  if (content.is_string()) return std::string(content.as_string());
  if (!content.is_array()) return Err(Status::InvalidArgument("content is neither text nor parts"));
  std::string text;
  for (const json::value& part : content.as_array()) {
    const json::object* p = part.if_object();
    const json::value* type = p ? p->if_contains("type") : nullptr;
    const json::value* t = p ? p->if_contains("text") : nullptr;
    // An image or audio part changes the answer in ways text cannot show.
    if (!type || *type != "text" || !t || !t->is_string()) {
      return Err(Status::InvalidArgument("non-text content part"));
    }
    if (!text.empty()) text += '\n';
    text += t->as_string();
  }
  return text;
}

std::string OptionalString(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

Result<LoggedQuery> ParseQueryLogLine(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return Err(Status::InvalidArgument("not a JSON object"));
  json::object& o = v.as_object();
  LoggedQuery q;
  if (const json::value* query = o.if_contains("query")) {
    if (!query->is_string() || query->as_string().empty()) {
      return Err(Status::InvalidArgument("\"query\" must be a non-empty string"));
    }
    q.text = std::string(query->as_string());
    q.model = OptionalString(o, "model");
    q.ns = OptionalString(o, "namespace");
    return q;
  }
  json::value* messages = o.if_contains("messages");
  if (!messages || !messages->is_array() || messages->as_array().empty()) {
    return Err(Status::InvalidArgument("neither \"query\" nor a non-empty \"messages\" array"));
  }
  const json::object* last = messages->as_array().back().if_object();
  if (!last || OptionalString(*last, "role") != "user" || !last->contains("content")) {
    return Err(Status::InvalidArgument("the last message is not a user question"));
  }
  auto text = UserText(last->at("content"));
  if (!text) return Err(text.error());
  if (text->empty()) return Err(Status::InvalidArgument("empty question"));
  q.text = std::move(*text);
  q.ns = OptionalString(o, "namespace");
  o.erase("namespace");  // not an OpenAI field: it travels as a header
  q.model = OptionalString(o, "model");
  q.body = json::serialize(o);
  o.erase("model");
  messages->as_array().pop_back();
  q.context = json::serialize(o);
  return q;
}

std::string NormalizeQuestion(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
  }
  for (;;) {
    if (!out.empty() &&
        (out.back() == ' ' || out.back() == '?' || out.back() == '!' || out.back() == '.')) {
      out.pop_back();
      continue;
    }
    bool dropped = false;
    for (std::string_view tail : {"。", "？", "！"}) {  // 3 bytes each in UTF-8
      if (out.size() >= tail.size() &&
          std::string_view(out).substr(out.size() - tail.size()) == tail) {
        out.resize(out.size() - tail.size());
        dropped = true;
      }
    }
    if (!dropped) break;
  }
  return out;
}

ClusterResult ClusterQueries(const std::vector<LoggedQuery>& queries,
                             const ClusterOptions& options) {
  struct Group {
    size_t first;  // index into queries
    size_t count;
    std::string partition;
  };
  std::vector<Group> groups;
  std::unordered_map<std::string, size_t> group_of;
  for (size_t i = 0; i < queries.size(); ++i) {
    const LoggedQuery& q = queries[i];
    std::string partition = q.model + '\x1f' + q.ns + '\x1f' + q.context;
    std::string key = partition + '\x1f' + NormalizeQuestion(q.text);
    auto [it, fresh] = group_of.emplace(std::move(key), groups.size());
    if (fresh) groups.push_back({i, 0, std::move(partition)});
    ++groups[it->second].count;
  }
  std::stable_sort(groups.begin(), groups.end(),
                   [](const Group& a, const Group& b) { return a.count > b.count; });

  ClusterResult result;
  result.distinct = groups.size();
  std::vector<std::vector<float>> vectors;
  if (options.embedder && options.guard && groups.size() > 1) {
    const size_t n = std::min(groups.size(), kMaxEmbeddedWordings);
    std::vector<std::string> batch;
    for (size_t start = 0; start < n && result.embed_error.empty(); start += kEmbedBatch) {
      batch.clear();
      for (size_t g = start; g < std::min(n, start + kEmbedBatch); ++g) {
        batch.push_back(queries[groups[g].first].text);
      }
      auto v = options.embedder->Embed(batch);
      if (!v) {
        result.embed_error = v.error().ToString();
        break;
      }
      for (auto& x : *v) vectors.push_back(std::move(x));
    }
    if (!result.embed_error.empty()) vectors.clear();
  }

  struct Cluster {
    size_t group;  // the representative wording
    size_t count;
    size_t variants;
  };
  std::vector<Cluster> clusters;
  std::unordered_map<std::string_view, std::vector<size_t>> clusters_of;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<size_t>& mine = clusters_of[groups[g].partition];
    std::optional<size_t> best;
    if (g < vectors.size()) {
      double best_cosine = options.min_cosine;
      for (size_t c : mine) {
        const size_t rep = clusters[c].group;
        if (rep >= vectors.size()) continue;
        double cosine = 0;
        for (size_t k = 0; k < vectors[g].size() && k < vectors[rep].size(); ++k) {
          cosine += static_cast<double>(vectors[g][k]) * vectors[rep][k];
        }
        if (cosine < best_cosine || (best && cosine == best_cosine)) continue;
        // The guard runs only on candidates good enough to win.
        if (!options.guard->Check(queries[groups[g].first].text, queries[groups[rep].first].text)
                 .pass) {
          continue;
        }
        best = c;
        best_cosine = cosine;
      }
    }
    if (best) {
      clusters[*best].count += groups[g].count;
      ++clusters[*best].variants;
    } else {
      mine.push_back(clusters.size());
      clusters.push_back({g, groups[g].count, 1});
    }
  }
  std::stable_sort(clusters.begin(), clusters.end(),
                   [](const Cluster& a, const Cluster& b) { return a.count > b.count; });
  result.clusters.reserve(clusters.size());
  for (const Cluster& c : clusters) {
    result.clusters.push_back({queries[groups[c.group].first], c.count, c.variants});
  }
  return result;
}

namespace {

std::string RequestBody(const LoggedQuery& q) {
  if (q.body.empty()) {
    json::object body;
    body["model"] = q.model;
    body["messages"] = json::array{json::object{{"role", "user"}, {"content", q.text}}};
    return json::serialize(body);
  }
  json::value v = json::parse(q.body);  // ParseQueryLogLine wrote it
  if (v.as_object().contains("model")) return q.body;
  v.as_object()["model"] = q.model;  // the log line had none: --model
  return json::serialize(v);
}

std::string ErrorText(const http::BufferedResponse& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (!ec && v.is_object()) {
    if (const json::value* e = v.as_object().if_contains("error"); e && e->is_object()) {
      if (const json::value* m = e->as_object().if_contains("message"); m && m->is_string()) {
        return std::string(m->as_string());
      }
    }
  }
  return r.body.substr(0, 200);
}

awaitable<void> SendAll(const http::BaseUrl& base, std::shared_ptr<net::ssl::context> tls,
                        const WarmOptions& options, const std::vector<QueryCluster>& chosen,
                        WarmSummary& summary, std::ostream& err) {
  http::ClientOptions client_options;
  client_options.read_timeout = options.timeout;
  http::HttpClient client(co_await net::this_coro::executor, base, client_options, std::move(tls));
  for (const QueryCluster& c : chosen) {
    const LoggedQuery& q = c.representative;
    UpstreamRequest request;
    request.path = "/chat/completions";
    request.body = RequestBody(q);
    request.headers = {{"Content-Type", "application/json"}};
    if (!q.ns.empty()) request.headers.emplace_back("x-llmcache-namespace", q.ns);
    if (!options.api_key.empty()) {
      request.headers.emplace_back("Authorization", "Bearer " + options.api_key);
    }
    auto res = co_await http::Fetch(client, request);
    if (!res) {
      ++summary.failed;
      err << "llmcache warm: " << q.text << ": " << res.error().ToString() << "\n";
      continue;
    }
    if (res->status < 200 || res->status >= 300) {
      ++summary.failed;
      err << "llmcache warm: " << q.text << ": HTTP " << res->status << ": " << ErrorText(*res)
          << "\n";
      continue;
    }
    const std::string_view outcome = res->Header("x-llmcache");
    // "hit" or "semantic-hit": the gateway had it already.
    if (outcome.size() >= 3 && outcome.substr(outcome.size() - 3) == "hit") {
      ++summary.already_cached;
    } else {
      ++summary.filled;
    }
  }
}

}  // namespace

int RunWarm(const WarmOptions& options, std::istream& log, std::ostream& out, std::ostream& err,
            WarmSummary* summary_out) {
  WarmSummary summary;
  auto base = http::ParseBaseUrl(options.gateway_url);
  if (!base) {
    err << "llmcache warm: bad --gateway \"" << options.gateway_url
        << "\": " << base.error().message() << "\n";
    return 2;
  }
  std::vector<LoggedQuery> queries;
  std::string line;
  size_t line_number = 0;
  int reported = 0;
  auto skip = [&](const std::string& why) {
    ++summary.skipped;
    if (reported++ < kMaxReportedLineErrors) {
      err << "llmcache warm: line " << line_number << " skipped: " << why << "\n";
    }
  };
  while (std::getline(log, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++summary.lines;
    auto q = ParseQueryLogLine(line);
    if (!q) {
      skip(q.error().message());
      continue;
    }
    if (q->model.empty()) q->model = options.model;
    if (q->model.empty()) {
      skip("no model (pass --model)");
      continue;
    }
    if (q->ns.empty()) q->ns = options.ns;
    queries.push_back(std::move(*q));
  }
  if (log.bad()) {
    err << "llmcache warm: cannot read the query log\n";
    return 1;
  }

  ClusterResult clustered = ClusterQueries(queries, options.cluster);
  if (!clustered.embed_error.empty()) {
    err << "llmcache warm: embedding failed, clustering exact repeats only: "
        << clustered.embed_error << "\n";
  }
  summary.distinct = clustered.distinct;
  summary.clusters = clustered.clusters.size();
  if (clustered.clusters.size() > options.top) clustered.clusters.resize(options.top);
  summary.chosen = clustered.clusters.size();
  for (const QueryCluster& c : clustered.clusters) summary.covered += c.count;

  out << "warm: " << summary.lines << " lines (" << summary.skipped << " skipped), "
      << summary.distinct << " distinct questions in " << summary.clusters << " clusters; the top "
      << summary.chosen << " cover " << summary.covered << " lines\n";
  if (options.dry_run) {
    out << "# count\tvariants\tmodel\tnamespace\tquery\n";
    for (const QueryCluster& c : clustered.clusters) {
      const LoggedQuery& q = c.representative;
      out << c.count << '\t' << c.variants << '\t' << q.model << '\t' << q.ns << '\t' << q.text
          << '\n';
    }
    if (summary_out) *summary_out = summary;
    return 0;
  }

  std::shared_ptr<net::ssl::context> tls;
  if (base->tls) {
    auto ctx = http::MakeTlsContext(http::ClientOptions{});
    if (!ctx) {
      err << "llmcache warm: " << ctx.error().ToString() << "\n";
      return 2;
    }
    tls = std::move(*ctx);
  }
  {
    net::io_context ctx(1);
    net::co_spawn(ctx, SendAll(*base, tls, options, clustered.clusters, summary, err),
                  net::detached);
    ctx.run();
  }
  out << "warm: sent " << summary.chosen << ": " << summary.filled << " filled, "
      << summary.already_cached << " already cached, " << summary.failed << " failed\n";
  if (summary_out) *summary_out = summary;
  return summary.failed == 0 ? 0 : 1;
}

int RunWarmCommand(const WarmCommandOptions& options, std::ostream& out, std::ostream& err) {
  std::ifstream log(options.log_path);
  if (!log) {
    err << "llmcache warm: cannot open " << options.log_path << "\n";
    return 1;
  }
  WarmOptions warm = options;
  std::unique_ptr<LexicalGuard> guard;
  std::unique_ptr<Embedder> embedder;
  if (options.guard && options.embedder.embedder != "none") {
#ifdef LLMCACHE_HAVE_GUARD
    auto g = NewLexicalGuard(LexicalGuardOptions{});
    if (g) {
      guard = std::move(*g);
    } else {
      err << "llmcache warm: no lexical guard (" << g.error().ToString()
          << "): clustering exact repeats only\n";
    }
#else
    err << "llmcache warm: built without the lexical guard: clustering exact repeats only\n";
#endif
  }
  if (guard) {
    auto e = MakeEmbedder(options.embedder);
    if (!e) {
      err << "llmcache warm: " << e.error().ToString() << "\n";
      return 2;
    }
    embedder = std::move(*e);
  }
  warm.cluster.embedder = embedder.get();
  warm.cluster.guard = guard.get();
  return RunWarm(warm, log, out, err);
}

}  // namespace llmcache::semantic
