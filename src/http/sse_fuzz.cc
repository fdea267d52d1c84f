// Feeds arbitrary bytes to the SSE parser whole and in uneven pieces: both
// must yield the same events, and nothing may read out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "http/sse.h"

using llmcache::http::SseEvent;
using llmcache::http::SseParser;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  SseParser whole(1 << 16);
  std::vector<SseEvent> a;
  bool ok_a = whole.Feed(in, a);

  SseParser pieces(1 << 16);
  std::vector<SseEvent> b;
  bool ok_b = true;
  size_t step = size ? (data[0] % 7) + 1 : 1;
  for (size_t i = 0; i < size && ok_b; i += step) ok_b = pieces.Feed(in.substr(i, step), b);

  if (ok_a != ok_b) __builtin_trap();
  if (ok_a) {
    if (a.size() != b.size()) __builtin_trap();
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].data != b[i].data || a[i].event != b[i].event || a[i].id != b[i].id) __builtin_trap();
    }
    // What we write, we read back unchanged.
    for (const auto& e : a) {
      SseParser again;
      std::vector<SseEvent> c;
      std::string framed = llmcache::http::FormatSseData(e.data);
      if (!again.Feed(framed, c) || c.size() != 1) __builtin_trap();
      // CR and CRLF inside a payload are normalized to LF by the framing.
      std::string expect;
      for (size_t j = 0; j < e.data.size(); ++j) {
        if (e.data[j] == '\r') {
          expect.push_back('\n');
          if (j + 1 < e.data.size() && e.data[j + 1] == '\n') ++j;
        } else {
          expect.push_back(e.data[j]);
        }
      }
      if (c[0].data != expect) __builtin_trap();
    }
  }
  return 0;
}
