// graft — an element-wise square root that is correctly rounded on every build.
//
// Why not Eigen's `.sqrt()`: with EIGEN_FAST_MATH (Eigen 3.4's default), float sqrt on AVX and
// AVX-512 packets, and double sqrt on AVX-512 packets, is an rsqrt approximation refined by one
// Newton step. It is off by a few ulps, and by different amounts on Intel and AMD processors
// (their rsqrt tables differ): squareplus(-25) in float came out 0.03994 on one machine and
// 0.039936 on another. Keras (TensorFlow, JAX, PyTorch backends) uses the IEEE square root, and
// graft's optimizers (RMSprop, Adam, Adagrad) must match it on any processor. A library cannot
// switch EIGEN_FAST_MATH off for its host program, so graft's own code calls sqrt_exact instead:
// the hardware sqrt instruction on x86 packets, Eigen's psqrt elsewhere (exact on SSE and NEON
// aarch64), std::sqrt on leftover elements.
#pragma once

#include <Eigen/Core>

#include <cmath>

namespace graft {
namespace detail {

template <class P>
inline P psqrt_exact(const P& a) {
  return Eigen::internal::psqrt(a);
}
#ifdef EIGEN_VECTORIZE_AVX
inline __m256 psqrt_exact(const __m256& a) { return _mm256_sqrt_ps(a); }
inline __m256d psqrt_exact(const __m256d& a) { return _mm256_sqrt_pd(a); }
#endif
#ifdef EIGEN_VECTORIZE_AVX512
inline __m512 psqrt_exact(const __m512& a) { return _mm512_sqrt_ps(a); }
inline __m512d psqrt_exact(const __m512d& a) { return _mm512_sqrt_pd(a); }
#endif

/// Eigen functor: the correctly rounded square root, vectorised.
template <class T>
struct SqrtExactOp {
  T operator()(const T& a) const { return std::sqrt(a); }
  template <class Packet>
  Packet packetOp(const Packet& a) const {
    return psqrt_exact(a);
  }
};

/// sqrt of every coefficient of an Eigen array expression, correctly rounded (see above).
template <class E>
auto sqrt_exact(const E& e) {
  return e.unaryExpr(SqrtExactOp<typename E::Scalar>());
}

}  // namespace detail
}  // namespace graft

namespace Eigen {
namespace internal {
template <class T>
struct functor_traits<graft::detail::SqrtExactOp<T>> {
  enum { Cost = 5 * NumTraits<T>::MulCost, PacketAccess = packet_traits<T>::HasSqrt };
};
}  // namespace internal
}  // namespace Eigen
