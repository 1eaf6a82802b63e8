// graft — image geometry shared by the preprocessing and augmentation layers, as Keras 3.15.1
// computes it on its torch backend (keras/src/backend/torch/image.py):
//
//  * affine_transform: each output pixel (x, y) of an NHWC image reads the input at
//      x_in = a0 x + a1 y + a2,  y_in = b0 x + b1 y + b2      (pixel indices, no half-pixel shift)
//    for the 8-number transform [a0, a1, a2, b0, b1, b2, c0, c1] of keras.ops.image.affine_transform
//    (c0, c1 are 0 in every Keras layer; graft divides by k = c0 x + c1 y + 1 as TensorFlow does,
//    which is the same thing there), with nearest (round half to even) or bilinear interpolation
//    and Keras' fill modes: reflect (d c b a | a b c d | d c b a), wrap (a b c d | a b c d),
//    nearest (a a | a b c d | d d) and constant (fill_value; each of the bilinear taps that falls
//    outside reads fill_value, so edges blend into it, as map_coordinates does);
//  * resampling (keras.ops.image.resize = torch's F.interpolate, align_corners=False): separable
//    per-axis taps — bilinear, nearest ("nearest-exact"), bicubic (a = -0.75), and the antialiased
//    bilinear / bicubic (a = -0.5) filters — over a source axis that may be a crop of the input
//    (crop_to_aspect_ratio, CenterCrop, RandomCrop) or the input padded with fill_value
//    (pad_to_aspect_ratio).
//
// Everything here is linear in the image, so each forward has its exact transpose (the backward
// passes: bilinear weights scattered back, fill contributions dropped).
#pragma once

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/parallel.hpp"
#include "graft/core/tensor.hpp"

