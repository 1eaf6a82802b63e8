// graft — the two layers keras.applications defines for itself (registered under these names):
// LayerScale (ConvNeXt): y = x * gamma, gamma of shape (projection_dim,) along the last axis,
// initialised to init_values; CustomScaleLayer (InceptionResNetV2): y = inputs[0] + inputs[1] * scale.
#pragma once

#include "graft/layers/layer.hpp"

namespace graft {

template <class T = float>
class LayerScale : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  LayerScale(double init_values, Index projection_dim, std::string name = {})
      : UnaryLayer<T>(std::move(name)), init_(init_values), dim_(projection_dim) {
    if (projection_dim <= 0) throw value_error(detail::cat("LayerScale: projection_dim must be positive, got ", projection_dim));
  }
  std::string class_name() const override { return "LayerScale"; }
  Shape output_shape(const Shape& in) const override {
    if (in.empty() || (in.back() >= 0 && in.back() != dim_))
      throw shape_error(detail::cat(this->where(), ": expects inputs whose last axis has ", dim_, " values, got ", shape_str(in)));
    return in;
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    y.resize(x.shape());
    const T* g = gamma_->value.data();
    const Index rows = x.size() / dim_;
    for (Index r = 0; r < rows; ++r)
      for (Index i = 0; i < dim_; ++i) y[r * dim_ + i] = x[r * dim_ + i] * g[i];
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    const T* g = gamma_->value.data();
    const Index rows = x.size() / dim_;
    T* gg = nullptr;
    if (this->trainable() && gamma_->trainable) {
      if (gamma_->begin_grad()) gamma_->grad.set_zero();
      gg = gamma_->grad.data();
    }
    if (dx) dx->resize(x.shape());
    for (Index r = 0; r < rows; ++r)
      for (Index i = 0; i < dim_; ++i) {
        if (dx) (*dx)[r * dim_ + i] = dy[r * dim_ + i] * g[i];
        if (gg) gg[i] += dy[r * dim_ + i] * x[r * dim_ + i];
      }
  }
  json get_config() const override {
    json c = this->base_config();
    c["init_values"] = init_;
    c["projection_dim"] = dim_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "LayerScale"));
    std::shared_ptr<LayerScale> l;
    try {
      l = std::make_shared<LayerScale>(c.req_double("init_values"), c.req_size("projection_dim"));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    output_shape(in[0]);
    gamma_ = &this->add_weight("gamma", {dim_}, Initializer::named("Constant", {{"value", init_}}), true);
  }

 private:
  double init_;
  Index dim_;
  Param<T>* gamma_ = nullptr;
};

template <class T = float>
class CustomScaleLayer : public Layer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit CustomScaleLayer(double scale, std::string name = {}) : Layer<T>(std::move(name)), scale_(scale) {}
  std::string class_name() const override { return "CustomScaleLayer"; }
  bool multi_input() const override { return true; }
  std::vector<Shape> compute_output_shapes(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 2);
    if (in[0] != in[1])
      throw shape_error(detail::cat(this->where(), ": both inputs must have one shape, got ", shape_str(in[0]), " and ", shape_str(in[1])));
    return {in[0]};
  }
  void forward(const In<T>& in, const Out<T>& out, CallState*, bool) override {
    const Tensor<T>& a = *in[0];
    const Tensor<T>& b = *in[1];
    if (a.shape() != b.shape())
      throw shape_error(detail::cat(this->where(), ": both inputs must have one shape, got ", shape_str(a.shape()), " and ", shape_str(b.shape())));
    Tensor<T>& y = *out[0];
    y.resize(a.shape());
    y.array() = a.array() + b.array() * static_cast<T>(scale_);
  }
  void backward(const In<T>&, const In<T>&, const In<T>& dout, const Out<T>& din, CallState*) override {
    if (din[0]) *din[0] = *dout[0];
    if (din[1]) {
      din[1]->resize(dout[0]->shape());
      din[1]->array() = dout[0]->array() * static_cast<T>(scale_);
    }
  }
  json get_config() const override {
    json c = this->base_config();
    c["scale"] = scale_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "CustomScaleLayer"));
    auto l = std::make_shared<CustomScaleLayer>(c.req_double("scale"));
    apply_base_config(*l, c);
    return l;
  }

 private:
  double scale_;
};

}  // namespace graft
