#include "engine/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "engine/llama_ref.h"
#include "engine/test_util.h"

namespace llmcache::engine {
namespace {

std::string ReadTemplate(const std::string& name) {
  std::ifstream f(enginetest::VocabDir() / "templates" / name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::vector<ChatMessage>& Conversation() {
  static const std::vector<ChatMessage> c = {
      {"system", "You are a helpful assistant"},
      {"user", "Hello"},
      {"assistant", "  Hi there  "},
      {"user", "Who are you?\n"},
  };
  return c;
}

TEST(ChatTemplate, DetectsRealTemplates) {
  const auto dir = enginetest::VocabDir() / "templates";
  LLMCACHE_REQUIRE_PATH(dir);
  const std::pair<const char*, ChatTemplate> cases[] = {
      {"meta-llama-Llama-3.1-8B-Instruct.jinja", ChatTemplate::kLlama3},
      {"meta-llama-Llama-3.2-3B-Instruct.jinja", ChatTemplate::kLlama3},
      {"Qwen-Qwen2.5-7B-Instruct.jinja", ChatTemplate::kChatML},
      {"mistralai-Mistral-Nemo-Instruct-2407.jinja", ChatTemplate::kMistralV3Tekken},
  };
  for (const auto& [file, want] : cases) {
    const std::string tmpl = ReadTemplate(file);
    ASSERT_FALSE(tmpl.empty()) << file;
    auto got = DetectChatTemplate(tmpl);
    ASSERT_TRUE(got.has_value()) << file << ": " << got.error().message();
    EXPECT_EQ(ChatTemplateName(*got), ChatTemplateName(want)) << file;
  }
}

TEST(ChatTemplate, UnknownOrUnsupportedIsAnErrorNamingIt) {
  auto phi = DetectChatTemplate("{{'<|user|>'}}{{'<|assistant|>'}}{{'<|end|>'}}");
  ASSERT_FALSE(phi.has_value());
  EXPECT_NE(phi.error().message().find("phi3"), std::string::npos);
  auto unknown = DetectChatTemplate("{% for m in messages %}### {{ m.role }}{% endfor %}");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().message().find("### {{ m.role }}"), std::string::npos);
}

TEST(ChatTemplate, RendersChatML) {
  const std::vector<ChatMessage> msgs = {{"user", "hi"}};
  EXPECT_EQ(RenderChat(ChatTemplate::kChatML, msgs, true),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

// Every family renders exactly like llama.cpp's built-in formatter.
TEST(ChatTemplate, MatchesLlamaCpp) {
#if !defined(LLMCACHE_HAVE_LLAMA_H)
  GTEST_SKIP() << "llama.h not found under models/llama-cpp (run scripts/install-deps)";
#else
  const auto lib_dir = enginetest::LlamaLibDir();
  LLMCACHE_REQUIRE_PATH(lib_dir);
  const auto& api = enginetest::LlamaApi::Get(lib_dir);
  ASSERT_TRUE(api.ok()) << api.error;
  std::vector<llama_chat_message> chat;
  for (const auto& m : Conversation()) chat.push_back({m.role.c_str(), m.content.c_str()});
  std::vector<std::string> templates = {"chatml",
                                        "llama3",
                                        "llama2",
                                        "llama2-sys",
                                        "llama2-sys-bos",
                                        "llama2-sys-strip",
                                        "mistral-v1",
                                        "mistral-v3",
                                        "mistral-v3-tekken",
                                        "mistral-v7",
                                        "mistral-v7-tekken",
                                        "zephyr"};
  for (const char* f : {"meta-llama-Llama-3.1-8B-Instruct.jinja", "Qwen-Qwen2.5-7B-Instruct.jinja",
                        "mistralai-Mistral-Nemo-Instruct-2407.jinja"}) {
    templates.push_back(ReadTemplate(f));
  }
  for (const auto& tmpl : templates) {
    auto kind = DetectChatTemplate(tmpl);
    ASSERT_TRUE(kind.has_value()) << kind.error().message();
    for (bool add_ass : {false, true}) {
      std::vector<char> buf(8192);
      const int32_t n = api.chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), add_ass,
                                                buf.data(), static_cast<int32_t>(buf.size()));
      ASSERT_GT(n, 0) << ChatTemplateName(*kind);
      EXPECT_EQ(RenderChat(*kind, Conversation(), add_ass), std::string(buf.data(), n))
          << ChatTemplateName(*kind) << " add_assistant=" << add_ass;
    }
  }
#endif
}

}  // namespace
}  // namespace llmcache::engine
