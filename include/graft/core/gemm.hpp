// graft — the one matrix-product entry point every layer uses, so the kernel behind it can be
// tuned in one place. Row-major operands with leading dimensions.
#pragma once

#include <Eigen/Core>

#include "graft/core/tensor.hpp"

namespace graft {

/// C = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is M x K, op(B) is K x N.
/// beta == 0 overwrites C (its previous content is ignored, NaNs included).
template <class T>
void gemm(bool trans_a, bool trans_b, Index M, Index N, Index K, T alpha, const T* A, Index lda,
          const T* B, Index ldb, T beta, T* C, Index ldc) {
  using RM = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CM = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<RM, Eigen::Unaligned, Stride> c(C, M, N, Stride(ldc));
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == T(0)) c.setZero();
    else c *= beta;
    return;
  }
  // A row-major matrix read transposed is a column-major one with the same leading dimension.
  auto run = [&](const auto& a, const auto& b) {
    if (beta == T(0)) {
      if (alpha == T(1)) c.noalias() = a * b;
      else c.noalias() = alpha * (a * b);
    } else {
      if (beta != T(1)) c *= beta;
      if (alpha == T(1)) c.noalias() += a * b;
      else c.noalias() += alpha * (a * b);
    }
  };
  if (!trans_a && !trans_b) {
    run(Eigen::Map<const RM, Eigen::Unaligned, Stride>(A, M, K, Stride(lda)),
        Eigen::Map<const RM, Eigen::Unaligned, Stride>(B, K, N, Stride(ldb)));
  } else if (trans_a && !trans_b) {
    run(Eigen::Map<const CM, Eigen::Unaligned, Stride>(A, M, K, Stride(lda)),
        Eigen::Map<const RM, Eigen::Unaligned, Stride>(B, K, N, Stride(ldb)));
  } else if (!trans_a && trans_b) {
    run(Eigen::Map<const RM, Eigen::Unaligned, Stride>(A, M, K, Stride(lda)),
        Eigen::Map<const CM, Eigen::Unaligned, Stride>(B, K, N, Stride(ldb)));
  } else {
    run(Eigen::Map<const CM, Eigen::Unaligned, Stride>(A, M, K, Stride(lda)),
        Eigen::Map<const CM, Eigen::Unaligned, Stride>(B, K, N, Stride(ldb)));
  }
}

/// Row-vector broadcast add: each of the M rows of C (ldc) gets b (length N) added.
template <class T>
void add_row_vector(T* C, Index M, Index N, Index ldc, const T* b) {
  for (Index i = 0; i < M; ++i) {
    T* r = C + i * ldc;
    for (Index j = 0; j < N; ++j) r[j] += b[j];
  }
}

/// out[j] (= or +=) sum over the M rows of A (lda) of A[i][j].
template <class T>
void column_sums(const T* A, Index M, Index N, Index lda, T* out, bool accumulate) {
  if (!accumulate)
    for (Index j = 0; j < N; ++j) out[j] = T(0);
  for (Index i = 0; i < M; ++i) {
    const T* r = A + i * lda;
    for (Index j = 0; j < N; ++j) out[j] += r[j];
  }
}

}  // namespace graft
