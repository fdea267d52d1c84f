#include "engine/generate_command.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <sstream>

#include "engine/test_model.h"
#include "engine/test_util.h"

namespace llmcache::engine {
namespace {

TEST(GenerateCommandTest, JsonHasTokensTextAndTimingsAndGreedyIsRepeatable) {
  LLMCACHE_REQUIRE_PATH(enginetest::VocabDir());
  TestModelOptions m;
  m.vocab_path = (enginetest::VocabDir() / "ggml-vocab-llama-spm.gguf").string();
  m.type = TestModelType::kQ8_0;
  m.weight_scale = 0.1f;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("llmcache-generate-" + std::to_string(::getpid()) + ".gguf"))
                               .string();
  ASSERT_TRUE(WriteTestModel(m, path).ok());
  GenerateOptions o;
  o.model = path;
  o.prompt = "Hello world";
  o.n_predict = 6;
  o.ignore_eos = true;
  o.json = true;
  std::ostringstream out1, out2, err;
  EXPECT_EQ(RunGenerate(o, out1, err), 0) << err.str();
  o.threads = 2;
  EXPECT_EQ(RunGenerate(o, out2, err), 0) << err.str();
  const auto j1 = boost::json::parse(out1.str()).as_object();
  const auto j2 = boost::json::parse(out2.str()).as_object();
  // The SPM vocabulary adds BOS (1); "Hello world" is 15043, 3186.
  EXPECT_EQ(boost::json::serialize(j1.at("prompt_tokens")), "[1,15043,3186]");
  EXPECT_EQ(j1.at("generated").as_array().size(), 6u);
  EXPECT_EQ(j1.at("generated"), j2.at("generated"));
  EXPECT_TRUE(j1.at("text").is_string());
  EXPECT_TRUE(j1.at("timings").as_object().contains("decode_tokens_per_s"));

  o.prompt.reset();
  o.prompt_tokens = {1, 15043, 3186};
  std::ostringstream out3;
  EXPECT_EQ(RunGenerate(o, out3, err), 0);
  EXPECT_EQ(boost::json::parse(out3.str()).at("generated"), j1.at("generated"));

  o.model = path + ".missing";
  std::ostringstream out4, err4;
  EXPECT_NE(RunGenerate(o, out4, err4), 0);
  EXPECT_NE(err4.str().find("missing"), std::string::npos);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace llmcache::engine
