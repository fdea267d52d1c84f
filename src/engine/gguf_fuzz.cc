// libFuzzer target: arbitrary bytes through the GGUF parser and every
// accessor of a successful parse. Must never crash, leak or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmcache::engine;
  // Copy so the sanitizer sees the exact extent of the input.
  std::vector<uint8_t> bytes(data, data + size);
  auto f = GgufFile::Parse(bytes);
  if (!f) return 0;
  for (const auto& kv : f->metadata()) {
    (void)f->GetU64(kv.key);
    (void)f->GetI64(kv.key);
    (void)f->GetF32(kv.key);
    (void)f->GetString(kv.key);
    (void)f->GetF32Array(kv.key);
    (void)f->GetI32Array(kv.key);
    for (auto s : kv.value.strings) (void)s.size();
  }
  volatile uint8_t sink = 0;
  for (const auto& t : f->tensors()) {
    if (!t.data.empty()) sink = sink ^ t.data.front() ^ t.data.back();
  }
  return 0;
}
