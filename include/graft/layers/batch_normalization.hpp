// graft — BatchNormalization over any axis (Keras 3 / TF-Keras 2 semantics).
//   training (and trainable): batch mean and biased variance over every axis but `axis`;
//       moving = moving * momentum + batch * (1 - momentum)
//   inference, or a frozen layer (trainable == false) even in training: the moving statistics.
//   y = (x - mean) * (gamma / sqrt(var + epsilon)) + beta
// Weights in Keras order: gamma (scale), beta (center), moving_mean, moving_variance (the last
// two not trainable). Keras 1's `running_std` held the variance and loads as moving_variance.
#pragma once

#include <cmath>

#include "graft/layers/conv_common.hpp"

namespace graft {

template <class T = float>
class BatchNormalization : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool training) const override { return !training || !this->trainable(); }  // batch statistics
  explicit BatchNormalization(int axis = -1, double momentum = 0.99, double epsilon = 1e-3, bool center = true,
                              bool scale = true, std::string name = {})
      : UnaryLayer<T>(std::move(name)), axis_(axis), momentum_(momentum), epsilon_(epsilon), center_(center), scale_(scale) {
    if (!(epsilon > 0)) throw value_error(detail::cat("BatchNormalization: epsilon must be positive, got ", epsilon));
  }
  std::string class_name() const override { return "BatchNormalization"; }

  Initializer beta_initializer = Initializer::named("Zeros");
  Initializer gamma_initializer = Initializer::named("Ones");
  Initializer moving_mean_initializer = Initializer::named("Zeros");
  Initializer moving_variance_initializer = Initializer::named("Ones");
  Regularizer beta_regularizer, gamma_regularizer;
  Constraint beta_constraint, gamma_constraint;

  int axis() const { return axis_; }
  double momentum() const { return momentum_; }
  double epsilon() const { return epsilon_; }
  bool center() const { return center_; }
  bool scale() const { return scale_; }
  Param<T>* gamma() { return gamma_; }
  Param<T>* beta() { return beta_; }
  Param<T>& moving_mean() { return *mm_; }
  Param<T>& moving_variance() { return *mv_; }

  Shape output_shape(const Shape& in) const override {
    const int a = normalize_axis(axis_, in.size(), this->where());
    if (a == 0) throw value_error(detail::cat(this->where(), ": cannot normalize over the batch axis"));
    if (mm_ && in[static_cast<size_t>(a)] >= 0 && in[static_cast<size_t>(a)] != mm_->value.size())
      throw shape_error(detail::cat(this->where(), ": expects ", mm_->value.size(), " features on axis ", axis_, ", got shape ",
                                    shape_str(in)));
    return in;
  }

  struct State : CallState {
    std::vector<T> mean, a;        // statistics used, and the per-feature factor gamma / sqrt(var + eps)
    std::vector<T> inv;            // 1 / sqrt(var + eps)
    std::vector<T> mean_dy, mean_dyx;
    std::vector<double> s1, s2;    // accumulators
    bool batch_stats = false;      // the forward used batch statistics
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    auto* s = static_cast<State*>(st);
    Index outer, C, inner;
    layout(x, outer, C, inner);
    const T* xd = x.data();
    s->mean.resize(static_cast<size_t>(C));
    s->inv.resize(static_cast<size_t>(C));
    s->a.resize(static_cast<size_t>(C));
    s->batch_stats = training && this->trainable();
    if (s->batch_stats) {
      const Index m = outer * inner;
      if (m == 0) throw shape_error(detail::cat(this->where(), ": cannot compute batch statistics of an empty batch"));
      s->s1.assign(static_cast<size_t>(C), 0.0);
      s->s2.assign(static_cast<size_t>(C), 0.0);
      double* s1 = s->s1.data();
      double* s2 = s->s2.data();
      for_each(outer, C, inner, [&](Index c, Index off, Index n) {
        double acc = 0;
        GRAFT_SIMD_SUM(acc)
        for (Index i = 0; i < n; ++i) acc += static_cast<double>(xd[off + i]);
        s1[c] += acc;
      }, [&](Index off) {
        GRAFT_SIMD
        for (Index c = 0; c < C; ++c) s1[c] += static_cast<double>(xd[off + c]);
      });
      for (Index c = 0; c < C; ++c) s1[c] /= static_cast<double>(m);
      for_each(outer, C, inner, [&](Index c, Index off, Index n) {
        double acc = 0;
        const double mu = s1[c];
        GRAFT_SIMD_SUM(acc)
        for (Index i = 0; i < n; ++i) {
          double d = static_cast<double>(xd[off + i]) - mu;
          acc += d * d;
        }
        s2[c] += acc;
      }, [&](Index off) {
        GRAFT_SIMD
        for (Index c = 0; c < C; ++c) {
          double d = static_cast<double>(xd[off + c]) - s1[c];
          s2[c] += d * d;
        }
      });
      T* mm = mm_->value.data();
      T* mv = mv_->value.data();
      const T mom = static_cast<T>(momentum_), one_m = static_cast<T>(1.0 - momentum_);
      for (Index c = 0; c < C; ++c) {
        const T mean = static_cast<T>(s1[c]);
        const T var = static_cast<T>(s2[c] / static_cast<double>(m));
        mm[c] = mm[c] * mom + mean * one_m;
        mv[c] = mv[c] * mom + var * one_m;
        s->mean[static_cast<size_t>(c)] = mean;
        s->inv[static_cast<size_t>(c)] = T(1) / std::sqrt(var + static_cast<T>(epsilon_));
      }
    } else {
      moving_stats(*s, C);
    }
    factors(*s, C);
    y.resize(x.shape());
    T* yd = y.data();
    const T* mean = s->mean.data();
    const T* a = s->a.data();
    const T* b = center_ ? beta_->value.data() : nullptr;
    for_each(outer, C, inner, [&](Index c, Index off, Index n) {
      const T mu = mean[c], f = a[c], o = b ? b[c] : T(0);
      GRAFT_SIMD
      for (Index i = 0; i < n; ++i) yd[off + i] = (xd[off + i] - mu) * f + o;
    }, [&](Index off) { affine_rows(xd, yd, off, off + C, C, mean, a, b); });
  }

  /// Inference on the feature axis last (channels_last): (x - moving_mean) * factor + beta per
  /// channel, each value on its own, so the model may apply it in place to the rows of the layer
  /// before (inference fusion).
  bool prepare_inplace_inference(CallState* st, const Shape& in) override {
    const int r = static_cast<int>(in.size());
    const int a = axis_ < 0 ? axis_ + r : axis_;
    if (r < 2 || a != r - 1 || in.back() != mm_->value.size()) return false;
    auto* s = static_cast<State*>(st);
    const Index C = in.back();
    s->mean.resize(static_cast<size_t>(C));
    s->inv.resize(static_cast<size_t>(C));
    s->a.resize(static_cast<size_t>(C));
    s->batch_stats = false;
    moving_stats(*s, C);
    factors(*s, C);
    return true;
  }
  void inplace_inference(T* y, Index begin, Index end, CallState* st) const override {
    const auto* s = static_cast<const State*>(st);
    affine_rows(y, y, begin, end, static_cast<Index>(s->mean.size()), s->mean.data(), s->a.data(),
                center_ ? beta_->value.data() : nullptr);
  }

  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    auto* s = static_cast<State*>(st);
    Index outer, C, inner;
    layout(x, outer, C, inner);
    const bool gg = this->trainable() && scale_ && gamma_->trainable;
    const bool gb = this->trainable() && center_ && beta_->trainable;
    const bool need_sums = gg || gb || (dx && s->batch_stats);
    const T* xd = x.data();
    const T* g = dy.data();
    const T* mean = s->mean.data();
    const T* inv = s->inv.data();
    const T* a = s->a.data();
    double* sdy = nullptr;
    double* sdyx = nullptr;
    if (need_sums) {
      s->s1.assign(static_cast<size_t>(C), 0.0);
      s->s2.assign(static_cast<size_t>(C), 0.0);
      sdy = s->s1.data();
      sdyx = s->s2.data();
      // sum dy and sum dy * xhat, xhat = (x - mean) * inv
      for_each(outer, C, inner, [&](Index c, Index off, Index n) {
        double u = 0, v = 0;
        GRAFT_SIMD_SUM(u, v)
        for (Index i = 0; i < n; ++i) {
          u += static_cast<double>(g[off + i]);
          v += static_cast<double>(g[off + i]) * static_cast<double>((xd[off + i] - mean[c]) * inv[c]);
        }
        sdy[c] += u;
        sdyx[c] += v;
      }, [&](Index off) {
        GRAFT_SIMD
        for (Index c = 0; c < C; ++c) {
          sdy[c] += static_cast<double>(g[off + c]);
          sdyx[c] += static_cast<double>(g[off + c]) * static_cast<double>((xd[off + c] - mean[c]) * inv[c]);
        }
      });
    }
    if (gg) {
      bool ow = gamma_->begin_grad();
      for (Index c = 0; c < C; ++c) gamma_->grad[c] = (ow ? T(0) : gamma_->grad[c]) + static_cast<T>(sdyx[c]);
    }
    if (gb) {
      bool ow = beta_->begin_grad();
      for (Index c = 0; c < C; ++c) beta_->grad[c] = (ow ? T(0) : beta_->grad[c]) + static_cast<T>(sdy[c]);
    }
    if (!dx) return;
    dx->resize(x.shape());
    T* d = dx->data();
    if (!s->batch_stats) {
      for_each(outer, C, inner, [&](Index c, Index off, Index n) {
        GRAFT_SIMD
        for (Index i = 0; i < n; ++i) d[off + i] = g[off + i] * a[c];
      }, [&](Index off) {
        GRAFT_SIMD
        for (Index c = 0; c < C; ++c) d[off + c] = g[off + c] * a[c];
      });
      return;
    }
    // dx = a * (dy - mean(dy) - xhat * mean(dy * xhat))
    const double m = static_cast<double>(outer * inner);
    for (Index c = 0; c < C; ++c) {
      sdy[c] /= m;
      sdyx[c] /= m;
    }
    std::vector<T>& mdy = s->mean_dy;
    std::vector<T>& mdyx = s->mean_dyx;
    mdy.resize(static_cast<size_t>(C));
    mdyx.resize(static_cast<size_t>(C));
    for (Index c = 0; c < C; ++c) {
      mdy[static_cast<size_t>(c)] = static_cast<T>(sdy[c]);
      mdyx[static_cast<size_t>(c)] = static_cast<T>(sdyx[c]);
    }
    const T* u = mdy.data();
    const T* v = mdyx.data();
    for_each(outer, C, inner, [&](Index c, Index off, Index n) {
      GRAFT_SIMD
      for (Index i = 0; i < n; ++i) d[off + i] = a[c] * (g[off + i] - u[c] - (xd[off + i] - mean[c]) * inv[c] * v[c]);
    }, [&](Index off) {
      GRAFT_SIMD
      for (Index c = 0; c < C; ++c) d[off + c] = a[c] * (g[off + c] - u[c] - (xd[off + c] - mean[c]) * inv[c] * v[c]);
    });
  }

  json get_config() const override {
    json c = this->base_config();
    c["axis"] = axis_;
    c["momentum"] = momentum_;
    c["epsilon"] = epsilon_;
    c["center"] = center_;
    c["scale"] = scale_;
    c["beta_initializer"] = beta_initializer.to_json();
    c["gamma_initializer"] = gamma_initializer.to_json();
    c["moving_mean_initializer"] = moving_mean_initializer.to_json();
    c["moving_variance_initializer"] = moving_variance_initializer.to_json();
    c["beta_regularizer"] = beta_regularizer.to_json();
    c["gamma_regularizer"] = gamma_regularizer.to_json();
    c["beta_constraint"] = beta_constraint.to_json();
    c["gamma_constraint"] = gamma_constraint.to_json();
    return c;
  }

  /// Keras 1 (mode, beta_init, gamma_init), TF-Keras 2 (axis as a list, fused, renorm...) and
  /// Keras 3 configs.
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "BatchNormalization"));
    int axis = -1;
    if (c.has("axis")) {
      const json& a = c.raw()["axis"];
      if (a.is_number_integer()) axis = a.get<int>();
      else if (a.is_array() && a.size() == 1 && a[0].is_number_integer()) axis = a[0].get<int>();
      else if (a.is_array())
        throw unsupported_error(detail::cat(c.where(), ": normalizing over several axes (axis=", a.dump(), ") is not supported"));
      else
        throw format_error(detail::cat(c.where(), ": 'axis' should be an integer, got ", a.dump()));
    }
    if (c.get_int("mode", 0) != 0)
      throw unsupported_error(detail::cat(c.where(), ": Keras 1 BatchNormalization mode=", c.get_int("mode", 0),
                                          " is not supported (only mode 0, feature-wise)"));
    if (c.get_bool("renorm", false)) throw unsupported_error(detail::cat(c.where(), ": renorm=True is not supported"));
    if (c.get_bool("synchronized", false))
      throw unsupported_error(detail::cat(c.where(), ": synchronized=True is not supported"));
    if (c.has("virtual_batch_size"))
      throw unsupported_error(detail::cat(c.where(), ": virtual_batch_size is not supported"));
    if (c.has("adjustment")) throw unsupported_error(detail::cat(c.where(), ": adjustment is not supported"));
    std::shared_ptr<BatchNormalization> l;
    try {
      l = std::make_shared<BatchNormalization>(axis, c.get_double("momentum", 0.99), c.get_double("epsilon", 1e-3),
                                               c.get_bool("center", true), c.get_bool("scale", true));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    detail::read_initializer(c, {"beta_initializer", "beta_init"}, l->beta_initializer);
    detail::read_initializer(c, {"gamma_initializer", "gamma_init"}, l->gamma_initializer);
    detail::read_initializer(c, {"moving_mean_initializer"}, l->moving_mean_initializer);
    detail::read_initializer(c, {"moving_variance_initializer"}, l->moving_variance_initializer);
    detail::read_regularizer(c, {"beta_regularizer"}, l->beta_regularizer);
    detail::read_regularizer(c, {"gamma_regularizer"}, l->gamma_regularizer);
    detail::read_constraint(c, {"beta_constraint"}, l->beta_constraint);
    detail::read_constraint(c, {"gamma_constraint"}, l->gamma_constraint);
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    const int a = normalize_axis(axis_, in[0].size(), this->where());
    if (a == 0) throw value_error(detail::cat(this->where(), ": cannot normalize over the batch axis"));
    const Index C = in[0][static_cast<size_t>(a)];
    if (C < 0) throw shape_error(detail::cat(this->where(), ": axis ", axis_, " of the input must be known, got ", shape_str(in[0])));
    if (scale_) gamma_ = &this->add_weight("gamma", {C}, gamma_initializer, true, gamma_regularizer, gamma_constraint);
    if (center_) beta_ = &this->add_weight("beta", {C}, beta_initializer, true, beta_regularizer, beta_constraint);
    mm_ = &this->add_weight("moving_mean", {C}, moving_mean_initializer, false);
    mv_ = &this->add_weight("moving_variance", {C}, moving_variance_initializer, false);
  }

 private:
  /// Inference statistics: the moving mean and 1 / sqrt(moving variance + epsilon).
  void moving_stats(State& s, Index C) const {
    for (Index c = 0; c < C; ++c) {
      s.mean[static_cast<size_t>(c)] = mm_->value[c];
      s.inv[static_cast<size_t>(c)] = T(1) / std::sqrt(mv_->value[c] + static_cast<T>(epsilon_));
    }
  }
  /// The per-feature factor: inv * gamma (inv without scale).
  void factors(State& s, Index C) const {
    for (Index c = 0; c < C; ++c)
      s.a[static_cast<size_t>(c)] = scale_ ? s.inv[static_cast<size_t>(c)] * gamma_->value[c] : s.inv[static_cast<size_t>(c)];
  }
  /// y = (x - mean) * a (+ b) on the rows of C features at offsets [begin, end) (y may be x).
  static void affine_rows(const T* xd, T* yd, Index begin, Index end, Index C, const T* mean, const T* a, const T* b) {
    for (Index off = begin; off < end; off += C) {
      if (b) {
        GRAFT_SIMD
        for (Index c = 0; c < C; ++c) yd[off + c] = (xd[off + c] - mean[c]) * a[c] + b[c];
      } else {
        GRAFT_SIMD
        for (Index c = 0; c < C; ++c) yd[off + c] = (xd[off + c] - mean[c]) * a[c];
      }
    }
  }

  void layout(const Tensor<T>& x, Index& outer, Index& C, Index& inner) const {
    const Index r = x.rank();
    const int a = axis_ < 0 ? axis_ + static_cast<int>(r) : axis_;
    if (a < 0 || a >= r) normalize_axis(axis_, static_cast<size_t>(r), this->where());  // throws the message
    C = x.dim(a);
    if (a == 0 || C != mm_->value.size())
      throw shape_error(detail::cat(this->where(), ": expects ", mm_->value.size(), " features on axis ", axis_, ", got shape ",
                                    shape_str(x.shape())));
    outer = 1;
    for (int d = 0; d < a; ++d) outer *= x.dim(d);
    inner = x.inner(a + 1);
  }
  /// Visit the data: general(c, offset, n) for each contiguous run of one feature, or, when the
  /// feature axis is the last one, last(offset) for each row of C features.
  template <class G, class L>
  static void for_each(Index outer, Index C, Index inner, G&& general, L&& last) {
    if (inner == 1) {
      for (Index o = 0; o < outer; ++o) last(o * C);
      return;
    }
    for (Index o = 0; o < outer; ++o)
      for (Index c = 0; c < C; ++c) general(c, (o * C + c) * inner, inner);
  }

  int axis_;
  double momentum_, epsilon_;
  bool center_, scale_;
  Param<T>* gamma_ = nullptr;
  Param<T>* beta_ = nullptr;
  Param<T>* mm_ = nullptr;
  Param<T>* mv_ = nullptr;
};

}  // namespace graft
