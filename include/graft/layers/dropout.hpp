// graft — Dropout family: Dropout (noise_shape), SpatialDropout1D/2D, GaussianNoise, GaussianDropout.
// All are the identity at inference.
#pragma once

#include "graft/layers/layer.hpp"

namespace graft {

/// Inverted dropout: in training, each element (or each noise_shape cell) is zeroed with
/// probability `rate` and the rest scaled by 1/(1-rate); identity in inference. Seeded.
template <class T = float>
class Dropout : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool training) const override { return !training || rate_ <= 0; }  // random in training
  explicit Dropout(double rate, std::string name = {}, Shape noise_shape = {}, long long seed = -1)
      : UnaryLayer<T>(std::move(name)), rate_(rate), noise_(std::move(noise_shape)), seed_(seed),
        rng_(seed >= 0 ? static_cast<std::uint64_t>(seed) : next_seed()) {
    if (!(rate >= 0 && rate < 1)) throw value_error(detail::cat("Dropout: rate must be in [0, 1), got ", rate));
  }
  std::string class_name() const override { return "Dropout"; }
  double rate() const { return rate_; }
  Shape output_shape(const Shape& in) const override { return in; }

  struct State : CallState {
    Tensor<T> mask;  // per-element scale (0 or 1/(1-rate))
    bool active = false;
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    auto* s = static_cast<State*>(st);
    y.resize(x.shape());
    s->active = training && rate_ > 0;
    if (!s->active) {
      std::copy(x.begin(), x.end(), y.begin());
      return;
    }
    s->mask.resize(x.shape());
    const T scale = static_cast<T>(1.0 / (1.0 - rate_));
    if (noise_.empty()) {
      for (Index i = 0; i < x.size(); ++i) s->mask[i] = rng_.uniform() >= rate_ ? scale : T(0);
    } else {
      fill_broadcast_mask(x.shape(), s->mask, [&]() { return rng_.uniform() >= rate_ ? scale : T(0); });
    }
    y.array() = x.array() * s->mask.array();
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (!dx) return;
    auto* s = static_cast<State*>(st);
    dx->resize(x.shape());
    if (s->active) dx->array() = dy.array() * s->mask.array();
    else std::copy(dy.begin(), dy.end(), dx->begin());
  }
  json get_config() const override {
    json c = this->base_config();
    c["rate"] = rate_;
    c["noise_shape"] = noise_.empty() ? json(nullptr) : detail::shape_json(noise_);
    c["seed"] = seed_ >= 0 ? json(seed_) : json(nullptr);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Dropout"));
    std::string rk = c.pick({"rate", "p"});
    if (rk.empty()) throw format_error(detail::cat(c.where(), ": config has no 'rate'"));
    Shape noise;
    if (c.has("noise_shape")) noise = c.get_shape("noise_shape");
    auto l = std::make_shared<Dropout>(c.req_double(rk), "", noise, c.get_int("seed", -1));
    apply_base_config(*l, c);
    return l;
  }

 protected:
  /// Draw one value per noise cell and broadcast it over the axes where noise_shape is 1.
  template <class Draw>
  void fill_broadcast_mask(const Shape& xs, Tensor<T>& mask, Draw draw) {
    Shape ns = noise_;
    if (ns.size() != xs.size())
      throw shape_error(detail::cat(this->where(), ": noise_shape ", shape_str(noise_), " does not fit input ", shape_str(xs)));
    for (size_t i = 0; i < ns.size(); ++i) {
      if (ns[i] < 0) ns[i] = xs[i];
      if (ns[i] != 1 && ns[i] != xs[i])
        throw shape_error(detail::cat(this->where(), ": noise_shape ", shape_str(noise_), " does not fit input ", shape_str(xs)));
    }
    noise_buf_.resize(ns);
    for (Index i = 0; i < noise_buf_.size(); ++i) noise_buf_[i] = draw();
    const size_t r = xs.size();
    for (Index flat = 0; flat < mask.size(); ++flat) {
      Index f = flat, ni = 0, mul = 1;
      for (size_t k = r; k-- > 0;) {
        Index c = f % xs[k];
        f /= xs[k];
        if (ns[k] != 1) ni += c * mul;
        mul *= ns[k];
      }
      mask[flat] = noise_buf_[ni];
    }
  }
  double rate_;
  Shape noise_;
  long long seed_;
  Rng rng_;

 public:
  Rng* random_generator() override { return &rng_; }
  Tensor<T> noise_buf_;
};

