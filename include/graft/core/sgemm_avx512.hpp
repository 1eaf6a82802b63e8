// graft — the AVX-512 micro-kernel of graft's single-precision matrix product (core/sgemm.hpp).
// Compiled with a function-level target attribute, so it is part of every x86-64 build and runs
// only where the processor has AVX-512F (checked at run time).
//
// The same arithmetic as the AVX2 kernel (core/sgemm_avx2.hpp), 16 columns per register instead
// of 8: each C element is one fused multiply-add chain over a depth block, then fused into C as
// alpha * acc + C (alpha * acc + beta * C for the first block). Both kernels give the same bits. Partial column
// panels are stored through lane masks instead of a temporary tile.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "graft/core/tensor.hpp"

#define GRAFT_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))

namespace graft {
namespace detail {
namespace sgemm {

struct Avx512 {
  static constexpr int kWidth = 16;

  /// C (M rows x nr valid columns of 16*NV, row stride ldc) = alpha * op(A) * Bpanel + (first ? beta * C : C).
  /// op(A) is M x kc: element (i, k) at a[i * lda + k] (row-major) or a[k * lda + i] (TA).
  /// Bpanel is kc x (16*NV), row k at b + k * ldbp.
  template <int M, int NV, bool TA>
  GRAFT_TARGET_AVX512 static void kernel(Index kc, const float* a, Index lda, const float* __restrict b, Index ldbp,
                                         float* c, Index ldc, int nr, float alpha, float beta, bool first) {
    __m512 acc[M][NV];
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    // Row-major op(A): row i is read at base[i / 3] + (i % 3) * lda, every base advancing one
    // float per step; `l` is lda made opaque to the optimiser each step, so that row addresses
    // stay base + index * scale instead of one pointer register per row (12 rows would not fit
    // the general-purpose registers).
    constexpr int G = (M + 2) / 3;
    const float* base[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) base[g] = a + 3 * g * lda;
    for (Index k = 0; k < kc; ++k) {
      __m512 bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
      Index l = lda;
      if (!TA) asm("" : "+r"(l));
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) {
        const float* ai = TA ? a + i : base[i / 3] + (i % 3) * l;
        const __m512 av = _mm512_set1_ps(*ai);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
      }
      if (TA) {
        a += lda;
      } else {
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g) ++base[g];
      }
      b += ldbp;
    }
    const __m512 va = _mm512_set1_ps(alpha);
    const __m512 vb = _mm512_set1_ps(beta);
    __mmask16 mask[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const int n = nr - 16 * v;
      mask[v] = n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
    }
    const bool full = nr == 16 * NV;
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      float* ci = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        if (!full && !mask[v]) continue;
        __m512 r;
        if (!first || beta != 0.0f) {
          const __m512 old = full ? _mm512_loadu_ps(ci + 16 * v) : _mm512_maskz_loadu_ps(mask[v], ci + 16 * v);
          r = first ? _mm512_fmadd_ps(vb, old, _mm512_mul_ps(acc[i][v], va)) : _mm512_fmadd_ps(acc[i][v], va, old);
        } else {
          r = _mm512_mul_ps(acc[i][v], va);
        }
        if (full) _mm512_storeu_ps(ci + 16 * v, r);
        else _mm512_mask_storeu_ps(ci + 16 * v, mask[v], r);
      }
    }
  }
};

}  // namespace sgemm
}  // namespace detail
}  // namespace graft
