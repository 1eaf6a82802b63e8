// graft — ZeroPadding2D and Cropping2D (channels_last), ((top, bottom), (left, right)) in every
// Keras spelling: an int, (rows, cols), ((top, bottom), (left, right)), Keras 1's 4-tuple
// (top, bottom, left, right) and {top_pad, bottom_pad, left_pad, right_pad}.
#pragma once

#include <array>

#include "graft/layers/conv_common.hpp"

namespace graft {

namespace detail {

/// Copy an rows x cols block of pixels (C channels each, N samples) between two NHWC tensors.
template <class T>
void copy_block(const T* src, Index sH, Index sW, Index sh0, Index sw0, T* dst, Index dH, Index dW, Index dh0, Index dw0,
                Index N, Index rows, Index cols, Index C) {
  for (Index n = 0; n < N; ++n)
    for (Index r = 0; r < rows; ++r) {
      const T* s = src + ((n * sH + sh0 + r) * sW + sw0) * C;
      T* d = dst + ((n * dH + dh0 + r) * dW + dw0) * C;
      std::copy(s, s + cols * C, d);
    }
}

/// ((top, bottom), (left, right)) from any Keras spelling of `key`.
inline std::array<Index, 4> read_tb_lr(const Config& c, const std::string& key, Index dflt) {
  std::array<Index, 4> r{dflt, dflt, dflt, dflt};
  if (!c.has(key)) return r;
  const json& v = c.raw()[key];
  auto num = [&](const json& e) {
    if (!e.is_number_integer() || e.get<Index>() < 0)
      throw format_error(cat(c.where(), ": '", key, "' should hold non-negative integers, got ", v.dump()));
    return e.get<Index>();
  };
  if (v.is_number_integer()) {
    r.fill(num(v));
  } else if (v.is_object()) {  // Keras 1 dict
    r = {num(v.value("top_pad", json(0))), num(v.value("bottom_pad", json(0))), num(v.value("left_pad", json(0))),
         num(v.value("right_pad", json(0)))};
  } else if (v.is_array() && v.size() == 2 && v[0].is_array() && v[1].is_array() && v[0].size() == 2 && v[1].size() == 2) {
    r = {num(v[0][0]), num(v[0][1]), num(v[1][0]), num(v[1][1])};
  } else if (v.is_array() && v.size() == 2) {
    r = {num(v[0]), num(v[0]), num(v[1]), num(v[1])};
  } else if (v.is_array() && v.size() == 4) {
    r = {num(v[0]), num(v[1]), num(v[2]), num(v[3])};
  } else {
    throw format_error(cat(c.where(), ": cannot read '", key, "' = ", v.dump(), " as ((top, bottom), (left, right))"));
  }
  return r;
}

inline json tb_lr_json(const std::array<Index, 4>& p) { return json::array({json::array({p[0], p[1]}), json::array({p[2], p[3]})}); }

}  // namespace detail

/// keras.layers.ZeroPadding2D(padding=((top, bottom), (left, right)))
template <class T = float>
class ZeroPadding2D : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit ZeroPadding2D(Index top = 1, Index bottom = 1, Index left = 1, Index right = 1, std::string name = {})
      : UnaryLayer<T>(std::move(name)), p_{top, bottom, left, right} {
    for (Index v : p_)
      if (v < 0) throw value_error("ZeroPadding2D: padding must be non-negative");
  }
  std::string class_name() const override { return "ZeroPadding2D"; }
  const std::array<Index, 4>& padding() const { return p_; }

  Shape output_shape(const Shape& in) const override {
    if (in.size() != 4) throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4, got shape ", shape_str(in)));
    Shape o = in;
    if (o[1] >= 0) o[1] += p_[0] + p_[1];
    if (o[2] >= 0) o[2] += p_[2] + p_[3];
    return o;
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    check(x);
    const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    Shape& os = detail::shape_scratch();
    os = x.shape();
    os[1] = H + p_[0] + p_[1];
    os[2] = W + p_[2] + p_[3];
    y.resize(os);
    y.set_zero();
    detail::copy_block(x.data(), H, W, 0, 0, y.data(), os[1], os[2], p_[0], p_[2], N, H, W, C);
  }
  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    dx->resize(x.shape());
    detail::copy_block(dy.data(), y.dim(1), y.dim(2), p_[0], p_[2], dx->data(), H, W, 0, 0, N, H, W, C);
  }
  json get_config() const override {
    json c = this->base_config();
    c["padding"] = detail::tb_lr_json(p_);
    c["data_format"] = "channels_last";
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "ZeroPadding2D"));
    c.require_channels_last();
    auto p = detail::read_tb_lr(c, "padding", 1);
    auto l = std::make_shared<ZeroPadding2D>(p[0], p[1], p[2], p[3]);
    apply_base_config(*l, c);
    return l;
  }

 private:
  void check(const Tensor<T>& x) const {
    if (x.rank() != 4) throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4, got shape ", shape_str(x.shape())));
  }
  std::array<Index, 4> p_;
};

/// keras.layers.Cropping2D(cropping=((top, bottom), (left, right)))
template <class T = float>
class Cropping2D : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit Cropping2D(Index top = 0, Index bottom = 0, Index left = 0, Index right = 0, std::string name = {})
      : UnaryLayer<T>(std::move(name)), p_{top, bottom, left, right} {
    for (Index v : p_)
      if (v < 0) throw value_error("Cropping2D: cropping must be non-negative");
  }
  std::string class_name() const override { return "Cropping2D"; }
  const std::array<Index, 4>& cropping() const { return p_; }

  Shape output_shape(const Shape& in) const override {
    if (in.size() != 4) throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4, got shape ", shape_str(in)));
    Shape o = in;
    if (o[1] >= 0) o[1] -= p_[0] + p_[1];
    if (o[2] >= 0) o[2] -= p_[2] + p_[3];
    if ((in[1] >= 0 && o[1] <= 0) || (in[2] >= 0 && o[2] <= 0))
      throw shape_error(detail::cat(this->where(), ": cropping ", detail::tb_lr_json(p_).dump(), " leaves nothing of an input of shape ",
                                    shape_str(in)));
    return o;
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    if (x.rank() != 4) throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4, got shape ", shape_str(x.shape())));
    Shape& os = detail::shape_scratch();
    os = x.shape();
    os[1] -= p_[0] + p_[1];
    os[2] -= p_[2] + p_[3];
    if (os[1] <= 0 || os[2] <= 0) output_shape(x.shape());  // throws the message
    y.resize(os);
    detail::copy_block(x.data(), x.dim(1), x.dim(2), p_[0], p_[2], y.data(), os[1], os[2], 0, 0, x.dim(0),
                       os[1], os[2], x.dim(3));
  }
  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    dx->resize(x.shape());
    dx->set_zero();
    detail::copy_block(dy.data(), y.dim(1), y.dim(2), 0, 0, dx->data(), x.dim(1), x.dim(2), p_[0], p_[2], x.dim(0), y.dim(1),
                       y.dim(2), x.dim(3));
  }
  json get_config() const override {
    json c = this->base_config();
    c["cropping"] = detail::tb_lr_json(p_);
    c["data_format"] = "channels_last";
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Cropping2D"));
    c.require_channels_last();
    auto p = detail::read_tb_lr(c, "cropping", 0);
    auto l = std::make_shared<Cropping2D>(p[0], p[1], p[2], p[3]);
    apply_base_config(*l, c);
    return l;
  }

 private:
  std::array<Index, 4> p_;
};

}  // namespace graft
