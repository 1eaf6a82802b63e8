// graft — shared machinery of the vision layers: padding rules (TF/Keras "same" with the extra
// cell after, "causal"), 2-D geometry, im2col / col2im, the depthwise kernel, config helpers,
// and the activation step shared by the convolution layers.
#pragma once

#include <functional>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "graft/activations.hpp"
#include "graft/core/config.hpp"
#include "graft/core/gemm.hpp"
#include "graft/core/tensor.hpp"
#include "graft/layers/layer.hpp"

#include "graft/core/parallel.hpp"  // graft's worker pool

/// Vectorize the next loop even where the compiler's cost model would not (-O2): OpenMP simd,
/// when OpenMP (or -fopenmp-simd) is on; nothing otherwise.
/// GRAFT_SIMD_SUM(a, b): the same for a loop that sums into a and b.
#ifndef GRAFT_SIMD
#if defined(_OPENMP)
#define GRAFT_PRAGMA_(x) _Pragma(#x)
#define GRAFT_SIMD _Pragma("omp simd")
#define GRAFT_SIMD_SUM(...) GRAFT_PRAGMA_(omp simd reduction(+ : __VA_ARGS__))
#else
#define GRAFT_SIMD
#define GRAFT_SIMD_SUM(...)
#endif
#endif

