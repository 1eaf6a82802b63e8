// graft — activation layers: Activation, ReLU, LeakyReLU, ELU, PReLU, Softmax.
#pragma once

#include <limits>

#include "graft/activations.hpp"
#include "graft/layers/layer.hpp"

namespace graft {

namespace detail {
/// Shared machinery for layers that apply an ActivationFn along the last axis.
template <class T>
class ActivationBase : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  using UnaryLayer<T>::UnaryLayer;
  Shape output_shape(const Shape& in) const override { return in; }
  struct State : CallState {
    Tensor<T> z;
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool) override {
    y.resize(x.shape());
    const Index last = x.rank() ? std::max<Index>(1, x.shape().back()) : 1;
    fn_.forward(x.data(), y.data(), x.size(), last);
    (void)st;
  }
  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    dx->resize(x.shape());
    const Index last = x.rank() ? std::max<Index>(1, x.shape().back()) : 1;
    fn_.backward(x.data(), y.data(), dy.data(), dx->data(), x.size(), last);
  }

 protected:
  ActivationFn fn_;
};
}  // namespace detail

/// keras.layers.Activation
template <class T = float>
class Activation : public detail::ActivationBase<T> {
 public:
  explicit Activation(const std::string& activation, std::string name = {})
      : detail::ActivationBase<T>(std::move(name)) {
    this->fn_ = ActivationFn::from_name(activation, this->name_.empty() ? std::string("Activation") : this->where());
  }
  explicit Activation(const ActivationFn& fn, std::string name = {}) : detail::ActivationBase<T>(std::move(name)) {
    this->fn_ = fn;
  }
  std::string class_name() const override { return "Activation"; }
  const ActivationFn& activation() const { return this->fn_; }
  json get_config() const override {
    json c = this->base_config();
    c["activation"] = this->fn_.name();
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Activation"));
    auto l = std::make_shared<Activation>(ActivationFn::from_json(c.at("activation"), c.where()));
    apply_base_config(*l, c);
    return l;
  }
};

/// keras.layers.ELU(alpha)
template <class T = float>
class ELU : public detail::ActivationBase<T> {
 public:
  explicit ELU(double alpha = 1.0, std::string name = {}) : detail::ActivationBase<T>(std::move(name)), alpha_(alpha) {
    this->fn_ = ActivationFn(ActivationFn::elu, alpha);
  }
  std::string class_name() const override { return "ELU"; }
  json get_config() const override {
    json c = this->base_config();
    c["alpha"] = alpha_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "ELU"));
    auto l = std::make_shared<ELU>(c.get_double("alpha", 1.0));
    apply_base_config(*l, c);
    return l;
  }
 private:
  double alpha_;
};

/// keras.layers.LeakyReLU(negative_slope=0.3); TF-Keras spells it `alpha`.
template <class T = float>
class LeakyReLU : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit LeakyReLU(double negative_slope = 0.3, std::string name = {})
      : UnaryLayer<T>(std::move(name)), slope_(negative_slope) {}
  std::string class_name() const override { return "LeakyReLU"; }
  Shape output_shape(const Shape& in) const override { return in; }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    y.resize(x.shape());
    const T s = static_cast<T>(slope_);
    y.array() = (x.array() > T(0)).select(x.array(), s * x.array());
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    dx->resize(x.shape());
    const T s = static_cast<T>(slope_);
    dx->array() = (x.array() > T(0)).select(dy.array(), s * dy.array());
  }
  json get_config() const override {
    json c = this->base_config();
    c["negative_slope"] = slope_;
    c["alpha"] = slope_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "LeakyReLU"));
    std::string k = c.pick({"negative_slope", "alpha"});
    auto l = std::make_shared<LeakyReLU>(k.empty() ? 0.3 : c.get_double(k, 0.3));
    apply_base_config(*l, c);
    return l;
  }
 private:
  double slope_;
};

