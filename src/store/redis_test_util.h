// Real redis-server / redis-sentinel processes for tests: each on a free
// loopback port, in its own temporary directory, without persistence; the
// binaries come from PATH. Stopped (SIGKILL) on destruction.
#pragma once

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_store_pool.h"
#include "store/store_conformance_test.h"

extern char** environ;

namespace llmcache::store_test {

// A port nobody listened on a moment ago (the kernel's pick for port 0).
inline int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// One command on a fresh connection; null when the server cannot be
// reached. For test setup and inspection only.
inline RedisReplyPtr RedisCall(int port, const std::vector<std::string>& argv,
                               const std::string& password = {}) {
  timeval tv{1, 0};
  std::unique_ptr<redisContext, decltype(&redisFree)> ctx(
      redisConnectWithTimeout("127.0.0.1", port, tv), &redisFree);
  if (!ctx || ctx->err) return nullptr;
  redisSetTimeout(ctx.get(), tv);
  auto run = [&](const std::vector<std::string>& args) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    return RedisReplyPtr(static_cast<redisReply*>(
        redisCommandArgv(ctx.get(), static_cast<int>(args.size()), ptrs.data(), lens.data())));
  };
  if (!password.empty() && !run({"AUTH", password})) return nullptr;
  return run(argv);
}

inline std::string ReplyText(const RedisReplyPtr& r) {
  if (!r) return "<no reply>";
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  if (r->type == REDIS_REPLY_NIL) return "<nil>";
  if (r->str) return std::string(r->str, r->len);
  return "<array>";
}

class RedisProcess {
 public:
  // args_for(port, dir) gives the command line after the binary.
  using ArgsFor = std::function<std::vector<std::string>(int port, const std::string& dir)>;

  // A plain redis-server without persistence; extra flags appended.
  static std::unique_ptr<RedisProcess> Server(std::vector<std::string> extra = {}) {
    return std::make_unique<RedisProcess>(
        "redis-server", [extra](int port, const std::string& dir) {
          std::vector<std::string> a = {
              "--port",    std::to_string(port), "--bind",      "127.0.0.1", "--save",
              "",          "--appendonly",       "no",          "--dir",     dir,
              "--logfile", dir + "/redis.log",   "--daemonize", "no"};
          a.insert(a.end(), extra.begin(), extra.end());
          return a;
        });
  }

  RedisProcess(std::string binary, ArgsFor args_for)
      : binary_(std::move(binary)), args_for_(std::move(args_for)) {}
  ~RedisProcess() { Kill(); }

  // Starts on a free port (or the previous one after Kill/Stop) and waits
  // until it answers PING. False when it never does.
  bool Start(std::string password = {}) {
    password_ = std::move(password);
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = FreeLoopbackPort();  // another test may grab it first: retry
      if (Launch() && WaitReady()) return true;
      Kill();
    }
    return false;
  }

  // Starts again on the same port (e.g. after Kill).
  bool Restart() {
    const int port = port_;
    bool ok = false;
    for (int i = 0; i < 50 && !ok; ++i) {
      port_ = port;
      ok = Launch() && WaitReady();
      if (!ok) {
        Kill();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    return ok;
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  int port() const { return port_; }
  const std::string& dir() const { return dir_.path(); }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  RedisReplyPtr Call(const std::vector<std::string>& argv) const {
    return RedisCall(port_, argv, password_);
  }

 private:
  bool Launch() {
    std::vector<std::string> args = args_for_(port_, dir_.path());
    args.insert(args.begin(), binary_);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, binary_.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return false;
    pid_ = pid;
    return true;
  }

  bool WaitReady() {
    for (int i = 0; i < 250; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;  // exited (port taken, bad flags)
        return false;
      }
      auto r = Call({"PING"});
      if (r && r->type == REDIS_REPLY_STATUS) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  std::string binary_;
  ArgsFor args_for_;
  TempDir dir_;
  std::string password_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Polls cond every 20 ms until it holds or timeout_ms passes; returns
// whether it held. For waiting on other processes, never for asserting
// speed.
inline bool WaitFor(const std::function<bool()>& cond, int64_t timeout_ms = 10000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

}  // namespace llmcache::store_test
