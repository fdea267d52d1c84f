// Reading the labelled JSONL files of the evaluation tools (eval,
// calibrate): one JSON object per line, blank lines skipped.
#pragma once

#include <boost/json.hpp>
#include <fstream>
#include <string>

#include "llmcache/status.h"

namespace llmcache::semantic {

// Calls fn(object, line_number) for every non-blank line of path, with a
// null object when the line is not a JSON object; stops at fn's first error.
template <typename Fn>
Status ForEachJsonlObject(const std::string& path, Fn&& fn) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open " + path);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    Status s = fn(ec ? nullptr : v.if_object(), n);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

}  // namespace llmcache::semantic
