// graft — single-precision matrix product for x86-64: graft's own AVX2 and AVX-512 kernels, picked
// at run time from what the processor has, whatever flags the including program was built with.
//
// Why not Eigen's GEBP here: on the shapes training runs (batch-32 dense layers, im2col
// convolutions) Eigen 3.4's float kernel, built for AVX2, reaches 70-83 GFLOP/s on a core that
// does ~115; graft's AVX2 kernel 80-86 on most of them and 1.6x Eigen on a one-channel 3x3
// convolution; on processors with two 512-bit FMA units the AVX-512 kernel doubles that
// (bench/README.md). And a library cannot choose its host program's -m flags: a program built
// for generic x86-64 would otherwise get SSE2 products. What pays:
//   * micro-kernels of 12 accumulators (AVX2: 6x16 or 4x24, whichever pads the product less) or
//     16 to 28 (AVX-512: 16x16 for short products, else 12x32 or 14x32);
//   * op(A) is read in place (broadcast from its rows or columns), never packed;
//   * op(B) is packed into panels of the tile's width, with a vectorised 8x8 transpose when it is
//     read transposed; when op(A) has few rows (each panel serves only a few tiles) and op(B) is
//     row-major with a leading dimension that does not alias cache sets, it is read in place;
//   * the depth is cut into equal blocks of at most 256 (no short tail block), and beta is
//     applied when the first block is stored, so C is never zeroed beforehand.
// Summation order depends only on K, not on M, N, the tile or the thread split: results are
// identical on any number of threads, and the AVX2 and AVX-512 kernels compute the same sums.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "graft/core/gemm_buffers.hpp"
#include "graft/core/sgemm_avx2.hpp"
#include "graft/core/sgemm_avx512.hpp"
#include "graft/core/tensor.hpp"

