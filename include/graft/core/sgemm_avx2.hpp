// graft — single-precision matrix product for x86-64 with AVX2 and FMA (compiled in when the
// program is built with -mavx2 -mfma or an -march that implies them).
//
// Why not Eigen's GEBP here: on the shapes training runs (batch-32 dense layers, im2col
// convolutions) Eigen 3.4's float kernel reaches 70-83 GFLOP/s on a Zen 4 core; this one 80-86 on
// most of them, and 1.6x Eigen on a one-channel 3x3 convolution (bench/README.md). What pays:
//   * an AVX2 micro-kernel of 6x16 or 4x24 (12 accumulators), whichever pads the product less:
//     a batch of 32 rows is 8 tiles of 4 rather than 6 tiles of 6 with 4 rows of zeros;
//   * op(A) is read in place (broadcast from its rows or columns), never packed;
//   * op(B) is packed into panels of 16 or 24 columns, with a vectorised 8x8 transpose when it is
//     read transposed; when op(A) has few rows (each panel serves only a few tiles) and op(B) is
//     row-major with a leading dimension that does not alias cache sets, it is read in place too;
//   * the depth is cut into equal blocks of at most 256 (no short tail block), and beta is
//     applied when the first block is stored, so C is never zeroed beforehand.
// Summation order depends only on K, not on M, N or the thread split: results are identical on
// any number of threads.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <numeric>

#include "graft/core/gemm_buffers.hpp"
#include "graft/core/tensor.hpp"

namespace graft {
namespace detail {
namespace sgemm {

constexpr Index kMaxDepth = 256;  // depth block (keeps a packed 24-column panel in L1)
constexpr Index kRowBlock = 96;   // rows of op(A) per block (kept in L2 across the column panels)

static_assert(EIGEN_DEFAULT_ALIGN_BYTES >= 32, "packed panels are written with aligned AVX stores");

/// C (M x nr valid columns of 8*NV, row stride ldc) = alpha * op(A) * Bpanel + (first ? beta * C : C).
/// op(A) is M x kc: element (i, k) at a[i * lda + k] (row-major) or a[k * lda + i] (TA).
/// Bpanel is kc x (8*NV), row k at b + k * ldbp.
template <int M, int NV, bool TA>
inline void kernel(Index kc, const float* a, Index lda, const float* __restrict b, Index ldbp, float* c, Index ldc,
                   int nr, float alpha, float beta, bool first) {
  constexpr int NR = 8 * NV;
  __m256 acc[M][NV];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  const float* a3 = a + 3 * lda;  // row-major rows 3.. addressed from here: short address arithmetic
#pragma GCC unroll 4
  for (Index k = 0; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const float* ai = TA ? a + i : (i < 3 ? a + i * lda : a3 + (i - 3) * lda) + k;
      const __m256 av = _mm256_broadcast_ss(ai);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
    }
    if (TA) a += lda;
    b += ldbp;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (nr == NR) {
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      float* ci = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        __m256 r = _mm256_mul_ps(acc[i][v], va);
        if (!first) r = _mm256_add_ps(r, _mm256_loadu_ps(ci + 8 * v));
        else if (beta != 0.0f) r = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(ci + 8 * v), r);
        _mm256_storeu_ps(ci + 8 * v, r);
      }
    }
  } else {
    alignas(32) float t[M][NR];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) _mm256_store_ps(t[i] + 8 * v, _mm256_mul_ps(acc[i][v], va));
    for (int i = 0; i < M; ++i) {
      float* ci = c + i * ldc;
      if (!first)
        for (int j = 0; j < nr; ++j) ci[j] += t[i][j];
      else if (beta != 0.0f)
        for (int j = 0; j < nr; ++j) ci[j] = t[i][j] + beta * ci[j];
      else
        for (int j = 0; j < nr; ++j) ci[j] = t[i][j];
    }
  }
}

/// The kernel for the `mr` (<= MR) rows left at the bottom of op(A).
template <int MR, int NV, bool TA>
inline void kernel_rows(int mr, Index kc, const float* a, Index lda, const float* b, Index ldbp, float* c, Index ldc,
                        int nr, float alpha, float beta, bool first) {
  if constexpr (MR > 1) {
    if (mr < MR) return kernel_rows<MR - 1, NV, TA>(mr, kc, a, lda, b, ldbp, c, ldc, nr, alpha, beta, first);
  }
  kernel<MR, NV, TA>(kc, a, lda, b, ldbp, c, ldc, nr, alpha, beta, first);
}

inline void transpose8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5, __m256& r6,
                       __m256& r7) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
               t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
               t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
               s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
               s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
               s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
  r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
  r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
  r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
  r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
  r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
  r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
  r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/// Pack op(B) (kc x nc) into panels of NR columns, zero padded: panel p, row k at
