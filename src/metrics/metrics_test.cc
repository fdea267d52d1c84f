#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace llmcache::metrics {
namespace {

TEST(MetricsFormat, Numbers) {
  EXPECT_EQ(FormatNumber(0), "0");
  EXPECT_EQ(FormatNumber(-0.0), "0");
  EXPECT_EQ(FormatNumber(1), "1");
  EXPECT_EQ(FormatNumber(-42), "-42");
  EXPECT_EQ(FormatNumber(1e15), "1000000000000000");
  EXPECT_EQ(FormatNumber(123456789012.0), "123456789012");
  EXPECT_EQ(FormatNumber(0.5), "0.5");
  EXPECT_EQ(FormatNumber(0.1), "0.1");
  EXPECT_EQ(FormatNumber(2.5), "2.5");
  EXPECT_EQ(FormatNumber(0.00005), "5e-05");
  EXPECT_EQ(FormatNumber(0.0001), "0.0001");
  EXPECT_EQ(FormatNumber(0.00025), "0.00025");
  EXPECT_EQ(FormatNumber(1.5e20), "150000000000000000000");
  EXPECT_EQ(FormatNumber(1e21), "1e+21");
  EXPECT_EQ(FormatNumber(-1.25e-7), "-1.25e-07");
  EXPECT_EQ(FormatNumber(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatNumber(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatNumber(std::nan("")), "NaN");
  // Doubles round-trip.
  for (double v : {0.1 + 0.2, 1.0 / 3, 123.456e-7, 6.02214076e23, 1e300, 5e-324}) {
    EXPECT_EQ(std::strtod(FormatNumber(v).c_str(), nullptr), v) << FormatNumber(v);
  }
}

TEST(MetricsFormat, LabelAndHelpEscaping) {
  std::string s;
  AppendEscapedLabelValue(s, "a\\b\"c\nd\te");
  EXPECT_EQ(s, "a\\\\b\\\"c\\nd\te");
  s.clear();
  AppendEscapedHelp(s, "x \"q\" \\ y\nz");
  EXPECT_EQ(s, "x \"q\" \\\\ y\\nz");
}

TEST(MetricsRegistry, GoldenExposition) {
  Registry r;
  auto& req = r.AddCounter("llmcache_requests_total", "Requests by route, model and result.",
                           {"route", "model", "result"});
  req.With({"chat", "llama3", "hit"}).Inc();
  req.With({"chat", "llama3", "hit"}).Inc(2);
  req.With({"chat", "llama3", "miss"}).Inc(uint64_t{5});
  req.With({"completions", "gpt-4o-mini", "error"});  // created, stays 0
  auto& cost = r.AddCounter("llmcache_cost_saved_usd_total", "Money saved.", {"model"});
  cost.With({"llama3"}).Inc(0.25);
  cost.With({"llama3"}).Inc(0.5);
  cost.With({"llama3"}).Inc(1);
  auto& conns = r.AddGauge("llmcache_http_connections", "Open client connections.");
  conns.With({}).Inc();
  conns.With({}).Inc();
  conns.With({}).Dec();
  auto& lat = r.AddHistogram("llmcache_hit_duration_seconds", "Hit latency.", {"route"}, {0.001, 0.01, 0.1});
  lat.With({"chat"}).Observe(0.0005);
  lat.With({"chat"}).Observe(0.001);  // on a bound: counted in le="0.001"
  lat.With({"chat"}).Observe(0.05);
  lat.With({"chat"}).Observe(7.0);
  r.AddCallbackGauge("llmcache_tier_entries", "Entries per tier.", {"tier"}, [] {
    return std::vector<CallbackSample>{{{"memory"}, 10}, {{"rocksdb"}, 1234567}};
  });

  const std::string expected =
      "# HELP llmcache_requests_total Requests by route, model and result.\n"
      "# TYPE llmcache_requests_total counter\n"
      "llmcache_requests_total{route=\"chat\",model=\"llama3\",result=\"hit\"} 3\n"
      "llmcache_requests_total{route=\"chat\",model=\"llama3\",result=\"miss\"} 5\n"
      "llmcache_requests_total{route=\"completions\",model=\"gpt-4o-mini\",result=\"error\"} 0\n"
      "# HELP llmcache_cost_saved_usd_total Money saved.\n"
      "# TYPE llmcache_cost_saved_usd_total counter\n"
      "llmcache_cost_saved_usd_total{model=\"llama3\"} 1.75\n"
      "# HELP llmcache_http_connections Open client connections.\n"
      "# TYPE llmcache_http_connections gauge\n"
      "llmcache_http_connections 1\n"
      "# HELP llmcache_hit_duration_seconds Hit latency.\n"
      "# TYPE llmcache_hit_duration_seconds histogram\n"
      "llmcache_hit_duration_seconds_bucket{route=\"chat\",le=\"0.001\"} 2\n"
      "llmcache_hit_duration_seconds_bucket{route=\"chat\",le=\"0.01\"} 2\n"
      "llmcache_hit_duration_seconds_bucket{route=\"chat\",le=\"0.1\"} 3\n"
      "llmcache_hit_duration_seconds_bucket{route=\"chat\",le=\"+Inf\"} 4\n"
      "llmcache_hit_duration_seconds_sum{route=\"chat\"} 7.0515\n"
      "llmcache_hit_duration_seconds_count{route=\"chat\"} 4\n"
      "# HELP llmcache_tier_entries Entries per tier.\n"
      "# TYPE llmcache_tier_entries gauge\n"
      "llmcache_tier_entries{tier=\"memory\"} 10\n"
      "llmcache_tier_entries{tier=\"rocksdb\"} 1234567\n";
  EXPECT_EQ(r.Serialize(), expected);
}

TEST(MetricsRegistry, EmptyLabelledFamilyHasHeaderOnly) {
  Registry r;
  r.AddCounter("llmcache_evictions_total", "Evictions.", {"tier"});
  EXPECT_EQ(r.Serialize(),
            "# HELP llmcache_evictions_total Evictions.\n"
            "# TYPE llmcache_evictions_total counter\n");
}

TEST(MetricsRegistry, LabelValuesAreEscapedInOutput) {
  Registry r;
  auto& bad = r.AddCounter("llmcache_bad_requests_total", "Bad requests\nby reason \\ kind.", {"reason"});
  bad.With({"quote\" back\\slash\nnewline"}).Inc();
  EXPECT_EQ(r.Serialize(),
            "# HELP llmcache_bad_requests_total Bad requests\\nby reason \\\\ kind.\n"
            "# TYPE llmcache_bad_requests_total counter\n"
            "llmcache_bad_requests_total{reason=\"quote\\\" back\\\\slash\\nnewline\"} 1\n");
}

TEST(MetricsRegistry, WithReturnsStableReference) {
  Registry r;
  auto& f = r.AddCounter("c_total", "c", {"a", "b"});
  Counter& c1 = f.With({"x", "y"});
  for (int i = 0; i < 1000; ++i) f.With({"x", std::to_string(i)});
  Counter& c2 = f.With({"x", "y"});
  EXPECT_EQ(&c1, &c2);
  std::vector<std::string> vals = {"x", "y"};
  EXPECT_EQ(&f.With(vals), &c1);
  std::string a = "x";
  std::string_view b = "y";
  EXPECT_EQ(&f.With({a, b}), &c1);
  // Distinct tuples that would collide if values were simply concatenated.
  EXPECT_NE(&f.With({"xy", ""}), &f.With({"x", "y"}));
  EXPECT_EQ(f.ChildCount(), 1002u);
}

TEST(MetricsRegistry, ReRegisteringSameShapeReturnsSameFamily) {
  Registry r;
  auto& a = r.AddCounter("x_total", "x", {"l"});
  auto& b = r.AddCounter("x_total", "x again", {"l"});
  EXPECT_EQ(&a, &b);
  auto& h1 = r.AddHistogram("h_seconds", "h", {}, {1, 2});
  auto& h2 = r.AddHistogram("h_seconds", "h", {}, {1, 2});
  EXPECT_EQ(&h1, &h2);
}

TEST(MetricsRegistryDeathTest, Misuse) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddCounter("x_total", "x", {"a"}).With({"1", "2"});
      },
      "expects 1 label values, got 2");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddCounter("bad-name", "x");
      },
      "invalid metric name");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddGauge("g", "x", {"__reserved"});
      },
      "invalid label name");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddHistogram("h", "x", {"le"});
      },
      "may not use the label");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddCounter("x_total", "x", {"a"});
        r.AddGauge("x_total", "x", {"a"});
      },
      "registered twice");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddHistogram("h", "x", {}, {1, 0.5});
      },
      "strictly increasing");
}

