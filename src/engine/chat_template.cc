#include "engine/chat_template.h"

#include <array>
#include <cctype>
#include <utility>

namespace llmcache::engine {
namespace {

constexpr std::array<std::pair<std::string_view, ChatTemplate>, 12> kNames = {{
    {"chatml", ChatTemplate::kChatML},
    {"llama3", ChatTemplate::kLlama3},
    {"llama2", ChatTemplate::kLlama2},
    {"llama2-sys", ChatTemplate::kLlama2Sys},
    {"llama2-sys-bos", ChatTemplate::kLlama2SysBos},
    {"llama2-sys-strip", ChatTemplate::kLlama2SysStrip},
    {"mistral-v1", ChatTemplate::kMistralV1},
    {"mistral-v3", ChatTemplate::kMistralV3},
    {"mistral-v3-tekken", ChatTemplate::kMistralV3Tekken},
    {"mistral-v7", ChatTemplate::kMistralV7},
    {"mistral-v7-tekken", ChatTemplate::kMistralV7Tekken},
    {"zephyr", ChatTemplate::kZephyr},
}};

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

Status Unsupported(std::string_view family) {
  return Status::InvalidArgument("chat template family '" + std::string(family) +
                                 "' is not supported (supported: chatml, llama3, llama2, "
                                 "mistral, zephyr)");
}

}  // namespace

std::string_view ChatTemplateName(ChatTemplate t) {
  for (const auto& [name, value] : kNames) {
    if (value == t) return name;
  }
  return "unknown";
}

// The marker checks and their order follow llama.cpp's detection, so a
// template is classified the same way there and here.
Result<ChatTemplate> DetectChatTemplate(std::string_view tmpl) {
  for (const auto& [name, value] : kNames) {
    if (tmpl == name) return value;
  }
  auto has = [&](std::string_view s) { return tmpl.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) {
    if (has("<|im_sep|>")) return Err(Unsupported("phi4"));
    if (has("<end_of_utterance>")) return Err(Unsupported("smolvlm"));
    return ChatTemplate::kChatML;
  }
  if (tmpl.starts_with("mistral") || has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return ChatTemplate::kMistralV7;
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      if (has(" [INST]")) return ChatTemplate::kMistralV1;
      if (has("\"[INST]\"")) return ChatTemplate::kMistralV3Tekken;
      return ChatTemplate::kMistralV3;
    }
    if (has("content.strip()")) return ChatTemplate::kLlama2SysStrip;
    if (has("bos_token + '[INST]")) return ChatTemplate::kLlama2SysBos;
    if (has("<<SYS>>")) return ChatTemplate::kLlama2Sys;
    return ChatTemplate::kLlama2;
  }
  if (has("<|assistant|>") && has("<|end|>")) return Err(Unsupported("phi3"));
  if (has("[gMASK]<sop>")) return Err(Unsupported("chatglm4"));
  if (has("<|assistant|>") && has("<|user|>")) return Err(Unsupported("falcon3/glmedge"));
  if (has("<|user|>") && has("<|endoftext|>")) return ChatTemplate::kZephyr;
  if (has("<start_of_turn>")) return Err(Unsupported("gemma"));
  if (has("<|START_OF_TURN_TOKEN|>")) return Err(Unsupported("command-r"));
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return ChatTemplate::kLlama3;
  std::string head(tmpl.substr(0, 60));
  for (auto& c : head) {
    if (c == '\n') c = ' ';
  }
  return Err(Status::InvalidArgument("unknown chat template (starts with \"" + head + "\")"));
}

std::string RenderChat(ChatTemplate t, std::span<const ChatMessage> messages, bool add_assistant) {
  std::string out;
  switch (t) {
    case ChatTemplate::kChatML:
      for (const auto& m : messages) {
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      }
      if (add_assistant) out += "<|im_start|>assistant\n";
      break;
    case ChatTemplate::kLlama3:
      for (const auto& m : messages) {
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + Trim(m.content) +
               "<|eot_id|>";
      }
      if (add_assistant) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case ChatTemplate::kZephyr:
      for (const auto& m : messages) {
        out += "<|" + m.role + "|>\n" + m.content + "<|endoftext|>\n";
      }
      if (add_assistant) out += "<|assistant|>\n";
      break;
    case ChatTemplate::kMistralV7:
    case ChatTemplate::kMistralV7Tekken: {
      const std::string sp = t == ChatTemplate::kMistralV7 ? " " : "";
      for (const auto& m : messages) {
        if (m.role == "system") {
          out += "[SYSTEM_PROMPT]" + sp + m.content + "[/SYSTEM_PROMPT]";
        } else if (m.role == "user") {
          out += "[INST]" + sp + m.content + "[/INST]";
        } else {
          out += sp + m.content + "</s>";
        }
      }
      break;
    }
    case ChatTemplate::kMistralV1:
    case ChatTemplate::kMistralV3:
    case ChatTemplate::kMistralV3Tekken: {
      const std::string lead = t == ChatTemplate::kMistralV1 ? " " : "";
      const std::string trail = t == ChatTemplate::kMistralV3Tekken ? "" : " ";
      bool in_turn = false;
      for (const auto& m : messages) {
        if (!in_turn) {
          out += lead + "[INST]" + trail;
          in_turn = true;
        }
        if (m.role == "system") {
          out += m.content + "\n\n";
        } else if (m.role == "user") {
          out += m.content + lead + "[/INST]";
        } else {
          out += trail + (t == ChatTemplate::kMistralV3 ? Trim(m.content) : m.content) + "</s>";
          in_turn = false;
        }
      }
      break;
    }
    case ChatTemplate::kLlama2:
    case ChatTemplate::kLlama2Sys:
    case ChatTemplate::kLlama2SysBos:
    case ChatTemplate::kLlama2SysStrip: {
      const bool system = t != ChatTemplate::kLlama2;
      bool in_turn = true;  // the caller's BOS starts the first turn
      out += "[INST] ";
      for (const auto& m : messages) {
        const std::string content =
            t == ChatTemplate::kLlama2SysStrip ? Trim(m.content) : m.content;
        if (!in_turn) {
          in_turn = true;
          out += t == ChatTemplate::kLlama2SysBos ? "<s>[INST] " : "[INST] ";
        }
        if (m.role == "system") {
          out += system ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
        } else if (m.role == "user") {
          out += content + " [/INST]";
        } else {
          out += content + "</s>";
          in_turn = false;
        }
      }
      break;
    }
  }
  return out;
}

}  // namespace llmcache::engine
