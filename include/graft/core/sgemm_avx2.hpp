// graft — the AVX2 micro-kernel of graft's single-precision matrix product (core/sgemm.hpp),
// and the packing of op(B) that both kernels use. Compiled with a function-level target
// attribute, so it is part of every x86-64 build and runs only where the processor has AVX2 and
// FMA (checked at run time).
//
// The micro-kernel: 6x16 or 4x24 tiles (12 accumulators, 2 loads and 6 broadcasts per 12 FMAs);
// op(A) is broadcast from its rows (or columns) in place, op(B) read from a packed panel (or in
// place). Each C element is one fused multiply-add chain over a depth block, then fused into C
// as alpha * acc + C (alpha * acc + beta * C for the first block, so C is never zeroed first).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "graft/core/tensor.hpp"

#define GRAFT_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace graft {
namespace detail {
namespace sgemm {

struct Avx2 {
  static constexpr int kWidth = 8;

  /// C (M x nr valid columns of 8*NV, row stride ldc) = alpha * op(A) * Bpanel + (first ? beta * C : C).
  /// op(A) is M x kc: element (i, k) at a[i * lda + k] (row-major) or a[k * lda + i] (TA).
  /// Bpanel is kc x (8*NV), row k at b + k * ldbp.
  template <int M, int NV, bool TA>
  GRAFT_TARGET_AVX2 static void kernel(Index kc, const float* a, Index lda, const float* __restrict b, Index ldbp, float* c, Index ldc,
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
    // C = alpha * acc + C (later depth blocks), or alpha * acc + beta * C (the first), as
    // explicit fused operations: the same roundings in every tile, tail and kernel (AVX-512 too)
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (nr == NR) {
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        float* ci = c + i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          __m256 r;
          if (!first) {
            r = _mm256_fmadd_ps(acc[i][v], va, _mm256_loadu_ps(ci + 8 * v));
          } else {
            r = _mm256_mul_ps(acc[i][v], va);
            if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8 * v), r);
          }
          _mm256_storeu_ps(ci + 8 * v, r);
        }
      }
    } else {
      float t[M][NR];
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm256_storeu_ps(t[i] + 8 * v, acc[i][v]);
      for (int i = 0; i < M; ++i) {
        float* ci = c + i * ldc;
        if (!first)
          for (int j = 0; j < nr; ++j) ci[j] = std::fma(t[i][j], alpha, ci[j]);
        else if (beta != 0.0f)
          for (int j = 0; j < nr; ++j) ci[j] = std::fma(beta, ci[j], t[i][j] * alpha);
        else
          for (int j = 0; j < nr; ++j) ci[j] = t[i][j] * alpha;
      }
    }
  }

  GRAFT_TARGET_AVX2 static inline void transpose8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5, __m256& r6,
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
  GRAFT_TARGET_AVX2 static void pack_b(Index kc, Index nc, const float* B, Index ldb, float* out) {
    for (Index j = 0; j < nc; j += NR) {
      const int nr = static_cast<int>(std::min<Index>(NR, nc - j));
      if (!TB) {
        for (Index k = 0; k < kc; ++k) {
          const float* s = B + k * ldb + j;
          if (nr == NR) {
#pragma GCC unroll 4
            for (int v = 0; v < NR / 8; ++v) _mm256_storeu_ps(out + 8 * v, _mm256_loadu_ps(s + 8 * v));
          } else {
            int q = 0;
            for (; q + 8 <= nr; q += 8) _mm256_storeu_ps(out + q, _mm256_loadu_ps(s + q));
            for (; q < nr; ++q) out[q] = s[q];
            for (; q < NR; ++q) out[q] = 0.0f;
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
            _mm256_storeu_ps(o, r0);
            _mm256_storeu_ps(o + NR, r1);
            _mm256_storeu_ps(o + 2 * NR, r2);
            _mm256_storeu_ps(o + 3 * NR, r3);
            _mm256_storeu_ps(o + 4 * NR, r4);
            _mm256_storeu_ps(o + 5 * NR, r5);
            _mm256_storeu_ps(o + 6 * NR, r6);
            _mm256_storeu_ps(o + 7 * NR, r7);
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
};

}  // namespace sgemm
}  // namespace detail
}  // namespace graft
