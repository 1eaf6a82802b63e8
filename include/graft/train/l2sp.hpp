// graft — L2-SP (Li, Grandvalet & Davoine 2018, "Explicit inductive bias for transfer learning"):
// instead of weight decay towards zero, reused weights are pulled towards their pretrained
// values, alpha/2 * ||w - w0||^2, and the new layers get beta/2 * ||w||^2 (defaults alpha 0.1,
// beta 0.01). The penalty is part of the training loss (and of its gradient), like a Keras
// regularizer, but is not written into any Keras config.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "graft/model/model.hpp"

namespace graft {

/// Apply L2-SP to `model`: the layers named in `new_layers` (the grafted head) get the beta
/// penalty; every other weight the alpha penalty towards its value now (call it right after
/// loading the pretrained model and adding the head). value_error naming an unknown layer.
template <class T>
void set_l2sp(Model<T>& model, const std::vector<std::string>& new_layers, double alpha = 0.1, double beta = 0.01) {
  if (!(alpha >= 0) || !(beta >= 0) || !std::isfinite(alpha) || !std::isfinite(beta))
    throw value_error(detail::cat("L2-SP: alpha and beta must be finite and >= 0, got ", alpha, " and ", beta));
  std::vector<Param<T>*> fresh;
  for (const auto& n : new_layers) {
    auto l = model.get_layer(n);  // value_error listing the layers when absent
    for (Param<T>* p : l->weights()) fresh.push_back(p);
  }
  for (Param<T>* p : model.weights()) {
    if (!p->trainable) continue;  // BatchNormalization statistics are not trained
    if (std::find(fresh.begin(), fresh.end(), p) != fresh.end()) {
      p->sp_anchor.reset();
      p->sp_alpha = 0;
      p->sp_beta = beta;
    } else {
      p->sp_anchor = std::make_shared<Tensor<T>>(p->value);
      p->sp_alpha = alpha;
      p->sp_beta = 0;
    }
  }
}

/// Remove L2-SP from every weight of `model`.
template <class T>
void clear_l2sp(Model<T>& model) {
  for (Param<T>* p : model.weights()) {
    p->sp_anchor.reset();
    p->sp_alpha = p->sp_beta = 0;
  }
}

}  // namespace graft