/// keras.layers.ReLU(max_value, negative_slope, threshold), Keras 3 formula:
/// f(x) = min(x, max_value) for x >= threshold, negative_slope * (x - threshold) otherwise.
template <class T = float>
class ReLU : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  /// max_value < 0 means none.
  explicit ReLU(double max_value = -1, double negative_slope = 0.0, double threshold = 0.0, std::string name = {})
      : UnaryLayer<T>(std::move(name)), max_(max_value), slope_(negative_slope), th_(threshold) {
    if (negative_slope < 0) throw value_error("ReLU: negative_slope must be >= 0");
  }
  std::string class_name() const override { return "ReLU"; }
  Shape output_shape(const Shape& in) const override { return in; }
  T f(T x) const {
    const T th = static_cast<T>(th_);
    T pos;
    if (th_ != 0) pos = x > th ? x : T(0);
    else pos = std::max(x, T(0));
    if (max_ >= 0) pos = std::min(std::max(pos, T(0)), static_cast<T>(max_));
    T neg = slope_ != 0 ? std::max(th - x, T(0)) : T(0);
    return pos - static_cast<T>(slope_) * neg;
  }
  T df(T x) const {
    const T th = static_cast<T>(th_);
    T d = 0;
    bool on = th_ != 0 ? x > th : x > T(0);
    if (on) {
      if (max_ >= 0) d = (x > T(0) && x < static_cast<T>(max_)) ? T(1) : T(0);
      else d = T(1);
    }
    if (slope_ != 0 && x < th) d += static_cast<T>(slope_);
    return d;
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    y.resize(x.shape());
    forward_range(x.data(), y.data(), 0, x.size());
  }
  /// Element-wise: the model may apply it in place to the rows of the layer before (inference fusion).
  bool prepare_inplace_inference(CallState*, const Shape&) override { return true; }
  void inplace_inference(T* y, Index begin, Index end, CallState*) const override { forward_range(y, y, begin, end); }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    dx->resize(x.shape());
    if (slope_ == 0 && th_ == 0) {
      if (max_ >= 0)
        dx->array() = (x.array() > T(0) && x.array() < static_cast<T>(max_)).select(dy.array(), T(0));
      else
        dx->array() = (x.array() > T(0)).select(dy.array(), T(0));
      return;
    }
    for (Index i = 0; i < x.size(); ++i) (*dx)[i] = dy[i] * df(x[i]);
  }
  /// y[b, e) from x[b, e) (y may be x): forward1 and the fused inference.
  void forward_range(const T* x, T* y, Index b, Index e) const {
    ConstArrayMap<T> xv(x + b, e - b);
    ArrayMap<T> yv(y + b, e - b);
    if (slope_ == 0 && th_ == 0) {
      if (max_ >= 0) yv = xv.max(T(0)).min(static_cast<T>(max_));
      else yv = xv.max(T(0));
      return;
    }
    for (Index i = b; i < e; ++i) y[i] = f(x[i]);
  }
  json get_config() const override {
    json c = this->base_config();
    c["max_value"] = max_ >= 0 ? json(max_) : json(nullptr);
    c["negative_slope"] = slope_;
    c["threshold"] = th_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "ReLU"));
    double mx = c.has("max_value") ? c.get_double("max_value", -1) : -1;
    if (c.has("max_value") && mx < 0) throw value_error(detail::cat(c.where(), ": max_value must be >= 0"));
    auto l = std::make_shared<ReLU>(mx, c.get_double("negative_slope", 0.0), c.get_double("threshold", 0.0));
    apply_base_config(*l, c);
    return l;
  }
 private:
  double max_, slope_, th_;
};

