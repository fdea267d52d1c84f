// The engine's /metrics (`llmcache engine serve`): prefix-cache queries and
// hits in tokens, by tier, across a disk reload and a corrupt block, and the
// request, token and block counts beside them.
#include "engine/server/engine_metrics.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "engine/server/engine_server.h"
#include "engine/server/open_backend.h"
#include "engine/server/server_test_util.h"

namespace llmcache::engine {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

class EngineMetricsTest : public servertest::TinyModelTest {
 protected:
  void TearDown() override {
    server_.reset();
    if (!disk_dir_.empty()) fs::remove_all(disk_dir_);
  }

  void Start(const std::string& disk_dir = {}) {
    auto backend =
        OpenEngineBackend(*model_, {.n_ctx = 128, .threads = 2, .kv_disk_dir = disk_dir});
    ASSERT_TRUE(backend.has_value()) << backend.error().ToString();
    auto api = EngineApi::Create(model_, std::move(*backend), {});
    ASSERT_TRUE(api.has_value()) << api.error().ToString();
    http::ServerOptions so;
    so.port = 0;
    so.threads = 1;
    server_ = std::make_unique<EngineServer>(*api, so);
    ASSERT_TRUE(server_->Start().ok());
  }
  // Like a process exit: the engine writes its cached blocks to the disk tier.
  void Stop() { server_.reset(); }

  std::string DiskDir() {
    disk_dir_ =
        (fs::temp_directory_path() / ("llmcache-engine-metrics-" + std::to_string(::getpid())))
            .string();
    fs::remove_all(disk_dir_);
    return disk_dir_;
  }

  // A greedy /v1/completions call on token ids; returns the usage.
  json::object Complete(const std::vector<int32_t>& prompt, int max_tokens = 4) {
    const json::object body{
        {"prompt", json::value_from(prompt)}, {"max_tokens", max_tokens}, {"temperature", 0}};
    auto r = servertest::Call(server_->port(), "POST", "/v1/completions", json::serialize(body));
    EXPECT_EQ(r.status, 200u) << r.body;
    auto o = servertest::Obj(r.body);
    return o.contains("usage") ? o["usage"].as_object() : json::object{};
  }
  static uint64_t Cached(const json::object& usage) {
    return usage.at("prompt_tokens_details").at("cached_tokens").to_number<uint64_t>();
  }

  std::map<std::string, double> Scrape() { return servertest::Scrape(server_->port()); }

  std::unique_ptr<EngineServer> server_;
  std::string disk_dir_;
};

// n token ids from `first` on: arbitrary text tokens of the 32k vocabulary.
std::vector<int32_t> Ids(int32_t first, int n) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = first + i;
  return ids;
}

// A 45-token prompt sharing its first 35 tokens with Ids(1000, 40): two full
// 16-token blocks in common.
std::vector<int32_t> SharingTwoBlocks() {
  std::vector<int32_t> p = Ids(1000, 35);
  for (int32_t t : Ids(2000, 10)) p.push_back(t);
  return p;
}

constexpr const char* kHit = "llmcache_engine_prefix_cache_hit_tokens_total";
constexpr const char* kRamHit = "llmcache_engine_prefix_cache_tier_hit_tokens_total{tier=\"ram\"}";
constexpr const char* kDiskHit =
    "llmcache_engine_prefix_cache_tier_hit_tokens_total{tier=\"disk\"}";

