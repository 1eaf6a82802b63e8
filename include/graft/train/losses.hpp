// graft — Keras losses (Keras 3 definitions, torch-backend clipping), with exact gradients.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"

namespace graft {

/// Keras' fuzz factor (keras.config.epsilon()).
constexpr double kEpsilon = 1e-7;

/// A loss with Keras' default "sum_over_batch_size" reduction: the per-sample values (one per
/// position of every axis but the last) are averaged.
template <class T>
class Loss {
 public:
  virtual ~Loss() = default;
  /// Keras function name, e.g. "binary_crossentropy".
  virtual std::string name() const = 0;
  /// How training_config stores it: a plain name, or a {class_name, config} object.
  virtual nlohmann::json to_json() const { return name(); }
  /// Labels are class indices (sparse_categorical_crossentropy).
  virtual bool sparse_labels() const { return false; }
  /// Reduced loss. When `grad` is non-null it receives scale * dLoss/dy_pred.
  virtual double compute(const Tensor<T>& y_true, const Tensor<T>& y_pred, Tensor<T>* grad,
                         T scale) const = 0;
  /// Per-sample values summed (used by metrics of the same name); `count` gets their number.
  virtual double sum_per_sample(const Tensor<T>& y_true, const Tensor<T>& y_pred, Index& count) const {
    Index rows = y_pred.rank() ? y_pred.size() / std::max<Index>(1, y_pred.shape().back()) : 1;
    count = rows;
    return compute(y_true, y_pred, nullptr, T(1)) * static_cast<double>(rows);
  }

 protected:
  /// y_true must hold the same values as y_pred up to trailing axes of size 1 (Keras squeezes).
  /// Runs every training step: allocation-free unless it throws.
  void check_same(const Tensor<T>& t, const Tensor<T>& p) const {
    if (t.size() != p.size() || !same_but_trailing_ones(t.shape(), p.shape()))
      throw shape_error(detail::cat(name(), ": y_true has shape ", shape_str(t.shape()),
                                    " but the model output has shape ", shape_str(p.shape())));
  }
  static bool same_but_trailing_ones(const Shape& a, const Shape& b) {
    size_t na = a.size(), nb = b.size();
    while (na > 0 && a[na - 1] == 1) --na;
    while (nb > 0 && b[nb - 1] == 1) --nb;
    return na == nb && std::equal(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(na), b.begin());
  }
};

/// Losses that are a mean over the last axis of an element-wise function l(t, p).
template <class T>
class ElementwiseLoss : public Loss<T> {
 public:
  double compute(const Tensor<T>& y_true, const Tensor<T>& y_pred, Tensor<T>* grad,
                 T scale) const override {
    this->check_same(y_true, y_pred);
    prepare(y_true);
    const Index n = y_pred.size();
    const Index last = y_pred.rank() ? std::max<Index>(1, y_pred.shape().back()) : 1;
    const Index rows = n / last;
    if (grad) grad->resize_like(y_pred.shape());
    double total = 0;
    const T g_scale = scale / static_cast<T>(rows * last);
    const T* t = y_true.data();
    const T* p = y_pred.data();
    for (Index i = 0; i < n; ++i) {
      T d;
      total += static_cast<double>(value(t[i], p[i], grad ? &d : nullptr));
      if (grad) (*grad)[i] = d * g_scale;
    }
    return total / static_cast<double>(rows * last);
  }

