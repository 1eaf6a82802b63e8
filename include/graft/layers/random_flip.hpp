// graft — keras.layers.RandomFlip: in training, each image is flipped with probability 1/2
// (Keras draws uniform <= 0.5 per image) left-right ("horizontal"), top-bottom ("vertical"), or —
// "horizontal_and_vertical", the default — both at once with that one draw (a half turn), exactly
// as Keras 3 does; identity in inference.
#pragma once

#include <algorithm>
#include <string>

#include "graft/layers/image_preprocessing.hpp"

namespace graft {

template <class T = float>
class RandomFlip : public RandomImageLayer<T> {
 public:
  using State = typename RandomImageLayer<T>::State;

  explicit RandomFlip(const std::string& mode = "horizontal_and_vertical", long long seed = -1, std::string name = {})
      : RandomImageLayer<T>(std::move(name), seed), mode_(mode) {
    if (mode == "horizontal") {
      horizontal_ = true;
    } else if (mode == "vertical") {
      vertical_ = true;
    } else if (mode == "horizontal_and_vertical") {
      horizontal_ = vertical_ = true;
    } else {
      throw value_error(detail::cat("RandomFlip: `mode` must be 'horizontal', 'vertical' or 'horizontal_and_vertical', got '", mode, "'"));
    }
  }
  std::string class_name() const override { return "RandomFlip"; }
  const std::string& mode() const { return mode_; }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    this->check_images(x.shape());
    auto* s = static_cast<State*>(st);
    s->active = training;
    if (!training) return this->pass_through(x, y);
    const Index N = x.dim(0);
    s->flags.resize(static_cast<size_t>(N));
    for (Index b = 0; b < N; ++b) s->flags[static_cast<size_t>(b)] = this->uniform(0.0, 1.0) <= T(0.5);
    y.resize(x.shape());
    flip(x, s->flags, y);
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (!dx) return;
    auto* s = static_cast<State*>(st);
    dx->resize(x.shape());
    if (!s->active) {
      std::copy(dy.begin(), dy.end(), dx->begin());
      return;
    }
    flip(dy, s->flags, *dx);  // a flip is its own transpose
  }

  json get_config() const override {
    json c = this->image_config();
    c["seed"] = this->seed_json();
    c["mode"] = mode_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "RandomFlip"));
    std::shared_ptr<RandomFlip> l;
    try {
      l = std::make_shared<RandomFlip>(c.get_string("mode", "horizontal_and_vertical"), RandomImageLayer<T>::config_seed(c));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    RandomImageLayer<T>::apply_random_config(*l, c);
    return l;
  }

 private:
  /// y = x with the flagged images flipped.
  void flip(const Tensor<T>& x, const std::vector<char>& flags, Tensor<T>& y) const {
    const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
    const T* xd = x.data();
    T* yd = y.data();
    for (Index b = 0; b < N; ++b) {
      const bool f = flags[static_cast<size_t>(b)] != 0;
      for (Index i = 0; i < H; ++i) {
        const Index si = f && vertical_ ? H - 1 - i : i;
        for (Index j = 0; j < W; ++j) {
          const Index sj = f && horizontal_ ? W - 1 - j : j;
          const T* p = xd + ((b * H + si) * W + sj) * C;
          std::copy(p, p + C, yd + ((b * H + i) * W + j) * C);
        }
      }
    }
  }
  std::string mode_;
  bool horizontal_ = false, vertical_ = false;
};

}  // namespace graft
