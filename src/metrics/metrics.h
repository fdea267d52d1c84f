// A small Prometheus metrics library: a Registry owns metric families
// (Counter, Gauge, Histogram, and callback families collected at scrape
// time) and serializes them in the text exposition format 0.0.4.
//
// Hot paths: Family::With() is a shared-lock hash lookup that does not
// allocate for an existing child; callers that update the same child often
// should keep the returned reference, which stays valid as long as the
// Registry lives. Updates are relaxed atomics.
//
//   metrics::Registry reg;
//   auto& requests = reg.AddCounter("llmcache_requests_total", "Requests.", {"route", "model", "result"});
//   requests.With({"chat", model, "hit"}).Inc();
//   auto& hit_latency = reg.AddHistogram("llmcache_hit_duration_seconds", "Hit latency.", {"route"});
//   metrics::Histogram& chat_hits = hit_latency.With({"chat"});  // keep on hot paths
//   chat_hits.Observe(std::chrono::steady_clock::now() - start);
//   reg.AddCallbackGauge("llmcache_tier_entries", "Entries per tier.", {"tier"}, [&store] {...});
//   http_response(reg.Serialize(), metrics::kContentType);
//
// Misuse (an invalid metric or label name, a name registered twice with a
// different shape, a wrong number of label values) is a programming error:
// it prints a message to stderr and aborts. Nothing here throws.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace llmcache::metrics {

// The Content-Type of Registry::Serialize() output.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Upper bounds (seconds) from 50us to 30s; the default for histograms.
const std::vector<double>& DefaultLatencyBuckets();
// count bounds: start, start*factor, start*factor^2, ...
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// count bounds: start, start+width, ...
std::vector<double> LinearBuckets(double start, double width, int count);

// Monotonic counter. Negative or NaN increments are ignored.
class Counter {
 public:
  void Inc() noexcept { ints_.fetch_add(1, std::memory_order_relaxed); }
  template <std::integral T>
  void Inc(T n) noexcept {
    if constexpr (std::is_signed_v<T>) {
      if (n < 0) return;
    }
    ints_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  }
  void Inc(double v) noexcept;
  // The integral and fractional increments, summed.
  double Value() const noexcept;
  // Only the integral increments (exact up to 2^64).
  uint64_t IntegralValue() const noexcept { return ints_.load(std::memory_order_relaxed); }
  // Only the non-integral increments.
  double FractionalValue() const noexcept { return fracs_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> ints_{0};
  std::atomic<double> fracs_{0.0};
};

class Gauge {
 public:
  void Set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void Inc(double v = 1.0) noexcept { value_.fetch_add(v, std::memory_order_relaxed); }
  void Dec(double v = 1.0) noexcept { value_.fetch_sub(v, std::memory_order_relaxed); }
  double Value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Histogram with fixed bucket upper bounds (inclusive, like Prometheus `le`);
// an implicit +Inf bucket follows the last bound.
class Histogram {
 public:
  // bounds: strictly increasing, finite; owned by the family.
  explicit Histogram(std::shared_ptr<const std::vector<double>> bounds);

  // NaN observations are ignored.
  void Observe(double v) noexcept;
  template <class Rep, class Period>
  void Observe(std::chrono::duration<Rep, Period> d) noexcept {
    Observe(std::chrono::duration<double>(d).count());
  }

  const std::vector<double>& Bounds() const noexcept { return *bounds_; }
  // Cumulative counts, one per bound plus the +Inf bucket last.
  std::vector<uint64_t> CumulativeCounts() const;
  uint64_t Count() const noexcept;
  double Sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<const std::vector<double>> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // non-cumulative, size bounds+1
  std::atomic<double> sum_{0.0};
};

// Observes the seconds from construction to destruction into a histogram.
class ScopedTimer {
 public:
  explicit ScopedTimer(Histogram& h) : h_(h), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() { h_.Observe(std::chrono::steady_clock::now() - start_); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  Histogram& h_;
  std::chrono::steady_clock::time_point start_;
};

enum class MetricType { kCounter, kGauge, kHistogram };

namespace internal {

// Transparent hash/equality so an existing child is found from string_views
// without building a key.
struct LabelValuesHash {
  using is_transparent = void;
  size_t operator()(std::span<const std::string_view> values) const noexcept;
  size_t operator()(const std::vector<std::string>& values) const noexcept;
};
struct LabelValuesEq {
  using is_transparent = void;
  static bool Same(std::span<const std::string_view> a, const std::vector<std::string>& b) noexcept;
  bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const noexcept {
    return a == b;
  }
  bool operator()(std::span<const std::string_view> a, const std::vector<std::string>& b) const noexcept {
    return Same(a, b);
  }
  bool operator()(const std::vector<std::string>& a, std::span<const std::string_view> b) const noexcept {
    return Same(b, a);
  }
};

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names, MetricType type)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)), type_(type) {}
  virtual ~FamilyBase() = default;

  const std::string& Name() const { return name_; }
  const std::string& Help() const { return help_; }
  const std::vector<std::string>& LabelNames() const { return label_names_; }
  MetricType Type() const { return type_; }

  // Appends the samples (not the HELP/TYPE header) to out.
  virtual void SerializeSamples(std::string& out) const = 0;

 protected:
  [[noreturn]] void DieWrongArity(size_t got) const;

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  MetricType type_;
};

}  // namespace internal