/// keras.layers.PReLU: f(x) = x for x > 0, alpha * x otherwise, alpha learned per position
/// (axes in shared_axes share one alpha).
template <class T = float>
class PReLU : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit PReLU(std::vector<int> shared_axes = {}, std::string name = {})
      : UnaryLayer<T>(std::move(name)), shared_(std::move(shared_axes)) {}
  std::string class_name() const override { return "PReLU"; }
  Initializer alpha_initializer = Initializer::named("Zeros");
  Regularizer alpha_regularizer;
  Constraint alpha_constraint;
  Param<T>& alpha() { return *alpha_; }

  Shape output_shape(const Shape& in) const override {
    if (alpha_) {
      const Shape& a = alpha_->value.shape();
      if (in.size() != a.size() + 1) throw shape_error(detail::cat(this->where(), ": built for rank ", a.size() + 1, " inputs, got ", shape_str(in)));
      for (size_t i = 0; i < a.size(); ++i)
        if (a[i] != 1 && in[i + 1] >= 0 && in[i + 1] != a[i])
          throw shape_error(detail::cat(this->where(), ": alpha has shape ", shape_str(a), ", input is ", shape_str(in)));
    }
    return in;
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    check_runtime(x);
    y.resize(x.shape());
    const Index per = x.inner(1);
    const T* a = alpha_->value.data();
    for (Index b = 0; b < x.dim(0); ++b) {
      const T* xb = x.data() + b * per;
      T* yb = y.data() + b * per;
      for (Index i = 0; i < per; ++i) {
        T v = xb[i];
        yb[i] = v > T(0) ? v : a[alpha_index(i, x.shape())] * v;
      }
    }
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    const Index per = x.inner(1);
    const T* a = alpha_->value.data();
    T* ga = nullptr;
    if (this->trainable() && alpha_->trainable) {
      if (alpha_->begin_grad()) alpha_->grad.set_zero();
      ga = alpha_->grad.data();
    }
    if (dx) dx->resize(x.shape());
    for (Index b = 0; b < x.dim(0); ++b) {
      const T* xb = x.data() + b * per;
      const T* gb = dy.data() + b * per;
      for (Index i = 0; i < per; ++i) {
        T v = xb[i];
        Index ai = alpha_index(i, x.shape());
        if (dx) (*dx)[b * per + i] = v > T(0) ? gb[i] : a[ai] * gb[i];
        if (ga && !(v > T(0))) ga[ai] += gb[i] * v;
      }
    }
  }
  json get_config() const override {
    json c = this->base_config();
    c["alpha_initializer"] = alpha_initializer.to_json();
    c["alpha_regularizer"] = alpha_regularizer.to_json();
    c["alpha_constraint"] = alpha_constraint.to_json();
    c["shared_axes"] = shared_.empty() ? json(nullptr) : json(shared_);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "PReLU"));
    std::vector<int> sh;
    if (c.has("shared_axes")) {
      const auto& v = c.at("shared_axes");
      if (v.is_number_integer()) sh.push_back(v.get<int>());
      else if (v.is_array()) for (auto& e : v) sh.push_back(e.get<int>());
    }
    auto l = std::make_shared<PReLU>(sh);
    apply_base_config(*l, c);
    std::string ai = c.pick({"alpha_initializer", "init"});
    if (!ai.empty()) l->alpha_initializer = Initializer::from_json(c.raw()[ai], c.where());
    if (c.has("alpha_regularizer")) l->alpha_regularizer = Regularizer::from_json(c.raw()["alpha_regularizer"], c.where());
    if (c.has("alpha_constraint")) l->alpha_constraint = Constraint::from_json(c.raw()["alpha_constraint"], c.where());
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    Shape a(in[0].begin() + 1, in[0].end());
    for (int ax : shared_) {
      if (ax < 1 || ax > static_cast<int>(a.size()))
        throw value_error(detail::cat(this->where(), ": shared axis ", ax, " is out of range for input ", shape_str(in[0])));
      a[static_cast<size_t>(ax - 1)] = 1;
    }
    for (Index d : a)
      if (d < 0) throw shape_error(detail::cat(this->where(), ": needs known dimensions (or shared_axes), got ", shape_str(in[0])));
    alpha_ = &this->add_weight("alpha", a, alpha_initializer, true, alpha_regularizer, alpha_constraint);
    a_dims_ = a;
  }

 private:
  // const: inference runs on one layer from several threads at once (nothing here is written)
  void check_runtime(const Tensor<T>& x) const {
    if (x.rank() != static_cast<Index>(a_dims_.size()) + 1) throw shape_error(detail::cat(this->where(), ": bad input ", shape_str(x.shape())));
    for (size_t i = 0; i < a_dims_.size(); ++i) {
      Index d = x.shape()[i + 1];
      if (a_dims_[i] != 1 && d != a_dims_[i])
        throw shape_error(detail::cat(this->where(), ": alpha has shape ", shape_str(a_dims_), ", input is ", shape_str(x.shape())));
    }
  }
  /// The alpha index of element `flat` of one sample of an input of shape `xs` (checked by check_runtime).
  Index alpha_index(Index flat, const Shape& xs) const {
    Index ai = 0, mul = 1;
    for (size_t k = a_dims_.size(); k-- > 0;) {
      const Index dim = xs[k + 1];
      Index c = flat % dim;
      flat /= dim;
      if (a_dims_[k] != 1) ai += c * mul;
      mul *= a_dims_[k];
    }
    return ai;
  }
  std::vector<int> shared_;
  Param<T>* alpha_ = nullptr;
  Shape a_dims_;
};

