// Test doubles for the semantic cache tests: a deterministic embedder, an
// exact in-memory index with a checksummed snapshot, a scripted guard and a
// scripted verifier. Private to the tests: production code uses the real
// VectorIndex/LexicalGuard implementations.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "common/hash.h"
#include "llmcache/semantic_cache.h"

namespace llmcache::semantic::testing {

// Bag-of-words hashed into `dim` buckets (so shared words mean similar
// vectors), unless a text has a vector set explicitly. unknown_fraction is
// the share of non-ASCII bytes, like an English-only model on Japanese.
class FakeEmbedder final : public Embedder {
 public:
  explicit FakeEmbedder(size_t dim = 16, std::string id = "fake") : dim_(dim), id_(std::move(id)) {}

  size_t dimension() const override { return dim_; }
  std::string_view id() const override { return id_; }

  void Set(const std::string& text, std::vector<float> v) {
    std::lock_guard<std::mutex> l(mu_);
    fixed_[text] = Normalized(std::move(v));
  }
  // A vector at cosine `cos` to unit axis 0 (tilted toward axis `other`).
  std::vector<float> AtCosine(double cos, size_t other = 1) const {
    std::vector<float> v(dim_, 0);
    v[0] = static_cast<float>(cos);
    v[other] = static_cast<float>(std::sqrt(std::max(0.0, 1 - cos * cos)));
    return v;
  }
  void Fail(bool fail) { fail_ = fail; }
  int calls() const { return calls_; }

  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) override {
    auto r = EmbedWithInfo(texts);
    if (!r) return Err(r.error());
    std::vector<std::vector<float>> out;
    for (auto& i : *r) out.push_back(std::move(i.vector));
    return out;
  }
  Result<std::vector<EmbeddingInfo>> EmbedWithInfo(std::span<const std::string> texts) override {
    std::lock_guard<std::mutex> l(mu_);
    ++calls_;
    if (fail_) return Err(Status::Unavailable("fake embedder down"));
    std::vector<EmbeddingInfo> out;
    for (const auto& t : texts) {
      EmbeddingInfo info;
      auto it = fixed_.find(t);
      info.vector = it != fixed_.end() ? it->second : BagOfWords(t);
      size_t non_ascii = 0;
      for (unsigned char c : t) non_ascii += c >= 0x80;
      info.unknown_fraction = t.empty() ? 0 : static_cast<double>(non_ascii) / t.size();
      out.push_back(std::move(info));
    }
    return out;
  }

 private:
  std::vector<float> Normalized(std::vector<float> v) const {
    double n = 0;
    for (float x : v) n += x * x;
    n = std::sqrt(n);
    if (n > 0) {
      for (float& x : v) x = static_cast<float>(x / n);
    }
    return v;
  }
  std::vector<float> BagOfWords(const std::string& t) const {
    std::vector<float> v(dim_, 0);
    std::istringstream in(t);
    std::string w;
    while (in >> w) v[Xxh3(w) % dim_] += 1;
    v[dim_ - 1] += 0.01f;  // never the zero vector
    return Normalized(std::move(v));
  }

  size_t dim_;
  std::string id_;
  std::mutex mu_;
  std::map<std::string, std::vector<float>> fixed_;
  bool fail_ = false;
  int calls_ = 0;
};

