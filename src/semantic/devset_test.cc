// The development set (data/semantic) keeps the promises its README makes:
// schema, size, sibling families, no duplicate texts, and a pairs file whose
// labels agree with the set. tools/devset-pairs.mjs --check (a CTest of its
// own when node is present) also proves the pairs file is not stale.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace llmcache::semantic {
namespace {

namespace json = boost::json;

struct Query {
  std::string text, intent, family, lang;
};

std::vector<json::object> ReadJsonLines(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<json::object> out;
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    EXPECT_FALSE(ec) << path << ":" << n;
    EXPECT_TRUE(v.is_object()) << path << ":" << n;
    if (!ec && v.is_object()) out.push_back(v.as_object());
  }
  return out;
}

std::string Normalized(std::string s) {
  std::string out;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

class DevsetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const json::object& o : ReadJsonLines(std::string(LLMCACHE_DATA_DIR) + "/devset.jsonl")) {
      ASSERT_EQ(o.size(), 4u) << json::serialize(o);
      for (const char* key : {"text", "intent", "family", "lang"}) {
        ASSERT_TRUE(o.contains(key) && o.at(key).is_string()) << key << ": " << json::serialize(o);
      }
      queries_.push_back(
          {std::string(o.at("text").as_string()), std::string(o.at("intent").as_string()),
           std::string(o.at("family").as_string()), std::string(o.at("lang").as_string())});
    }
  }
  std::vector<Query> queries_;
};

TEST_F(DevsetTest, SizeLanguagesAndSiblingFamilies) {
  EXPECT_GE(queries_.size(), 480u);
  std::map<std::string, int> per_intent;
  std::map<std::string, std::set<std::string>> intents_of_family;
  size_t ja = 0;
  for (const Query& q : queries_) {
    ASSERT_TRUE(q.lang == "en" || q.lang == "ja") << q.text;
    ja += q.lang == "ja";
    ++per_intent[q.intent];
    intents_of_family[q.family].insert(q.intent);
  }
  EXPECT_GE(per_intent.size(), 90u);
  for (const auto& [intent, n] : per_intent) {
    EXPECT_GE(n, 4) << intent;
    EXPECT_LE(n, 8) << intent;
  }
  const auto with_siblings = std::count_if(intents_of_family.begin(), intents_of_family.end(),
                                           [](const auto& f) { return f.second.size() >= 2; });
  EXPECT_GE(with_siblings, 30);
  const double ja_share = static_cast<double>(ja) / static_cast<double>(queries_.size());
  EXPECT_GT(ja_share, 0.2);
  EXPECT_LT(ja_share, 0.3);
}

TEST_F(DevsetTest, TextsAreUniqueAndIntentsBelongToOneFamilyAndLanguage) {
  std::set<std::string> seen;
  std::map<std::string, std::pair<std::string, std::string>> home;
  for (const Query& q : queries_) {
    EXPECT_FALSE(q.text.empty());
    EXPECT_TRUE(seen.insert(Normalized(q.text)).second) << "duplicate: " << q.text;
    auto [it, fresh] = home.emplace(q.intent, std::make_pair(q.family, q.lang));
    if (!fresh) {
      EXPECT_EQ(it->second, std::make_pair(q.family, q.lang)) << q.intent;
    }
  }
}

TEST_F(DevsetTest, PairLabelsAgreeWithTheSet) {
  std::map<std::string, const Query*> by_text;
  for (const Query& q : queries_) by_text[q.text] = &q;
  std::map<std::string, size_t> kinds;
  for (const json::object& p : ReadJsonLines(std::string(LLMCACHE_DATA_DIR) + "/pairs.jsonl")) {
    const auto a = by_text.find(std::string(p.at("a").as_string()));
    const auto b = by_text.find(std::string(p.at("b").as_string()));
    ASSERT_TRUE(a != by_text.end() && b != by_text.end()) << json::serialize(p);
    const Query& x = *a->second;
    const Query& y = *b->second;
    const std::string kind(p.at("kind").as_string());
    ++kinds[kind];
    EXPECT_EQ(p.at("same").as_bool(), x.intent == y.intent) << json::serialize(p);
    EXPECT_EQ(p.at("lang").as_string(), x.lang);
    EXPECT_EQ(x.lang, y.lang) << "pairs never mix languages";
    if (kind == "paraphrase") {
      EXPECT_EQ(x.intent, y.intent);
    } else if (kind == "sibling") {
      EXPECT_TRUE(x.family == y.family && x.intent != y.intent);
    } else if (kind == "random") {
      EXPECT_NE(x.family, y.family);
    } else {
      ADD_FAILURE() << "unknown kind " << kind;
    }
  }
  EXPECT_GT(kinds["paraphrase"], 1000u);
  EXPECT_GT(kinds["sibling"], 1000u);
  EXPECT_GT(kinds["random"], 1000u);
}

}  // namespace
}  // namespace llmcache::semantic
