// graft — image resizing as Keras 3's keras.ops.image.resize does it (torch backend, the one
// graft is checked against; image_dataset_from_directory's grain path calls it), HWC in, float
// HWC out, values not rescaled (0..255 for 8-bit images):
//
//   bilinear  half-pixel centres, no antialias (Keras' default): src = (dst + 0.5) * in / out - 0.5,
//             clamped at 0 (F.interpolate(mode="bilinear", align_corners=False)); the scale in
//             float, coordinates, weights and sums in double like torch's CPU kernels: equal to
//             torch's results within a float ulp or two. TensorFlow's tf.image.resize gives the
//             same values up to float rounding.
//   nearest   torch's "nearest-exact" (Keras' mapping): src = min(floor((dst + 0.5) * in / out), in - 1)
//   bicubic   torch's bicubic: a = -0.75, half-pixel centres, edge pixels repeated, no clamping
//             of the result (TensorFlow's bicubic uses a = -0.5: its values differ)
//   area      TensorFlow's ResizeArea (tf.image.resize(method="area")): the mean of the input
//             pixels under each output pixel, weighted by coverage. Keras' torch backend refuses
//             "area"; this follows TensorFlow's kernel (checked for integer factors).
//   lanczos3, lanczos5, gaussian, mitchellcubic: refused (unsupported_error), as Keras' torch
//             backend refuses the lanczos ones.
//
// crop_to_aspect_ratio: the largest centred window with the target's aspect ratio, computed as
// Keras computes it (smart_resize / ops.image.resize: crop_height = int(width * target_height /
// target_width) clamped to [1, height], start = int((height - crop_height) / 2)), then resized.
// pad_to_aspect_ratio: as ops.image.resize: pad = int((int(width * target_height / target_width)
// - height) / 2) rows of fill_value (0) above and below (or columns left and right), then the
// padded image is resized (so its edges blend into the padding, as in Keras). Note that Keras'
// TensorFlow path (tf.image.resize_with_pad) resizes first and pads after; graft follows
// ops.image.resize.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/data/image.hpp"

