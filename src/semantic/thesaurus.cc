#include "semantic/thesaurus.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace llmcache::semantic {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Splits on '|' (the MyThes separator), trimming spaces.
std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  while (true) {
    size_t bar = line.find('|');
    std::string_view f = line.substr(0, bar);
    while (!f.empty() && f.front() == ' ') f.remove_prefix(1);
    while (!f.empty() && (f.back() == ' ' || f.back() == '\r')) f.remove_suffix(1);
    out.push_back(f);
    if (bar == std::string_view::npos) return out;
    line.remove_prefix(bar + 1);
  }
}

}  // namespace

Result<std::unique_ptr<Thesaurus>> Thesaurus::Load(const std::string& dat_path,
                                                   const ThesaurusOptions& options) {
  std::error_code ec;
  auto size = std::filesystem::file_size(dat_path, ec);
  if (ec) return Err(Status::NotFound("thesaurus " + dat_path + ": " + ec.message()));
  if (size > options.max_file_bytes) {
    return Err(Status::Corruption("thesaurus " + dat_path + " is larger than " +
                                  std::to_string(options.max_file_bytes) + " bytes"));
  }
  std::ifstream in(dat_path, std::ios::binary);
  if (!in) return Err(Status::NotFound("thesaurus " + dat_path + " cannot be opened"));
  std::string text(size, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(size))) {
    return Err(Status::IOError("thesaurus " + dat_path + ": short read"));
  }
  auto t = Parse(text, options);
  if (!t) return Err(Status(t.error().code(), dat_path + ": " + t.error().message()));
  return t;
}

Result<std::unique_ptr<Thesaurus>> Thesaurus::Parse(std::string_view text,
                                                    const ThesaurusOptions& o) {
  std::unique_ptr<Thesaurus> t(new Thesaurus());
  size_t pos = 0, line_no = 0;
  auto next_line = [&](std::string_view* line) -> Status {
    if (pos >= text.size()) return Status::NotFound();
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    ++line_no;
    if (end - pos > o.max_line_bytes) {
      return Status::Corruption("line " + std::to_string(line_no) + " is too long");
    }
    *line = text.substr(pos, end - pos);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    pos = end + 1;
    return Status::OK();
  };
  auto bad = [&](const std::string& why) {
    return Err(Status::Corruption("line " + std::to_string(line_no) + ": " + why));
  };
  std::string_view line;
  // Latin-1 files exist too; this reader only compares ASCII/UTF-8 words.
  if (!next_line(&line).ok() || Lower(line) != "utf-8") return bad("not a UTF-8 MyThes file");
  while (true) {
    Status s = next_line(&line);
    if (s.code() == StatusCode::kNotFound) break;
    if (!s.ok()) return Err(s);
    if (line.empty()) continue;
    std::vector<std::string_view> head = Fields(line);
    size_t senses = 0;
    if (head.size() != 2 || head[0].empty() || head[0].front() == '(') {
      return bad("expected headword|count");
    }
    auto [end, ec] = std::from_chars(head[1].data(), head[1].data() + head[1].size(), senses);
    if (ec != std::errc() || end != head[1].data() + head[1].size() || senses == 0 ||
        senses > o.max_entry_senses) {
      return bad("bad sense count");
    }
    const uint32_t head_id = t->Intern(Lower(head[0]));
    const auto first_sense = static_cast<uint32_t>(t->sense_begin_.size() - 1);
    for (size_t k = 0; k < senses; ++k) {
      if (!next_line(&line).ok()) return bad("entry truncated");
      std::vector<std::string_view> f = Fields(line);
      if (f.size() < 2 || f[0].size() < 3 || f[0].front() != '(' || f[0].back() != ')') {
        return bad("expected (pos)|terms");
      }
      if (k >= o.max_senses) continue;
      for (size_t i = 1; i < f.size(); ++i) {
        std::string_view term = f[i];
        size_t paren = term.find(" (");
        if (paren != std::string_view::npos) {
          bool similar = term.substr(paren) == " (similar term)";
          if (!(o.similar_terms && similar)) continue;
          term = term.substr(0, paren);
        }
        if (term.empty() || term.find('(') != std::string_view::npos) continue;
        std::string w = Lower(term);
        if (w.find(' ') != std::string::npos) {
          if (!o.multi_word_terms) continue;
          std::replace(w.begin(), w.end(), ' ', '_');
        }
        t->sense_terms_.push_back(t->Intern(std::move(w)));
      }
      t->sense_begin_.push_back(static_cast<uint32_t>(t->sense_terms_.size()));
    }
    const auto last_sense = static_cast<uint32_t>(t->sense_begin_.size() - 1);
    // A headword listed twice keeps its first entry.
    t->headwords_.emplace(head_id, std::make_pair(first_sense, last_sense));
  }
  if (t->headwords_.empty()) return bad("no entries");
  return t;
}

uint32_t Thesaurus::Intern(std::string term) {
  auto [it, added] = terms_.emplace(std::move(term), static_cast<uint32_t>(terms_.size()));
  return it->second;
}

bool Thesaurus::Lists(std::string_view head, uint32_t term) const {
  auto h = terms_.find(head);
  if (h == terms_.end()) return false;
  auto e = headwords_.find(h->second);
  if (e == headwords_.end()) return false;
  for (uint32_t s = e->second.first; s < e->second.second; ++s) {
    auto begin = sense_terms_.begin() + sense_begin_[s];
    auto end = sense_terms_.begin() + sense_begin_[s + 1];
    if (std::find(begin, end, term) != end) return true;
  }
  return false;
}

bool Thesaurus::Synonyms(std::string_view a, std::string_view b) const {
  if (a == b) return false;
  auto ia = terms_.find(a);
  auto ib = terms_.find(b);
  if (ia == terms_.end() || ib == terms_.end()) return false;
  return Lists(a, ib->second) || Lists(b, ia->second);
}

}  // namespace llmcache::semantic
