// graft — the one matrix-product entry point every layer uses, so the kernel behind it can be
// tuned in one place. Row-major operands with leading dimensions.
//
// float products on x86-64 processors with AVX2 and FMA run graft's own kernels (core/sgemm.hpp,
// AVX-512 where the processor has it), chosen at run time whatever the build flags. Other large
// products (double; float on other processors) run Eigen's GEBP kernel (general_matrix_matrix_product) directly, with
// packing buffers that persist per thread and only grow: Eigen's expression path allocates its
// blocking buffers on the heap for every product above its stack limit (128 KB) and for every
// parallel product, which would break the allocation-free steady state of training. Either way,
// large products are split into column (or row) panels run on graft's threads
// (core/parallel.hpp), each thread with its own buffers.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "graft/core/gemm_buffers.hpp"
#include "graft/core/parallel.hpp"
#include "graft/core/tensor.hpp"

#if EIGEN_VERSION_AT_LEAST(3, 4, 0)
#define GRAFT_GEMM_PERSISTENT_BLOCKING 1
#endif
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && !defined(GRAFT_NO_SGEMM)
#define GRAFT_SGEMM 1
#include "graft/core/sgemm.hpp"
#endif

namespace graft {

namespace detail {

/// Row-major op(A) * op(B) through Eigen's expression templates (small products, vectors).
template <class T>
void gemm_eigen(bool trans_a, bool trans_b, Index M, Index N, Index K, T alpha, const T* A, Index lda,
                const T* B, Index ldb, T beta, T* C, Index ldc) {
  using RM = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CM = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<RM, Eigen::Unaligned, Stride> c(C, M, N, Stride(ldc));
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

#ifdef GRAFT_GEMM_PERSISTENT_BLOCKING
/// Eigen's level-3 blocking (cache block sizes + packing buffers), on the persistent buffers.
template <class T>
class PersistentBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  /// rows x cols x depth of the column-major product Eigen's kernel runs.
  PersistentBlocking(Index rows, Index cols, Index depth) {
    this->m_mc = rows;
    this->m_nc = cols;
    this->m_kc = depth;
    Eigen::internal::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, Eigen::Index(1));
    GemmBuffers<T>& buf = gemm_buffers<T>();
    this->m_blockA = buf.a(static_cast<std::size_t>(this->m_mc * this->m_kc));
    this->m_blockB = buf.b(static_cast<std::size_t>(this->m_kc * this->m_nc));
  }
};

/// C (row-major, ldc) += alpha * op(A) * op(B) on the calling thread. AOrder / BOrder are the
/// storage orders in which op(A) (M x K) and op(B) (K x N) are read.
template <class T, int AOrder, int BOrder>
void gemm_gebp(Index M, Index N, Index K, T alpha, const T* A, Index lda, const T* B, Index ldb, T* C, Index ldc) {
  // A row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T: Eigen's row-major
  // specialisation makes that swap, so the blocking is sized for an N x M x K product.
  PersistentBlocking<T> blocking(N, M, K);
  Eigen::internal::general_matrix_matrix_product<Index, T, AOrder, false, T, BOrder, false, Eigen::RowMajor, 1>::run(
      M, N, K, A, lda, B, ldb, C, 1, ldc, alpha, blocking);
}

#endif  // GRAFT_GEMM_PERSISTENT_BLOCKING

/// f(row0, rows, col0, cols) over panels of the M x N product C, run on graft's threads
/// (graft/core/parallel.hpp), or f(0, M, 0, N) when the product is too small to gain from them.
template <class F>
void for_each_panel(Index M, Index N, Index K, F&& f) {
  // At least 250 000 multiply-adds per thread (~6 us): with the pool's workers polling between
  // jobs, a batch-32 product as small as 32x300 . 300x100 gains 1.7x from a second thread
  // (bench/README.md). One panel per thread: more, smaller panels measured slower.
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  Index threads = usable_threads();
  threads = std::min<Index>(threads, static_cast<Index>(work / kMinWorkPerThread));
  const bool split_cols = N >= M;
  const Index len = split_cols ? N : M;
  threads = std::min<Index>(threads, len / 16);
  if (threads <= 1) {
    f(Index(0), M, Index(0), N);
    return;
  }
  // panels of a multiple of 16 columns (rows); the last takes the rest
  const Index chunk = ((len / threads) / 16) * 16;
  parallel_chunks(threads, static_cast<int>(threads), [&](Index t) {
    const Index begin = t * chunk, count = t + 1 == threads ? len - begin : chunk;
    if (count <= 0) return;
    if (split_cols) f(Index(0), M, begin, count);
    else f(begin, count, Index(0), N);
  });
}

}  // namespace detail

