// A redis-server (or sentinel) child process for the end-to-end tests: on a
// free loopback port, without persistence (a restarted one is empty, as after
// a crash of a cache-only deployment). It dies with the test process
// (PR_SET_PDEATHSIG) and with this object.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "e2e/harness.h"
// FreeLoopbackPort and RedisCall only: its RedisProcess needs the store
// conformance library, which the e2e binaries do not link.
#include "store/redis_test_util.h"

namespace llmcache::e2e {

class RedisServer {
 public:
  // The command line after the binary for a port and the server's own
  // directory (e.g. store_test::SentinelArgs).
  using ArgsFor = std::function<std::vector<std::string>(uint16_t port, const std::string& dir)>;

  // A plain redis-server; `extra` flags appended (e.g. --replicaof).
  explicit RedisServer(std::vector<std::string> extra = {})
      : args_for_([extra](uint16_t port, const std::string& dir) {
          std::vector<std::string> a = {
              "--port",    std::to_string(port), "--bind",      "127.0.0.1", "--save",
              "",          "--appendonly",       "no",          "--dir",     dir,
              "--logfile", dir + "/redis.log",   "--daemonize", "no"};
          a.insert(a.end(), extra.begin(), extra.end());
          return a;
        }) {}
  explicit RedisServer(ArgsFor args_for) : args_for_(std::move(args_for)) {}
  ~RedisServer() { Kill(); }

  // Starts on a free port; retried because another process may take the
  // port between our probe and Redis's bind.
  bool Start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = static_cast<uint16_t>(store_test::FreeLoopbackPort());
      if (port_ != 0 && Launch()) return true;
      Kill();
    }
    return false;
  }

  // Starts again on the same port, retrying while the old socket lingers.
  bool Restart() {
    return WaitFor(
        [&] {
          if (Launch()) return true;
          Kill();
          return false;
        },
        std::chrono::seconds(10), std::chrono::milliseconds(100));
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_.path(); }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  // A command on a fresh connection; null when Redis cannot be reached.
  RedisReplyPtr Call(const std::vector<std::string>& argv) const {
    return store_test::RedisCall(port_, argv);
  }
  // An integer reply; -1 on any failure.
  int64_t Integer(const std::string& command) const {
    auto r = Call({command});
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  }

 private:
  // Spawns redis-server and waits (bounded) until it answers.
  bool Launch() {
    std::vector<std::string> args = args_for_(port_, dir_.path());
    args.insert(args.begin(), "redis-server");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      // Quiet, and without the test's descriptors (gateway sockets, pipes).
      const int null = ::open("/dev/null", O_RDWR);
      for (int fd = 0; fd <= 2; ++fd) ::dup2(null, fd);
      ::close_range(3, ~0u, 0);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    return WaitFor(
               [&] {
                 if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                   pid_ = -1;  // exited: port taken, or no redis-server
                   return true;
                 }
                 // PING: a sentinel has no DBSIZE.
                 auto pong = Call({"PING"});
                 return pong && pong->type == REDIS_REPLY_STATUS;
               },
               std::chrono::seconds(10), std::chrono::milliseconds(20)) &&
           pid_ > 0;
  }

  ArgsFor args_for_;
  TempDir dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace llmcache::e2e