namespace graft {

/// A list of 1 or `rank` sizes (kernel_size, strides, dilation_rate, pool_size...):
/// `3` and `{3, 3}` both work.
struct Dims {
  std::vector<Index> v;
  Dims(Index x) : v{x} {}  // NOLINT: implicit on purpose
  Dims(int x) : v{static_cast<Index>(x)} {}  // NOLINT
  Dims(std::initializer_list<Index> l) : v(l) {}
  Dims(std::vector<Index> x) : v(std::move(x)) {}  // NOLINT
  /// Expand to exactly n entries (a single value is repeated).
  std::vector<Index> expand(size_t n, const std::string& what, const std::string& who) const {
    if (v.size() == 1) return std::vector<Index>(n, v[0]);
    if (v.size() != n)
      throw value_error(detail::cat(who, ": ", what, " needs 1 or ", n, " values, got ", v.size()));
    return v;
  }
};

namespace detail {

/// Reductions: [0, n) cut into range_chunks(n) fixed ranges, f(chunk, lo, hi) for each, on the
/// worker threads when `parallel`. The partition does not depend on the thread count, so
/// per-chunk partial results (summed afterwards in chunk order) are the same on any number of
/// threads.
inline Index range_chunks(Index n) { return std::max<Index>(1, std::min<Index>(n, 8)); }
template <class F>
void parallel_ranges(Index n, bool parallel, F&& f) {
  const Index chunks = range_chunks(n);
  auto run = [&](Index c) { f(c, n * c / chunks, n * (c + 1) / chunks); };
  const int threads = parallel && chunks > 1 ? detail::usable_threads() : 1;
  if (threads <= 1) {
    for (Index c = 0; c < chunks; ++c) run(c);
    return;
  }
  parallel_chunks(chunks, threads, run);
}

enum class PadMode { valid, same, causal };

inline PadMode parse_padding(std::string p, const std::string& where, bool allow_causal) {
  for (auto& c : p) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (p == "valid") return PadMode::valid;
  if (p == "same") return PadMode::same;
  if (p == "causal" && allow_causal) return PadMode::causal;
  throw unsupported_error(cat(where, ": padding '", p, "' is not supported (valid", allow_causal ? ", same or causal" : " or same", ")"));
}
inline const char* padding_name(PadMode p) {
  return p == PadMode::valid ? "valid" : p == PadMode::same ? "same" : "causal";
}

/// Output length along one spatial axis (Keras rule), -1 when the input length is unknown.
inline Index conv_out_len(Index in, Index k, Index s, Index d, PadMode p) {
  if (in < 0) return -1;
  const Index ek = (k - 1) * d + 1;
  if (p == PadMode::valid) return in >= ek ? (in - ek) / s + 1 : 0;
  return in > 0 ? (in - 1) / s + 1 : 0;  // same: ceil(in / s); causal: same length after left padding
}
/// Cells of padding before the first input cell. "same" follows TF/Keras: total =
/// max((out - 1) * s + (k - 1) * d + 1 - in, 0), the odd cell goes after.
inline Index pad_before(Index in, Index k, Index s, Index d, PadMode p) {
  if (p == PadMode::valid) return 0;
  if (p == PadMode::causal) return (k - 1) * d;
  const Index out = conv_out_len(in, k, s, d, p);
  const Index total = std::max<Index>((out - 1) * s + (k - 1) * d + 1 - in, 0);
  return total / 2;
}

/// Resize t to (a, b) through a reusable shape buffer (no allocation once warm).
template <class T>
void resize2(Tensor<T>& t, Shape& buf, Index a, Index b) {
  buf.resize(2);
  buf[0] = a;
  buf[1] = b;
  t.resize(buf);
}

/// 2-D sliding-window geometry over NHWC inputs (1-D layers use H = 1, kh = 1).
struct Geom {
  Index N = 0, H = 0, W = 0, C = 0;
  Index kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  Index pt = 0, pl = 0;  // padding before (top, left)
  Index OH = 0, OW = 0;
  Index K() const { return kh * kw * C; }
  Index out_rows() const { return N * OH * OW; }
  /// 1x1 kernel, stride 1, no padding: im2col is the identity.
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0; }
};

/// The geometry of a window over an input; OH or OW <= 0 means the input is smaller than the
/// window (check with window_fits; this function does not throw, so it never builds a message).
inline Geom make_geom(Index N, Index H, Index W, Index C, Index kh, Index kw, Index sh, Index sw, Index dh, Index dw,
                      PadMode pad, PadMode pad_h) {
  Geom g;
  g.N = N; g.H = H; g.W = W; g.C = C;
  g.kh = kh; g.kw = kw; g.sh = sh; g.sw = sw; g.dh = dh; g.dw = dw;
  g.OH = conv_out_len(H, kh, sh, dh, pad_h);
  g.OW = conv_out_len(W, kw, sw, dw, pad);
  g.pt = pad_before(H, kh, sh, dh, pad_h);
  g.pl = pad_before(W, kw, sw, dw, pad);
  return g;
}
inline bool window_fits(const Geom& g) { return g.OH > 0 && g.OW > 0; }
[[noreturn]] inline void throw_window_too_large(const std::string& where, const Geom& g, PadMode pad) {
  throw shape_error(cat(where, ": the input (", g.H, "x", g.W, ") is smaller than the window (", (g.kh - 1) * g.dh + 1, "x",
                        (g.kw - 1) * g.dw + 1, ") with padding '", padding_name(pad), "'"));
}

/// One output row of im2col for an input of CC channels (CC small, known at compile time).
template <class T, int CC>
void im2col_row_few(const T* xn, const Geom& g, Index oh, T* c) {
  const Index K = g.K();
  for (Index i = 0; i < g.kh; ++i) {
    const Index ih = oh * g.sh - g.pt + i * g.dh;
    const bool row_in = ih >= 0 && ih < g.H;
    const T* xr = xn + (row_in ? ih : 0) * g.W * CC;
    for (Index j = 0; j < g.kw; ++j) {
      T* cj = c + (i * g.kw + j) * CC;
      const Index off = j * g.dw - g.pl;  // iw = ow * sw + off
      // output columns whose iw lies inside the input: [lo, hi)
      Index lo = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
      Index hi = g.W - off - 1 < 0 ? 0 : std::min(g.OW, (g.W - off - 1) / g.sw + 1);
      if (!row_in) lo = hi = g.OW;
      lo = std::min(lo, g.OW);
      hi = std::max(hi, lo);
      for (Index ow = 0; ow < lo; ++ow)
        for (int ch = 0; ch < CC; ++ch) cj[ow * K + ch] = T(0);
      for (Index ow = lo; ow < hi; ++ow) {
        const T* xp = xr + (ow * g.sw + off) * CC;
        for (int ch = 0; ch < CC; ++ch) cj[ow * K + ch] = xp[ch];
      }
      for (Index ow = hi; ow < g.OW; ++ow)
        for (int ch = 0; ch < CC; ++ch) cj[ow * K + ch] = T(0);
    }
  }
}

/// col[(n - n0) * OH * OW + oh * OW + ow][(i * kw + j) * C + c] = x[n][oh*sh - pt + i*dh][ow*sw - pl + j*dw][c]
/// (0 outside the input), for samples [n0, n1).
template <class T>
void im2col(const T* x, const Geom& g, Index n0, Index n1, T* col) {
  const Index K = g.K(), C = g.C;
  const Index total = (n1 - n0) * g.OH;
  parallel_for(0, total, total * g.OW * K > 65536, [&](Index t) {
    const Index n = n0 + t / g.OH, oh = t % g.OH;
    const T* xn = x + n * g.H * g.W * C;
    T* c = col + t * g.OW * K;
    if (C <= 4) {  // few channels: tap by tap, a strided loop over the row (no copy calls of 1-4 values)
      switch (C) {
        case 1: im2col_row_few<T, 1>(xn, g, oh, c); break;
        case 2: im2col_row_few<T, 2>(xn, g, oh, c); break;
        case 3: im2col_row_few<T, 3>(xn, g, oh, c); break;
        default: im2col_row_few<T, 4>(xn, g, oh, c); break;
      }
      return;
    }
    for (Index ow = 0; ow < g.OW; ++ow) {
      for (Index i = 0; i < g.kh; ++i) {
        const Index ih = oh * g.sh - g.pt + i * g.dh;
        if (ih < 0 || ih >= g.H) {
          std::fill(c, c + g.kw * C, T(0));
          c += g.kw * C;
          continue;
        }
        const T* xr = xn + ih * g.W * C;
        const Index iw0 = ow * g.sw - g.pl;
        if (g.dw == 1 && iw0 >= 0 && iw0 + g.kw <= g.W) {  // the whole kernel row is inside: one block
          std::copy(xr + iw0 * C, xr + (iw0 + g.kw) * C, c);
          c += g.kw * C;
          continue;
        }
        for (Index j = 0; j < g.kw; ++j, c += C) {
          const Index iw = iw0 + j * g.dw;
          if (iw < 0 || iw >= g.W) std::fill(c, c + C, T(0));
          else std::copy(xr + iw * C, xr + (iw + 1) * C, c);
        }
      }
    }
  });
}

/// dx += scatter of the dcol rows of output cells [q0, q1) of the batch (cell q is sample
/// q / (OH*OW), row-major (oh, ow) within it; dcol's first row is cell q0): the adjoint of
/// im2col, on the calling thread.
template <class T>
void col2im_add_cells(const T* dcol, const Geom& g, Index q0, Index q1, T* dx) {
  const Index C = g.C, per = g.OH * g.OW;
  const T* c = dcol;
  for (Index q = q0; q < q1; ++q) {
    const Index p = q % per, oh = p / g.OW, ow = p % g.OW;
    T* xn = dx + (q / per) * g.H * g.W * C;
    for (Index i = 0; i < g.kh; ++i) {
      const Index ih = oh * g.sh - g.pt + i * g.dh;
      if (ih < 0 || ih >= g.H) {
        c += g.kw * C;
        continue;
      }
      T* xr = xn + ih * g.W * C;
      for (Index j = 0; j < g.kw; ++j, c += C) {
        const Index iw = ow * g.sw - g.pl + j * g.dw;
        if (iw < 0 || iw >= g.W) continue;
        T* __restrict xp = xr + iw * C;
        const T* __restrict cp = c;
        GRAFT_SIMD
        for (Index ch = 0; ch < C; ++ch) xp[ch] += cp[ch];
      }
    }
  }
}

/// depthwise_forward's inner step for dm == 1: channels [c0, c0 + B) of one output pixel, its
/// `taps` valid taps (input and kernel rows) summed in registers, in tap order from zero: the same
/// sum, operation for operation, as adding tap after tap into the output.
template <int B, class T>
inline void depthwise_pixel_block(const T* const* xs, const T* const* ks, int taps, Index c0, T* y) {
  T acc[B];
#pragma GCC unroll 64
  for (int c = 0; c < B; ++c) acc[c] = T(0);
  for (int t = 0; t < taps; ++t) {
    const T* __restrict xp = xs[t] + c0;
    const T* __restrict kp = ks[t] + c0;
#pragma GCC unroll 64
    for (int c = 0; c < B; ++c) acc[c] += xp[c] * kp[c];
  }
#pragma GCC unroll 64
  for (int c = 0; c < B; ++c) y[c0 + c] = acc[c];
}

/// Depthwise convolution: y[n,oh,ow,c*dm+m] = sum_ij x[n, ih, iw, c] * k[i, j, c, m] (no bias).
/// Output rows (n, oh) in parallel; row_done(t) is called on the thread that computed output row
/// t = n * OH + oh (its OW * C * dm values), while they are in that core's cache.
template <class T, class RowDone>
void depthwise_forward(const T* x, const Geom& g, Index dm, const T* k, T* y, RowDone&& row_done) {
  const Index C = g.C, CO = C * dm;
  const Index total = g.N * g.OH;
  parallel_for(0, total, total * g.OW * CO * g.kh * g.kw > 32768, [&](Index t) {
    const Index n = t / g.OH, oh = t % g.OH;
    const T* xn = x + n * g.H * g.W * C;
    T* yr = y + t * g.OW * CO;
    // each output pixel's valid taps: its input pixels and kernel rows, in tap order
    const T** xs = thread_scratch<const T*>(2 * g.kh * g.kw);
    const T** ks = xs + g.kh * g.kw;
    for (Index ow = 0; ow < g.OW; ++ow, yr += CO) {
      int taps = 0;
      for (Index i = 0; i < g.kh; ++i) {
        const Index ih = oh * g.sh - g.pt + i * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        for (Index j = 0; j < g.kw; ++j) {
          const Index iw = ow * g.sw - g.pl + j * g.dw;
          if (iw < 0 || iw >= g.W) continue;
          xs[taps] = xn + (ih * g.W + iw) * C;
          ks[taps] = k + (i * g.kw + j) * CO;
          ++taps;
        }
      }
      if (dm == 1) {
        Index c0 = 0;
        for (; c0 + 32 <= C; c0 += 32) depthwise_pixel_block<32>(xs, ks, taps, c0, yr);
        for (; c0 + 8 <= C; c0 += 8) depthwise_pixel_block<8>(xs, ks, taps, c0, yr);
        for (; c0 < C; ++c0) depthwise_pixel_block<1>(xs, ks, taps, c0, yr);
        continue;
      }
      std::fill(yr, yr + CO, T(0));
      for (int tp = 0; tp < taps; ++tp) {
        const T* xp = xs[tp];
        const T* kp = ks[tp];
        for (Index c = 0; c < C; ++c) {
          const T xv = xp[c];
          for (Index m = 0; m < dm; ++m) yr[c * dm + m] += xv * kp[c * dm + m];
        }
      }
    }
    row_done(t);
  });
}
template <class T>
void depthwise_forward(const T* x, const Geom& g, Index dm, const T* k, T* y) {
  depthwise_forward(x, g, dm, k, y, [](Index) {});
}

/// Gradients of depthwise_forward in one pass over the data, parallel over ranges of samples.
/// dk (kh*kw*C*dm values) is overwritten when overwrite_dk, else accumulated; dx (when not null)
/// is overwritten. `scratch` holds one partial kernel gradient per range (reused between calls).
template <class T>
void depthwise_backward(const T* x, const Geom& g, Index dm, const T* k, const T* dy, T* dk, bool overwrite_dk, T* dx,
                        std::vector<T>& scratch) {
  const Index C = g.C, CO = C * dm, KK = g.kh * g.kw * CO, HWC = g.H * g.W * C;
  const Index chunks = range_chunks(g.N);
  if (dk) scratch.assign(static_cast<size_t>(chunks * KK), T(0));
  parallel_ranges(g.N, g.N > 1 && g.OH * g.OW * CO * g.kh * g.kw > 16384, [&](Index chunk, Index n0, Index n1) {
    T* part = dk ? scratch.data() + chunk * KK : nullptr;
    for (Index n = n0; n < n1; ++n) {
      const T* xs = x + n * HWC;
      T* xn = dx ? dx + n * HWC : nullptr;
      if (xn) std::fill(xn, xn + HWC, T(0));
      for (Index oh = 0; oh < g.OH; ++oh)
        for (Index ow = 0; ow < g.OW; ++ow) {
          const T* dp = dy + ((n * g.OH + oh) * g.OW + ow) * CO;
          for (Index i = 0; i < g.kh; ++i) {
            const Index ih = oh * g.sh - g.pt + i * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            for (Index j = 0; j < g.kw; ++j) {
              const Index iw = ow * g.sw - g.pl + j * g.dw;
              if (iw < 0 || iw >= g.W) continue;
              const Index off = (ih * g.W + iw) * C, tap = i * g.kw + j;
              const T* xp = xs + off;
              const T* kp = k + tap * CO;
              if (dm == 1) {
                if (part) {
                  T* dkp = part + tap * CO;
                  GRAFT_SIMD
                  for (Index c = 0; c < C; ++c) dkp[c] += xp[c] * dp[c];
                }
                if (xn) {
                  T* dxp = xn + off;
                  GRAFT_SIMD
                  for (Index c = 0; c < C; ++c) dxp[c] += dp[c] * kp[c];
                }
              } else {
                if (part) {
                  T* dkp = part + tap * CO;
                  for (Index c = 0; c < C; ++c)
                    for (Index m = 0; m < dm; ++m) dkp[c * dm + m] += xp[c] * dp[c * dm + m];
                }
                if (xn) {
                  T* dxp = xn + off;
                  for (Index c = 0; c < C; ++c) {
                    T acc = 0;
                    for (Index m = 0; m < dm; ++m) acc += dp[c * dm + m] * kp[c * dm + m];
                    dxp[c] += acc;
                  }
                }
              }
            }
          }
        }
    }
  });
  if (!dk) return;
  for (Index e = 0; e < KK; ++e) {
    T acc = overwrite_dk ? T(0) : dk[e];
    for (Index c = 0; c < chunks; ++c) acc += scratch[static_cast<size_t>(c * KK + e)];
    dk[e] = acc;
  }
}

/// Activation step shared by the convolution layers (the Dense recipe): z kept when the
/// derivative needs it.
template <class T>
struct ActStep {
  Tensor<T> z, dz;
  /// Inference fusion: applied after the activation to every range forward_range computes.
  std::function<void(T*, Index, Index)> post;
  void forward(const ActivationFn& act, Tensor<T>& y) {
    prepare(act, y);
    forward_range(act, y, 0, y.size());
  }
  /// forward() in pieces: prepare() once, then forward_range() over disjoint ranges of whole
  /// rows (any order, any thread).
  void prepare(const ActivationFn& act, const Tensor<T>& y) {
    if (!act.is_linear() && act.needs_input()) z.resize(y.shape());
  }
  void forward_range(const ActivationFn& act, Tensor<T>& y, Index begin, Index end) {
    if (end <= begin) return;
    if (!act.is_linear()) {
      const Index last = y.rank() ? std::max<Index>(1, y.shape().back()) : 1;
      if (act.needs_input()) std::copy(y.data() + begin, y.data() + end, z.data() + begin);
      act.forward(y.data() + begin, y.data() + begin, end - begin, last);
    }
    if (post) post(y.data(), begin, end);
  }
  /// dLoss/dz (pointer to dy itself for a linear activation).
  const T* backward(const ActivationFn& act, const Tensor<T>& y, const Tensor<T>& dy) {
    const T* d = prepare_backward(act, y, dy);
    backward_range(act, y, dy, 0, y.size());
    return d;
  }
  /// backward() in pieces: prepare_backward() once (returns where dLoss/dz will be), then
  /// backward_range() over disjoint ranges of whole rows (any order, any thread).
  const T* prepare_backward(const ActivationFn& act, const Tensor<T>& y, const Tensor<T>& dy) {
    if (act.is_linear()) return dy.data();
    dz.resize(y.shape());
    return dz.data();
  }
  void backward_range(const ActivationFn& act, const Tensor<T>& y, const Tensor<T>& dy, Index begin, Index end) {
    if (act.is_linear() || end <= begin) return;
    const Index last = y.rank() ? std::max<Index>(1, y.shape().back()) : 1;
    act.backward(act.needs_input() ? z.data() + begin : nullptr, y.data() + begin, dy.data() + begin, dz.data() + begin,
                 end - begin, last);
  }
};

/// First present key among `keys` ("" when none).
inline std::string first_key(const Config& c, std::initializer_list<const char*> keys) { return c.pick(keys); }

/// Read an initializer / regularizer / constraint stored under any of `keys` (Keras 1/2/3 spellings).
inline void read_initializer(const Config& c, std::initializer_list<const char*> keys, Initializer& out) {
  std::string k = c.pick(keys);
  if (!k.empty()) out = Initializer::from_json(c.raw()[k], c.where());
}
inline void read_regularizer(const Config& c, std::initializer_list<const char*> keys, Regularizer& out) {
  std::string k = c.pick(keys);
  if (!k.empty()) out = Regularizer::from_json(c.raw()[k], c.where());
}
inline void read_constraint(const Config& c, std::initializer_list<const char*> keys, Constraint& out) {
  std::string k = c.pick(keys);
  if (!k.empty()) out = Constraint::from_json(c.raw()[k], c.where());
}
/// Options graft does not implement: reject them by name when they are set.
inline void reject_set_options(const Config& c) {
  if (c.has("activity_regularizer"))
    throw unsupported_error(cat(c.where(), ": activity_regularizer is not supported"));
  if (c.has("lora_rank"))
    throw unsupported_error(cat(c.where(), ": LoRA (lora_rank) is not supported"));
  if (c.has("quantization_config"))
    throw unsupported_error(cat(c.where(), ": quantized layers are not supported"));
}
/// A positive size list (kernel_size, strides...) read with its Keras spellings.
inline std::vector<Index> read_sizes(const Config& c, const std::string& key, size_t n, std::vector<Index> dflt) {
  auto r = c.get_tuple(key, n, std::move(dflt));
  for (Index v : r)
    if (v <= 0) throw value_error(cat(c.where(), ": '", key, "' must hold positive values, got ", c.raw()[key].dump()));
  return r;
}
inline json sizes_json(const std::vector<Index>& v) {
  json a = json::array();
  for (Index x : v) a.push_back(x);
  return a;
}

}  // namespace detail
}  // namespace graft