TEST(MetricsCounter, IgnoresNegativeAndNaN) {
  Counter c;
  c.Inc(-1);
  c.Inc(-0.5);
  c.Inc(std::nan(""));
  c.Inc(0.0);
  EXPECT_EQ(c.Value(), 0);
  c.Inc(3.0);  // integral doubles stay exact
  c.Inc(uint64_t{1} << 40);
  EXPECT_EQ(c.IntegralValue(), (uint64_t{1} << 40) + 3);
}

TEST(MetricsCounter, LargeIntegerPrintsExactly) {
  Registry r;
  auto& c = r.AddCounter("big_total", "big");
  c.With({}).Inc(uint64_t{18446744073709551615ULL});
  EXPECT_NE(r.Serialize().find("big_total 18446744073709551615\n"), std::string::npos);
}

TEST(MetricsGauge, SetIncDec) {
  Gauge g;
  g.Set(5);
  g.Inc(2.5);
  g.Dec();
  EXPECT_DOUBLE_EQ(g.Value(), 6.5);
  g.Set(-3);
  EXPECT_EQ(g.Value(), -3);
}

TEST(MetricsHistogram, BucketsAreCumulative) {
  Registry r;
  auto& h = r.AddHistogram("lat_seconds", "lat").With({});
  const auto& b = DefaultLatencyBuckets();
  ASSERT_EQ(b.front(), 0.00005);
  ASSERT_EQ(b.back(), 30);
  // One observation just below each bound, and two beyond the last.
  for (double bound : b) h.Observe(bound * 0.99);
  h.Observe(31);
  h.Observe(std::numeric_limits<double>::infinity());
  h.Observe(std::nan(""));  // ignored
  std::vector<uint64_t> counts = h.CumulativeCounts();
  ASSERT_EQ(counts.size(), b.size() + 1);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(counts[i], i + 1) << "bucket " << i;
  EXPECT_EQ(counts.back(), b.size() + 2);
  EXPECT_EQ(h.Count(), b.size() + 2);

  // In the text output each bucket is >= the previous and +Inf == _count.
  std::string text = r.Serialize();
  uint64_t prev = 0, inf = 0, count = 0;
  size_t buckets = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.starts_with("lat_seconds_bucket{")) {
      uint64_t v = std::stoull(line.substr(line.rfind(' ') + 1));
      EXPECT_GE(v, prev) << line;
      prev = v;
      ++buckets;
      if (line.find("le=\"+Inf\"") != std::string::npos) inf = v;
    } else if (line.starts_with("lat_seconds_count ")) {
      count = std::stoull(line.substr(line.rfind(' ') + 1));
    }
  }
  EXPECT_EQ(buckets, b.size() + 1);
  EXPECT_EQ(inf, count);
  EXPECT_EQ(count, b.size() + 2);
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"5e-05\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"30\"} 18\n"), std::string::npos) << text;
}