/// C = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is M x K, op(B) is K x N.
/// beta == 0 overwrites C (its previous content is ignored, NaNs included). Allocation-free
/// once the largest product shape has been seen on the calling thread.
template <class T>
void gemm(bool trans_a, bool trans_b, Index M, Index N, Index K, T alpha, const T* A, Index lda,
          const T* B, Index ldb, T beta, T* C, Index ldc) {
  if (M == 0 || N == 0) return;
  using RM = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<RM, Eigen::Unaligned, Stride> c(C, M, N, Stride(ldc));
  if (K == 0) {
    if (beta == T(0)) c.setZero();
    else c *= beta;
    return;
  }
  // Eigen itself takes the coefficient-based or matrix-vector path here; those keep their
  // temporaries on the stack.
  const bool small = M == 1 || N == 1 || M + N + K < 20;
  // op(A) rows [r0, r0 + rows) start at a_at(r0); op(B) columns [c0, c0 + cols) at b_at(c0)
  const auto a_at = [&](Index r0) { return trans_a ? A + r0 : A + r0 * lda; };
  const auto b_at = [&](Index c0) { return trans_b ? B + c0 * ldb : B + c0; };
#ifdef GRAFT_SGEMM
  if constexpr (std::is_same<T, float>::value) {
    namespace sg = detail::sgemm;
    const sg::Isa isa = small ? sg::Isa::none : sg::isa();
    if (isa != sg::Isa::none) {
      auto run = [&](auto product) {
        detail::for_each_panel(M, N, K, [&](Index r0, Index rows, Index c0, Index cols) {
          product(rows, cols, K, alpha, a_at(r0), lda, b_at(c0), ldb, beta, C + r0 * ldc + c0, ldc);
        });
      };
      if (isa == sg::Isa::avx512) {
        if (!trans_a && !trans_b) run(sg::run_avx512<false, false>);
        else if (trans_a && !trans_b) run(sg::run_avx512<true, false>);
        else if (!trans_a && trans_b) run(sg::run_avx512<false, true>);
        else run(sg::run_avx512<true, true>);
      } else {
        if (!trans_a && !trans_b) run(sg::run_avx2<false, false>);
        else if (trans_a && !trans_b) run(sg::run_avx2<true, false>);
        else if (!trans_a && trans_b) run(sg::run_avx2<false, true>);
        else run(sg::run_avx2<true, true>);
      }
      return;
    }
  }
#endif
#ifdef GRAFT_GEMM_PERSISTENT_BLOCKING
  if (!small) {
    if (beta == T(0)) c.setZero();
    else if (beta != T(1)) c *= beta;
    auto run = [&](auto product) {
      detail::for_each_panel(M, N, K, [&](Index r0, Index rows, Index c0, Index cols) {
        product(rows, cols, K, alpha, a_at(r0), lda, b_at(c0), ldb, C + r0 * ldc + c0, ldc);
      });
    };
    constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
    if (!trans_a && !trans_b) run(detail::gemm_gebp<T, R, R>);
    else if (trans_a && !trans_b) run(detail::gemm_gebp<T, Cm, R>);
    else if (!trans_a && trans_b) run(detail::gemm_gebp<T, R, Cm>);
    else run(detail::gemm_gebp<T, Cm, Cm>);
    return;
  }
#endif
  detail::gemm_eigen(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