// Exact search; snapshot = text lines with a trailing XXH3 of the rest.
class FlatTestIndex final : public VectorIndex {
 public:
  explicit FlatTestIndex(size_t dim) : dim_(dim) {}
  const char* Name() const override { return "flat-test"; }
  size_t dimension() const override { return dim_; }
  Status Add(std::string_view p, uint64_t id, std::span<const float> v) override {
    if (v.size() != dim_) return Status::InvalidArgument("dimension");
    std::lock_guard<std::mutex> l(mu_);
    parts_[std::string(p)][id] = std::vector<float>(v.begin(), v.end());
    return Status::OK();
  }
  Status Remove(std::string_view p, uint64_t id) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = parts_.find(std::string(p));
    if (it != parts_.end()) it->second.erase(id);
    return Status::OK();
  }
  Result<std::vector<IndexHit>> Search(std::string_view p, std::span<const float> q,
                                       size_t k) const override {
    if (q.size() != dim_) return Err(Status::InvalidArgument("dimension"));
    std::lock_guard<std::mutex> l(mu_);
    std::vector<IndexHit> hits;
    auto it = parts_.find(std::string(p));
    if (it == parts_.end()) return hits;
    for (const auto& [id, v] : it->second) {
      double dot = 0, na = 0, nb = 0;
      for (size_t i = 0; i < dim_; ++i) {
        dot += v[i] * q[i];
        na += v[i] * v[i];
        nb += q[i] * q[i];
      }
      hits.push_back({id, static_cast<float>(dot / std::sqrt(na * nb))});
    }
    std::sort(hits.begin(), hits.end(), [](const IndexHit& a, const IndexHit& b) {
      return a.similarity != b.similarity ? a.similarity > b.similarity : a.id < b.id;
    });
    if (hits.size() > k) hits.resize(k);
    return hits;
  }
  size_t size() const override {
    std::lock_guard<std::mutex> l(mu_);
    size_t n = 0;
    for (const auto& [p, m] : parts_) n += m.size();
    return n;
  }
  size_t memory_bytes() const override { return size() * dim_ * 4; }
  Status Save(const std::string& path) const override {
    std::ostringstream body;
    {
      std::lock_guard<std::mutex> l(mu_);
      body << dim_ << "\n";
      for (const auto& [p, m] : parts_) {
        for (const auto& [id, v] : m) {
          body << p << " " << id;
          for (float x : v) body << " " << x;
          body << "\n";
        }
      }
    }
    std::string s = body.str();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << s << "#" << Xxh3(s) << "\n";
    ++saves;
    return out ? Status::OK() : Status::IOError("save");
  }
  static Result<std::unique_ptr<VectorIndex>> Load(const VectorIndexOptions& o,
                                                   const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string all = ss.str();
    size_t hash = all.rfind('#');
    if (hash == std::string::npos) return Err(Status::Corruption("no checksum"));
    std::string body = all.substr(0, hash);
    if (std::to_string(Xxh3(body)) + "\n" != all.substr(hash + 1)) {
      return Err(Status::Corruption("checksum"));
    }
    std::istringstream lines(body);
    size_t dim = 0;
    lines >> dim;
    if (dim != o.dimension) return Err(Status::Corruption("dimension"));
    auto index = std::make_unique<FlatTestIndex>(dim);
    std::string p;
    uint64_t id = 0;
    while (lines >> p >> id) {
      std::vector<float> v(dim);
      for (float& x : v) lines >> x;
      (void)index->Add(p, id, v);
    }
    ++loads;
    return std::unique_ptr<VectorIndex>(std::move(index));
  }
  static inline int loads = 0;
  static inline int saves = 0;

 private:
  size_t dim_;
  mutable std::mutex mu_;
  std::map<std::string, std::map<uint64_t, std::vector<float>>> parts_;
};

// Refuses a candidate when `refuse(query, candidate)` returns a reason.
class ScriptedGuard final : public LexicalGuard {
 public:
  std::function<std::string(std::string_view, std::string_view)> refuse;
  double threshold_raise = 0;  // on every pass: a loose guard
  GuardVerdict Check(std::string_view q, std::string_view c) const override {
    GuardVerdict v;
    v.reason = refuse ? refuse(q, c) : "";
    v.pass = v.reason.empty();
    if (v.pass) v.threshold_raise = threshold_raise;
    return v;
  }
};

class ScriptedVerifier final : public PairVerifier {
 public:
  std::function<Result<bool>(std::string_view, std::string_view)> answer;
  int calls = 0;
  Result<bool> SameAnswer(std::string_view q, std::string_view c) override {
    ++calls;
    return answer ? answer(q, c) : Result<bool>(false);
  }
};

inline void UseFlatTestIndex(SemanticCacheOptions* o) {
  o->new_index = [](const VectorIndexOptions& io) {
    return std::unique_ptr<VectorIndex>(new FlatTestIndex(io.dimension));
  };
  o->load_index = &FlatTestIndex::Load;
}

}  // namespace llmcache::semantic::testing
