#include "semantic/embed_command.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <sstream>

#include "semantic/test_util.h"
#include "semantic/use_lite.h"

namespace llmcache::semantic {
namespace {

std::vector<std::vector<float>> ParseLines(const std::string& out) {
  std::vector<std::vector<float>> vectors;
  std::istringstream in(out);
  std::string line;
  simdjson::dom::parser parser;
  while (std::getline(in, line)) {
    simdjson::dom::array arr;
    EXPECT_EQ(parser.parse(line)["embedding"].get_array().get(arr), simdjson::SUCCESS) << line;
    std::vector<float> v;
    for (simdjson::dom::element x : arr) v.push_back(static_cast<float>(x.get_double().value()));
    vectors.push_back(std::move(v));
  }
  return vectors;
}

TEST(EmbedCommandTest, WritesOneNormalizedVectorPerLine) {
  ASSERT_TRUE(testing::ModelInstalled()) << testing::MissingModelMessage();
  EmbedCommandOptions options;
  options.model_dir = testing::ModelDir();
  options.batch_lines = 2;  // several batches
  const std::vector<std::string> texts = {"How do I apply for paid leave?",
                                          "how to take paid vacation", "", "有給休暇の申請方法は？",
                                          "crlf line"};
  std::istringstream in(texts[0] + "\n" + texts[1] + "\n\n" + texts[3] + "\n" + texts[4] + "\r\n");
  std::ostringstream out, err;
  ASSERT_EQ(RunEmbedCommand(options, in, out, err), 0) << err.str();
  const auto vectors = ParseLines(out.str());
  ASSERT_EQ(vectors.size(), texts.size());

  auto embedder = NewUseLiteEmbedder({testing::ModelDir(), 1});
  ASSERT_TRUE(embedder.has_value());
  auto want = (*embedder)->Embed(texts);
  ASSERT_TRUE(want.has_value());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(vectors[i], (*want)[i]) << "floats must round-trip: " << texts[i];
    EXPECT_NEAR(testing::Norm(vectors[i]), 1.0, 1e-6);
  }
}

TEST(EmbedCommandTest, LastLineWithoutNewlineAndEmptyInput) {
  ASSERT_TRUE(testing::ModelInstalled()) << testing::MissingModelMessage();
  EmbedCommandOptions options;
  options.model_dir = testing::ModelDir();
  std::istringstream in("one\ntwo");
  std::ostringstream out, err;
  ASSERT_EQ(RunEmbedCommand(options, in, out, err), 0) << err.str();
  EXPECT_EQ(ParseLines(out.str()).size(), 2u);
  std::istringstream none("");
  std::ostringstream nothing;
  ASSERT_EQ(RunEmbedCommand(options, none, nothing, err), 0);
  EXPECT_EQ(nothing.str(), "");
}

TEST(EmbedCommandTest, UsesTheInstalledModelByDefault) {
  ASSERT_TRUE(testing::ModelInstalled()) << testing::MissingModelMessage();
  EXPECT_EQ(DefaultUseLiteModelDir(), testing::ModelDir());
  std::istringstream in("hello\n");
  std::ostringstream out, err;
  ASSERT_EQ(RunEmbedCommand(EmbedCommandOptions{}, in, out, err), 0) << err.str();
  EXPECT_EQ(ParseLines(out.str()).size(), 1u);
}

TEST(EmbedCommandTest, BadOptionsExitWithTwo) {
  std::istringstream in("x\n");
  std::ostringstream out, err;
  EmbedCommandOptions options;
  options.embedder = "word2vec";
  EXPECT_EQ(RunEmbedCommand(options, in, out, err), 2);
  EXPECT_NE(err.str().find("unknown embedder"), std::string::npos);
  options.embedder = "use-lite";
  options.model_dir = "/nonexistent";
  err.str("");
  EXPECT_EQ(RunEmbedCommand(options, in, out, err), 2);
  EXPECT_NE(err.str().find("scripts/install-deps"), std::string::npos) << err.str();
  EXPECT_EQ(out.str(), "");
}

TEST(EmbedCommandTest, FormatsFloatsShortestRoundTrip) {
  std::string s;
  AppendEmbeddingJson({0.1f, -1.0f, 0.0f, 1e-8f}, s);
  EXPECT_EQ(s, "{\"embedding\":[0.1,-1,0,1e-08]}");
}

}  // namespace
}  // namespace llmcache::semantic
