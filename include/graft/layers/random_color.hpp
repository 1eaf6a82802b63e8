// graft — Keras 3's colour augmentation layers: RandomContrast and RandomBrightness. In training
// each image gets one random factor (all channels alike) and the result is clipped to
// `value_range`; identity in inference. Their backward passes go through the same scaling, with
// no gradient where the clip was active (torch.clip's rule: values equal to a bound pass).
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "graft/layers/image_preprocessing.hpp"

namespace graft {

namespace detail {
/// A `value_range` argument as two numbers (JSON, kept as written); value_error otherwise.
inline json value_range_json(const json& v, const std::string& who) {
  if (!v.is_array() || v.size() != 2 || !finite_number(v[0]) || !finite_number(v[1]))
    throw value_error(cat(who, ": The `value_range` argument should be a list of two numbers. Received: value_range=", v.dump()));
  return v;
}
}  // namespace detail

/// RandomContrast and RandomBrightness: a factor (lower, upper), a value_range, a seed.
template <class T>
class RandomColorLayer : public RandomImageLayer<T> {
 public:
  using State = typename RandomImageLayer<T>::State;
  std::pair<double, double> factor() const { return {factor_.first.get<double>(), factor_.second.get<double>()}; }
  std::pair<double, double> value_range() const { return {value_range_[0].get<double>(), value_range_[1].get<double>()}; }

  json get_config() const override {
    json c = this->image_config();
    c["factor"] = json::array({factor_.first, factor_.second});
    c["value_range"] = value_range_;
    c["seed"] = this->seed_json();
    return c;
  }

 protected:
  /// factor read with _FACTOR_BOUNDS (b0, 1); value_range (0, 255) is written as Keras' integers,
  /// and sorted when `sort_range` (RandomBrightness).
  RandomColorLayer(const char* who, const ImageFactor& factor, int b0, std::pair<double, double> value_range, bool sort_range,
                   long long seed, std::string name)
      : RandomImageLayer<T>(std::move(name), seed), who_(who), sort_range_(sort_range) {
    factor_ = detail::base_factor(factor.value, json(b0), json(1), who);
    set_value_range(value_range.first == 0 && value_range.second == 255 ? json::array({0, 255})
                                                                       : json::array({value_range.first, value_range.second}));
  }
  /// Keep a value_range (value_error unless two numbers), sorted for RandomBrightness.
  void set_value_range(const json& v) {
    value_range_ = detail::value_range_json(v, who_);
    if (sort_range_ && value_range_[1].get<double>() < value_range_[0].get<double>()) std::swap(value_range_[0], value_range_[1]);
  }
  template <class L>
  static std::shared_ptr<Layer<T>> color_from_config(const json& j, const char* cls) {
    Config c(j, config_where(j, cls));
    if (!c.has("factor")) throw format_error(detail::cat(c.where(), ": config has no 'factor'"));
    std::shared_ptr<L> l;
    try {
      l = std::make_shared<L>(ImageFactor::from_json(c.raw()["factor"]), std::pair<double, double>{0, 255},
                              RandomImageLayer<T>::config_seed(c));
      if (c.has("value_range")) l->set_value_range(c.raw()["value_range"]);
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    RandomImageLayer<T>::apply_random_config(*l, c);
    return l;
  }
  std::pair<json, json> factor_;
  json value_range_;
  const char* who_;
  bool sort_range_;
};

/// keras.layers.RandomContrast(factor, value_range=(0, 255)): per image and channel,
/// y = clip((x - mean) * f + mean, value_range) with mean over height and width and f drawn in
/// [1 - lower, 1 + upper]. Keras 3 reads the factor with _FACTOR_BOUNDS (0, 1): a number f gives
/// (lower, upper) = (0, f), so f in [1, 1 + f] (contrast only ever rises); a pair is taken as
/// written (sorted), e.g. (-0.5, 0.5) always gives f = 1.5.
template <class T = float>
class RandomContrast : public RandomColorLayer<T> {
 public:
  using State = typename RandomImageLayer<T>::State;