/// SpatialDropout1D/2D/3D: drops whole channels (noise_shape (batch, 1, ..., 1, channels)).
template <class T = float>
class SpatialDropout : public Dropout<T> {
 public:
  SpatialDropout(int spatial_rank, double rate, std::string name = {}, long long seed = -1)
      : Dropout<T>(rate, std::move(name), {}, seed), rank_(spatial_rank) {}
  std::string class_name() const override { return "SpatialDropout" + std::to_string(rank_) + "D"; }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    if (x.rank() != rank_ + 2)
      throw shape_error(detail::cat(this->where(), ": expects rank-", rank_ + 2, " inputs, got ", shape_str(x.shape())));
    if (training) {  // inference leaves the layer untouched (predict may run it on several threads)
      this->noise_.assign(static_cast<size_t>(x.rank()), 1);
      this->noise_.front() = x.dim(0);
      this->noise_.back() = x.dim(-1);
    }
    Dropout<T>::forward1(x, y, st, training);
  }
  json get_config() const override {
    json c = Dropout<T>::get_config();
    c.erase("noise_shape");
    return c;
  }
  template <int R>
  static std::shared_ptr<Layer<T>> from_config_rank(const json& j) {
    Config c(j, config_where(j, "SpatialDropout" + std::to_string(R) + "D"));
    c.require_channels_last();
    auto l = std::make_shared<SpatialDropout>(R, c.req_double(c.has("rate") ? "rate" : "p"), "", c.get_int("seed", -1));
    apply_base_config(*l, c);
    return l;
  }
 private:
  int rank_;
};

/// GaussianNoise(stddev): adds N(0, stddev) noise in training.
template <class T = float>
class GaussianNoise : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool training) const override { return !training || stddev_ <= 0; }  // random in training
  explicit GaussianNoise(double stddev, std::string name = {}, long long seed = -1)
      : UnaryLayer<T>(std::move(name)), stddev_(stddev), seed_(seed),
        rng_(seed >= 0 ? static_cast<std::uint64_t>(seed) : next_seed()) {}
  std::string class_name() const override { return "GaussianNoise"; }
  Shape output_shape(const Shape& in) const override { return in; }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool training) override {
    y.resize(x.shape());
    for (Index i = 0; i < x.size(); ++i)
      y[i] = training ? x[i] + static_cast<T>(stddev_ * rng_.normal()) : x[i];
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    dx->resize(x.shape());
    std::copy(dy.begin(), dy.end(), dx->begin());
  }
  json get_config() const override {
    json c = this->base_config();
    c["stddev"] = stddev_;
    c["seed"] = seed_ >= 0 ? json(seed_) : json(nullptr);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "GaussianNoise"));
    auto l = std::make_shared<GaussianNoise>(c.req_double(c.has("stddev") ? "stddev" : "sigma"), "", c.get_int("seed", -1));
    apply_base_config(*l, c);
    return l;
  }
 private:
  double stddev_;
  long long seed_;
  Rng rng_;

 public:
  Rng* random_generator() override { return &rng_; }
};

/// GaussianDropout(rate): multiplies by N(1, sqrt(rate/(1-rate))) noise in training.
template <class T = float>
class GaussianDropout : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool training) const override { return !training || rate_ <= 0; }  // random in training
  explicit GaussianDropout(double rate, std::string name = {}, long long seed = -1)
      : UnaryLayer<T>(std::move(name)), rate_(rate), seed_(seed),
        rng_(seed >= 0 ? static_cast<std::uint64_t>(seed) : next_seed()) {
    if (!(rate >= 0 && rate < 1)) throw value_error("GaussianDropout: rate must be in [0, 1)");
  }
  std::string class_name() const override { return "GaussianDropout"; }
  Shape output_shape(const Shape& in) const override { return in; }
  struct State : CallState {
    Tensor<T> mask;
    bool active = false;
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    auto* s = static_cast<State*>(st);
    y.resize(x.shape());
    s->active = training && rate_ > 0;
    if (!s->active) {
      std::copy(x.begin(), x.end(), y.begin());
      return;
    }
    s->mask.resize(x.shape());
    const double sd = std::sqrt(rate_ / (1.0 - rate_));
    for (Index i = 0; i < x.size(); ++i) s->mask[i] = static_cast<T>(1.0 + sd * rng_.normal());
    y.array() = x.array() * s->mask.array();
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (!dx) return;
    auto* s = static_cast<State*>(st);
    dx->resize(x.shape());
    if (s->active) dx->array() = dy.array() * s->mask.array();
    else std::copy(dy.begin(), dy.end(), dx->begin());
  }
  json get_config() const override {
    json c = this->base_config();
    c["rate"] = rate_;
    c["seed"] = seed_ >= 0 ? json(seed_) : json(nullptr);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "GaussianDropout"));
    auto l = std::make_shared<GaussianDropout>(c.req_double(c.has("rate") ? "rate" : "p"), "", c.get_int("seed", -1));
    apply_base_config(*l, c);
    return l;
  }
 private:
  double rate_;
  long long seed_;
  Rng rng_;

 public:
  Rng* random_generator() override { return &rng_; }
};

}  // namespace graft