TEST(MetricsHistogram, ChronoDurationsAndScopedTimer) {
  Histogram h(std::make_shared<const std::vector<double>>(std::vector<double>{0.001, 1}));
  h.Observe(std::chrono::microseconds(500));
  h.Observe(std::chrono::milliseconds(2));
  { ScopedTimer t(h); }
  auto c = h.CumulativeCounts();
  EXPECT_EQ(c[0], 2u);  // 500us and the (tiny) timer
  EXPECT_EQ(c[1], 3u);
  EXPECT_NEAR(h.Sum(), 0.0025, 0.001);
}

TEST(MetricsBuckets, Generators) {
  EXPECT_EQ(ExponentialBuckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(LinearBuckets(0.5, 0.5, 3), (std::vector<double>{0.5, 1.0, 1.5}));
}

TEST(MetricsConcurrency, ConcurrentIncrementsAreExact) {
  Registry r;
  auto& fam = r.AddCounter("conc_total", "c", {"route"});
  auto& hist = r.AddHistogram("conc_seconds", "h", {"route"}, {0.5});
  auto& gauge = r.AddGauge("conc_gauge", "g");
  constexpr int kThreads = 8;
  constexpr int kIters = 50000;
  std::atomic<bool> stop_scraping{false};
  std::thread scraper([&] {
    while (!stop_scraping.load()) {
      std::string s = r.Serialize();
      ASSERT_FALSE(s.empty());
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter& kept = fam.With({"kept"});
      for (int i = 0; i < kIters; ++i) {
        kept.Inc();
        // Lookup path, including first-use creation races.
        fam.With({"route" + std::to_string(i % 16)}).Inc();
        fam.With({"halves"}).Inc(0.5);
        hist.With({"chat"}).Observe((i + t) % 2 ? 0.25 : 1.0);
        gauge.With({}).Inc();
        gauge.With({}).Dec();
      }
    });
  }
  for (auto& th : threads) th.join();
  stop_scraping = true;
  scraper.join();

  EXPECT_EQ(fam.With({"kept"}).IntegralValue(), uint64_t{kThreads} * kIters);
  uint64_t spread = 0;
  for (int i = 0; i < 16; ++i) spread += fam.With({"route" + std::to_string(i)}).IntegralValue();
  EXPECT_EQ(spread, uint64_t{kThreads} * kIters);
  EXPECT_EQ(fam.With({"halves"}).Value(), kThreads * kIters * 0.5);
  Histogram& h = hist.With({"chat"});
  EXPECT_EQ(h.Count(), uint64_t{kThreads} * kIters);
  EXPECT_EQ(h.CumulativeCounts()[0], uint64_t{kThreads} * kIters / 2);
  EXPECT_EQ(gauge.With({}).Value(), 0);
  EXPECT_EQ(fam.ChildCount(), 18u);
  std::string text = r.Serialize();
  EXPECT_NE(text.find("conc_total{route=\"kept\"} 400000\n"), std::string::npos);
  EXPECT_NE(text.find("conc_total{route=\"halves\"} 200000\n"), std::string::npos);
  EXPECT_NE(text.find("conc_seconds_count{route=\"chat\"} 400000\n"), std::string::npos);
}

TEST(MetricsCallback, ValuesAreReadAtScrapeTime) {
  Registry r;
  std::atomic<uint64_t> entries{1};
  std::atomic<uint64_t> evictions{0};
  r.AddCallbackGauge("llmcache_tier_bytes", "Bytes per tier.", {"tier"}, [&] {
    return std::vector<CallbackSample>{{{"memory"}, static_cast<double>(entries.load() * 100)}};
  });
  r.AddCallbackCounter("llmcache_evictions_total", "Evictions per tier.", {"tier"}, [&] {
    return std::vector<CallbackSample>{{{"memory"}, static_cast<double>(evictions.load())},
                                       {{"too", "many"}, 1}};  // wrong arity: skipped
  });
  r.AddCallbackGauge("llmcache_up", "Always one.", [] { return 1.0; });
  EXPECT_EQ(r.Serialize(),
            "# HELP llmcache_tier_bytes Bytes per tier.\n"
            "# TYPE llmcache_tier_bytes gauge\n"
            "llmcache_tier_bytes{tier=\"memory\"} 100\n"
            "# HELP llmcache_evictions_total Evictions per tier.\n"
            "# TYPE llmcache_evictions_total counter\n"
            "llmcache_evictions_total{tier=\"memory\"} 0\n"
            "# HELP llmcache_up Always one.\n"
            "# TYPE llmcache_up gauge\n"
            "llmcache_up 1\n");
  entries = 7;
  evictions = 3;
  std::string s = r.Serialize();
  EXPECT_NE(s.find("llmcache_tier_bytes{tier=\"memory\"} 700\n"), std::string::npos);
  EXPECT_NE(s.find("llmcache_evictions_total{tier=\"memory\"} 3\n"), std::string::npos);

  EXPECT_TRUE(r.RemoveCallback("llmcache_tier_bytes"));
  EXPECT_FALSE(r.RemoveCallback("llmcache_tier_bytes"));
  EXPECT_EQ(r.Serialize().find("llmcache_tier_bytes"), std::string::npos);
}

TEST(MetricsCallback, ThrowingCallbackReportsNothing) {
  Registry r;
  r.AddCallbackGauge("g", "g", {}, []() -> std::vector<CallbackSample> { throw std::runtime_error("x"); });
  EXPECT_EQ(r.Serialize(), "# HELP g g\n# TYPE g gauge\n");
}

TEST(MetricsContentType, IsPrometheus004) {
  EXPECT_EQ(kContentType, "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace
}  // namespace llmcache::metrics