namespace graft {
namespace image {

/// How affine_transform fills points outside the image (Keras `fill_mode`).
enum class FillMode { reflect, wrap, constant, nearest };
/// Interpolation of affine_transform (nearest, bilinear) and of resizing (also bicubic).
enum class Interpolation { nearest, bilinear, bicubic };

inline const char* fill_mode_name(FillMode m) {
  switch (m) {
    case FillMode::reflect: return "reflect";
    case FillMode::wrap: return "wrap";
    case FillMode::constant: return "constant";
    case FillMode::nearest: return "nearest";
  }
  return "?";
}
inline const char* interpolation_name(Interpolation i) {
  switch (i) {
    case Interpolation::nearest: return "nearest";
    case Interpolation::bilinear: return "bilinear";
    case Interpolation::bicubic: return "bicubic";
  }
  return "?";
}

/// Keras' fill_mode names; value_error (Keras' message) for any other.
inline FillMode parse_fill_mode(const std::string& s, const std::string& who) {
  if (s == "reflect") return FillMode::reflect;
  if (s == "wrap") return FillMode::wrap;
  if (s == "constant") return FillMode::constant;
  if (s == "nearest") return FillMode::nearest;
  throw value_error(detail::cat(who, ": Unknown `fill_mode` ", s, ". Expected of one ('reflect', 'wrap', 'constant', 'nearest')."));
}
/// Interpolations of the affine layers (RandomRotation, RandomZoom, RandomTranslation).
inline Interpolation parse_affine_interpolation(const std::string& s, const std::string& who) {
  if (s == "nearest") return Interpolation::nearest;
  if (s == "bilinear") return Interpolation::bilinear;
  throw value_error(detail::cat(who, ": Unknown `interpolation` ", s, ". Expected of one ('nearest', 'bilinear')."));
}
/// Interpolations of keras.ops.image.resize on the torch backend; the others Keras knows
/// (lanczos3, lanczos5, area, gaussian, mitchellcubic: TensorFlow's) are unsupported_error.
inline Interpolation parse_resize_interpolation(const std::string& s, const std::string& who) {
  if (s == "nearest") return Interpolation::nearest;
  if (s == "bilinear") return Interpolation::bilinear;
  if (s == "bicubic") return Interpolation::bicubic;
  if (s == "lanczos3" || s == "lanczos5" || s == "area" || s == "gaussian" || s == "mitchellcubic")
    throw unsupported_error(detail::cat(who, ": interpolation '", s,
                                        "' is not supported (graft resizes as Keras' torch backend does: bilinear, nearest or bicubic)"));
  throw value_error(detail::cat(who, ": Invalid value for argument `interpolation`. Expected of one {'bilinear', 'nearest', "
                                     "'bicubic'}. Received: interpolation=", s));
}

namespace detail {
inline Index floor_mod(Index a, Index n) {
  Index r = a % n;
  return r < 0 ? r + n : r;
}
inline Index floor_div(Index a, Index n) {
  Index q = a / n;
  return (a % n != 0 && ((a < 0) != (n < 0))) ? q - 1 : q;
}
/// The calling thread's Shape to assemble an output shape in without allocating.
inline Shape& shape4(Index n, Index h, Index w, Index c) {
  thread_local Shape s(4);
  s.assign({n, h, w, c});
  return s;
}
/// A coordinate as an index, bounded so that a wild transform cannot overflow.
template <class G>
Index to_index(G v) {
  if (!(v > G(-1e9))) return -1000000000;
  if (!(v < G(1e9))) return 1000000000;
  return static_cast<Index>(v);
}
}  // namespace detail

/// Keras' index fixers (_INDEX_FIXERS): where index `i` of an axis of `size` reads from.
inline Index fix_index(Index i, Index size, FillMode m) {
  switch (m) {
    case FillMode::constant:
    case FillMode::nearest: return i < 0 ? 0 : i >= size ? size - 1 : i;
    case FillMode::wrap: return detail::floor_mod(i, size);
    case FillMode::reflect: {  // floor_divide(mirror(2 i + 1, 2 size + 1) - 1, 2), mirror's period 2 (2 size)
      const Index s = 2 * size;
      const Index mirrored = std::abs(detail::floor_mod(2 * i + 1 + s, 2 * s) - s);
      return detail::floor_div(mirrored - 1, 2);
    }
  }
  return 0;
}

/// The transform vector of keras.ops.image.affine_transform.
template <class G>
using Transform = std::array<G, 8>;

namespace detail {
/// The (at most 2) taps of one axis for a sampling coordinate.
template <class G>
struct AxisSample {
  Index index[2];
  G weight[2];
  bool valid[2];
  int n;
};
template <class G>
AxisSample<G> sample_axis(G coord, Index size, Interpolation ip, FillMode fm) {
  AxisSample<G> s;
  if (ip == Interpolation::nearest) {
    const Index i = to_index(std::nearbyint(coord));  // torch.round: half to even
    s.n = 1;
    s.valid[0] = fm != FillMode::constant || (i >= 0 && i < size);
    s.index[0] = fix_index(i, size, fm);
    s.weight[0] = G(1);
    return s;
  }
  const G lower = std::floor(coord);
  const Index i = to_index(lower);
  const G upper_w = coord - lower;
  s.n = 2;
  s.weight[0] = G(1) - upper_w;
  s.weight[1] = upper_w;
  for (int k = 0; k < 2; ++k) {
    const Index j = i + k;
    s.valid[k] = fm != FillMode::constant || (j >= 0 && j < size);
    s.index[k] = fix_index(j, size, fm);
  }
  return s;
}
/// Input coordinates of output pixel (x, y), in the order torch's einsum adds them.
template <class G>
void source_point(const Transform<G>& t, Index x, Index y, G& xs, G& ys) {
  const G fx = static_cast<G>(x), fy = static_cast<G>(y);
  xs = (fy * t[1] + fx * t[0]) + t[2];
  ys = (fy * t[4] + fx * t[3]) + t[5];
  if (t[6] != G(0) || t[7] != G(0)) {
    const G k = t[6] * fx + t[7] * fy + G(1);
    xs /= k;
    ys /= k;
  }
}
}  // namespace detail

namespace detail {
/// The taps of output pixel (ox, oy): up to 2 x 2 (input offset or -1 for the fill value,
/// weight), in map_coordinates' order. Pixels whose taps all lie inside the image (almost all of
/// them) take the short path; the result is the same.
template <class T>
struct PixelTaps {
  Index offset[4];
  T weight[4];
  int n;
  bool inside;  ///< every tap reads the image (no fill value)
};
template <class T>
void pixel_taps(const Transform<T>& t, Index ox, Index oy, Index H, Index W, Index C, Interpolation ip, FillMode fm,
                PixelTaps<T>& p) {
  T xs, ys;
  source_point(t, ox, oy, xs, ys);
  if (ip == Interpolation::bilinear) {
    const T fy = std::floor(ys), fx = std::floor(xs);
    if (fy >= T(0) && fy < static_cast<T>(H - 1) && fx >= T(0) && fx < static_cast<T>(W - 1)) {
      const Index iy = static_cast<Index>(fy), ix = static_cast<Index>(fx);
      const T wy1 = ys - fy, wx1 = xs - fx, wy0 = T(1) - wy1, wx0 = T(1) - wx1;
      const Index o = (iy * W + ix) * C;
      p.n = 4;
      p.offset[0] = o;
      p.offset[1] = o + C;
      p.offset[2] = o + W * C;
      p.offset[3] = o + W * C + C;
      p.weight[0] = wy0 * wx0;
      p.weight[1] = wy0 * wx1;
      p.weight[2] = wy1 * wx0;
      p.weight[3] = wy1 * wx1;
      p.inside = true;
      return;
    }
  } else {
    const T ry = std::nearbyint(ys), rx = std::nearbyint(xs);  // torch.round: half to even
    if (ry >= T(0) && ry < static_cast<T>(H) && rx >= T(0) && rx < static_cast<T>(W)) {
      p.n = 1;
      p.offset[0] = (static_cast<Index>(ry) * W + static_cast<Index>(rx)) * C;
      p.weight[0] = T(1);
      p.inside = true;
      return;
    }
  }
  const auto sy = sample_axis(ys, H, ip, fm);
  const auto sx = sample_axis(xs, W, ip, fm);
  p.n = 0;
  p.inside = false;
  for (int a = 0; a < sy.n; ++a)
    for (int b = 0; b < sx.n; ++b) {
      p.offset[p.n] = sy.valid[a] && sx.valid[b] ? (sy.index[a] * W + sx.index[b]) * C : -1;
      p.weight[p.n] = sy.weight[a] * sx.weight[b];
      ++p.n;
    }
}
/// out[0..C) = sum of the taps (C known at compile time when CC > 0), summed in a register.
template <int CC, class T>
void gather(const T* img, const PixelTaps<T>& p, T fill, Index C, T* out) {
  const Index n = CC > 0 ? CC : C;
  if (p.inside && p.n == 4) {  // the common case, without branches
    const T *q0 = img + p.offset[0], *q1 = img + p.offset[1], *q2 = img + p.offset[2], *q3 = img + p.offset[3];
    for (Index c = 0; c < n; ++c) out[c] = p.weight[0] * q0[c] + p.weight[1] * q1[c] + p.weight[2] * q2[c] + p.weight[3] * q3[c];
    return;
  }
  for (Index c = 0; c < n; ++c) {
    T acc = T(0);
    for (int k = 0; k < p.n; ++k) acc += p.weight[k] * (p.offset[k] >= 0 ? img[p.offset[k] + c] : fill);
    out[c] = acc;
  }
}
template <int CC, class T>
void scatter(T* img, const PixelTaps<T>& p, Index C, const T* g) {
  const Index n = CC > 0 ? CC : C;
  for (int k = 0; k < p.n; ++k) {
    if (p.offset[k] < 0) continue;
    const T w = p.weight[k];
    T* q = img + p.offset[k];
    for (Index c = 0; c < n; ++c) q[c] += w * g[c];
  }
}
}  // namespace detail

/// y = affine_transform(x, transforms[b] for image b). x is NHWC; y gets x's shape.
template <class T>
void affine_transform(const Tensor<T>& x, const std::vector<Transform<T>>& transforms, Interpolation ip, FillMode fm, T fill,
                      Tensor<T>& y) {
  const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  if (static_cast<Index>(transforms.size()) != N)
    throw value_error(graft::detail::cat("affine_transform: ", transforms.size(), " transforms for ", N, " images"));
  y.resize(x.shape());
  const T* xd = x.data();
  T* yd = y.data();
  graft::detail::parallel_for(0, N * H, N * H * W * C > 50000, [&](Index row) {
    const Index b = row / H, oy = row % H;
    const Transform<T>& t = transforms[static_cast<size_t>(b)];
    const T* img = xd + b * H * W * C;
    T* out = yd + (b * H + oy) * W * C;
    detail::PixelTaps<T> p;
    for (Index ox = 0; ox < W; ++ox, out += C) {
      detail::pixel_taps(t, ox, oy, H, W, C, ip, fm, p);
      if (C == 3) detail::gather<3>(img, p, fill, C, out);
      else if (C == 1) detail::gather<1>(img, p, fill, C, out);
      else detail::gather<0>(img, p, fill, C, out);
    }
  });
}

/// dx = the transpose of affine_transform applied to dy (fill contributions do not depend on x).
template <class T>
void affine_transform_backward(const Tensor<T>& dy, const std::vector<Transform<T>>& transforms, Interpolation ip, FillMode fm,
                               Tensor<T>& dx) {
  const Index N = dy.dim(0), H = dy.dim(1), W = dy.dim(2), C = dy.dim(3);
  dx.resize(dy.shape());
  dx.set_zero();
  const T* g = dy.data();
  T* d = dx.data();
  graft::detail::parallel_for(0, N, N > 1 && N * H * W * C > 50000, [&](Index b) {
    const Transform<T>& t = transforms[static_cast<size_t>(b)];
    T* img = d + b * H * W * C;
    detail::PixelTaps<T> p;
    for (Index oy = 0; oy < H; ++oy) {
      const T* gr = g + (b * H + oy) * W * C;
      for (Index ox = 0; ox < W; ++ox, gr += C) {
        detail::pixel_taps(t, ox, oy, H, W, C, ip, fm, p);
        if (C == 3) detail::scatter<3>(img, p, C, gr);
        else if (C == 1) detail::scatter<1>(img, p, C, gr);
        else detail::scatter<0>(img, p, C, gr);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Separable resampling: crops, pads and resizes
// ---------------------------------------------------------------------------------------------

/// One axis of a separable resampling: output position o reads taps [start[o], start[o+1]) of
/// (index, weight); index -1 reads the fill value (padding).
template <class G>
struct AxisTaps {
  std::vector<Index> start{0};
  std::vector<Index> index;
  std::vector<G> weight;
  Index out() const { return static_cast<Index>(start.size()) - 1; }
  void add(Index i, G w) {
    index.push_back(i);
    weight.push_back(w);
  }
  void next() { start.push_back(static_cast<Index>(index.size())); }
};

/// A source axis of `length` positions: position v reads input index v + shift when that lies in
/// [0, size), else the fill value. A crop starting at s: shift s; padding p before: shift -p.
struct SourceAxis {
  Index length = 0;
  Index shift = 0;
  Index size = 0;
  Index map(Index v) const {
    const Index i = v + shift;
    return i >= 0 && i < size ? i : -1;
  }
};

/// Identity taps: output o reads source position o (crops).
template <class G>
AxisTaps<G> copy_taps(const SourceAxis& src, Index out) {
  AxisTaps<G> t;
  for (Index o = 0; o < out; ++o) {
    t.add(src.map(o), G(1));
    t.next();
  }
  return t;
}

namespace detail {
/// torch's cubic convolution coefficients (upsample_bicubic2d, a = -0.75) for fraction t.
template <class G>
void cubic_coefficients(G t, G a, G c[4]) {
  auto conv1 = [a](G x) { return ((a + G(2)) * x - (a + G(3))) * x * x + G(1); };
  auto conv2 = [a](G x) { return ((a * x - G(5) * a) * x + G(8) * a) * x - G(4) * a; };
  c[0] = conv2(t + G(1));
  c[1] = conv1(t);
  c[2] = conv1(G(1) - t);
  c[3] = conv2(G(2) - t);
}
/// The antialiasing filters of torch's _upsample_bilinear2d_aa / _upsample_bicubic2d_aa.
template <class G>
G aa_filter(G x, bool cubic) {
  if (x < G(0)) x = -x;
  if (!cubic) return x < G(1) ? G(1) - x : G(0);
  const G a = G(-0.5);
  if (x < G(1)) return ((a + G(2)) * x - (a + G(3))) * x * x + G(1);
  if (x < G(2)) return (((x - G(5)) * x + G(8)) * x - G(4)) * a;
  return G(0);
}
}  // namespace detail

/// Taps resizing source axis `src` to `out` positions as torch's F.interpolate(align_corners=
/// False) does: bilinear (half-pixel centres, source clamped at 0), nearest ("nearest-exact":
/// floor((o + 0.5) * in / out)), bicubic (a = -0.75, indices clamped at the borders); with
/// `antialias` (bilinear, bicubic), torch's separable filters widened by the downscale factor.
template <class G>
AxisTaps<G> resize_taps(const SourceAxis& src, Index out, Interpolation ip, bool antialias) {
  AxisTaps<G> t;
  const Index in = src.length;
  const G scale = static_cast<G>(in) / static_cast<G>(out);
  if (ip == Interpolation::nearest) {
    const float fs = static_cast<float>(in) / static_cast<float>(out);  // torch computes this in float
    for (Index o = 0; o < out; ++o) {
      const float v = static_cast<float>((static_cast<double>(o) + 0.5) * static_cast<double>(fs));
      Index i = static_cast<Index>(std::floor(v));
      if (i > in - 1) i = in - 1;
      t.add(src.map(i), G(1));
      t.next();
    }
    return t;
  }
  if (antialias) {
    const bool cubic = ip == Interpolation::bicubic;
    const G interp = cubic ? G(4) : G(2);
    const G support = scale >= G(1) ? interp * G(0.5) * scale : interp * G(0.5);
    const G invscale = scale >= G(1) ? G(1) / scale : G(1);
    std::vector<G> w;
    for (Index o = 0; o < out; ++o) {
      const G center = scale * (static_cast<G>(o) + G(0.5));
      const Index xmin = std::max<Index>(static_cast<Index>(center - support + G(0.5)), 0);
      const Index xsize = std::min<Index>(static_cast<Index>(center + support + G(0.5)), in) - xmin;
      w.assign(static_cast<size_t>(std::max<Index>(xsize, 0)), G(0));
      G total = 0;
      for (Index j = 0; j < xsize; ++j) {
        w[static_cast<size_t>(j)] = detail::aa_filter((static_cast<G>(j + xmin) - center + G(0.5)) * invscale, cubic);
        total += w[static_cast<size_t>(j)];
      }
      for (Index j = 0; j < xsize; ++j) t.add(src.map(xmin + j), total != G(0) ? w[static_cast<size_t>(j)] / total : w[static_cast<size_t>(j)]);
      t.next();
    }
    return t;
  }
  for (Index o = 0; o < out; ++o) {
    G real = scale * (static_cast<G>(o) + G(0.5)) - G(0.5);
    if (ip == Interpolation::bilinear && real < G(0)) real = G(0);
    Index i0 = std::min<Index>(static_cast<Index>(std::floor(real)), in - 1);
    const G lambda = std::min(std::max(real - static_cast<G>(i0), G(0)), G(1));
    if (ip == Interpolation::bilinear) {
      const Index i1 = i0 + (i0 < in - 1 ? 1 : 0);
      t.add(src.map(i0), G(1) - lambda);
      t.add(src.map(i1), lambda);
    } else {
      G c[4];
      detail::cubic_coefficients(lambda, G(-0.75), c);
      for (int k = 0; k < 4; ++k) {
        const Index i = std::max<Index>(std::min<Index>(i0 - 1 + k, in - 1), 0);
        t.add(src.map(i), c[k]);
      }
    }
    t.next();
  }
  return t;
}

/// A separable resampling of NHWC images: output (i, j) = sum over row taps r of i and column
/// taps c of j of w_r w_c src(r, c), src reading the fill value where r or c is -1.
template <class T>
struct Resample {
  AxisTaps<T> rows, cols;
  T fill = T(0);
  Index in_h = 0, in_w = 0;
};

/// y = resample(x): the columns pass first, then the rows (as torch's separable kernels).
template <class T>
void resample(const Tensor<T>& x, const Resample<T>& r, Tensor<T>& y) {
  const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3), OH = r.rows.out(), OW = r.cols.out();
  if (H != r.in_h || W != r.in_w)
    throw shape_error(graft::detail::cat("resample: planned for ", r.in_h, "x", r.in_w, " images, got ", shape_str(x.shape())));
  y.resize(detail::shape4(N, OH, OW, C));
  // the input rows any output reads
  Index lo = H, hi = -1;
  for (Index i : r.rows.index)
    if (i >= 0) {
      lo = std::min(lo, i);
      hi = std::max(hi, i);
    }
  const T* xd = x.data();
  T* yd = y.data();
  graft::detail::parallel_for(0, N, N > 1 && N * OH * OW * C > 50000, [&](Index b) {
    const Index rows_used = hi >= lo ? hi - lo + 1 : 0;
    T* tmp = graft::detail::thread_scratch<T>((rows_used + 1) * OW * C);
    T* fill_row = tmp + rows_used * OW * C;
    const T* img = xd + b * H * W * C;
    for (Index j = 0; j < OW; ++j) {  // a row of padding: fill everywhere
      T wsum = 0;
      for (Index k = r.cols.start[j]; k < r.cols.start[j + 1]; ++k) wsum += r.cols.weight[k];
      for (Index c = 0; c < C; ++c) fill_row[j * C + c] = wsum * r.fill;
    }
    for (Index rr = 0; rr < rows_used; ++rr) {
      const T* src = img + (lo + rr) * W * C;
      T* dst = tmp + rr * OW * C;
      for (Index j = 0; j < OW; ++j) {
        T* o = dst + j * C;
        for (Index c = 0; c < C; ++c) o[c] = T(0);
        for (Index k = r.cols.start[j]; k < r.cols.start[j + 1]; ++k) {
          const T w = r.cols.weight[k];
          const Index ci = r.cols.index[k];
          if (ci >= 0) {
            const T* p = src + ci * C;
            for (Index c = 0; c < C; ++c) o[c] += w * p[c];
          } else {
            for (Index c = 0; c < C; ++c) o[c] += w * r.fill;
          }
        }
      }
    }
    T* out = yd + b * OH * OW * C;
    for (Index i = 0; i < OH; ++i) {
      T* o = out + i * OW * C;
      for (Index k = 0; k < OW * C; ++k) o[k] = T(0);
      for (Index k = r.rows.start[i]; k < r.rows.start[i + 1]; ++k) {
        const T w = r.rows.weight[k];
        const Index ri = r.rows.index[k];
        const T* p = ri >= 0 ? tmp + (ri - lo) * OW * C : fill_row;
        for (Index q = 0; q < OW * C; ++q) o[q] += w * p[q];
      }
    }
  });
}

/// dx = the transpose of resample applied to dy.
template <class T>
void resample_backward(const Tensor<T>& dy, const Resample<T>& r, Tensor<T>& dx) {
  const Index N = dy.dim(0), OH = r.rows.out(), OW = r.cols.out(), C = dy.dim(3), H = r.in_h, W = r.in_w;
  dx.resize(detail::shape4(N, H, W, C));
  dx.set_zero();
  const T* g = dy.data();
  T* d = dx.data();
  graft::detail::parallel_for(0, N, N > 1 && N * OH * OW * C > 50000, [&](Index b) {
    T* tmp = graft::detail::thread_scratch<T>(H * OW * C);  // d loss / d (columns-resampled row)
    for (Index k = 0; k < H * OW * C; ++k) tmp[k] = T(0);
    const T* gb = g + b * OH * OW * C;
    for (Index i = 0; i < OH; ++i)
      for (Index k = r.rows.start[i]; k < r.rows.start[i + 1]; ++k) {
        const Index ri = r.rows.index[k];
        if (ri < 0) continue;
        const T w = r.rows.weight[k];
        T* t = tmp + ri * OW * C;
        const T* gi = gb + i * OW * C;
        for (Index q = 0; q < OW * C; ++q) t[q] += w * gi[q];
      }
    T* img = d + b * H * W * C;
    for (Index rr = 0; rr < H; ++rr) {
      const T* t = tmp + rr * OW * C;
      T* dst = img + rr * W * C;
      for (Index j = 0; j < OW; ++j)
        for (Index k = r.cols.start[j]; k < r.cols.start[j + 1]; ++k) {
          const Index ci = r.cols.index[k];
          if (ci < 0) continue;
          const T w = r.cols.weight[k];
          for (Index c = 0; c < C; ++c) dst[ci * C + c] += w * t[j * C + c];
        }
    }
  });
}

/// Keras' crop box of the largest window of aspect ratio target_h : target_w centred in an
/// h x w image (smart_resize and crop_to_aspect_ratio), as (start, length) per axis.
struct CropBox {
  Index h_start = 0, w_start = 0, height = 0, width = 0;
};
inline CropBox aspect_crop_box(Index h, Index w, Index target_h, Index target_w) {
  CropBox b;
  b.height = static_cast<Index>(static_cast<double>(w * target_h) / static_cast<double>(target_w));
  b.height = std::max<Index>(std::min(h, b.height), 1);
  b.width = static_cast<Index>(static_cast<double>(h * target_w) / static_cast<double>(target_h));
  b.width = std::max<Index>(std::min(w, b.width), 1);
  b.h_start = static_cast<Index>(static_cast<double>(h - b.height) / 2);
  b.w_start = static_cast<Index>(static_cast<double>(w - b.width) / 2);
  return b;
}

/// Options of keras.ops.image.resize.
struct ResizeOptions {
  Interpolation interpolation = Interpolation::bilinear;
  bool antialias = false;
  bool crop_to_aspect_ratio = false;
  bool pad_to_aspect_ratio = false;
  double fill_value = 0.0;  ///< padding value of pad_to_aspect_ratio
};

/// The resampling of keras.ops.image.resize(images, (out_h, out_w), ...) for h x w images.
template <class T>
Resample<T> resize_plan(Index h, Index w, Index out_h, Index out_w, const ResizeOptions& o) {
  if (h <= 0 || w <= 0 || out_h <= 0 || out_w <= 0)
    throw shape_error(graft::detail::cat("resize: cannot resize ", h, "x", w, " images to ", out_h, "x", out_w));
  if (o.crop_to_aspect_ratio && o.pad_to_aspect_ratio)
    throw value_error("resize: Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.");
  SourceAxis rows{h, 0, h}, cols{w, 0, w};
  if (o.crop_to_aspect_ratio) {
    const CropBox b = aspect_crop_box(h, w, out_h, out_w);
    rows = {b.height, b.h_start, h};
    cols = {b.width, b.w_start, w};
  } else if (o.pad_to_aspect_ratio) {
    const Index pad_h = std::max(h, static_cast<Index>(static_cast<double>(w * out_h) / static_cast<double>(out_w)));
    const Index pad_w = std::max(w, static_cast<Index>(static_cast<double>(h * out_w) / static_cast<double>(out_h)));
    const Index hs = static_cast<Index>(static_cast<double>(pad_h - h) / 2), ws = static_cast<Index>(static_cast<double>(pad_w - w) / 2);
    rows = {h + 2 * hs, -hs, h};  // Keras pads hs rows on each side (one less than pad_h when odd)
    cols = {w + 2 * ws, -ws, w};
  }
  Resample<T> r;
  r.in_h = h;
  r.in_w = w;
  r.fill = static_cast<T>(o.fill_value);
  r.rows = resize_taps<T>(rows, out_h, o.interpolation, o.antialias);
  r.cols = resize_taps<T>(cols, out_w, o.interpolation, o.antialias);
  return r;
}

/// A plain crop of rows [h_start, h_start + out_h) and columns [w_start, w_start + out_w).
template <class T>
Resample<T> crop_plan(Index h, Index w, Index h_start, Index w_start, Index out_h, Index out_w) {
  if (h_start < 0 || w_start < 0 || h_start + out_h > h || w_start + out_w > w)
    throw shape_error(graft::detail::cat("crop: window ", out_h, "x", out_w, " at (", h_start, ", ", w_start, ") does not fit a ", h, "x", w,
                                         " image"));
  Resample<T> r;
  r.in_h = h;
  r.in_w = w;
  r.rows = copy_taps<T>(SourceAxis{out_h, h_start, h}, out_h);
  r.cols = copy_taps<T>(SourceAxis{out_w, w_start, w}, out_w);
  return r;
}

/// keras.utils.smart_resize (bilinear): the largest centred window of the target's aspect ratio,
/// resized to out_h x out_w.
template <class T>
Resample<T> smart_resize_plan(Index h, Index w, Index out_h, Index out_w) {
  ResizeOptions o;
  o.crop_to_aspect_ratio = true;
  return resize_plan<T>(h, w, out_h, out_w, o);
}

/// keras.ops.image.resize on an NHWC batch.
template <class T>
void resize(const Tensor<T>& x, Index out_h, Index out_w, const ResizeOptions& o, Tensor<T>& y) {
  if (x.rank() != 4) throw shape_error(graft::detail::cat("resize: expects NHWC images, got shape ", shape_str(x.shape())));
  resample(x, resize_plan<T>(x.dim(1), x.dim(2), out_h, out_w, o), y);
}

}  // namespace image
}  // namespace graft
