// graft — keras.layers.LayerNormalization: each sample normalised over its last axes,
//   y = (x - mean) / sqrt(var + epsilon) * gamma + beta        (population variance)
// and Keras' deprecated rms_scaling variant y = x / sqrt(var + epsilon) * gamma. The normalised
// axes must be the trailing ones (Keras' default -1, and every keras.applications use).
#pragma once

#include <cmath>

#include "graft/layers/conv_common.hpp"

namespace graft {

template <class T = float>
class LayerNormalization : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit LayerNormalization(std::vector<int> axis = {-1}, double epsilon = 1e-3, bool center = true, bool scale = true,
                              std::string name = {}, bool rms_scaling = false)
      : UnaryLayer<T>(std::move(name)), axis_(std::move(axis)), epsilon_(epsilon), center_(center), scale_(scale),
        rms_(rms_scaling) {
    if (axis_.empty()) throw value_error("LayerNormalization: axis must name at least one axis");
    if (!(epsilon > 0)) throw value_error(detail::cat("LayerNormalization: epsilon must be positive, got ", epsilon));
  }
  std::string class_name() const override { return "LayerNormalization"; }
  Initializer beta_initializer = Initializer::named("Zeros");
  Initializer gamma_initializer = Initializer::named("Ones");
  Regularizer beta_regularizer, gamma_regularizer;
  Constraint beta_constraint, gamma_constraint;

  Shape output_shape(const Shape& in) const override {
    first_axis(in);
    return in;
  }

  struct State : CallState {
    std::vector<T> inv, mean;  // per normalised row
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool) override {
    auto* s = static_cast<State*>(st);
    const Index n = x.inner(first_axis(x.shape())), rows = x.size() / std::max<Index>(1, n);
    check_features(n);
    y.resize(x.shape());
    s->inv.resize(static_cast<size_t>(rows));
    s->mean.resize(static_cast<size_t>(rows));
    const T* g = gamma_ ? gamma_->value.data() : nullptr;
    const T* b = beta_ ? beta_->value.data() : nullptr;
    for (Index r = 0; r < rows; ++r) {
      const T* xr = x.data() + r * n;
      T* yr = y.data() + r * n;
      double mean = 0;
      for (Index i = 0; i < n; ++i) mean += xr[i];
      mean /= static_cast<double>(n);
      double var = 0;
      for (Index i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      var /= static_cast<double>(n);
      const T inv = static_cast<T>(1.0 / std::sqrt(var + epsilon_)), m = rms_ ? T(0) : static_cast<T>(mean);
      s->inv[static_cast<size_t>(r)] = inv;
      s->mean[static_cast<size_t>(r)] = static_cast<T>(mean);
      for (Index i = 0; i < n; ++i) {
        T v = (xr[i] - m) * inv;
        if (g) v *= g[i];
        if (b && !rms_) v += b[i];
        yr[i] = v;
      }
    }
  }

  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    auto* s = static_cast<State*>(st);
    const Index n = x.inner(first_axis(x.shape())), rows = x.size() / std::max<Index>(1, n);
    const T* g = gamma_ ? gamma_->value.data() : nullptr;
    T* gg = nullptr;
    T* gb = nullptr;
    if (this->trainable() && gamma_ && gamma_->trainable) {
      if (gamma_->begin_grad()) gamma_->grad.set_zero();
      gg = gamma_->grad.data();
    }
    if (this->trainable() && beta_ && beta_->trainable && !rms_) {
      if (beta_->begin_grad()) beta_->grad.set_zero();
      gb = beta_->grad.data();
    }
    if (dx) dx->resize(x.shape());
    const double dn = static_cast<double>(n);
    for (Index r = 0; r < rows; ++r) {
      const T* xr = x.data() + r * n;
      const T* dyr = dy.data() + r * n;
      const double inv = s->inv[static_cast<size_t>(r)], mean = s->mean[static_cast<size_t>(r)];
      double s1 = 0, s2 = 0;  // sums of dxhat and dxhat * (x - mean) * inv
      for (Index i = 0; i < n; ++i) {
        const double c = (xr[i] - (rms_ ? 0.0 : mean)) * inv;  // the normalised value before gamma
        const double d = dyr[i] * (g ? g[i] : T(1));
        if (gg) gg[i] += static_cast<T>(dyr[i] * c);
        if (gb) gb[i] += dyr[i];
        s1 += d;
        s2 += d * (xr[i] - mean) * inv;
      }
      if (!dx) continue;
      T* dxr = dx->data() + r * n;
      if (!rms_)
        for (Index i = 0; i < n; ++i) {
          const double d = dyr[i] * (g ? g[i] : T(1)), xc = (xr[i] - mean) * inv;
          dxr[i] = static_cast<T>(inv * (d - s1 / dn - xc * s2 / dn));
        }
      if (rms_) {  // y = x * inv: dx_i = inv d_i - inv^3 (x_i - mean) / n * sum_j d_j x_j
        double sxd = 0;
        for (Index i = 0; i < n; ++i) sxd += dyr[i] * (g ? g[i] : T(1)) * xr[i];
        for (Index i = 0; i < n; ++i) {
          const double d = dyr[i] * (g ? g[i] : T(1));
          dxr[i] = static_cast<T>(inv * d - sxd * inv * inv * inv * (xr[i] - mean) / dn);
        }
      }
    }
  }

