// Server-Sent Events: an incremental parser for upstream streams and the
// framing used to write them. The parser takes untrusted bytes in pieces of
// any size and never buffers more than max_event_bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace llmcache::http {

struct SseEvent {
  std::string event;  // the `event:` field; empty means "message"
  std::string data;   // `data:` lines joined with '\n'
  std::string id;
};

class SseParser {
 public:
  explicit SseParser(size_t max_event_bytes = 16u << 20) : max_event_bytes_(max_event_bytes) {}

  // Feeds the next piece of the stream. Complete events are appended to
  // `out`. Returns false once the stream is invalid (an event or line larger
  // than max_event_bytes); the parser then stays failed.
  bool Feed(std::string_view bytes, std::vector<SseEvent>& out);

  // True if bytes of an unfinished line or event are buffered: a stream that
  // ends here was cut off mid-event.
  bool HasPartialEvent() const { return !line_.empty() || has_data_ || !event_.empty(); }
  bool failed() const { return failed_; }

 private:
  void ProcessLine(std::string_view line, std::vector<SseEvent>& out);

  size_t max_event_bytes_;
  std::string line_;
  std::string data_;
  std::string event_;
  std::string id_;
  bool has_data_ = false;
  bool skip_lf_ = false;   // the previous piece ended in '\r'
  bool at_start_ = true;   // a UTF-8 BOM may open the stream
  size_t bom_matched_ = 0;
  bool failed_ = false;
};

// Frames one `data:` event ("data: <payload>\n\n"); payload lines are split
// so that embedded newlines survive.
std::string FormatSseData(std::string_view payload);
void AppendSseData(std::string& out, std::string_view payload);

}  // namespace llmcache::http