  explicit RandomContrast(const ImageFactor& factor, std::pair<double, double> value_range = {0, 255}, long long seed = -1,
                          std::string name = {})
      : RandomColorLayer<T>("RandomContrast", factor, 0, value_range, false, seed, std::move(name)) {}
  std::string class_name() const override { return "RandomContrast"; }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    this->check_images(x.shape());
    auto* s = static_cast<State*>(st);
    s->active = training;
    if (!training) return this->pass_through(x, y);
    const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    s->values.resize(static_cast<size_t>(N));
    const auto fr = this->factor(), vr = this->value_range();
    for (auto& f : s->values) f = this->uniform(1.0 - fr.first, 1.0 + fr.second);
    const T lo = static_cast<T>(vr.first), hi = static_cast<T>(vr.second);
    y.resize(x.shape());
    s->mask.resize(static_cast<size_t>(x.size()));
    std::vector<T>& mean = means_;  // training runs the layer on one thread
    for (Index b = 0; b < N; ++b) {
      channel_means(x.data() + b * H * W * C, H, W, C, mean);
      const T f = s->values[static_cast<size_t>(b)];
      for (Index p = 0; p < H * W; ++p)
        for (Index c = 0; c < C; ++c) {
          const Index i = (b * H * W + p) * C + c;
          const T m = mean[static_cast<size_t>(c)];
          const T v = (x[i] - m) * f + m;
          s->mask[static_cast<size_t>(i)] = v >= lo && v <= hi;
          y[i] = std::min(std::max(v, lo), hi);
        }
    }
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (!dx) return;
    auto* s = static_cast<State*>(st);
    if (!s->active) return this->pass_through(dy, *dx);
    const Index N = x.dim(0), HW = x.dim(1) * x.dim(2), C = x.dim(3);
    dx->resize(x.shape());
    std::vector<T> sum(static_cast<size_t>(C));
    for (Index b = 0; b < N; ++b) {
      const T f = s->values[static_cast<size_t>(b)];
      std::fill(sum.begin(), sum.end(), T(0));
      for (Index p = 0; p < HW; ++p)
        for (Index c = 0; c < C; ++c) {
          const Index i = (b * HW + p) * C + c;
          if (s->mask[static_cast<size_t>(i)]) sum[static_cast<size_t>(c)] += dy[i];
        }
      // y = f x + (1 - f) mean(x) inside the clip range
      for (Index p = 0; p < HW; ++p)
        for (Index c = 0; c < C; ++c) {
          const Index i = (b * HW + p) * C + c;
          (*dx)[i] = (s->mask[static_cast<size_t>(i)] ? f * dy[i] : T(0)) + (T(1) - f) * sum[static_cast<size_t>(c)] / static_cast<T>(HW);
        }
    }
  }

  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    return RandomColorLayer<T>::template color_from_config<RandomContrast>(j, "RandomContrast");
  }

 private:
  /// Keras' mean over the height axis, then over the width axis, per channel.
  static void channel_means(const T* img, Index H, Index W, Index C, std::vector<T>& mean) {
    mean.assign(static_cast<size_t>(C), T(0));
    for (Index c = 0; c < C; ++c) {
      T total = 0;
      for (Index j = 0; j < W; ++j) {
        T s = 0;
        for (Index i = 0; i < H; ++i) s += img[(i * W + j) * C + c];
        total += s / static_cast<T>(H);
      }
      mean[static_cast<size_t>(c)] = total / static_cast<T>(W);
    }
  }
  std::vector<T> means_;
};

/// keras.layers.RandomBrightness(factor, value_range=(0, 255)): per image,
/// y = clip(x + d * (max - min), value_range) with d drawn in [lower, upper] (a number f:
/// [-f, f]; each in [-1, 1]); value_range is sorted, as Keras does.
template <class T = float>
class RandomBrightness : public RandomColorLayer<T> {
 public:
  using State = typename RandomImageLayer<T>::State;

  explicit RandomBrightness(const ImageFactor& factor, std::pair<double, double> value_range = {0, 255}, long long seed = -1,
                            std::string name = {})
      : RandomColorLayer<T>("RandomBrightness", factor, -1, value_range, true, seed, std::move(name)) {}
  std::string class_name() const override { return "RandomBrightness"; }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    this->check_images(x.shape());
    auto* s = static_cast<State*>(st);
    s->active = training;
    if (!training) return this->pass_through(x, y);
    const Index N = x.dim(0), per = x.inner(1);
    const auto fr = this->factor(), vr = this->value_range();
    const T span = static_cast<T>(vr.second - vr.first), tlo = static_cast<T>(vr.first), thi = static_cast<T>(vr.second);
    s->values.resize(static_cast<size_t>(N));
    for (auto& d : s->values) d = this->uniform(fr.first, fr.second) * span;
    y.resize(x.shape());
    s->mask.resize(static_cast<size_t>(x.size()));
    for (Index b = 0; b < N; ++b)
      for (Index k = 0; k < per; ++k) {
        const Index i = b * per + k;
        const T v = x[i] + s->values[static_cast<size_t>(b)];
        s->mask[static_cast<size_t>(i)] = v >= tlo && v <= thi;
        y[i] = std::min(std::max(v, tlo), thi);
      }
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (!dx) return;
    auto* s = static_cast<State*>(st);
    if (!s->active) return this->pass_through(dy, *dx);
    dx->resize(x.shape());
    for (Index i = 0; i < x.size(); ++i) (*dx)[i] = s->mask[static_cast<size_t>(i)] ? dy[i] : T(0);
  }

  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    return RandomColorLayer<T>::template color_from_config<RandomBrightness>(j, "RandomBrightness");
  }
};

}  // namespace graft
