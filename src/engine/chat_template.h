// Chat templates: recognise the family of a model's tokenizer.chat_template
// (a Jinja string) and render conversations the way llama.cpp's built-in
// formatter does, without a Jinja interpreter. Supported: ChatML (Qwen),
// Llama 3, Llama 2 (and its system / BOS / strip variants), Mistral v1, v3,
// v3-tekken, v7, v7-tekken, Zephyr. Anything else is an error naming the
// family when we recognise it.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "llmcache/status.h"

namespace llmcache::engine {

enum class ChatTemplate {
  kChatML,
  kLlama3,
  kLlama2,
  kLlama2Sys,
  kLlama2SysBos,
  kLlama2SysStrip,
  kMistralV1,
  kMistralV3,
  kMistralV3Tekken,
  kMistralV7,
  kMistralV7Tekken,
  kZephyr,
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

// Accepts a full Jinja template or a short name ("chatml", "llama3", ...).
Result<ChatTemplate> DetectChatTemplate(std::string_view tmpl);
std::string_view ChatTemplateName(ChatTemplate t);

// add_assistant: end with the header that starts the assistant's reply
// (families whose format has none ignore it).
std::string RenderChat(ChatTemplate t, std::span<const ChatMessage> messages, bool add_assistant);

}  // namespace llmcache::engine
