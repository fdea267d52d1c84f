// libFuzzer target for the gateway's parsers of untrusted bytes. The input is
// used as a request body (every route, both options), as newline-separated
// stream events and as a response body (both streamable routes), and as two
// header lines (Cache-Control, x-llmcache-ttl). Invariants are checked with
// __builtin_trap so that a violation is a crash libFuzzer reports.
//
// Run: canonical_fuzz -max_total_time=30 src/gateway/fuzz-corpus/canonical
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/cache_control.h"
#include "gateway/canonical.h"
#include "gateway/canonical_memo.h"
#include "gateway/stream_convert.h"

namespace {

using llmcache::Route;
namespace gw = llmcache::gateway;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool IsLowerHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Few slots, so that inputs collide and evict each other across runs: the
// memo must still answer exactly what Canonicalize answers.
gw::CanonicalMemo& Memo() {
  static gw::CanonicalMemo memo([] {
    gw::CanonicalMemo::Options o;
    o.shards = 2;
    o.max_bytes = 64 << 10;
    o.hash = [](std::string_view b) -> uint64_t { return b.size() % 8; };
    return o;
  }());
  return memo;
}

void FuzzCanonical(std::string_view input) {
  for (Route route : {Route::kChat, Route::kCompletions, Route::kEmbeddings}) {
    bool accepted[2] = {false, false};
    for (bool normalize : {false, true}) {
      gw::CanonicalOptions options;
      options.normalize_whitespace = normalize;
      auto r = gw::Canonicalize(route, input, options);
      accepted[normalize] = r.has_value();
      for (int twice = 0; twice < 2; ++twice) {
        auto m = Memo().Canonicalize(route, input, options);
        Check(m.has_value() == r.has_value());
        if (m && r) {
          Check((*m)->request().canonical == r->canonical && (*m)->request().model == r->model &&
                (*m)->request().stream == r->stream &&
                (*m)->request().include_usage == r->include_usage &&
                (*m)->request().last_user_text == r->last_user_text);
          Check((*m)->Key("ns", "rev") == gw::CacheKey(gw::KeyParts{"ns", "rev", r->canonical, route}));
        }
      }
      if (!r) {
        Check(r.error().http_status == 400 || r.error().http_status == 413);
        Check(!r.error().message.empty());
        Check(!gw::RequestErrorJson(r.error()).empty());
        continue;
      }
      Check(!r->model.empty());
      // The canonical form is a fixed point, and carries everything the
      // request's key depends on.
      auto again = gw::Canonicalize(route, r->canonical, options);
      Check(again.has_value());
      Check(again->canonical == r->canonical);
      Check(again->model == r->model);
      Check(again->last_user_text == r->last_user_text);
      Check(!again->stream && !again->include_usage);
      Check(r->canonical.size() <= input.size() + 6 * input.size());
      Check(IsLowerHex64(gw::CacheKey(gw::KeyParts{"ns", "rev", r->canonical, route})));
    }
    // Normalization never changes whether a request is valid.
    Check(accepted[0] == accepted[1]);
  }
}

void FuzzCachePolicy(std::string_view input) {
  const size_t nl = input.find('\n');
  const std::string_view cc = input.substr(0, nl);
  const std::string_view ttl = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  auto p = gw::ParseRequestCachePolicy(cc, ttl);
  if (!p) {
    Check(p.error().http_status == 400 && p.error().param == "x-llmcache-ttl");
    return;
  }
  if (p->ttl_ms) Check(*p->ttl_ms > 0 && *p->ttl_ms <= gw::kMaxRequestTtlSeconds * 1000);
  auto p2 = gw::ParseRequestCachePolicy(cc, "");
  Check(p2.has_value());  // only x-llmcache-ttl can be an error
}

// Assemble(Synthesize(A)) == A for every assembled A, and usage agrees
// between the two shapes.
void CheckRoundTrip(Route route, const std::string& assembled) {
  auto chunks = gw::SynthesizeStream(route, assembled);
  Check(chunks.has_value());
  Check(!chunks->empty());
  auto again = gw::AssembleFromStream(route, *chunks);
  Check(again.has_value());
  Check(*again == assembled);

  const gw::Usage a = gw::ExtractUsage(assembled);
  const gw::Usage b = gw::ExtractUsageFromStream(*chunks);
  Check(a.present == b.present && a.prompt_tokens == b.prompt_tokens &&
        a.completion_tokens == b.completion_tokens);
  // A client that did not ask for usage sees none.
  Check(!gw::ExtractUsageFromStream(gw::AdaptStreamForClient(*chunks, false)).present);
  Check(gw::AdaptStreamForClient(*chunks, true) == *chunks);
}

void FuzzStreams(std::string_view input) {
  std::vector<std::string> events;
  for (size_t pos = 0; pos <= input.size();) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string_view::npos) nl = input.size();
    if (nl > pos) events.emplace_back(input.substr(pos, nl - pos));  // skip blank lines
    pos = nl + 1;
  }
  for (Route route : {Route::kChat, Route::kCompletions}) {
    if (auto assembled = gw::AssembleFromStream(route, events)) CheckRoundTrip(route, *assembled);
    if (auto chunks = gw::SynthesizeStream(route, input)) {
      auto assembled = gw::AssembleFromStream(route, *chunks);
      Check(assembled.has_value());
      CheckRoundTrip(route, *assembled);
    }
  }
  Check(!gw::AssembleFromStream(Route::kEmbeddings, events).has_value());
  Check(!gw::SynthesizeStream(Route::kEmbeddings, input).has_value());
  auto adapted = gw::AdaptStreamForClient(events, false);
  Check(adapted.size() <= events.size());
  (void)gw::ExtractUsage(input);
  (void)gw::ExtractUsageFromStream(events);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  FuzzCanonical(input);
  FuzzCachePolicy(input);
  FuzzStreams(input);
  return 0;
}
