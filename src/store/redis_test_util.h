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
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
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

// ---- replication and Sentinel (only ports: shared with the e2e tests) ----

// The command line (after the binary) of a sentinel on `port` monitoring
// `master` at 127.0.0.1:primary_port with quorum 1, its config file (which
// the sentinel rewrites) and log in `dir`. Down after 1 s and failover
// retried after 2 s, so that a test's failover takes seconds, not minutes.
inline std::vector<std::string> SentinelArgs(int port, const std::string& dir,
                                             const std::string& master, int primary_port) {
  const std::string conf = dir + "/sentinel.conf";
  std::ofstream out(conf);
  out << "port " << port << "\n"
      << "bind 127.0.0.1\n"
      << "daemonize no\n"
      << "logfile \"" << dir << "/sentinel.log\"\n"
      << "dir \"" << dir << "\"\n"
      << "sentinel monitor " << master << " 127.0.0.1 " << primary_port << " 1\n"
      << "sentinel down-after-milliseconds " << master << " 1000\n"
      << "sentinel failover-timeout " << master << " 2000\n";
  return {conf, "--sentinel"};
}

// Sentinel's timings are for production: a scheduling stall of more than
// 2 s on a loaded CI machine puts it in TILT mode, where it does nothing
// for 30 s, and replica state is refreshed only every 10 s. Shorter
// periods keep a test's failover within its budget. The error text, or ""
// when it took.
inline std::string SpeedUpSentinel(int sentinel_port) {
  auto r =
      RedisCall(sentinel_port, {"SENTINEL", "DEBUG", "tilt-period", "1000", "info-period", "1000"});
  return r && r->type != REDIS_REPLY_ERROR ? std::string() : ReplyText(r);
}

// A field of the only replica of `master` as the sentinel sees it (SENTINEL
// REPLICAS), or "".
inline std::string SentinelReplicaField(int sentinel_port, const std::string& master,
                                        std::string_view field) {
  auto r = RedisCall(sentinel_port, {"SENTINEL", "replicas", master});
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 1) return "";
  const redisReply* fields = r->element[0];
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    if (std::string_view(fields->element[i]->str, fields->element[i]->len) == field) {
      return std::string(fields->element[i + 1]->str, fields->element[i + 1]->len);
    }
  }
  return "";
}

// Whether the sentinel would fail over to its replica now: one it has not
// yet heard from itself (flags other than plain "slave", or no link to the
// primary in its INFO) is no candidate, and the failover would abort and
// retry only later.
inline bool SentinelSeesAHealthyReplica(int sentinel_port, const std::string& master) {
  return SentinelReplicaField(sentinel_port, master, "flags") == "slave" &&
         SentinelReplicaField(sentinel_port, master, "master-link-status") == "ok";
}

// A numeric field of INFO replication (master_repl_offset on a primary,
// slave_repl_offset on a replica), or -1.
inline int64_t ReplicationOffset(int port, const std::string& field) {
  const std::string info = ReplyText(RedisCall(port, {"INFO", "replication"}));
  const auto at = info.find(field + ":");
  if (at == std::string::npos) return -1;
  return std::strtoll(info.c_str() + at + field.size() + 1, nullptr, 10);
}

inline bool IsPrimary(int port) {
  auto r = RedisCall(port, {"ROLE"});
  return r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
         std::string_view(r->element[0]->str, r->element[0]->len) == "master";
}

inline bool ReplicaLinkUp(int replica_port) {
  return ReplyText(RedisCall(replica_port, {"INFO", "replication"}))
             .find("master_link_status:up") != std::string::npos;
}

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

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

// Whether the replica on replica_port has received every write the primary
// had made when this was called. Replication is asynchronous: a write the
// replica has not yet received is lost in a failover. (WAIT cannot tell, as
// it only covers writes made on its own connection.) Polls up to
// timeout_ms.
inline bool ReplicaCaughtUp(int primary_port, int replica_port, int64_t timeout_ms = 10000) {
  const int64_t written = ReplicationOffset(primary_port, "master_repl_offset");
  if (written <= 0) return false;
  return WaitFor([&] { return ReplicationOffset(replica_port, "slave_repl_offset") >= written; },
                 timeout_ms);
}

}  // namespace llmcache::store_test
