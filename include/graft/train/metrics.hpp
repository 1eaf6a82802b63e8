// graft — Keras metrics: accuracy variants (resolved from shapes as Keras 3 does) and loss-like means.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"
#include "graft/train/losses.hpp"

namespace graft {

/// A streaming mean of per-sample values over an epoch (Keras MeanMetricWrapper).
template <class T>
class Metric {
 public:
  explicit Metric(std::string display_name) : name_(std::move(display_name)) {}
  virtual ~Metric() = default;
  /// Name shown in logs and History ("accuracy", "acc", "mae", ...).
  const std::string& name() const { return name_; }
  /// Keras function behind it ("sparse_categorical_accuracy", ...).
  virtual std::string fn() const = 0;
  void reset() {
    sum_ = 0;
    count_ = 0;
  }
  void update(const Tensor<T>& y_true, const Tensor<T>& y_pred) {
    Index n = 0;
    sum_ += batch_sum(y_true, y_pred, n);
    count_ += static_cast<double>(n);
  }
  double result() const { return count_ > 0 ? sum_ / count_ : 0.0; }
  /// The running sums (for checkpoints that resume mid-epoch).
  std::pair<double, double> state() const { return {sum_, count_}; }
  void set_state(std::pair<double, double> s) {
    sum_ = s.first;
    count_ = s.second;
  }

 protected:
  /// Sum of per-sample values for this batch; n receives how many.
  virtual double batch_sum(const Tensor<T>& y_true, const Tensor<T>& y_pred, Index& n) const = 0;

 private:
  std::string name_;
  double sum_ = 0, count_ = 0;
};

template <class T>
class BinaryAccuracy : public Metric<T> {
 public:
  explicit BinaryAccuracy(std::string n = "binary_accuracy", double threshold = 0.5)
      : Metric<T>(std::move(n)), threshold_(threshold) {}
  std::string fn() const override { return "binary_accuracy"; }
 protected:
  double batch_sum(const Tensor<T>& t, const Tensor<T>& p, Index& n) const override {
    if (t.size() != p.size())
      throw shape_error(detail::cat(this->name(), ": y_true ", shape_str(t.shape()),
                                    " does not match the output ", shape_str(p.shape())));
    const Index last = p.rank() ? std::max<Index>(1, p.shape().back()) : 1;
    double s = 0;
    for (Index i = 0; i < p.size(); ++i)
      s += (static_cast<double>(p[i]) > threshold_ ? 1.0 : 0.0) == static_cast<double>(t[i]) ? 1.0 : 0.0;
    n = p.size() / last;
    return s / static_cast<double>(last);
  }
 private:
  double threshold_;
};

template <class T>
class CategoricalAccuracy : public Metric<T> {
 public:
  CategoricalAccuracy(std::string n, bool sparse) : Metric<T>(std::move(n)), sparse_(sparse) {}
  std::string fn() const override { return sparse_ ? "sparse_categorical_accuracy" : "categorical_accuracy"; }
 protected:
  double batch_sum(const Tensor<T>& t, const Tensor<T>& p, Index& n) const override {
    const Index C = p.rank() ? std::max<Index>(1, p.shape().back()) : 1;
    const Index rows = p.size() / C;
    if ((sparse_ && t.size() != rows) || (!sparse_ && t.size() != p.size()))
      throw shape_error(detail::cat(this->name(), ": y_true ", shape_str(t.shape()),
                                    " does not match the output ", shape_str(p.shape())));
    double s = 0;
    for (Index r = 0; r < rows; ++r) {
      const T* pr = p.data() + r * C;
      Index a = 0;
      for (Index j = 1; j < C; ++j)
        if (pr[j] > pr[a]) a = j;
      Index want;
      if (sparse_) {
        const T v = t[r];  // a label that is no class index (NaN, out of range) matches nothing
        want = v >= T(0) && v < static_cast<T>(C) ? static_cast<Index>(v) : -1;
      } else {
        const T* tr = t.data() + r * C;
        want = 0;
        for (Index j = 1; j < C; ++j)
          if (tr[j] > tr[want]) want = j;
      }
      s += a == want ? 1.0 : 0.0;
    }
    n = rows;
    return s;
  }
 private:
  bool sparse_;
};

/// A loss used as a metric (mse, mae, crossentropies...).
template <class T>
class LossMetric : public Metric<T> {
 public:
  LossMetric(std::string n, std::shared_ptr<Loss<T>> loss) : Metric<T>(std::move(n)), loss_(std::move(loss)) {}
  std::string fn() const override { return loss_->name(); }
 protected:
  double batch_sum(const Tensor<T>& t, const Tensor<T>& p, Index& n) const override {
    return loss_->sum_per_sample(t, p, n);
  }
 private:
  std::shared_ptr<Loss<T>> loss_;
};

/// Resolve a metric identifier. "accuracy"/"acc" pick binary, sparse or categorical accuracy from
/// the shapes, exactly as keras.src.trainers.compile_utils.get_metric does.
template <class T>
std::shared_ptr<Metric<T>> make_metric(const nlohmann::json& id, const Shape& y_true_shape,
                                       const Shape& y_pred_shape) {
  std::string n, fn;
  if (id.is_string()) {
    n = fn = id.get<std::string>();
  } else if (id.is_object() && id.contains("class_name")) {
    // TF-Keras: {"class_name": "MeanMetricWrapper", "config": {"name": "accuracy", "fn": "..."}}
    const auto& cfg = id.contains("config") ? id["config"] : nlohmann::json::object();
    fn = id["class_name"].get<std::string>();
    n = cfg.contains("name") && cfg["name"].is_string() ? cfg["name"].get<std::string>() : fn;
    if (cfg.contains("fn") && cfg["fn"].is_string()) fn = cfg["fn"].get<std::string>();
    else if (fn == "MeanMetricWrapper") fn = n;
  } else {
    throw format_error(detail::cat("metric: cannot read ", id.dump()));
  }
  std::string lf = fn;
  for (auto& c : lf) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lf == "accuracy" || lf == "acc") {
    bool binary = !y_pred_shape.empty() && y_pred_shape.back() == 1;
    bool sparse = y_true_shape.size() < y_pred_shape.size() ||
                  (!y_true_shape.empty() && y_true_shape.back() == 1 && !y_pred_shape.empty() &&
                   y_pred_shape.back() > 1);
    if (binary) return std::make_shared<BinaryAccuracy<T>>(n);
    return std::make_shared<CategoricalAccuracy<T>>(n, sparse);
  }
  if (lf == "binary_accuracy" || lf == "binaryaccuracy") return std::make_shared<BinaryAccuracy<T>>(n);
  if (lf == "categorical_accuracy" || lf == "categoricalaccuracy")
    return std::make_shared<CategoricalAccuracy<T>>(n, false);
  if (lf == "sparse_categorical_accuracy" || lf == "sparsecategoricalaccuracy")
    return std::make_shared<CategoricalAccuracy<T>>(n, true);
  try {
    return std::make_shared<LossMetric<T>>(n, make_loss<T>(nlohmann::json(fn), "metric"));
  } catch (const unsupported_error&) {
    throw unsupported_error(detail::cat("metric '", n, "' is not supported"));
  }
}

}  // namespace graft