/// out + p * kc * NR + k * NR. op(B)[k][j] is B[k * ldb + j], or B[j * ldb + k] when TB.
template <int NR, bool TB>
void pack_b(Index kc, Index nc, const float* B, Index ldb, float* out) {
  for (Index j = 0; j < nc; j += NR) {
    const int nr = static_cast<int>(std::min<Index>(NR, nc - j));
    if (!TB) {
      for (Index k = 0; k < kc; ++k) {
        const float* s = B + k * ldb + j;
        if (nr == NR) {
#pragma GCC unroll 4
          for (int v = 0; v < NR / 8; ++v) _mm256_store_ps(out + 8 * v, _mm256_loadu_ps(s + 8 * v));
        } else {
          for (int q = 0; q < NR; ++q) out[q] = q < nr ? s[q] : 0.0f;
        }
        out += NR;
      }
      continue;
    }
    Index k = 0;
    if (nr == NR) {
      for (; k + 8 <= kc; k += 8) {
#pragma GCC unroll 4
        for (int v = 0; v < NR / 8; ++v) {
          const float* s = B + (j + 8 * v) * ldb + k;
          __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ldb), r2 = _mm256_loadu_ps(s + 2 * ldb),
                 r3 = _mm256_loadu_ps(s + 3 * ldb), r4 = _mm256_loadu_ps(s + 4 * ldb),
                 r5 = _mm256_loadu_ps(s + 5 * ldb), r6 = _mm256_loadu_ps(s + 6 * ldb),
                 r7 = _mm256_loadu_ps(s + 7 * ldb);
          transpose8(r0, r1, r2, r3, r4, r5, r6, r7);
          float* o = out + k * NR + 8 * v;
          _mm256_store_ps(o, r0);
          _mm256_store_ps(o + NR, r1);
          _mm256_store_ps(o + 2 * NR, r2);
          _mm256_store_ps(o + 3 * NR, r3);
          _mm256_store_ps(o + 4 * NR, r4);
          _mm256_store_ps(o + 5 * NR, r5);
          _mm256_store_ps(o + 6 * NR, r6);
          _mm256_store_ps(o + 7 * NR, r7);
        }
      }
    }
    for (int q = 0; q < NR; ++q) {
      const float* s = B + (j + q) * ldb;
      for (Index kk = k; kk < kc; ++kk) out[kk * NR + q] = q < nr ? s[kk] : 0.0f;
    }
    out += kc * NR;
  }
}

/// Whether a row-major op(B) with this leading dimension can be read in place: rows 16 floats
/// (one cache line) apart whose addresses cycle through few L1 sets would evict each other.
inline bool in_place_b_ok(Index ldb) {
  if (ldb % 16 != 0) return true;
  return 64 / std::gcd(ldb / 16, Index(64)) >= 32;  // 64 sets of 64-byte lines in a 32 KiB, 8-way L1
}

template <int MR, int NV, bool TA, bool TB>
void product(Index M, Index N, Index K, float alpha, const float* A, Index lda, const float* B, Index ldb, float beta,
             float* C, Index ldc) {
  constexpr int NR = 8 * NV;
  const Index blocks = (K + kMaxDepth - 1) / kMaxDepth;
  const Index depth = ((K + blocks - 1) / blocks + 7) / 8 * 8;
  const Index padded_n = (N + NR - 1) / NR * NR;
  const bool b_in_place = !TB && M <= 128 && in_place_b_ok(ldb);
  float* packed = gemm_buffers<float>().b(static_cast<std::size_t>(depth * (b_in_place ? NR : padded_n)));
  constexpr Index row_block = kRowBlock / MR * MR;
  for (Index p = 0; p < K; p += depth) {
    const Index kc = std::min(depth, K - p);
    const bool first = p == 0;
    const float* Bp = TB ? B + p : B + p * ldb;
    if (!b_in_place) pack_b<NR, TB>(kc, N, Bp, ldb, packed);
    for (Index i0 = 0; i0 < M; i0 += row_block) {
      const Index mc = std::min(row_block, M - i0);
      for (Index j = 0; j < N; j += NR) {
        const int nr = static_cast<int>(std::min<Index>(NR, N - j));
        const float* panel;
        Index ldbp = NR;
        if (!b_in_place) {
          panel = packed + (j / NR) * NR * kc;
        } else if (nr == NR) {
          panel = Bp + j;
          ldbp = ldb;
        } else {
          if (i0 == 0) pack_b<NR, TB>(kc, nr, Bp + j, ldb, packed);  // the last, partial panel
          panel = packed;
        }
        for (Index i = i0; i < i0 + mc; i += MR) {
          const int mr = static_cast<int>(std::min<Index>(MR, i0 + mc - i));
          const float* a = TA ? A + p * lda + i : A + i * lda + p;
          float* c = C + i * ldc + j;
          // a narrower kernel for the last columns when they fit one (less work on padding)
          if (NV > 1 && nr <= 8) kernel_rows<MR, 1, TA>(mr, kc, a, lda, panel, ldbp, c, ldc, nr, alpha, beta, first);
          else if (NV > 2 && nr <= 16) kernel_rows<MR, 2, TA>(mr, kc, a, lda, panel, ldbp, c, ldc, nr, alpha, beta, first);
          else kernel_rows<MR, NV, TA>(mr, kc, a, lda, panel, ldbp, c, ldc, nr, alpha, beta, first);
        }
      }
    }
  }
}

/// C (row-major, ldc) = alpha * op(A) * op(B) + beta * C on the calling thread; beta == 0
/// ignores C's previous content. Needs K >= 1.
template <bool TA, bool TB>
void run(Index M, Index N, Index K, float alpha, const float* A, Index lda, const float* B, Index ldb, float beta,
         float* C, Index ldc) {
  // the tile that pads the product less (6x16 on ties)
  const Index area6x16 = (M + 5) / 6 * 6 * ((N + 15) / 16 * 16);
  const Index area4x24 = (M + 3) / 4 * 4 * ((N + 23) / 24 * 24);
  if (area4x24 < area6x16) product<4, 3, TA, TB>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else product<6, 2, TA, TB>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace sgemm
}  // namespace detail
}  // namespace graft
