// graft — Flatten and Reshape (row-major, channels_last: a plain copy of the same elements).
#pragma once

#include "graft/layers/layer.hpp"

namespace graft {

template <class T = float>
class Flatten : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit Flatten(std::string name = {}) : UnaryLayer<T>(std::move(name)) {}
  std::string class_name() const override { return "Flatten"; }
  Shape output_shape(const Shape& in) const override {
    if (in.empty()) throw shape_error(detail::cat(this->where(), ": input needs a batch dimension"));
    Index n = 1;
    for (size_t i = 1; i < in.size(); ++i) {
      if (in[i] < 0) {
        n = -1;
        break;
      }
      n *= in[i];
    }
    return {in[0], n};
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    if (x.rank() < 1) throw shape_error(detail::cat(this->where(), ": input needs a batch dimension"));
    Shape& os = detail::shape_scratch();
    os.resize(2);
    os[0] = x.dim(0);
    os[1] = x.rank() > 1 ? x.inner(1) : 1;
    y.resize(os);
    std::copy(x.begin(), x.end(), y.begin());
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    dx->resize(x.shape());
    std::copy(dy.begin(), dy.end(), dx->begin());
  }
  json get_config() const override {
    json c = this->base_config();
    c["data_format"] = "channels_last";
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Flatten"));
    c.require_channels_last();
    auto l = std::make_shared<Flatten>();
    apply_base_config(*l, c);
    return l;
  }
 private:
};

/// keras.layers.Reshape(target_shape): per-sample shape, one entry may be -1.
template <class T = float>
class Reshape : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit Reshape(Shape target_shape, std::string name = {}) : UnaryLayer<T>(std::move(name)), target_(std::move(target_shape)) {
    int unknown = 0;
    for (Index d : target_) {
      if (d == -1) ++unknown;
      else if (d < 0) throw value_error("Reshape: dimensions must be positive or -1");
    }
    if (unknown > 1) throw value_error("Reshape: at most one dimension can be -1");
    // bounded dimensions and product: resolve() multiplies them without overflow
    detail::check_symbolic_shape(target_, "Reshape: target_shape");
  }
  std::string class_name() const override { return "Reshape"; }
  const Shape& target_shape() const { return target_; }

  Shape output_shape(const Shape& in) const override {
    if (in.empty()) throw shape_error(detail::cat(this->where(), ": input needs a batch dimension"));
    Index n = 1;
    for (size_t i = 1; i < in.size(); ++i) n = (in[i] < 0 || n < 0) ? -1 : n * in[i];
    Shape o{in[0]};
    resolve(n, o);
    return o;
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    Shape& os = detail::shape_scratch();
    os.resize(1);
    os[0] = x.dim(0);
    resolve(x.rank() > 1 ? x.inner(1) : 1, os);
    y.resize(os);
    std::copy(x.begin(), x.end(), y.begin());
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    dx->resize(x.shape());
    std::copy(dy.begin(), dy.end(), dx->begin());
  }
  json get_config() const override {
    json c = this->base_config();
    c["target_shape"] = target_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Reshape"));
    Shape t;
    for (const auto& e : c.at("target_shape")) {
      if (e.is_null()) t.push_back(-1);
      else t.push_back(e.get<Index>());
    }
    detail::check_symbolic_shape(t, c.where() + ": target_shape");
    auto l = std::make_shared<Reshape>(t);
    apply_base_config(*l, c);
    return l;
  }

 private:
  /// Append the target shape (with -1 resolved against n elements; n < 0 means unknown) to o.
  void resolve(Index n, Shape& o) const {
    Index known = 1;
    int unknown_at = -1;
    for (size_t i = 0; i < target_.size(); ++i) {
      if (target_[i] == -1) unknown_at = static_cast<int>(i);
      else known *= target_[i];
    }
    size_t base = o.size();
    for (Index d : target_) o.push_back(d);
    if (n < 0) return;  // symbolic: leave -1
    if (unknown_at >= 0) {
      if (known == 0 || n % known != 0)
        throw shape_error(detail::cat(this->where(), ": cannot reshape ", n, " values per sample into ", shape_str(target_)));
      o[base + static_cast<size_t>(unknown_at)] = n / known;
    } else if (known != n) {
      throw shape_error(detail::cat(this->where(), ": cannot reshape ", n, " values per sample into ", shape_str(target_)));
    }
  }
  Shape target_;
};

}  // namespace graft