namespace graft {
namespace detail {
namespace sgemm {

constexpr Index kMaxDepth = 256;  // depth block (keeps a packed panel in L1/L2 across a row block)
constexpr Index kRowBlock = 96;   // rows of op(A) per block (kept in L2 across the column panels)

/// Instruction sets graft's float products can use, best last.
enum class Isa { none = 0, avx2 = 1, avx512 = 2 };

/// What this processor (and its operating system) supports; checked once.
inline Isa detected_isa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return Isa::none;
    if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
    return Isa::avx2;
  }();
  return isa;
}

/// The kernel in use: the best detected one, or a lower one chosen by GRAFT_SGEMM=avx2|eigen in
/// the environment (read once; any other value keeps the best) or by set_isa (tests,
/// benchmarks). Never one the processor lacks.
inline std::atomic<int>& isa_setting() {
  static std::atomic<int> v{[] {
    int best = static_cast<int>(detected_isa());
    const char* e = std::getenv("GRAFT_SGEMM");
    if (e && std::strcmp(e, "eigen") == 0) return 0;
    if (e && std::strcmp(e, "avx2") == 0) return std::min(best, 1);
    return best;
  }()};
  return v;
}
inline Isa isa() { return static_cast<Isa>(isa_setting().load(std::memory_order_relaxed)); }
/// Use at most `want` (capped at what the processor has); returns the kernel now in use.
inline Isa set_isa(Isa want) {
  const int v = std::min(static_cast<int>(want), static_cast<int>(detected_isa()));
  isa_setting().store(v, std::memory_order_relaxed);
  return static_cast<Isa>(v);
}

/// Whether a row-major op(B) with this leading dimension can be read in place: rows 16 floats
/// (one cache line) apart whose addresses cycle through few L1 sets would evict each other.
inline bool in_place_b_ok(Index ldb) {
  if (ldb % 16 != 0) return true;
  return 64 / std::gcd(ldb / 16, Index(64)) >= 32;  // 64 sets of 64-byte lines in a 32 KiB, 8-way L1
}

/// The tile at (a, c): mr (<= MR) rows, nr (<= Arch::kWidth * NV) columns, run by Arch's kernel
/// with the fewest registers of columns and rows that covers it (less work on padding).
template <class Arch, int MR, int NV, bool TA>
void tile(int mr, int nr, Index kc, const float* a, Index lda, const float* b, Index ldbp, float* c, Index ldc,
          float alpha, float beta, bool first) {
  if constexpr (NV > 1) {
    if (nr <= Arch::kWidth * (NV - 1)) return tile<Arch, MR, NV - 1, TA>(mr, nr, kc, a, lda, b, ldbp, c, ldc, alpha, beta, first);
  }
  if constexpr (MR > 1) {
    if (mr < MR) return tile<Arch, MR - 1, NV, TA>(mr, nr, kc, a, lda, b, ldbp, c, ldc, alpha, beta, first);
  }
  Arch::template kernel<MR, NV, TA>(kc, a, lda, b, ldbp, c, ldc, nr, alpha, beta, first);
}

/// C (row-major, ldc) = alpha * op(A) * op(B) + beta * C with kernel family Arch and MR x NV
/// register tiles, on the calling thread. Needs K >= 1.
template <class Arch, int MR, int NV, bool TA, bool TB>
void product(Index M, Index N, Index K, float alpha, const float* A, Index lda, const float* B, Index ldb, float beta,
             float* C, Index ldc) {
  constexpr int NR = Arch::kWidth * NV;
  const Index blocks = (K + kMaxDepth - 1) / kMaxDepth;
  const Index depth = ((K + blocks - 1) / blocks + 7) / 8 * 8;
  const Index padded_n = (N + NR - 1) / NR * NR;
  // op(B) read in place when row-major and few row tiles share each panel: with at most 32 rows
  // (two or three tiles) even a panel whose rows alias L1 sets is re-read from L2 at most twice,
  // cheaper than packing all of op(B) (a 3136 x 128 dense kernel for a batch of 32)
  const bool b_in_place = !TB && (M <= 32 || (M <= 128 && in_place_b_ok(ldb)));
  float* packed = gemm_buffers<float>().b(static_cast<std::size_t>(depth * (b_in_place ? NR : padded_n)));
  constexpr Index row_block = kRowBlock / MR * MR;
  for (Index p = 0; p < K; p += depth) {
    const Index kc = std::min(depth, K - p);
    const bool first = p == 0;
    const float* Bp = TB ? B + p : B + p * ldb;
    if (!b_in_place) Avx2::pack_b<NR, TB>(kc, N, Bp, ldb, packed);
    for (Index i0 = 0; i0 < M; i0 += row_block) {
      const Index mc = std::min(row_block, M - i0);
      for (Index j = 0; j < N; j += NR) {
        const int nr = static_cast<int>(std::min<Index>(NR, N - j));
        const float* panel;
        Index ldbp = NR;
        if (!b_in_place) {
          panel = packed + (j / NR) * NR * kc;
        } else if (nr % Arch::kWidth == 0) {  // the tile loads only whole registers of valid columns
          panel = Bp + j;
          ldbp = ldb;
        } else {
          if (i0 == 0) Avx2::pack_b<NR, TB>(kc, nr, Bp + j, ldb, packed);  // the last, partial panel
          panel = packed;
        }
        for (Index i = i0; i < i0 + mc; i += MR) {
          const int mr = static_cast<int>(std::min<Index>(MR, i0 + mc - i));
          const float* a = TA ? A + p * lda + i : A + i * lda + p;
          tile<Arch, MR, NV, TA>(mr, nr, kc, a, lda, panel, ldbp, C + i * ldc + j, ldc, alpha, beta, first);
        }
      }
    }
  }
}

/// Rows x columns of the product computed when M x N is cut into MR x NR tiles.
inline Index padded_area(Index M, Index N, Index MR, Index NR) { return (M + MR - 1) / MR * MR * ((N + NR - 1) / NR * NR); }

/// C (row-major, ldc) = alpha * op(A) * op(B) + beta * C on the calling thread with the AVX2
/// kernel; beta == 0 ignores C's previous content. Needs K >= 1 and a processor with AVX2+FMA.
template <bool TA, bool TB>
void run_avx2(Index M, Index N, Index K, float alpha, const float* A, Index lda, const float* B, Index ldb, float beta,
              float* C, Index ldc) {
  // the tile that pads the product less (6x16 on ties)
  if (padded_area(M, N, 4, 24) < padded_area(M, N, 6, 16)) product<Avx2, 4, 3, TA, TB>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else product<Avx2, 6, 2, TA, TB>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/// The same with the AVX-512 kernel (a processor with AVX-512F).
template <bool TA, bool TB>
void run_avx512(Index M, Index N, Index K, float alpha, const float* A, Index lda, const float* B, Index ldb,
                float beta, float* C, Index ldc) {
  // 8 columns or fewer (a softmax head): the AVX2 kernel's 8-wide registers (the same bits)
  if (N <= 8) return run_avx2<TA, TB>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // Short products (a batch of 32 or its row slices; a dense layer's 64-row groups) and narrow
  // ones: 16x16 tiles, which measured fastest on them: each packed panel serves few row tiles,
  // and 16 columns pad little.
  if (M >= 16 && (M <= 32 || (M <= 64 && N <= 128)))
    return product<Avx512, 16, 1, TA, TB>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // else 12x32 or 14x32 (24 or 28 accumulators), whichever pads less: their packed panels (at
  // most 256 x 32 floats) stay in a 48 KiB L1 while the row tiles stream past; wider panels
  // (8x48, 6x64) measured slower on the 64-row groups of a dense layer's forward pass.
  if (padded_area(M, N, 14, 32) < padded_area(M, N, 12, 32))
    product<Avx512, 14, 2, TA, TB>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    product<Avx512, 12, 2, TA, TB>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace sgemm
}  // namespace detail
}  // namespace graft
