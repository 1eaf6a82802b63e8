// graft — a named weight: value, gradient, trainability, regularizer and constraint.
#pragma once

#include <string>

#include "graft/core/regularizers.hpp"
#include "graft/core/tensor.hpp"

namespace graft {

template <class T>
class Layer;

template <class T>
struct Param {
  std::string name;          ///< Keras weight name: "kernel", "bias", "gamma", "moving_mean", ...
  Tensor<T> value;           ///< Keras layout (Dense kernel [in, out], Conv2D [kh, kw, in, out])
  Tensor<T> grad;            ///< dLoss/dvalue of the current step
  bool trainable = true;     ///< false for statistics such as BatchNormalization's moving mean
  Regularizer regularizer;   ///< penalty added to the training loss
  Constraint constraint;     ///< projection applied after each optimizer step
  Layer<T>* owner = nullptr; ///< the layer that created it
  /// True until the first gradient contribution of a step: that contribution overwrites `grad`,
  /// later ones (a layer shared by several calls) accumulate. A param still fresh after the
  /// backward pass received no gradient and is skipped by the optimizer, as Keras does.
  bool grad_fresh = true;

  /// Call before writing a gradient contribution; returns true when it must overwrite.
  bool begin_grad() {
    bool overwrite = grad_fresh;
    grad_fresh = false;
    if (overwrite) grad.resize_like(value.shape());
    return overwrite;
  }
};

}  // namespace graft