namespace graft {
namespace data {

enum class Interpolation { bilinear, nearest, bicubic, area };

inline const char* interpolation_name(Interpolation i) {
  switch (i) {
    case Interpolation::nearest: return "nearest";
    case Interpolation::bicubic: return "bicubic";
    case Interpolation::area: return "area";
    default: return "bilinear";
  }
}

/// Keras' interpolation names (case-insensitive, as Keras lowercases them).
inline Interpolation parse_interpolation(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "bilinear") return Interpolation::bilinear;
  if (s == "nearest") return Interpolation::nearest;
  if (s == "bicubic") return Interpolation::bicubic;
  if (s == "area") return Interpolation::area;
  if (s == "lanczos3" || s == "lanczos5" || s == "gaussian" || s == "mitchellcubic")
    throw unsupported_error("interpolation \"" + s +
                            "\" is not implemented in graft (Keras' torch backend refuses the lanczos ones too); "
                            "use \"bilinear\", \"nearest\", \"bicubic\" or \"area\"");
  throw value_error("interpolation should be one of \"bilinear\", \"nearest\", \"bicubic\", \"area\", \"lanczos3\", "
                    "\"lanczos5\", \"gaussian\", \"mitchellcubic\"; received interpolation=\"" + s + "\"");
}

struct ResizeOptions {
  int height = 0, width = 0;
  Interpolation interpolation = Interpolation::bilinear;
  bool crop_to_aspect_ratio = false;
  bool pad_to_aspect_ratio = false;
  /// Value of the padding added by pad_to_aspect_ratio (Keras: 0).
  double fill_value = 0.0;
};

namespace detail {

/// One output coordinate's input taps along one axis (indices into the padded/cropped window).
struct ResizeAxis {
  std::vector<int> first;     // per output index: offset into idx/wt
  std::vector<int> count;     // per output index: number of taps
  std::vector<std::int64_t> idx;
  std::vector<double> wt;
};

inline ResizeAxis resize_axis(std::int64_t in, int out, Interpolation m) {
  ResizeAxis a;
  a.first.resize(static_cast<size_t>(out));
  a.count.resize(static_cast<size_t>(out));
  // torch: the scale in float, source coordinates and weights in its CPU accumulation type
  // (double); TensorFlow's area kernel works in float.
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const double sd = static_cast<double>(scale);
  auto add = [&](int o, std::int64_t i, double w) {
    if (a.count[static_cast<size_t>(o)] == 0) a.first[static_cast<size_t>(o)] = static_cast<int>(a.idx.size());
    a.idx.push_back(i);
    a.wt.push_back(w);
    ++a.count[static_cast<size_t>(o)];
  };
  for (int o = 0; o < out; ++o) {
    switch (m) {
      case Interpolation::nearest: {  // nearest-exact, in float as torch computes it
        const float v = (static_cast<float>(o) + 0.5f) * scale;
        add(o, std::min(static_cast<std::int64_t>(std::floor(v)), in - 1), 1.0);
        break;
      }
      case Interpolation::bilinear: {
        if (in == out) {
          add(o, o, 1.0);
          add(o, o, 0.0);
          break;
        }
        double src = sd * (o + 0.5) - 0.5;
        if (src < 0) src = 0;
        const std::int64_t i0 = static_cast<std::int64_t>(src);
        const std::int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
        const double l1 = std::min(std::max(src - static_cast<double>(i0), 0.0), 1.0);
        add(o, i0, 1.0 - l1);
        add(o, i1, l1);
        break;
      }
      case Interpolation::bicubic: {
        const double src = sd * (o + 0.5) - 0.5;
        const double fl = std::floor(src);
        const std::int64_t i = static_cast<std::int64_t>(fl);
        const double t = src - fl, A = -0.75;
        auto c1 = [A](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };
        auto c2 = [A](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };
        const double w[4] = {c2(t + 1.0), c1(t), c1(1.0 - t), c2(1.0 - t + 1.0)};
        for (int j = 0; j < 4; ++j) add(o, std::max<std::int64_t>(std::min<std::int64_t>(i - 1 + j, in - 1), 0), w[j]);
        break;
      }
      case Interpolation::area: {
        const float lo = static_cast<float>(o) * scale, hi = static_cast<float>(o + 1) * scale;
        const std::int64_t s = static_cast<std::int64_t>(std::floor(lo)), e = static_cast<std::int64_t>(std::ceil(hi));
        for (std::int64_t i = s; i < e; ++i) {
          const float w = std::min(static_cast<float>(i + 1), hi) - std::max(static_cast<float>(i), lo);
          add(o, std::min(i, in - 1), w);
        }
        if (a.count[static_cast<size_t>(o)] == 0) add(o, std::min<std::int64_t>(s, in - 1), 0.0);
        break;
      }
    }
  }
  return a;
}

/// The window of the source that is resized: crop (inside the image) or pad (around it).
struct ResizeWindow {
  std::int64_t height, width;  // window size
  std::int64_t y0, x0;         // window (0, 0) is source (y0, x0); may be negative when padding
};

inline ResizeWindow resize_window(std::int64_t h, std::int64_t w, const ResizeOptions& o) {
  const std::int64_t th = o.height, tw = o.width;
  if (o.crop_to_aspect_ratio) {
    std::int64_t ch = static_cast<std::int64_t>(static_cast<double>(w * th) / static_cast<double>(tw));
    ch = std::max<std::int64_t>(std::min(h, ch), 1);
    std::int64_t cw = static_cast<std::int64_t>(static_cast<double>(h * tw) / static_cast<double>(th));
    cw = std::max<std::int64_t>(std::min(w, cw), 1);
    return {ch, cw, static_cast<std::int64_t>(static_cast<double>(h - ch) / 2), static_cast<std::int64_t>(static_cast<double>(w - cw) / 2)};
  }
  if (o.pad_to_aspect_ratio) {
    const std::int64_t ph = std::max(h, static_cast<std::int64_t>(static_cast<double>(w * th) / static_cast<double>(tw)));
    const std::int64_t pw = std::max(w, static_cast<std::int64_t>(static_cast<double>(h * tw) / static_cast<double>(th)));
    const std::int64_t hs = static_cast<std::int64_t>(static_cast<double>(ph - h) / 2);
    const std::int64_t ws = static_cast<std::int64_t>(static_cast<double>(pw - w) / 2);
    return {h + 2 * hs, w + 2 * ws, -hs, -ws};
  }
  return {h, w, 0, 0};
}

inline void check_resize_options(const ResizeOptions& o) {
  if (o.height <= 0 || o.width <= 0)
    throw value_error(graft::detail::cat("resize: the target size must be positive, got (", o.height, ", ", o.width, ")"));
  if (o.crop_to_aspect_ratio && o.pad_to_aspect_ratio)
    throw value_error("resize: only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be true");
  const std::int64_t px = static_cast<std::int64_t>(o.height) * o.width;
  if (px > graft::limits().max_image_pixels)
    throw value_error(graft::detail::cat("resize: a target of ", o.height, " x ", o.width, " pixels is above graft::limits().max_image_pixels = ",
                                         graft::limits().max_image_pixels));
}

}  // namespace detail

/// Resize an HWC image of `c` channels (any sample type S) into out (o.height x o.width x c, any
/// type D), as keras.ops.image.resize does (see the top of this file).
template <class S, class D>
void resize_hwc(const S* src, std::int64_t h, std::int64_t w, int c, const ResizeOptions& o, D* out) {
  detail::check_resize_options(o);
  if (h <= 0 || w <= 0 || c <= 0) throw value_error(graft::detail::cat("resize: an empty image (", h, " x ", w, " x ", c, ")"));
  const detail::ResizeWindow win = detail::resize_window(h, w, o);
  if (win.height > graft::limits().max_image_pixels / win.width)  // padding an extreme aspect ratio
    throw value_error(graft::detail::cat("resize: padding a ", h, " x ", w, " image to the aspect ratio of ", o.height, " x ", o.width,
                                         " makes ", win.height, " x ", win.width, " pixels, above graft::limits().max_image_pixels = ",
                                         graft::limits().max_image_pixels));
  const detail::ResizeAxis ay = detail::resize_axis(win.height, o.height, o.interpolation);
  const detail::ResizeAxis ax = detail::resize_axis(win.width, o.width, o.interpolation);
  const double fill = o.fill_value;
  const bool padded = win.y0 < 0 || win.x0 < 0;
  // the source sample at window (y, x): fill outside the image when padding
  auto px = [&](std::int64_t y, std::int64_t x, int k) -> double {
    const std::int64_t sy = y + win.y0, sx = x + win.x0;
    if (padded && (sy < 0 || sy >= h || sx < 0 || sx >= w)) return fill;
    return static_cast<double>(src[(sy * w + sx) * c + k]);
  };
  D* dst = out;
  if (!padded && (o.interpolation == Interpolation::bilinear || o.interpolation == Interpolation::nearest)) {
    // the common case, without the padding test per sample (same arithmetic as below)
    const bool bil = o.interpolation == Interpolation::bilinear;
    const size_t rs = static_cast<size_t>(w) * static_cast<size_t>(c);
    for (int oy = 0; oy < o.height; ++oy) {
      const size_t fy = static_cast<size_t>(ay.first[static_cast<size_t>(oy)]);
      const S* r0 = src + static_cast<size_t>(ay.idx[fy] + win.y0) * rs;
      const S* r1 = bil ? src + static_cast<size_t>(ay.idx[fy + 1] + win.y0) * rs : r0;
      const double h0 = ay.wt[fy], h1 = bil ? ay.wt[fy + 1] : 0.0;
      for (int ox = 0; ox < o.width; ++ox, dst += c) {
        const size_t fx = static_cast<size_t>(ax.first[static_cast<size_t>(ox)]);
        const size_t c0 = static_cast<size_t>(ax.idx[fx] + win.x0) * static_cast<size_t>(c);
        if (!bil) {
          for (int k = 0; k < c; ++k) dst[k] = static_cast<D>(r0[c0 + static_cast<size_t>(k)]);
          continue;
        }
        const size_t c1 = static_cast<size_t>(ax.idx[fx + 1] + win.x0) * static_cast<size_t>(c);
        const double w0 = ax.wt[fx], w1 = ax.wt[fx + 1];
        const double w00 = h0 * w0, w01 = h0 * w1, w10 = h1 * w0, w11 = h1 * w1;
        for (int k = 0; k < c; ++k) {
          const size_t kk = static_cast<size_t>(k);
          dst[k] = static_cast<D>(static_cast<double>(r0[c0 + kk]) * w00 + static_cast<double>(r0[c1 + kk]) * w01 +
                                  static_cast<double>(r1[c0 + kk]) * w10 + static_cast<double>(r1[c1 + kk]) * w11);
        }
      }
    }
    return;
  }
  for (int oy = 0; oy < o.height; ++oy) {
    const int fy = ay.first[static_cast<size_t>(oy)], ny = ay.count[static_cast<size_t>(oy)];
    for (int ox = 0; ox < o.width; ++ox, dst += c) {
      const int fx = ax.first[static_cast<size_t>(ox)], nx = ax.count[static_cast<size_t>(ox)];
      if (o.interpolation == Interpolation::bilinear) {
        const std::int64_t y0 = ay.idx[static_cast<size_t>(fy)], y1 = ay.idx[static_cast<size_t>(fy) + 1];
        const std::int64_t x0 = ax.idx[static_cast<size_t>(fx)], x1 = ax.idx[static_cast<size_t>(fx) + 1];
        const double h0 = ay.wt[static_cast<size_t>(fy)], h1 = ay.wt[static_cast<size_t>(fy) + 1];
        const double w0 = ax.wt[static_cast<size_t>(fx)], w1 = ax.wt[static_cast<size_t>(fx) + 1];
        const double w00 = h0 * w0, w01 = h0 * w1, w10 = h1 * w0, w11 = h1 * w1;
        for (int k = 0; k < c; ++k)
          dst[k] = static_cast<D>(px(y0, x0, k) * w00 + px(y0, x1, k) * w01 + px(y1, x0, k) * w10 + px(y1, x1, k) * w11);
      } else if (o.interpolation == Interpolation::nearest) {
        for (int k = 0; k < c; ++k) dst[k] = static_cast<D>(px(ay.idx[static_cast<size_t>(fy)], ax.idx[static_cast<size_t>(fx)], k));
      } else {
        for (int k = 0; k < c; ++k) {
          double acc = 0;
          for (int i = 0; i < ny; ++i) {
            const std::int64_t yy = ay.idx[static_cast<size_t>(fy + i)];
            double row = 0;
            for (int j = 0; j < nx; ++j) row += px(yy, ax.idx[static_cast<size_t>(fx + j)], k) * ax.wt[static_cast<size_t>(fx + j)];
            acc += row * ay.wt[static_cast<size_t>(fy + i)];
          }
          if (o.interpolation == Interpolation::area)
            acc *= 1.0 / (static_cast<double>(static_cast<float>(win.height) / static_cast<float>(o.height)) *
                          static_cast<double>(static_cast<float>(win.width) / static_cast<float>(o.width)));
          dst[k] = static_cast<D>(acc);
        }
      }
    }
  }
}

/// Resize a decoded image into out (o.height * o.width * img.channels values).
template <class D>
void resize_image(const Image& img, const ResizeOptions& o, D* out) {
  resize_hwc(img.pixels.data(), img.height, img.width, img.channels, o, out);
}

/// Resize a decoded image into a new vector of floats (HWC).
inline std::vector<float> resize_image(const Image& img, const ResizeOptions& o) {
  detail::check_resize_options(o);
  std::vector<float> out(static_cast<size_t>(o.height) * static_cast<size_t>(o.width) * static_cast<size_t>(img.channels));
  resize_image(img, o, out.data());
  return out;
}

}  // namespace data
}  // namespace graft
