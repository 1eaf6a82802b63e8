// graft — InputLayer: the entry point of a model, with its batch shape.
#pragma once

#include "graft/layers/layer.hpp"

namespace graft {

template <class T = float>
class InputLayer : public Layer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  /// `shape` excludes the batch dimension (like keras.Input(shape=...)); -1 marks unknown.
  explicit InputLayer(const Shape& shape, std::string name = {}, std::string dtype = "float32")
      : Layer<T>(std::move(name)), dtype_(std::move(dtype)) {
    batch_shape_.push_back(-1);
    batch_shape_.insert(batch_shape_.end(), shape.begin(), shape.end());
    this->built_ = true;
  }
  static std::shared_ptr<InputLayer> with_batch_shape(const Shape& batch_shape, std::string name = {},
                                                      std::string dtype = "float32") {
    if (batch_shape.empty()) throw value_error("InputLayer: batch_shape must have at least the batch dimension");
    auto l = std::make_shared<InputLayer>(Shape(batch_shape.begin() + 1, batch_shape.end()), std::move(name),
                                          std::move(dtype));
    l->batch_shape_ = batch_shape;
    return l;
  }
  std::string class_name() const override { return "InputLayer"; }
  const Shape& batch_shape() const { return batch_shape_; }
  /// The symbolic tensor this input produces (its node is created on first use).
  KerasTensor<T> output_tensor() {
    for (auto& w : this->inbound_)
      if (auto n = w.lock()) return KerasTensor<T>{n, 0};
    auto node = std::make_shared<Node<T>>();
    node->layer = this->shared_from_this();
    node->output_shapes = {batch_shape_};
    this->inbound_.push_back(node);
    return KerasTensor<T>{node, 0};
  }
  const std::string& dtype() const { return dtype_; }

  std::vector<Shape> compute_output_shapes(const std::vector<Shape>&) const override { return {batch_shape_}; }
  void forward(const In<T>& in, const Out<T>& out, CallState*, bool) override { *out[0] = *in[0]; }
  void backward(const In<T>&, const In<T>&, const In<T>& dout, const Out<T>& din, CallState*) override {
    if (din[0]) *din[0] = *dout[0];
  }

  json get_config() const override {
    // TF-Keras 2 keys; `ragged` is left out because Keras 3 before 3.9 rejects it.
    return json{{"batch_input_shape", detail::shape_json(batch_shape_)},
                {"dtype", dtype_},
                {"sparse", false},
                {"name", this->name()}};
  }
  /// Keras 3 `batch_shape`, TF-Keras/Keras 2 `batch_input_shape`, or `input_shape`/`shape`.
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "InputLayer"));
    Shape bs;
    if (c.has("batch_shape")) bs = c.get_shape("batch_shape");
    else if (c.has("batch_input_shape")) bs = c.get_shape("batch_input_shape");
    else if (c.has("shape")) {
      bs = c.get_shape("shape");
      bs.insert(bs.begin(), -1);
    } else if (c.has("input_shape")) {
      bs = c.get_shape("input_shape");
      bs.insert(bs.begin(), -1);
    } else {
      throw format_error(detail::cat(c.where(), ": no batch_shape / batch_input_shape"));
    }
    if (c.get_bool("sparse", false) || c.get_bool("ragged", false))
      throw unsupported_error(detail::cat(c.where(), ": sparse and ragged inputs are not supported"));
    std::string dtype = "float32";
    if (c.has("dtype") && c.raw()["dtype"].is_string()) dtype = c.raw()["dtype"].get<std::string>();
    auto l = with_batch_shape(bs, c.get_string("name", ""), dtype);
    return l;
  }

 private:
  Shape batch_shape_;
  std::string dtype_;
};

/// keras.Input: a symbolic input tensor of the given per-sample shape.
template <class T = float>
KerasTensor<T> Input(const Shape& shape, std::string name = {}) {
  auto l = std::make_shared<InputLayer<T>>(shape, std::move(name));
  return l->output_tensor();
}

}  // namespace graft