 protected:
  using Loss<T>::name;
  virtual void prepare(const Tensor<T>&) const {}
  /// l(t, p); writes dl/dp into *d when d is non-null.
  virtual T value(T t, T p, T* d) const = 0;
};

template <class T>
class MeanSquaredError : public ElementwiseLoss<T> {
 public:
  std::string name() const override { return "mean_squared_error"; }
 protected:
  T value(T t, T p, T* d) const override {
    T e = p - t;
    if (d) *d = T(2) * e;
    return e * e;
  }
};

template <class T>
class MeanAbsoluteError : public ElementwiseLoss<T> {
 public:
  std::string name() const override { return "mean_absolute_error"; }
 protected:
  T value(T t, T p, T* d) const override {
    T e = p - t;
    if (d) *d = e > T(0) ? T(1) : (e < T(0) ? T(-1) : T(0));
    return std::abs(e);
  }
};

template <class T>
class MeanAbsolutePercentageError : public ElementwiseLoss<T> {
 public:
  std::string name() const override { return "mean_absolute_percentage_error"; }
 protected:
  T value(T t, T p, T* d) const override {
    T den = std::max(std::abs(t), T(kEpsilon));
    T e = (t - p) / den;
    if (d) *d = (e > T(0) ? T(-100) : (e < T(0) ? T(100) : T(0))) / den;
    return T(100) * std::abs(e);
  }
};

template <class T>
class MeanSquaredLogarithmicError : public ElementwiseLoss<T> {
 public:
  std::string name() const override { return "mean_squared_logarithmic_error"; }
 protected:
  T value(T t, T p, T* d) const override {
    T pc = std::max(p, T(kEpsilon));
    T e = std::log(pc + T(1)) - std::log(std::max(t, T(kEpsilon)) + T(1));
    if (d) *d = p >= T(kEpsilon) ? T(2) * e / (pc + T(1)) : T(0);
    return e * e;
  }
};

template <class T>
class Huber : public ElementwiseLoss<T> {
 public:
  explicit Huber(double delta = 1.0) : delta_(delta) {}
  std::string name() const override { return "huber_loss"; }
  nlohmann::json to_json() const override {
    return {{"class_name", "Huber"}, {"config", {{"delta", delta_}, {"name", "huber_loss"}, {"reduction", "sum_over_batch_size"}}}};
  }
 protected:
  T value(T t, T p, T* d) const override {
    T e = p - t, a = std::abs(e), dl = static_cast<T>(delta_);
    if (a <= dl) {
      if (d) *d = e;
      return T(0.5) * e * e;
    }
    if (d) *d = e > 0 ? dl : -dl;
    return dl * a - T(0.5) * dl * dl;
  }
 private:
  double delta_;
};

template <class T>
class LogCosh : public ElementwiseLoss<T> {
 public:
  std::string name() const override { return "log_cosh"; }
 protected:
  T value(T t, T p, T* d) const override {
    T x = p - t;
    if (d) *d = std::tanh(x);
    T m = T(-2) * x;
    T sp = m > T(20) ? m : std::log1p(std::exp(m));
    return x + sp - T(0.69314718055994530942);
  }
};

template <class T>
class Poisson : public ElementwiseLoss<T> {
 public:
  std::string name() const override { return "poisson"; }
 protected:
  T value(T t, T p, T* d) const override {
    if (d) *d = T(1) - t / (p + T(kEpsilon));
    return p - t * std::log(p + T(kEpsilon));
  }
};

/// hinge / squared_hinge; {0,1} labels are converted to {-1,1} as Keras does.
template <class T>
class Hinge : public ElementwiseLoss<T> {
 public:
  explicit Hinge(bool squared) : squared_(squared) {}
  std::string name() const override { return squared_ ? "squared_hinge" : "hinge"; }
 protected:
  void prepare(const Tensor<T>& t) const override {
    binary_ = std::all_of(t.begin(), t.end(), [](T v) { return v == T(0) || v == T(1); });
  }
  T value(T t, T p, T* d) const override {
    if (binary_) t = T(2) * t - T(1);
    T m = T(1) - t * p;
    if (m <= T(0)) {
      if (d) *d = T(0);
      return T(0);
    }
    if (squared_) {
      if (d) *d = T(-2) * m * t;
      return m * m;
    }
    if (d) *d = -t;
    return m;
  }
 private:
  bool squared_;
  mutable bool binary_ = false;
};

/// binary_crossentropy: clip to [eps, 1-eps] then -(t log p + (1-t) log(1-p)) (Keras 3, torch backend);
/// from_logits uses the stable sigmoid form. label_smoothing as Keras.
template <class T>
class BinaryCrossentropy : public ElementwiseLoss<T> {
 public:
  explicit BinaryCrossentropy(bool from_logits = false, double label_smoothing = 0.0)
      : from_logits_(from_logits), smoothing_(label_smoothing) {}
  std::string name() const override { return "binary_crossentropy"; }
  nlohmann::json to_json() const override {
    if (!from_logits_ && smoothing_ == 0.0) return name();
    return {{"class_name", "BinaryCrossentropy"},
            {"config", {{"from_logits", from_logits_}, {"label_smoothing", smoothing_}, {"axis", -1},
                        {"name", "binary_crossentropy"}, {"reduction", "sum_over_batch_size"}}}};
  }
 protected:
  T value(T t, T p, T* d) const override {
    if (smoothing_ != 0.0) t = t * static_cast<T>(1.0 - smoothing_) + static_cast<T>(0.5 * smoothing_);
    if (from_logits_) {
      T z = p;
      if (d) {
        T s = z >= T(0) ? T(1) / (T(1) + std::exp(-z)) : std::exp(z) / (T(1) + std::exp(z));
        *d = s - t;
      }
      return std::max(z, T(0)) - z * t + std::log1p(std::exp(-std::abs(z)));
    }
    const T eps = static_cast<T>(kEpsilon);
    const T hi = T(1) - eps;
    T c = std::min(std::max(p, eps), hi);
    if (d) *d = (p >= eps && p <= hi) ? (c - t) / std::max(c * (T(1) - c), T(1e-12)) : T(0);
    T lp = std::max(std::log(c), T(-100)), lq = std::max(std::log(T(1) - c), T(-100));
    return -(t * lp + (T(1) - t) * lq);
  }
 private:
  bool from_logits_;
  double smoothing_;
};

/// categorical_crossentropy and sparse_categorical_crossentropy (Keras 3, torch backend):
/// p is normalised to sum 1 along the last axis, clipped to [eps, 1-eps], then -sum t log p.
template <class T>
class CategoricalCrossentropy : public Loss<T> {
 public:
  CategoricalCrossentropy(bool sparse, bool from_logits = false, double label_smoothing = 0.0)
      : sparse_(sparse), from_logits_(from_logits), smoothing_(label_smoothing) {}
  std::string name() const override {
    return sparse_ ? "sparse_categorical_crossentropy" : "categorical_crossentropy";
  }
  bool sparse_labels() const override { return sparse_; }
  nlohmann::json to_json() const override {
    if (!from_logits_ && smoothing_ == 0.0) return name();
    nlohmann::json cfg = {{"from_logits", from_logits_}, {"name", name()}, {"reduction", "sum_over_batch_size"}};
    if (!sparse_) {
      cfg["label_smoothing"] = smoothing_;
      cfg["axis"] = -1;
    }
    return {{"class_name", sparse_ ? "SparseCategoricalCrossentropy" : "CategoricalCrossentropy"},
            {"config", cfg}};
  }