  json get_config() const override {
    json c = this->base_config();
    c["axis"] = axis_.size() == 1 ? json(axis_[0]) : json(axis_);
    c["epsilon"] = epsilon_;
    c["center"] = center_;
    c["scale"] = scale_;
    if (rms_) c["rms_scaling"] = true;
    c["beta_initializer"] = beta_initializer.to_json();
    c["gamma_initializer"] = gamma_initializer.to_json();
    c["beta_regularizer"] = beta_regularizer.to_json();
    c["gamma_regularizer"] = gamma_regularizer.to_json();
    c["beta_constraint"] = beta_constraint.to_json();
    c["gamma_constraint"] = gamma_constraint.to_json();
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "LayerNormalization"));
    const std::vector<int> axis = c.get_axes("axis", {-1});
    std::shared_ptr<LayerNormalization> l;
    try {
      l = std::make_shared<LayerNormalization>(axis, c.get_double("epsilon", 1e-3), c.get_bool("center", true),
                                               c.get_bool("scale", true), "", c.get_bool("rms_scaling", false));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    detail::read_initializer(c, {"beta_initializer"}, l->beta_initializer);
    detail::read_initializer(c, {"gamma_initializer"}, l->gamma_initializer);
    detail::read_regularizer(c, {"beta_regularizer"}, l->beta_regularizer);
    detail::read_regularizer(c, {"gamma_regularizer"}, l->gamma_regularizer);
    detail::read_constraint(c, {"beta_constraint"}, l->beta_constraint);
    detail::read_constraint(c, {"gamma_constraint"}, l->gamma_constraint);
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    const int a0 = first_axis(in[0]);
    Shape w(in[0].begin() + a0, in[0].end());
    for (Index d : w)
      if (d < 0) throw shape_error(detail::cat(this->where(), ": the normalised axes must be known, got ", shape_str(in[0])));
    if (scale_ || rms_) gamma_ = &this->add_weight("gamma", w, gamma_initializer, true, gamma_regularizer, gamma_constraint);
    if (center_ && !rms_) beta_ = &this->add_weight("beta", w, beta_initializer, true, beta_regularizer, beta_constraint);
    features_ = 1;
    for (Index d : w) features_ *= d;
  }

 private:
  /// The first normalised axis; the axes must be it and every one after it.
  int first_axis(const Shape& in) const {
    std::vector<int> a;
    for (int x : axis_) a.push_back(normalize_axis(x, in.size(), this->where()));
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i] == 0 || a[i] != static_cast<int>(in.size() - a.size() + i))
        throw unsupported_error(detail::cat(this->where(), ": normalising over axes ", json(axis_).dump(), " of an input of rank ",
                                            in.size(), " (only the trailing axes, not the batch axis, are supported)"));
    return a.front();
  }
  void check_features(Index n) const {
    if (n != features_)
      throw shape_error(detail::cat(this->where(), ": built for ", features_, " normalised values per sample, got ", n));
  }
  std::vector<int> axis_;
  double epsilon_;
  bool center_, scale_, rms_;
  Index features_ = 0;
  Param<T>* gamma_ = nullptr;
  Param<T>* beta_ = nullptr;
};

}  // namespace graft
