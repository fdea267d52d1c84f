#include "http/sse.h"

namespace llmcache::http {

bool SseParser::Feed(std::string_view bytes, std::vector<SseEvent>& out) {
  if (failed_) return false;
  size_t i = 0;
  if (at_start_) {
    // A UTF-8 BOM opening the stream is skipped, even when it arrives split
    // across pieces; bytes that only looked like its start are data.
    static constexpr std::string_view kBom = "\xEF\xBB\xBF";
    while (i < bytes.size() && bom_matched_ < 3 && bytes[i] == kBom[bom_matched_]) {
      ++bom_matched_;
      ++i;
    }
    if (i == bytes.size() && bom_matched_ < 3) return true;
    at_start_ = false;
    if (bom_matched_ < 3) line_.append(kBom.substr(0, bom_matched_));
  }
  if (skip_lf_ && i < bytes.size()) {
    if (bytes[i] == '\n') ++i;
    skip_lf_ = false;
  }
  while (i < bytes.size()) {
    size_t end = bytes.find_first_of("\r\n", i);
    if (end == std::string_view::npos) {
      if (line_.size() + (bytes.size() - i) > max_event_bytes_) {
        failed_ = true;
        return false;
      }
      line_.append(bytes.substr(i));
      return true;
    }
    std::string_view piece = bytes.substr(i, end - i);
    if (!line_.empty()) {
      if (line_.size() + piece.size() > max_event_bytes_) {
        failed_ = true;
        return false;
      }
      line_.append(piece);
      ProcessLine(line_, out);
      line_.clear();
    } else {
      ProcessLine(piece, out);
    }
    if (failed_) return false;
    i = end + 1;
    if (bytes[end] == '\r') {
      if (i < bytes.size()) {
        if (bytes[i] == '\n') ++i;
      } else {
        skip_lf_ = true;
      }
    }
  }
  return true;
}

void SseParser::ProcessLine(std::string_view line, std::vector<SseEvent>& out) {
  if (line.empty()) {
    // Blank line: dispatch. An event without data is dropped, as the spec says.
    if (has_data_) out.push_back(SseEvent{std::move(event_), std::move(data_), id_});
    data_.clear();
    event_.clear();
    has_data_ = false;
    return;
  }
  if (line[0] == ':') return;  // comment
  std::string_view field = line, value;
  if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (data_.size() + value.size() + 1 > max_event_bytes_) {
      failed_ = true;
      return;
    }
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) id_.assign(value);
  }
  // `retry` and unknown fields are ignored.
}

void AppendSseData(std::string& out, std::string_view payload) {
  size_t start = 0;
  while (true) {
    size_t nl = payload.find_first_of("\r\n", start);
    out.append("data: ");
    if (nl == std::string_view::npos) {
      out.append(payload.substr(start));
      break;
    }
    out.append(payload.substr(start, nl - start));
    out.push_back('\n');
    start = nl + 1;
    if (payload[nl] == '\r' && start < payload.size() && payload[start] == '\n') ++start;
  }
  out.append("\n\n");
}

std::string FormatSseData(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  AppendSseData(out, payload);
  return out;
}

}  // namespace llmcache::http