/// keras.layers.Softmax(axis=-1), any single axis.
template <class T = float>
class Softmax : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit Softmax(int axis = -1, std::string name = {}) : UnaryLayer<T>(std::move(name)), axis_(axis) {}
  std::string class_name() const override { return "Softmax"; }
  Shape output_shape(const Shape& in) const override {
    normalize_axis(axis_, in.size(), this->where());
    return in;
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    y.resize(x.shape());
    Index outer, len, inner;
    split(x.shape(), outer, len, inner);
    for (Index o = 0; o < outer; ++o)
      for (Index i = 0; i < inner; ++i) {
        const T* xs = x.data() + o * len * inner + i;
        T* ys = y.data() + o * len * inner + i;
        T m = -std::numeric_limits<T>::infinity();
        for (Index k = 0; k < len; ++k) m = std::max(m, xs[k * inner]);
        T s = 0;
        for (Index k = 0; k < len; ++k) s += (ys[k * inner] = std::exp(xs[k * inner] - m));
        for (Index k = 0; k < len; ++k) ys[k * inner] /= s;
      }
  }
  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    dx->resize(x.shape());
    Index outer, len, inner;
    split(x.shape(), outer, len, inner);
    for (Index o = 0; o < outer; ++o)
      for (Index i = 0; i < inner; ++i) {
        Index base = o * len * inner + i;
        T s = 0;
        for (Index k = 0; k < len; ++k) s += dy[base + k * inner] * y[base + k * inner];
        for (Index k = 0; k < len; ++k) (*dx)[base + k * inner] = y[base + k * inner] * (dy[base + k * inner] - s);
      }
  }
  json get_config() const override {
    json c = this->base_config();
    c["axis"] = axis_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Softmax"));
    int axis = -1;
    if (c.has("axis")) {
      const auto& a = c.at("axis");
      if (a.is_number_integer()) axis = a.get<int>();
      else if (a.is_array() && a.size() == 1) axis = a[0].get<int>();
      else throw unsupported_error(detail::cat(c.where(), ": softmax over several axes ", a.dump(), " is not supported"));
    }
    auto l = std::make_shared<Softmax>(axis);
    apply_base_config(*l, c);
    return l;
  }
 private:
  void split(const Shape& s, Index& outer, Index& len, Index& inner) const {
    int a = normalize_axis(axis_, s.size(), this->where());
    outer = 1;
    inner = 1;
    for (int i = 0; i < a; ++i) outer *= s[static_cast<size_t>(i)];
    len = s[static_cast<size_t>(a)];
    for (size_t i = static_cast<size_t>(a) + 1; i < s.size(); ++i) inner *= s[i];
  }
  int axis_;
};

}  // namespace graft
