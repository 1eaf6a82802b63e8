// graft — per-thread packing buffers for the matrix products (Eigen's GEBP kernel and graft's
// AVX2 kernel): grown on demand, kept for the thread's next product, so steady-state training
// allocates nothing.
#pragma once

#include <Eigen/Core>

#include <cstddef>

namespace graft {
namespace detail {

/// Packing buffers of the calling thread (aligned as Eigen aligns its packets), grown on demand
/// and kept for the next product.
template <class T>
class GemmBuffers {
 public:
  GemmBuffers() = default;
  GemmBuffers(const GemmBuffers&) = delete;
  GemmBuffers& operator=(const GemmBuffers&) = delete;
  ~GemmBuffers() {
    Eigen::internal::aligned_free(a_);
    Eigen::internal::aligned_free(b_);
  }
  T* a(std::size_t n) { return grow(a_, na_, n); }
  T* b(std::size_t n) { return grow(b_, nb_, n); }

 private:
  static T* grow(T*& p, std::size_t& cap, std::size_t n) {
    if (n > cap) {
      Eigen::internal::aligned_free(p);
      p = nullptr;
      p = static_cast<T*>(Eigen::internal::aligned_malloc(n * sizeof(T)));
      cap = n;
    }
    return p;
  }
  T* a_ = nullptr;
  T* b_ = nullptr;
  std::size_t na_ = 0, nb_ = 0;
};

template <class T>
GemmBuffers<T>& gemm_buffers() {
  thread_local GemmBuffers<T> buffers;
  return buffers;
}

}  // namespace detail
}  // namespace graft