// A metric family with a fixed list of label names; one child per distinct
// tuple of label values. T is Counter, Gauge or Histogram.
template <class T>
class Family final : public internal::FamilyBase {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names, MetricType type,
         std::shared_ptr<const std::vector<double>> bounds = nullptr)
      : FamilyBase(std::move(name), std::move(help), std::move(label_names), type), bounds_(std::move(bounds)) {
    if (label_names_.empty()) With(std::span<const std::string_view>{});
  }

  // The child for these label values (in label-name order), created on first
  // use. The reference is stable for the Registry's lifetime. Aborts when the
  // number of values differs from the number of label names.
  T& With(std::initializer_list<std::string_view> values) {
    return With(std::span<const std::string_view>(values.begin(), values.size()));
  }
  T& With(std::span<const std::string_view> values);
  T& With(const std::vector<std::string>& values);

  // Bucket upper bounds of a histogram family; null for other types.
  const std::vector<double>* BucketBounds() const { return bounds_.get(); }

  size_t ChildCount() const {
    std::shared_lock lock(mu_);
    return children_.size();
  }

  void SerializeSamples(std::string& out) const override;

 private:
  std::unique_ptr<T> MakeChild() const {
    if constexpr (std::is_same_v<T, Histogram>) {
      return std::make_unique<Histogram>(bounds_);
    } else {
      return std::make_unique<T>();
    }
  }

  std::shared_ptr<const std::vector<double>> bounds_;  // histograms only
  mutable std::shared_mutex mu_;
  std::unordered_map<std::vector<std::string>, std::unique_ptr<T>, internal::LabelValuesHash,
                     internal::LabelValuesEq>
      children_;
};

// One sample reported by a callback family.
struct CallbackSample {
  std::vector<std::string> label_values;  // in label-name order
  double value = 0;
};
using CallbackFn = std::function<std::vector<CallbackSample>()>;

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registering an existing name with the same type and label names (and
  // buckets) returns the existing family; any other reuse of a name aborts.
  // Metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
  // [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__"; histograms may not use
  // the label "le".
  Family<Counter>& AddCounter(std::string name, std::string help, std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  // buckets: strictly increasing finite upper bounds; +Inf is implicit.
  Family<Histogram>& AddHistogram(std::string name, std::string help, std::vector<std::string> label_names = {},
                                  std::vector<double> buckets = DefaultLatencyBuckets());

  // Families whose samples come from fn at every Serialize(). fn runs on the
  // scraping thread with the registry's read lock held: it must be
  // thread-safe and must not call into this Registry. Samples with the wrong
  // number of label values are skipped. Registering an existing name aborts.
  void AddCallbackGauge(std::string name, std::string help, std::vector<std::string> label_names, CallbackFn fn);
  void AddCallbackCounter(std::string name, std::string help, std::vector<std::string> label_names,
                          CallbackFn fn);
  // Label-less convenience forms.
  void AddCallbackGauge(std::string name, std::string help, std::function<double()> fn);
  void AddCallbackCounter(std::string name, std::string help, std::function<double()> fn);
  // Removes a callback family (e.g. before the object it reads is destroyed).
  // Returns false when there is no callback family with that name.
  bool RemoveCallback(std::string_view name);

  // Every family in registration order, in Prometheus text format 0.0.4.
  std::string Serialize() const;
  void SerializeTo(std::string& out) const;

 private:
  internal::FamilyBase* Find(std::string_view name) const;  // mu_ held
  void AddCallback(std::string name, std::string help, std::vector<std::string> label_names, MetricType type,
                   CallbackFn fn);

  mutable std::shared_mutex mu_;
  std::vector<std::unique_ptr<internal::FamilyBase>> families_;
};

// Text-format helpers, exposed for tests and for other exporters.
// Integral values print without exponent; other doubles in the shortest form
// that round-trips; infinities as +Inf/-Inf and NaN as NaN.
void AppendNumber(std::string& out, double v);
std::string FormatNumber(double v);
// Escapes backslash, double quote and newline (label values).
void AppendEscapedLabelValue(std::string& out, std::string_view v);
// Escapes backslash and newline (HELP text).
void AppendEscapedHelp(std::string& out, std::string_view v);

// ---- template implementation ----

template <class T>
T& Family<T>::With(std::span<const std::string_view> values) {
  if (values.size() != label_names_.size()) DieWrongArity(values.size());
  {
    std::shared_lock lock(mu_);
    auto it = children_.find(values);
    if (it != children_.end()) return *it->second;
  }
  std::vector<std::string> key(values.begin(), values.end());
  std::unique_lock lock(mu_);
  auto [it, inserted] = children_.try_emplace(std::move(key));
  if (inserted) it->second = MakeChild();
  return *it->second;
}

template <class T>
T& Family<T>::With(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size()) DieWrongArity(values.size());
  constexpr size_t kInline = 8;
  if (values.size() <= kInline) {
    std::string_view views[kInline];
    for (size_t i = 0; i < values.size(); ++i) views[i] = values[i];
    return With(std::span<const std::string_view>(views, values.size()));
  }
  std::vector<std::string_view> views(values.begin(), values.end());
  return With(std::span<const std::string_view>(views));
}

template <>
void Family<Counter>::SerializeSamples(std::string& out) const;
template <>
void Family<Gauge>::SerializeSamples(std::string& out) const;
template <>
void Family<Histogram>::SerializeSamples(std::string& out) const;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

}  // namespace llmcache::metrics