  double compute(const Tensor<T>& y_true, const Tensor<T>& y_pred, Tensor<T>* grad,
                 T scale) const override {
    const Index C = y_pred.rank() ? y_pred.shape().back() : 1;
    if (C < 1) throw shape_error(detail::cat(name(), ": model output has no classes"));
    const Index rows = y_pred.size() / C;
    if (sparse_) {
      if (y_true.size() != rows)
        throw shape_error(detail::cat(name(), ": expected one class index per sample (", rows,
                                      " values) for output shape ", shape_str(y_pred.shape()),
                                      ", got y_true of shape ", shape_str(y_true.shape())));
    } else {
      this->check_same(y_true, y_pred);
    }
    if (grad) grad->resize_like(y_pred.shape());
    const T eps = static_cast<T>(kEpsilon), hi = T(1) - eps;
    const T g_scale = scale / static_cast<T>(rows);
    double total = 0;
    std::vector<T>& t = tbuf_;
    t.resize(static_cast<size_t>(C));
    for (Index r = 0; r < rows; ++r) {
      const T* p = y_pred.data() + r * C;
      // targets for this row
      if (sparse_) {
        T v = y_true[r];
        // checked before the cast: converting NaN or a value beyond Index's range is undefined
        if (!(v >= T(0) && v < static_cast<T>(C)) || v != std::floor(v))
          throw value_error(detail::cat(name(), ": label ", v, " (sample ", r,
                                        ") is not a class index in [0, ", C, ")"));
        Index k = static_cast<Index>(v);
        std::fill(t.begin(), t.end(), T(0));
        t[static_cast<size_t>(k)] = T(1);
      } else {
        std::copy(y_true.data() + r * C, y_true.data() + (r + 1) * C, t.begin());
        if (smoothing_ != 0.0)
          for (auto& v : t)
            v = v * static_cast<T>(1.0 - smoothing_) + static_cast<T>(smoothing_ / static_cast<double>(C));
      }
      T* g = grad ? grad->data() + r * C : nullptr;
      if (from_logits_) {
        T m = p[0];
        for (Index j = 1; j < C; ++j) m = std::max(m, p[j]);
        T s = 0;
        for (Index j = 0; j < C; ++j) s += std::exp(p[j] - m);
        T lse = m + std::log(s), tsum = 0, l = 0;
        for (Index j = 0; j < C; ++j) {
          l -= t[static_cast<size_t>(j)] * (p[j] - lse);
          tsum += t[static_cast<size_t>(j)];
        }
        total += static_cast<double>(l);
        if (g)
          for (Index j = 0; j < C; ++j)
            g[j] = (std::exp(p[j] - lse) * tsum - t[static_cast<size_t>(j)]) * g_scale;
      } else {
        T S = 0;
        for (Index j = 0; j < C; ++j) S += p[j];
        T l = 0, dot = 0;
        for (Index j = 0; j < C; ++j) {
          T q = p[j] / S;
          T c = std::min(std::max(q, eps), hi);
          l -= t[static_cast<size_t>(j)] * std::log(c);
          if (g) {
            // dL/dq_j, zero where the clip is active
            T dq = (q >= eps && q <= hi) ? -t[static_cast<size_t>(j)] / c : T(0);
            g[j] = dq;
            dot += dq * p[j];
          }
        }
        total += static_cast<double>(l);
        if (g) {
          const T invS = T(1) / S, c2 = dot * invS * invS;
          for (Index j = 0; j < C; ++j) g[j] = (g[j] * invS - c2) * g_scale;
        }
      }
    }
    return total / static_cast<double>(rows);
  }

