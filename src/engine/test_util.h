// Test helpers: where the llama.cpp reference data lives and a small RAII
// wrapper over dlopen for calling its prebuilt libraries.
#pragma once

#include <dlfcn.h>

#include <filesystem>
#include <string>

namespace llmcache::engine::enginetest {

inline std::filesystem::path LlamaCppDir() { return LLMCACHE_LLAMA_CPP_DIR; }
inline std::filesystem::path LlamaLibDir() {
  return LlamaCppDir() / "linux-x64" / "bins" / "linux-x64";
}
inline std::filesystem::path VocabDir() { return LlamaCppDir() / "llama.cpp" / "models"; }

class SharedLib {
 public:
  explicit SharedLib(const std::filesystem::path& path)
      : handle_(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    if (handle_ == nullptr) error_ = dlerror();
  }
  ~SharedLib() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  SharedLib(const SharedLib&) = delete;
  SharedLib& operator=(const SharedLib&) = delete;

  bool ok() const { return handle_ != nullptr; }
  const std::string& error() const { return error_; }
  template <class Fn>
  Fn* Get(const char* name) const {
    return reinterpret_cast<Fn*>(dlsym(handle_, name));
  }

 private:
  void* handle_;
  std::string error_;
};

}  // namespace llmcache::engine::enginetest

// Skips the test when the reference directory was not installed.
#define LLMCACHE_REQUIRE_PATH(p)                                                                   \
  do {                                                                                             \
    if (!std::filesystem::exists(p)) {                                                             \
      GTEST_SKIP() << "reference data missing: " << (p).string() << " (run scripts/install-deps)"; \
    }                                                                                              \
  } while (0)
