// Dense float32 kernels for the in-process embedders: a matrix product with
// pre-packed weights (the hot spot: >95% of the forward pass) and the small
// vector primitives that attention needs.
//
// Each kernel exists for AVX-512, AVX2+FMA and plain C++; the variant is picked
// once per packed matrix, from what the CPU supports, so a binary built for
// generic x86-64 runs everywhere and uses the wide units where they exist.
//
// Every output element is computed the same way whatever the number of rows
// in the call (a sequential FMA chain over k, then + bias), so embedding a
// text alone or inside a batch gives bit-identical results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace llmcache::semantic {

enum class Isa { kGeneric, kAvx2, kAvx512 };

// The widest variant this CPU runs.
Isa BestIsa();
std::string_view IsaName(Isa isa);
// False when the CPU cannot run `isa` (tests use it to skip a variant).
bool IsaSupported(Isa isa);

// 64-byte aligned float storage.
class AlignedFloats {
 public:
  AlignedFloats() = default;
  explicit AlignedFloats(size_t n);
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> data_;
  size_t size_ = 0;
};

// A row-major [k, n] weight matrix rearranged for one ISA's kernel: panels of
// `nr` columns, each panel k rows of nr contiguous floats (zero padded).
class PackedMatrix {
 public:
  PackedMatrix() = default;
  static PackedMatrix Pack(const float* w, int k, int n, Isa isa);

  int k() const { return k_; }
  int n() const { return n_; }
  Isa isa() const { return isa_; }
  int nr() const { return nr_; }
  const float* panel(int p) const { return data_.data() + static_cast<size_t>(p) * k_ * nr_; }
  size_t bytes() const { return data_.size() * sizeof(float); }

 private:
  int k_ = 0;
  int n_ = 0;
  int nr_ = 0;
  Isa isa_ = Isa::kGeneric;
  AlignedFloats data_;
};

enum class Activation { kNone, kRelu };

// c[i, j] = act(sum_k a[i, k] * b[k, j] + bias[j]) for i < m, j < b.n().
// `a` is row-major with leading dimension lda >= b.k(); `c` has ldc >= b.n().
void Gemm(const float* a, int m, int lda, const PackedMatrix& b, const float* bias, Activation act,
          float* c, int ldc);

// Vector primitives used by attention, for the given ISA.
float Dot(Isa isa, const float* x, const float* y, int n);
// y[i] += alpha * x[i]
void Axpy(Isa isa, float alpha, const float* x, float* y, int n);

}  // namespace llmcache::semantic
