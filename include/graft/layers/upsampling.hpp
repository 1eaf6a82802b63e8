// graft — UpSampling2D (channels_last): "nearest" repeats rows and columns (ops.repeat), "bilinear"
// is Keras 3 / TF 2 ops.image.resize without antialiasing: half-pixel centres,
// src = (dst + 0.5) / size - 0.5, clamped at the borders.
#pragma once

#include <cmath>

#include "graft/layers/conv_common.hpp"

namespace graft {

template <class T = float>
class UpSampling2D : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit UpSampling2D(const Dims& size = 2, const std::string& interpolation = "nearest", std::string name = {})
      : UnaryLayer<T>(std::move(name)) {
    size_ = size.expand(2, "size", "UpSampling2D");
    for (Index v : size_)
      if (v <= 0) throw value_error("UpSampling2D: size must be positive");
    std::string i = interpolation;
    for (auto& ch : i) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (i == "nearest") bilinear_ = false;
    else if (i == "bilinear") bilinear_ = true;
    else
      throw unsupported_error(detail::cat("UpSampling2D: interpolation '", interpolation,
                                          "' is not supported (nearest or bilinear)"));
  }
  std::string class_name() const override { return "UpSampling2D"; }
  const std::vector<Index>& size() const { return size_; }
  std::string interpolation() const { return bilinear_ ? "bilinear" : "nearest"; }

  Shape output_shape(const Shape& in) const override {
    if (in.size() != 4) throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4, got shape ", shape_str(in)));
    Shape o = in;
    if (o[1] >= 0) o[1] *= size_[0];
    if (o[2] >= 0) o[2] *= size_[1];
    return o;
  }

  struct Tap {
    Index i0 = 0, i1 = 0;
    T w = 0;  // weight of i1
  };
  struct State : CallState {
    std::vector<Tap> rows, cols;  // bilinear taps (per call: the layer may run on several threads)
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool) override {
    if (x.rank() != 4) throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4, got shape ", shape_str(x.shape())));
    const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3), OH = H * size_[0], OW = W * size_[1];
    Shape& os = detail::shape_scratch();
    os = x.shape();
    os[1] = OH;
    os[2] = OW;
    y.resize(os);
    const T* xd = x.data();
    T* yd = y.data();
    if (!bilinear_) {
      for (Index n = 0; n < N; ++n)
        for (Index i = 0; i < OH; ++i) {
          const T* xr = xd + (n * H + i / size_[0]) * W * C;
          T* yr = yd + (n * OH + i) * OW * C;
          for (Index j = 0; j < OW; ++j) std::copy(xr + (j / size_[1]) * C, xr + (j / size_[1] + 1) * C, yr + j * C);
        }
      return;
    }
    auto& rows = static_cast<State*>(st)->rows;
    auto& cols = static_cast<State*>(st)->cols;
    taps(H, size_[0], rows);
    taps(W, size_[1], cols);
    for (Index n = 0; n < N; ++n)
      for (Index i = 0; i < OH; ++i) {
        const Tap& r = rows[static_cast<size_t>(i)];
        const T* x0 = xd + (n * H + r.i0) * W * C;
        const T* x1 = xd + (n * H + r.i1) * W * C;
        T* yr = yd + (n * OH + i) * OW * C;
        for (Index j = 0; j < OW; ++j) {
          const Tap& q = cols[static_cast<size_t>(j)];
          const T* a = x0 + q.i0 * C;
          const T* b = x0 + q.i1 * C;
          const T* c = x1 + q.i0 * C;
          const T* d = x1 + q.i1 * C;
          T* o = yr + j * C;
          for (Index ch = 0; ch < C; ++ch) {
            const T top = a[ch] + (b[ch] - a[ch]) * q.w;
            const T bot = c[ch] + (d[ch] - c[ch]) * q.w;
            o[ch] = top + (bot - top) * r.w;
          }
        }
      }
  }

  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (!dx) return;
    const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3), OH = H * size_[0], OW = W * size_[1];
    dx->resize(x.shape());
    dx->set_zero();
    T* d = dx->data();
    const T* g = dy.data();
    if (!bilinear_) {
      for (Index n = 0; n < N; ++n)
        for (Index i = 0; i < OH; ++i) {
          T* xr = d + (n * H + i / size_[0]) * W * C;
          const T* gr = g + (n * OH + i) * OW * C;
          for (Index j = 0; j < OW; ++j) {
            T* xp = xr + (j / size_[1]) * C;
            const T* gp = gr + j * C;
            for (Index ch = 0; ch < C; ++ch) xp[ch] += gp[ch];
          }
        }
      return;
    }
    auto& rows = static_cast<State*>(st)->rows;
    auto& cols = static_cast<State*>(st)->cols;
    taps(H, size_[0], rows);
    taps(W, size_[1], cols);
    for (Index n = 0; n < N; ++n)
      for (Index i = 0; i < OH; ++i) {
        const Tap& r = rows[static_cast<size_t>(i)];
        T* x0 = d + (n * H + r.i0) * W * C;
        T* x1 = d + (n * H + r.i1) * W * C;
        const T* gr = g + (n * OH + i) * OW * C;
        for (Index j = 0; j < OW; ++j) {
          const Tap& q = cols[static_cast<size_t>(j)];
          const T* gp = gr + j * C;
          const T w00 = (T(1) - r.w) * (T(1) - q.w), w01 = (T(1) - r.w) * q.w, w10 = r.w * (T(1) - q.w), w11 = r.w * q.w;
          for (Index ch = 0; ch < C; ++ch) {
            x0[q.i0 * C + ch] += gp[ch] * w00;
            x0[q.i1 * C + ch] += gp[ch] * w01;
            x1[q.i0 * C + ch] += gp[ch] * w10;
            x1[q.i1 * C + ch] += gp[ch] * w11;
          }
        }
      }
  }

  json get_config() const override {
    json c = this->base_config();
    c["size"] = detail::sizes_json(size_);
    c["data_format"] = "channels_last";
    c["interpolation"] = interpolation();
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "UpSampling2D"));
    c.require_channels_last();
    auto sz = detail::read_sizes(c, "size", 2, {2, 2});
    std::shared_ptr<UpSampling2D> l;
    try {
      l = std::make_shared<UpSampling2D>(Dims(sz), c.get_string("interpolation", "nearest"));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    return l;
  }

 private:
  /// Half-pixel source taps of each output position along an axis of length n upsampled by f.
  static void taps(Index n, Index f, std::vector<Tap>& out) {
    out.resize(static_cast<size_t>(n * f));
    for (Index o = 0; o < n * f; ++o) {
      double src = (static_cast<double>(o) + 0.5) / static_cast<double>(f) - 0.5;
      if (src < 0) src = 0;
      Index i0 = static_cast<Index>(std::floor(src));
      if (i0 > n - 1) i0 = n - 1;
      Tap& t = out[static_cast<size_t>(o)];
      t.i0 = i0;
      t.i1 = std::min(i0 + 1, n - 1);
      t.w = static_cast<T>(src - static_cast<double>(i0));
      if (t.i1 == t.i0) t.w = T(0);
    }
  }

  std::vector<Index> size_;
  bool bilinear_ = false;
};

}  // namespace graft