TEST_F(EngineMetricsTest, SharedPrefixRaisesHitTokensByTheSharedFullBlocks) {
  Start();
  auto m = Scrape();
  EXPECT_EQ(m.at("llmcache_engine_prefix_cache_queried_tokens_total"), 0);
  EXPECT_EQ(m.at(kHit), 0);
  const double total_blocks = m.at("llmcache_engine_kv_ram_blocks{state=\"free\"}");
  EXPECT_GT(total_blocks, 8);
  EXPECT_EQ(m.count("llmcache_engine_kv_disk_blocks"), 0u);  // no disk tier

  const auto a = Complete(Ids(1000, 40));
  EXPECT_EQ(Cached(a), 0u);
  m = Scrape();
  EXPECT_EQ(m.at("llmcache_engine_prefix_cache_queried_tokens_total"), 40);
  EXPECT_EQ(m.at(kHit), 0);

  const auto b = Complete(SharingTwoBlocks());
  EXPECT_EQ(Cached(b), 32u);
  m = Scrape();
  EXPECT_EQ(m.at("llmcache_engine_prefix_cache_queried_tokens_total"), 85);
  EXPECT_EQ(m.at(kHit), 32);
  EXPECT_EQ(m.at(kRamHit), 32);
  EXPECT_EQ(m.at(kDiskHit), 0);
  EXPECT_EQ(m.at("llmcache_engine_prompt_tokens_total"), 85);
  EXPECT_EQ(m.at("llmcache_engine_generated_tokens_total"),
            a.at("completion_tokens").to_number<double>() +
                b.at("completion_tokens").to_number<double>());
  EXPECT_EQ(m.at("llmcache_engine_requests_total{result=\"stop\"}") +
                m.at("llmcache_engine_requests_total{result=\"length\"}"),
            2);
  EXPECT_EQ(m.at("llmcache_engine_requests_total{result=\"cancelled\"}"), 0);
  EXPECT_EQ(m.at("llmcache_engine_requests_total{result=\"error\"}"), 0);
  EXPECT_EQ(m.at("llmcache_engine_requests_running"), 0);
  EXPECT_EQ(m.at("llmcache_engine_requests_waiting"), 0);
  // Every reference returned; the prompts' full blocks stay cached.
  EXPECT_EQ(m.at("llmcache_engine_kv_ram_blocks{state=\"used\"}"), 0);
  EXPECT_GE(m.at("llmcache_engine_kv_ram_blocks{state=\"cached\"}"), 2);
  EXPECT_EQ(m.at("llmcache_engine_kv_ram_blocks{state=\"cached\"}") +
                m.at("llmcache_engine_kv_ram_blocks{state=\"free\"}"),
            total_blocks);
}

TEST_F(EngineMetricsTest, HitsAfterADiskReloadAndACorruptBlock) {
  const std::string dir = DiskDir();
  Start(dir);
  Complete(Ids(1000, 40));
  Stop();  // spills the cached blocks

  Start(dir);  // a restart: the disk tier is all there is
  auto m = Scrape();
  const double on_disk = m.at("llmcache_engine_kv_disk_blocks");
  EXPECT_GE(on_disk, 2);
  EXPECT_GT(m.at("llmcache_engine_kv_disk_bytes"), 0);
  EXPECT_EQ(m.at("llmcache_engine_kv_disk_loaded_blocks_total"), 0);
  EXPECT_EQ(Cached(Complete(SharingTwoBlocks())), 32u);
  m = Scrape();
  EXPECT_EQ(m.at(kHit), 32);
  EXPECT_EQ(m.at(kDiskHit), 32);
  EXPECT_EQ(m.at(kRamHit), 0);
  EXPECT_EQ(m.at("llmcache_engine_kv_disk_loaded_blocks_total"), 2);
  EXPECT_EQ(m.at("llmcache_engine_kv_disk_corrupt_blocks_dropped_total"), 0);
  Stop();

  // Flip a payload byte of every block file: the first lookup finds a bad
  // block, drops it and recomputes; the chain stops there.
  int flipped = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".kvb") continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    const auto pos = static_cast<std::streamoff>(fs::file_size(e.path()) / 2);
    f.seekg(pos);
    char c = 0;
    f.get(c);
    f.seekp(pos);
    f.put(static_cast<char>(c ^ 0x5a));
    ++flipped;
  }
  ASSERT_GE(flipped, 2);
  Start(dir);
  const double before = Scrape().at("llmcache_engine_kv_disk_blocks");
  EXPECT_EQ(Cached(Complete(SharingTwoBlocks())), 0u);
  m = Scrape();
  EXPECT_EQ(m.at("llmcache_engine_kv_disk_corrupt_blocks_dropped_total"), 1);
  EXPECT_EQ(m.at(kHit), 0);
  EXPECT_EQ(m.at("llmcache_engine_kv_disk_loaded_blocks_total"), 0);
  EXPECT_EQ(m.at("llmcache_engine_kv_disk_blocks"), before - 1);
}

}  // namespace
}  // namespace llmcache::engine
