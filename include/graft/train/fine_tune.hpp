// graft — fine_tune(): the transfer-learning recipe in one call (fastai's Learner.fine_tune, with
// the Keras guide's frozen BatchNormalization): train the top layer group alone with a 1-cycle
// policy, then unfreeze (all at once, or gradually, one group per epoch) and train every group
// with discriminative learning rates spread geometrically over [lr / lr_mult, lr], again 1-cycle.
#pragma once

#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "graft/model/model.hpp"
#include "graft/train/layer_groups.hpp"
#include "graft/train/param_scheduler.hpp"

namespace graft {

template <class T>
struct FineTuneOptions {
  /// Epochs of the second (unfrozen) stage; freeze_epochs of the first.
  int epochs = 1;
  int freeze_epochs = 1;
  /// fastai's defaults: base_lr 2e-3 (halved for the second stage), lr_mult 100, pct_start 0.3
  /// and div 5 in the second stage (0.99 and 25 in the first).
  double base_lr = 2e-3;
  double lr_mult = 100.0;
  double pct_start = 0.3;
  double div = 5.0;
  /// Layer groups (layer_groups): the first stage trains the top one.
  int n_groups = 3;
  /// Second stage: unfreeze one more group every gradual_every epochs (ULMFiT) instead of all at once.
  bool gradual = false;
  int gradual_every = 1;
  /// Batch size, validation, seed, verbosity and extra callbacks of both stages.
  FitOptions<T> fit;
};

struct FineTuneHistory {
  History frozen, unfrozen;
};

/// The recipe on (x, y) with the model's loss and optimizer. Layer trainable flags and
/// learning-rate multipliers are as before the call when it returns (the weights are trained).
template <class T>
FineTuneHistory fine_tune(Model<T>& m, const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y, const FineTuneOptions<T>& o) {
  if (!m.compiled()) throw value_error(detail::cat("fine_tune: model '", m.name(), "' must be compiled first"));
  if (o.epochs < 0 || o.freeze_epochs < 0) throw value_error("fine_tune: epochs and freeze_epochs must be >= 0");
  if (!(o.base_lr > 0) || !std::isfinite(o.base_lr)) throw value_error(detail::cat("fine_tune: base_lr must be positive, got ", o.base_lr));
  if (!(o.lr_mult >= 1) || !std::isfinite(o.lr_mult)) throw value_error(detail::cat("fine_tune: lr_mult must be >= 1, got ", o.lr_mult));
  auto groups = layer_groups(m, o.n_groups);
  // the flags and multipliers to put back afterwards
  std::vector<std::pair<Layer<T>*, bool>> flags, containers;
  std::vector<Param<T>*> params = m.weights();
  std::vector<double> mults;
  for (Param<T>* p : params) mults.push_back(p->lr_multiplier);
  std::function<void(Model<T>&)> record = [&](Model<T>& mm) {
    containers.push_back({&mm, mm.trainable()});
    for (const auto& l : mm.layers()) {
      if (auto* sub = dynamic_cast<Model<T>*>(l.get())) record(*sub);
      else flags.push_back({l.get(), l->trainable()});
    }
  };
  record(m);
  auto restore_flags = [&] {
    for (auto& f : flags)  // layers first (a container's own setter would cascade)
      if (f.first->trainable() != f.second) f.first->set_trainable(f.second);
    for (auto& f : containers)
      if (f.first->trainable() != f.second) f.first->Layer<T>::set_trainable(f.second);
  };
  FineTuneHistory h;
  try {
    if (o.freeze_epochs > 0) {  // stage 1: the top group, 1-cycle with a long warm-up (fastai: pct_start 0.99)
      FitOptions<T> f = o.fit;
      f.epochs = o.freeze_epochs;
      f.callbacks.insert(f.callbacks.begin(), std::make_shared<OneCycle<T>>(o.base_lr, 25.0, 1e5, 0.99));
      f.callbacks.insert(f.callbacks.begin(), std::make_shared<GradualUnfreezing<T>>(groups, 1 << 30, false, 1));
      h.frozen = m.fit(x, y, f);
      restore_flags();
    }
    if (o.epochs > 0) {  // stage 2: every group, lr spread over [lr / lr_mult, lr]
      const double lr = o.base_lr / 2;
      if (groups.size() > 1) set_discriminative_lrs(groups, std::pow(o.lr_mult, 1.0 / static_cast<double>(groups.size() - 1)));
      FitOptions<T> f = o.fit;
      f.epochs = o.epochs;
      f.callbacks.insert(f.callbacks.begin(), std::make_shared<OneCycle<T>>(lr, o.div, 1e5, o.pct_start));
      f.callbacks.insert(f.callbacks.begin(), std::make_shared<GradualUnfreezing<T>>(
                                                  groups, o.gradual ? o.gradual_every : (1 << 30), false,
                                                  o.gradual ? std::min<int>(2, static_cast<int>(groups.size())) : static_cast<int>(groups.size())));
      h.unfrozen = m.fit(x, y, f);
    }
  } catch (...) {
    restore_flags();
    for (size_t i = 0; i < params.size(); ++i) params[i]->lr_multiplier = mults[i];
    throw;
  }
  restore_flags();
  for (size_t i = 0; i < params.size(); ++i) params[i]->lr_multiplier = mults[i];
  return h;
}

template <class T>
FineTuneHistory fine_tune(Model<T>& m, const Tensor<T>& x, const Tensor<T>& y, const FineTuneOptions<T>& o) {
  return fine_tune(m, std::vector<Tensor<T>>{x}, std::vector<Tensor<T>>{y}, o);
}

}  // namespace graft
