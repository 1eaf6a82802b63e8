// graft — keras.layers.Normalization (preprocessing): y = (x - mean) / max(sqrt(variance), 1e-7),
// or with invert=True x * max(sqrt(variance), 1e-7) + mean, per position of the kept `axis`
// (default the last). mean and variance come from the config when given there (ConvNeXt), else
// from the layer's weights mean, variance and count, as adapt() left them (EfficientNet).
// adapt(data) computes them as Keras does, from a tensor, an iterable of batches or a data source.
#pragma once

#include <algorithm>
#include <cmath>
#include <iterator>
#include <tuple>
#include <utility>
#include <vector>

#include "graft/layers/layer.hpp"

namespace graft {

template <class T = float>
class Normalization : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  /// `mean` / `variance` empty: the layer holds them as weights (set by loading, or set_weights).
  explicit Normalization(std::vector<int> axis = {-1}, std::vector<double> mean = {}, std::vector<double> variance = {},
                         bool invert = false, std::string name = {})
      : UnaryLayer<T>(std::move(name)), axis_(std::move(axis)), mean_cfg_(std::move(mean)), var_cfg_(std::move(variance)),
        invert_(invert) {
    if (mean_cfg_.size() != var_cfg_.size())
      throw value_error("Normalization: mean and variance must both be given, with the same number of values");
  }
  std::string class_name() const override { return "Normalization"; }

