#include "metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <utility>

namespace llmcache::metrics {
namespace {

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "llmcache::metrics: %s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

bool ValidMetricName(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool ValidLabelName(std::string_view n) {
  if (n.empty() || n.starts_with("__")) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void ValidateNames(const std::string& name, const std::vector<std::string>& label_names, MetricType type) {
  if (!ValidMetricName(name)) Die("invalid metric name \"" + name + "\"");
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& l = label_names[i];
    if (!ValidLabelName(l)) Die("invalid label name \"" + l + "\" in metric " + name);
    if (type == MetricType::kHistogram && l == "le") Die("histogram " + name + " may not use the label \"le\"");
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == l) Die("duplicate label name \"" + l + "\" in metric " + name);
    }
  }
}

std::string_view TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AppendUint(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Appends `{a="x",b="y"` + optional extra label + `}`; nothing when there are
// no labels at all.
template <class Values>
void AppendLabels(std::string& out, const std::vector<std::string>& names, const Values& values,
                  std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out.push_back('{');
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out.push_back(',');
    first = false;
    out.append(names[i]);
    out.append("=\"");
    AppendEscapedLabelValue(out, values[i]);
    out.push_back('"');
  }
  if (!extra_name.empty()) {
    if (!first) out.push_back(',');
    out.append(extra_name);
    out.append("=\"");
    out.append(extra_value);
    out.push_back('"');
  }
  out.push_back('}');
}

void AppendHeader(std::string& out, const internal::FamilyBase& f) {
  out.append("# HELP ");
  out.append(f.Name());
  out.push_back(' ');
  AppendEscapedHelp(out, f.Help());
  out.append("\n# TYPE ");
  out.append(f.Name());
  out.push_back(' ');
  out.append(TypeName(f.Type()));
  out.push_back('\n');
}

// Children of a family, sorted by label values for a stable output.
template <class T, class Map>
std::vector<std::pair<const std::vector<std::string>*, const T*>> SortedChildren(const Map& m) {
  std::vector<std::pair<const std::vector<std::string>*, const T*>> v;
  v.reserve(m.size());
  for (const auto& [k, c] : m) v.emplace_back(&k, c.get());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
  return v;
}

class CallbackFamily final : public internal::FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, std::vector<std::string> label_names, MetricType type,
                 CallbackFn fn)
      : FamilyBase(std::move(name), std::move(help), std::move(label_names), type), fn_(std::move(fn)) {}

  void SerializeSamples(std::string& out) const override {
    std::vector<CallbackSample> samples;
    try {
      if (fn_) samples = fn_();
    } catch (...) {
      return;  // a failing callback reports nothing rather than failing the scrape
    }
    for (const CallbackSample& s : samples) {
      if (s.label_values.size() != label_names_.size()) continue;
      out.append(name_);
      AppendLabels(out, label_names_, s.label_values);
      out.push_back(' ');
      AppendNumber(out, s.value);
      out.push_back('\n');
    }
  }

 private:
  CallbackFn fn_;
};

std::shared_ptr<const std::vector<double>> CheckedBounds(const std::string& name, std::vector<double> b) {
  for (size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(b[i])) {
      // A trailing +Inf is tolerated and dropped: it is always implicit.
      if (i + 1 == b.size() && b[i] > 0 && std::isinf(b[i])) {
        b.pop_back();
        break;
      }
      Die("histogram " + name + " has a non-finite bucket bound");
    }
    if (i > 0 && !(b[i] > b[i - 1])) Die("histogram " + name + " bucket bounds are not strictly increasing");
  }
  return std::make_shared<const std::vector<double>>(std::move(b));
}

}  // namespace

// ---- buckets ----

const std::vector<double>& DefaultLatencyBuckets() {
  static const std::vector<double> kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                               0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                               0.5,     1,      2.5,     5,      10,    30};
  return kBuckets;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> b;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) b.push_back(v);
  return b;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  std::vector<double> b;
  for (int i = 0; i < count; ++i) b.push_back(start + width * i);
  return b;
}

// ---- children ----

void Counter::Inc(double v) noexcept {
  if (!(v > 0)) return;  // negative, zero and NaN
  if (v < 18446744073709551616.0 && v == std::floor(v)) {
    ints_.fetch_add(static_cast<uint64_t>(v), std::memory_order_relaxed);
  } else {
    fracs_.fetch_add(v, std::memory_order_relaxed);
  }
}

double Counter::Value() const noexcept {
  return static_cast<double>(ints_.load(std::memory_order_relaxed)) + fracs_.load(std::memory_order_relaxed);
}