 private:
  bool sparse_, from_logits_;
  double smoothing_;
  mutable std::vector<T> tbuf_;
};

/// kl_divergence: sum t log(t / p), both clipped to [eps, 1].
template <class T>
class KLDivergence : public Loss<T> {
 public:
  std::string name() const override { return "kl_divergence"; }
  double compute(const Tensor<T>& y_true, const Tensor<T>& y_pred, Tensor<T>* grad,
                 T scale) const override {
    this->check_same(y_true, y_pred);
    const Index C = y_pred.rank() ? std::max<Index>(1, y_pred.shape().back()) : 1;
    const Index rows = y_pred.size() / C;
    if (grad) grad->resize_like(y_pred.shape());
    const T eps = static_cast<T>(kEpsilon);
    double total = 0;
    for (Index i = 0; i < y_pred.size(); ++i) {
      T t = std::min(std::max(y_true[i], eps), T(1));
      T p = std::min(std::max(y_pred[i], eps), T(1));
      total += static_cast<double>(t * std::log(t / p));
      if (grad) (*grad)[i] = (y_pred[i] >= eps && y_pred[i] <= T(1)) ? -t / p * scale / static_cast<T>(rows) : T(0);
    }
    return total / static_cast<double>(rows);
  }
};

/// Resolve a Keras loss identifier: a name ("mse", "binary_crossentropy", ...), a class name, or a
/// serialized {class_name, config} object (TF-Keras and Keras 3).
template <class T>
std::shared_ptr<Loss<T>> make_loss(const nlohmann::json& j, const std::string& where = "loss") {
  std::string n;
  nlohmann::json cfg = nlohmann::json::object();
  if (j.is_string()) {
    n = j.get<std::string>();
  } else if (j.is_object() && j.contains("class_name")) {
    n = j["class_name"].get<std::string>();
    if (j.contains("config") && j["config"].is_object()) cfg = j["config"];
    if (n == "LossFunctionWrapper" && cfg.contains("fn")) {
      n = cfg["fn"].is_string() ? cfg["fn"].get<std::string>() : n;
    }
  } else {
    throw format_error(detail::cat(where, ": cannot read loss ", j.dump()));
  }
  auto flag = [&](const char* k) { return cfg.contains(k) && cfg[k].is_boolean() && cfg[k].get<bool>(); };
  auto num = [&](const char* k, double d) {
    return cfg.contains(k) && cfg[k].is_number() ? cfg[k].get<double>() : d;
  };
  if (cfg.contains("reduction") && cfg["reduction"].is_string()) {
    std::string r = cfg["reduction"];
    if (r != "sum_over_batch_size" && r != "auto" && r != "mean")
      throw unsupported_error(detail::cat(where, ": loss reduction '", r, "' is not supported"));
  }
  if (n == "mse" || n == "mean_squared_error" || n == "MeanSquaredError" || n == "MSE")
    return std::make_shared<MeanSquaredError<T>>();
  if (n == "mae" || n == "mean_absolute_error" || n == "MeanAbsoluteError" || n == "MAE")
    return std::make_shared<MeanAbsoluteError<T>>();
  if (n == "mape" || n == "mean_absolute_percentage_error" || n == "MeanAbsolutePercentageError" || n == "MAPE")
    return std::make_shared<MeanAbsolutePercentageError<T>>();
  if (n == "msle" || n == "mean_squared_logarithmic_error" || n == "MeanSquaredLogarithmicError" || n == "MSLE")
    return std::make_shared<MeanSquaredLogarithmicError<T>>();
  if (n == "huber" || n == "huber_loss" || n == "Huber") return std::make_shared<Huber<T>>(num("delta", 1.0));
  if (n == "log_cosh" || n == "logcosh" || n == "LogCosh") return std::make_shared<LogCosh<T>>();
  if (n == "poisson" || n == "Poisson") return std::make_shared<Poisson<T>>();
  if (n == "hinge" || n == "Hinge") return std::make_shared<Hinge<T>>(false);
  if (n == "squared_hinge" || n == "SquaredHinge") return std::make_shared<Hinge<T>>(true);
  if (n == "kld" || n == "kl_divergence" || n == "kullback_leibler_divergence" || n == "KLDivergence" || n == "KLD")
    return std::make_shared<KLDivergence<T>>();
  if (n == "binary_crossentropy" || n == "BinaryCrossentropy" || n == "bce")
    return std::make_shared<BinaryCrossentropy<T>>(flag("from_logits"), num("label_smoothing", 0.0));
  if (n == "categorical_crossentropy" || n == "CategoricalCrossentropy" || n == "cce")
    return std::make_shared<CategoricalCrossentropy<T>>(false, flag("from_logits"), num("label_smoothing", 0.0));
  if (n == "sparse_categorical_crossentropy" || n == "SparseCategoricalCrossentropy" || n == "scce")
    return std::make_shared<CategoricalCrossentropy<T>>(true, flag("from_logits"));
  throw unsupported_error(detail::cat(where, ": loss '", n, "' is not supported"));
}

}  // namespace graft