  Shape output_shape(const Shape& in) const override {
    kept(in);
    return in;
  }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    const Index per = x.inner(1);
    const Shape& dims = check_layout(x.shape());
    y.resize(x.shape());
    const T* m = mean_data();
    const std::vector<T>& sd = stddev();
    for (Index b = 0; b < x.dim(0); ++b)
      for (Index i = 0; i < per; ++i) {
        const Index k = feature(i, dims);
        const T v = x[b * per + i];
        y[b * per + i] = invert_ ? v * sd[static_cast<size_t>(k)] + m[k] : (v - m[k]) / sd[static_cast<size_t>(k)];
      }
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    const Index per = x.inner(1);
    const Shape& dims = check_layout(x.shape());
    const std::vector<T>& sd = stddev();
    dx->resize(x.shape());
    for (Index b = 0; b < x.dim(0); ++b)
      for (Index i = 0; i < per; ++i) {
        const T s = sd[static_cast<size_t>(feature(i, dims))];
        (*dx)[b * per + i] = invert_ ? dy[b * per + i] * s : dy[b * per + i] / s;
      }
  }

  // ---- adapt ----------------------------------------------------------------------------------
  /// Keras adapt(data): mean and (population) variance of `data` over every axis but the kept
  /// ones, stored in the layer's `mean` and `variance` weights (`count` is left alone, as Keras
  /// 3 does). Builds the layer from data's shape when needed, else checks the kept axes' sizes.
  /// value_error for a layer whose mean and variance come from its config.
  void adapt(const Tensor<T>& data) {
    std::vector<const Tensor<T>*> one{&data};
    adapt_batches(one.begin(), one.end(), [](const Tensor<T>* t) -> const Tensor<T>& { return *t; });
  }
  /// adapt() over an iterable of batches (std::vector<Tensor<T>>, a list of (x, y) pairs or tuples
  /// — the first element is the data — or any range with begin() / end()): Keras' running merge
  /// of per-batch means and variances. value_error for an empty iterable.
  template <class Batches, class = decltype(std::begin(std::declval<const Batches&>()))>
  void adapt(const Batches& batches) {
    adapt_batches(std::begin(batches), std::end(batches), [](const auto& b) -> const Tensor<T>& { return batch_data(b); });
  }
  /// adapt() over a data source (graft::data::Source: size(), load()) read in batches of
  /// batch_size rows; its first input is the data.
  template <class S, class = decltype(std::declval<const S&>().load(nullptr, Index(0), std::declval<std::vector<Tensor<T>>&>(),
                                                                       std::declval<std::vector<Tensor<T>>&>()))>
  void adapt(const S& source, Index batch_size = 128) {
    if (batch_size <= 0) throw value_error(detail::cat(this->where(), ": adapt() needs a positive batch size, got ", batch_size));
    const Index n = source.size();
    std::vector<Index> rows;
    std::vector<Tensor<T>> x, y;
    Index at = 0;
    auto next = [&]() -> const Tensor<T>* {
      if (at >= n) return nullptr;
      const Index cnt = std::min(batch_size, n - at);
      rows.resize(static_cast<size_t>(cnt));
      for (Index i = 0; i < cnt; ++i) rows[static_cast<size_t>(i)] = at + i;
      at += cnt;
      source.load(rows.data(), cnt, x, y);
      if (x.empty()) throw value_error(detail::cat(this->where(), ": adapt(): the data source yields no input array"));
      return &x[0];
    };
    adapt_stream(next);
  }

  json get_config() const override {
    json c = this->base_config();
    c["axis"] = axis_;
    c["invert"] = invert_;
    c["mean"] = mean_cfg_.empty() ? json(nullptr) : json(mean_cfg_);
    c["variance"] = var_cfg_.empty() ? json(nullptr) : json(var_cfg_);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Normalization"));
    const std::vector<int> axis = c.get_axes("axis", {-1});
    auto values = [&](const char* k) {
      std::vector<double> v;
      if (!c.has(k)) return v;
      const json& a = c.raw()[k];
      if (a.is_number()) v.push_back(a.get<double>());
      else if (a.is_array())
        for (auto& e : a) {
          if (!e.is_number()) throw unsupported_error(detail::cat(c.where(), ": '", k, "' must be a number or a flat list of numbers"));
          v.push_back(e.get<double>());
        }
      else throw format_error(detail::cat(c.where(), ": '", k, "' should be a number or a list, got ", a.dump()));
      return v;
    };
    std::shared_ptr<Normalization> l;
    try {
      l = std::make_shared<Normalization>(axis, values("mean"), values("variance"), c.get_bool("invert", false));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    std::vector<int> k = kept(in[0]);
    Shape s;
    for (int a : k) {
      if (in[0][static_cast<size_t>(a)] < 0)
        throw shape_error(detail::cat(this->where(), ": axis ", a, " must have a known size, got ", shape_str(in[0])));
      s.push_back(in[0][static_cast<size_t>(a)]);
    }
    keep_ = k;
    dims_.assign(in[0].begin() + 1, in[0].end());
    Index n = 1;
    for (Index d : s) n *= d;
    if (mean_cfg_.empty()) {
      mean_ = &this->add_weight("mean", s, Initializer::named("Zeros"), false);
      var_ = &this->add_weight("variance", s, Initializer::named("Ones"), false);
      this->add_weight("count", Shape{}, Initializer::named("Zeros"), false);
    } else if (mean_cfg_.size() != 1 && static_cast<Index>(mean_cfg_.size()) != n) {
      throw shape_error(detail::cat(this->where(), ": mean has ", mean_cfg_.size(), " values for ", n, " positions of axes ",
                                    json(axis_).dump()));
    } else {
      mean_fixed_.assign(static_cast<size_t>(n), T(0));
      for (Index i = 0; i < n; ++i) mean_fixed_[static_cast<size_t>(i)] = static_cast<T>(mean_cfg_[mean_cfg_.size() == 1 ? 0 : static_cast<size_t>(i)]);
    }
    features_ = n;
    last_only_ = k.size() == 1 && k[0] == static_cast<int>(in[0].size()) - 1;
  }

 private:
  static const Tensor<T>& batch_data(const Tensor<T>& t) { return t; }
  template <class A, class B>
  static const Tensor<T>& batch_data(const std::pair<A, B>& p) { return batch_data(p.first); }
  template <class... A>
  static const Tensor<T>& batch_data(const std::tuple<A...>& p) { return batch_data(std::get<0>(p)); }
  template <class It, class Get>
  void adapt_batches(It first, It last, Get get) {
    auto next = [&]() -> const Tensor<T>* {
      if (first == last) return nullptr;
      const Tensor<T>* t = &get(*first);
      ++first;
      return t;
    };
    adapt_stream(next);
  }
  /// Keras' adapt over batches next() returns until nullptr: per batch, the mean and variance
  /// over the reduced axes (in double), merged into the running totals with weights
  /// count_batch / count_total (the lack-of-fit sum of squares formula Keras uses).
  template <class Next>
  void adapt_stream(Next next) {
    if (!mean_cfg_.empty())
      throw value_error(detail::cat(this->where(), ": adapt() cannot change a mean and variance given in the layer's config"));
    const Tensor<T>* batch = next();
    if (!batch)
      throw value_error(detail::cat(this->where(), ": adapt() received an empty iterable (no batches); expected at least one batch"));
    if (batch->rank() < 1) throw shape_error(detail::cat(this->where(), ": adapt() needs data with a batch axis, got a scalar"));
    if (!this->built()) {
      Shape s = batch->shape();
      s[0] = -1;
      this->build({s});
    }
    const size_t F = static_cast<size_t>(features_);
    std::vector<double> total_mean(F, 0.0), total_var(F, 0.0), bm(F), bv(F), cnt(F);
    double total_count = 0;
    for (; batch; batch = next()) {
      const Shape& dims = check_layout(batch->shape());
      const Index per = batch->inner(1), N = batch->dim(0);
      if (batch->size() == 0) continue;
      std::fill(bm.begin(), bm.end(), 0.0);
      std::fill(bv.begin(), bv.end(), 0.0);
      std::fill(cnt.begin(), cnt.end(), 0.0);
      for (Index b = 0; b < N; ++b)
        for (Index i = 0; i < per; ++i) {
          const size_t k = static_cast<size_t>(feature(i, dims));
          bm[k] += static_cast<double>((*batch)[b * per + i]);
          cnt[k] += 1;
        }
      for (size_t k = 0; k < F; ++k) bm[k] /= cnt[k];
      for (Index b = 0; b < N; ++b)
        for (Index i = 0; i < per; ++i) {
          const size_t k = static_cast<size_t>(feature(i, dims));
          const double d = static_cast<double>((*batch)[b * per + i]) - bm[k];
          bv[k] += d * d;
        }
      const double batch_count = cnt[0];
      total_count += batch_count;
      const double bw = batch_count / total_count, ew = 1.0 - bw;
      for (size_t k = 0; k < F; ++k) {
        bv[k] /= cnt[k];
        const double nm = total_mean[k] * ew + bm[k] * bw;
        total_var[k] = (total_var[k] + (total_mean[k] - nm) * (total_mean[k] - nm)) * ew + (bv[k] + (bm[k] - nm) * (bm[k] - nm)) * bw;
        total_mean[k] = nm;
      }
    }
    if (total_count == 0) throw value_error(detail::cat(this->where(), ": adapt() received only empty batches"));
    for (size_t k = 0; k < F; ++k) {
      mean_->value[static_cast<Index>(k)] = static_cast<T>(total_mean[k]);
      var_->value[static_cast<Index>(k)] = static_cast<T>(total_var[k]);
    }
  }
  /// The kept axes (sorted, positive); the batch axis cannot be one.
  std::vector<int> kept(const Shape& in) const {
    std::vector<int> a;
    for (int x : axis_) a.push_back(normalize_axis(x, in.size(), this->where()));
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
    for (int x : a)
      if (x == 0) throw unsupported_error(detail::cat(this->where(), ": normalising along the batch axis is not supported"));
    return a;
  }
  /// The per-sample dimensions of input shape `s` (in the calling thread's scratch Shape), after
  /// checking the kept axes have the sizes the layer was built for.
  const Shape& check_layout(const Shape& s) const {
    if (static_cast<Index>(s.size()) != static_cast<Index>(dims_.size()) + 1)
      throw shape_error(detail::cat(this->where(), ": built for rank ", dims_.size() + 1, " inputs, got ", shape_str(s)));
    for (int a : keep_)
      if (s[static_cast<size_t>(a)] != dims_[static_cast<size_t>(a - 1)])
        throw shape_error(detail::cat(this->where(), ": built for inputs ", shape_str(dims_), " per sample, got ", shape_str(s)));
    Shape& d = detail::shape_scratch();
    d.assign(s.begin() + 1, s.end());
    return d;
  }
  /// Index into mean/variance of a per-sample flat position.
  Index feature(Index flat, const Shape& dims) const {
    if (last_only_) return flat % features_;
    Index k = 0, mul = 1;
    for (size_t d = dims.size(); d-- > 0;) {
      const Index c = flat % dims[d];
      flat /= dims[d];
      if (std::find(keep_.begin(), keep_.end(), static_cast<int>(d + 1)) != keep_.end()) {
        k += c * mul;
        mul *= dims[d];
      }
    }
    return k;
  }
  const T* mean_data() const { return mean_ ? mean_->value.data() : mean_fixed_.data(); }
  /// max(sqrt(variance), epsilon) per position, from the weights or the config (in a per-thread
  /// buffer: forward may run on several threads at once).
  const std::vector<T>& stddev() const {
    thread_local std::vector<T> sd;
    sd.resize(static_cast<size_t>(features_));
    for (Index i = 0; i < features_; ++i) {
      double v = var_ ? static_cast<double>(var_->value[i]) : var_cfg_[var_cfg_.size() == 1 ? 0 : static_cast<size_t>(i)];
      sd[static_cast<size_t>(i)] = static_cast<T>(std::max(std::sqrt(v), 1e-7));
    }
    return sd;
  }
  std::vector<int> axis_;
  std::vector<double> mean_cfg_, var_cfg_;
  bool invert_;
  std::vector<int> keep_;
  Shape dims_;
  Index features_ = 0;
  bool last_only_ = false;  // the kept axis is the last one alone
  std::vector<T> mean_fixed_;
  Param<T>* mean_ = nullptr;
  Param<T>* var_ = nullptr;
};

}  // namespace graft