Histogram::Histogram(std::shared_ptr<const std::vector<double>> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) noexcept {
  if (std::isnan(v)) return;
  const std::vector<double>& b = *bounds_;
  size_t i = static_cast<size_t>(std::lower_bound(b.begin(), b.end(), v) - b.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_->size() + 1);
  uint64_t acc = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    out[i] = acc;
  }
  return out;
}

uint64_t Histogram::Count() const noexcept {
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) acc += buckets_[i].load(std::memory_order_relaxed);
  return acc;
}

// ---- label hashing ----

namespace internal {

size_t LabelValuesHash::operator()(std::span<const std::string_view> values) const noexcept {
  size_t h = 0xcbf29ce484222325ULL;
  for (std::string_view v : values) {
    h ^= std::hash<std::string_view>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return h;
}

size_t LabelValuesHash::operator()(const std::vector<std::string>& values) const noexcept {
  size_t h = 0xcbf29ce484222325ULL;
  for (const std::string& v : values) {
    h ^= std::hash<std::string_view>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return h;
}

bool LabelValuesEq::Same(std::span<const std::string_view> a, const std::vector<std::string>& b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

void FamilyBase::DieWrongArity(size_t got) const {
  Die("metric " + name_ + " expects " + std::to_string(label_names_.size()) + " label values, got " +
      std::to_string(got));
}

}  // namespace internal

// ---- family serialization ----

template <>
void Family<Counter>::SerializeSamples(std::string& out) const {
  std::shared_lock lock(mu_);
  for (const auto& [labels, c] : SortedChildren<Counter>(children_)) {
    out.append(name_);
    AppendLabels(out, label_names_, *labels);
    out.push_back(' ');
    double frac = c->FractionalValue();
    if (frac == 0) {
      AppendUint(out, c->IntegralValue());
    } else {
      AppendNumber(out, static_cast<double>(c->IntegralValue()) + frac);
    }
    out.push_back('\n');
  }
}

template <>
void Family<Gauge>::SerializeSamples(std::string& out) const {
  std::shared_lock lock(mu_);
  for (const auto& [labels, g] : SortedChildren<Gauge>(children_)) {
    out.append(name_);
    AppendLabels(out, label_names_, *labels);
    out.push_back(' ');
    AppendNumber(out, g->Value());
    out.push_back('\n');
  }
}

template <>
void Family<Histogram>::SerializeSamples(std::string& out) const {
  std::shared_lock lock(mu_);
  std::string le;
  for (const auto& [labels, h] : SortedChildren<Histogram>(children_)) {
    const std::vector<double>& bounds = h->Bounds();
    std::vector<uint64_t> counts = h->CumulativeCounts();
    for (size_t i = 0; i < counts.size(); ++i) {
      le = i < bounds.size() ? FormatNumber(bounds[i]) : "+Inf";
      out.append(name_);
      out.append("_bucket");
      AppendLabels(out, label_names_, *labels, "le", le);
      out.push_back(' ');
      AppendUint(out, counts[i]);
      out.push_back('\n');
    }
    out.append(name_);
    out.append("_sum");
    AppendLabels(out, label_names_, *labels);
    out.push_back(' ');
    AppendNumber(out, h->Sum());
    out.push_back('\n');
    out.append(name_);
    out.append("_count");
    AppendLabels(out, label_names_, *labels);
    out.push_back(' ');
    AppendUint(out, counts.back());  // equals the +Inf bucket by construction
    out.push_back('\n');
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- registry ----

Registry::Registry() = default;
Registry::~Registry() = default;

internal::FamilyBase* Registry::Find(std::string_view name) const {
  for (const auto& f : families_) {
    if (f->Name() == name) return f.get();
  }
  return nullptr;
}

Family<Counter>& Registry::AddCounter(std::string name, std::string help, std::vector<std::string> label_names) {
  ValidateNames(name, label_names, MetricType::kCounter);
  std::unique_lock lock(mu_);
  if (internal::FamilyBase* f = Find(name)) {
    auto* c = dynamic_cast<Family<Counter>*>(f);
    if (c == nullptr || c->LabelNames() != label_names) Die("metric " + name + " registered twice differently");
    return *c;
  }
  auto fam = std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(label_names),
                                               MetricType::kCounter);
  Family<Counter>& ref = *fam;
  families_.push_back(std::move(fam));
  return ref;
}

Family<Gauge>& Registry::AddGauge(std::string name, std::string help, std::vector<std::string> label_names) {
  ValidateNames(name, label_names, MetricType::kGauge);
  std::unique_lock lock(mu_);
  if (internal::FamilyBase* f = Find(name)) {
    auto* g = dynamic_cast<Family<Gauge>*>(f);
    if (g == nullptr || g->LabelNames() != label_names) Die("metric " + name + " registered twice differently");
    return *g;
  }
  auto fam = std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(label_names),
                                             MetricType::kGauge);
  Family<Gauge>& ref = *fam;
  families_.push_back(std::move(fam));
  return ref;
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help, std::vector<std::string> label_names,
                                          std::vector<double> buckets) {
  ValidateNames(name, label_names, MetricType::kHistogram);
  auto bounds = CheckedBounds(name, std::move(buckets));
  std::unique_lock lock(mu_);
  if (internal::FamilyBase* f = Find(name)) {
    auto* h = dynamic_cast<Family<Histogram>*>(f);
    if (h == nullptr || h->LabelNames() != label_names) Die("metric " + name + " registered twice differently");
    if (*h->BucketBounds() != *bounds) Die("histogram " + name + " registered twice with different buckets");
    return *h;
  }
  auto fam = std::make_unique<Family<Histogram>>(std::move(name), std::move(help), std::move(label_names),
                                                 MetricType::kHistogram, std::move(bounds));
  Family<Histogram>& ref = *fam;
  families_.push_back(std::move(fam));
  return ref;
}

void Registry::AddCallback(std::string name, std::string help, std::vector<std::string> label_names,
                           MetricType type, CallbackFn fn) {
  ValidateNames(name, label_names, type);
  std::unique_lock lock(mu_);
  if (Find(name) != nullptr) Die("metric " + name + " registered twice");
  families_.push_back(
      std::make_unique<CallbackFamily>(std::move(name), std::move(help), std::move(label_names), type, std::move(fn)));
}

void Registry::AddCallbackGauge(std::string name, std::string help, std::vector<std::string> label_names,
                                CallbackFn fn) {
  AddCallback(std::move(name), std::move(help), std::move(label_names), MetricType::kGauge, std::move(fn));
}

void Registry::AddCallbackCounter(std::string name, std::string help, std::vector<std::string> label_names,
                                  CallbackFn fn) {
  AddCallback(std::move(name), std::move(help), std::move(label_names), MetricType::kCounter, std::move(fn));
}

void Registry::AddCallbackGauge(std::string name, std::string help, std::function<double()> fn) {
  AddCallbackGauge(std::move(name), std::move(help), {}, [fn = std::move(fn)] {
    return std::vector<CallbackSample>{{{}, fn()}};
  });
}

void Registry::AddCallbackCounter(std::string name, std::string help, std::function<double()> fn) {
  AddCallbackCounter(std::move(name), std::move(help), {}, [fn = std::move(fn)] {
    return std::vector<CallbackSample>{{{}, fn()}};
  });
}

bool Registry::RemoveCallback(std::string_view name) {
  std::unique_lock lock(mu_);
  for (auto it = families_.begin(); it != families_.end(); ++it) {
    if ((*it)->Name() == name && dynamic_cast<CallbackFamily*>(it->get()) != nullptr) {
      families_.erase(it);
      return true;
    }
  }
  return false;
}

void Registry::SerializeTo(std::string& out) const {
  std::shared_lock lock(mu_);
  for (const auto& f : families_) {
    AppendHeader(out, *f);
    f->SerializeSamples(out);
  }
}

std::string Registry::Serialize() const {
  std::string out;
  out.reserve(4096);
  SerializeTo(out);
  return out;
}

// ---- text helpers ----

void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out.append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out.append(v > 0 ? "+Inf" : "-Inf");
    return;
  }
  char buf[64];
  std::to_chars_result r;
  if (v == std::floor(v) && std::fabs(v) < 9.0e18) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
  } else if (double a = std::fabs(v); a >= 1e-4 && a < 1e21) {
    // Shortest round-trip digits; plain notation in the range where it is
    // readable (as Go and JavaScript print them).
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  } else {
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  }
  out.append(buf, r.ptr);
}

std::string FormatNumber(double v) {
  std::string s;
  AppendNumber(s, v);
  return s;
}

void AppendEscapedLabelValue(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '"':
        out.append("\\\"");
        break;
      case '\n':
        out.append("\\n");
        break;
      default:
        out.push_back(c);
    }
  }
}

void AppendEscapedHelp(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      default:
        out.push_back(c);
    }
  }
}

}  // namespace llmcache::metrics
