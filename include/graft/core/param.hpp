// graft — a named weight: value, gradient, trainability, regularizer and constraint.
#pragma once

#include <functional>
#include <memory>
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
  /// Discriminative learning rates: the optimizer steps this variable with learning_rate *
  /// lr_multiplier (weight decay included); 0 leaves it unchanged, like a frozen one. Set through
  /// Layer::set_lr_multiplier; saved in graft's .h5 as a layer attribute Keras ignores.
  double lr_multiplier = 1.0;
  /// L2-SP (Li et al. 2018, train/l2sp.hpp): a penalty sp_alpha/2 * ||value - sp_anchor||^2 pulling
  /// a reused weight towards its pretrained value, or (no anchor) sp_beta/2 * ||value||^2 on a new
  /// one. Training-time only: not part of any Keras config.
  std::shared_ptr<Tensor<T>> sp_anchor;
  double sp_alpha = 0.0, sp_beta = 0.0;

  /// The initialisation put off while the model is built to be loaded (DeferredWeightInit):
  /// run by materialize() unless the file supplies the value (set_loaded). Empty otherwise.
  std::function<void(Tensor<T>&)> pending_init;

  /// A value read from a file replaces the initial one (and any pending initialisation).
  void set_loaded(Tensor<T>&& v) {
    value = std::move(v);
    pending_init = nullptr;
  }
  /// Run a pending initialisation (the same values it would have given when the weight was made).
  void materialize() {
    if (!pending_init) return;
    auto init = std::move(pending_init);
    pending_init = nullptr;
    init(value);
  }

  /// Call before writing a gradient contribution; returns true when it must overwrite.
  bool begin_grad() {
    bool overwrite = grad_fresh;
    grad_fresh = false;
    if (overwrite) grad.resize_like(value.shape());
    return overwrite;
  }
};

}  // namespace graft
