// graft — layer groups (fastai's split of a network, bottom to top), discriminative learning rates
// over them (ULMFiT: each group below the top trains factor times slower; the seed notes: 3–10x),
// and gradual unfreezing (ULMFiT: one more group from the top every N epochs).
#pragma once

#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

#include "graft/model/model.hpp"
#include "graft/train/fit.hpp"

namespace graft {

template <class T>
using LayerGroup = std::vector<Layer<T>*>;

namespace detail {
template <class T>
void weighted_layers(Model<T>& m, std::vector<Layer<T>*>& out) {
  for (const auto& l : m.layers()) {
    if (auto* sub = dynamic_cast<Model<T>*>(l.get())) weighted_layers(*sub, out);
    else if (!l->weights().empty()) out.push_back(l.get());
  }
}
/// Whether each weighted layer trains (its flag and every enclosing model's), and the nested
/// models on the way.
template <class T>
void effective_trainable(Model<T>& m, bool on, std::unordered_map<Layer<T>*, bool>& flags, std::vector<Model<T>*>& containers) {
  for (const auto& l : m.layers()) {
    if (auto* sub = dynamic_cast<Model<T>*>(l.get())) {
      containers.push_back(sub);
      effective_trainable(*sub, on && sub->trainable(), flags, containers);
    } else {
      flags[l.get()] = on && l->trainable();
    }
  }
}
inline bool is_batch_norm(const std::string& cls) { return cls == "BatchNormalization" || cls == "SyncBatchNormalization"; }
}  // namespace detail

/// The layers that hold weights (nested models opened), cut into `n` contiguous groups of nearly
/// equal size, from the input side (group 0) to the output side (group n-1). value_error when
/// the model has fewer such layers than groups.
template <class T>
std::vector<LayerGroup<T>> layer_groups(Model<T>& m, int n) {
  if (n < 1) throw value_error(detail::cat("layer_groups: the number of groups must be at least 1, got ", n));
  std::vector<Layer<T>*> ls;
  detail::weighted_layers(m, ls);
  if (static_cast<int>(ls.size()) < n)
    throw value_error(detail::cat("layer_groups: model '", m.name(), "' has ", ls.size(), " layers with weights, fewer than ", n, " groups"));
  std::vector<LayerGroup<T>> g(static_cast<size_t>(n));
  for (size_t i = 0; i < ls.size(); ++i) g[i * static_cast<size_t>(n) / ls.size()].push_back(ls[i]);
  return g;
}

/// Unfreeze a model for fine-tuning (fastai's unfreeze with the Keras guide's rule): every layer,
/// nested models included, becomes trainable except BatchNormalization layers, which keep the
/// state they had (frozen ones stay in inference mode) unless train_batch_norm.
template <class T>
void unfreeze(Model<T>& m, bool train_batch_norm = false) {
  std::unordered_map<Layer<T>*, bool> flags;
  std::vector<Model<T>*> containers;
  detail::effective_trainable(m, m.trainable(), flags, containers);
  m.set_trainable(true);
  if (train_batch_norm) return;
  for (auto& kv : flags)
    if (detail::is_batch_norm(kv.first->class_name()) && !kv.second) kv.first->set_trainable(false);
}

/// Discriminative learning rates: the top group trains at the optimizer's rate, each group below
/// `factor` times slower (group k of n: factor^-(n-1-k)). factor >= 1, finite.
template <class T>
void set_discriminative_lrs(const std::vector<LayerGroup<T>>& groups, double factor) {
  if (!(factor >= 1) || !std::isfinite(factor))
    throw value_error(detail::cat("discriminative learning rates: the factor must be finite and >= 1, got ", factor));
  const size_t n = groups.size();
  for (size_t k = 0; k < n; ++k) {
    const double mult = std::pow(factor, -static_cast<double>(n - 1 - k));
    for (Layer<T>* l : groups[k]) l->set_lr_multiplier(mult);
  }
}
/// ... over `n_groups` groups of the model (layer_groups).
template <class T>
void set_discriminative_lrs(Model<T>& m, double factor, int n_groups = 3) {
  set_discriminative_lrs(layer_groups(m, n_groups), factor);
}

/// Gradual unfreezing (ULMFiT): at the start of training only the top group trains; every
/// `every_n_epochs` epochs one more group below it is unfrozen. BatchNormalization layers keep the
/// trainable flag they had when training began (frozen ones stay in inference mode, as the Keras
/// fine-tuning guide wants) unless unfreeze_batch_norm. Optimizer slots of layers already training
/// are kept; a newly unfrozen layer starts with fresh (zero) slots. The schedule depends only on
/// the epoch number, so a resumed run (BackupAndRestore) unfreezes the same groups.
template <class T = float>
class GradualUnfreezing : public Callback<T> {
 public:
  /// Groups from layer_groups(model, n_groups) at the start of training; `initial_groups` train
  /// from the first epoch (1: the top group), one more every `every_n_epochs`.
  explicit GradualUnfreezing(int n_groups = 3, int every_n_epochs = 1, bool unfreeze_batch_norm = false, int initial_groups = 1)
      : n_groups_(n_groups), every_(every_n_epochs), bn_(unfreeze_batch_norm), initial_(initial_groups) {
    if (n_groups < 1) throw value_error(detail::cat("GradualUnfreezing: n_groups must be at least 1, got ", n_groups));
    if (every_n_epochs < 1) throw value_error(detail::cat("GradualUnfreezing: every_n_epochs must be at least 1, got ", every_n_epochs));
    if (initial_groups < 1) throw value_error(detail::cat("GradualUnfreezing: initial_groups must be at least 1, got ", initial_groups));
  }
  /// Explicit groups, input side first.
  GradualUnfreezing(std::vector<LayerGroup<T>> groups, int every_n_epochs, bool unfreeze_batch_norm = false, int initial_groups = 1)
      : GradualUnfreezing(static_cast<int>(groups.size()), every_n_epochs, unfreeze_batch_norm, initial_groups) {
    groups_ = std::move(groups);
    fixed_ = true;
  }
  void on_train_begin(const Logs&) override {
    if (!fixed_) groups_ = layer_groups(*this->model(), n_groups_);
    std::unordered_map<Layer<T>*, bool> flags;
    std::vector<Model<T>*> containers;
    detail::effective_trainable(*this->model(), this->model()->trainable(), flags, containers);
    bn_flags_.clear();
    for (auto& g : groups_)
      for (Layer<T>* l : g) bn_flags_.push_back(flags.count(l) ? flags[l] : l->trainable());
    // from here on each layer's own flag decides: a frozen base model is opened (its layers keep
    // the effective flags just recorded until on_epoch_begin sets them)
    for (auto& g : groups_)
      for (Layer<T>* l : g)
        if (flags.count(l) && l->trainable() != flags[l]) l->set_trainable(flags[l]);
    if (!this->model()->trainable()) this->model()->Layer<T>::set_trainable(true);
    for (Model<T>* c : containers)
      if (!c->trainable()) c->Layer<T>::set_trainable(true);
    unfrozen_ = -1;
  }
  void on_epoch_begin(int epoch, const Logs&) override {
    const int k = std::min(static_cast<int>(groups_.size()), initial_ + epoch / every_);
    if (k == unfrozen_) return;
    unfrozen_ = k;
    size_t i = 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      const bool on = static_cast<int>(g) >= static_cast<int>(groups_.size()) - k;
      for (Layer<T>* l : groups_[g]) {
        const bool keep = detail::is_batch_norm(l->class_name()) && !bn_;
        const bool want = keep ? (on && bn_flags_[i]) : on;
        if (l->trainable() != want) l->set_trainable(want);
        ++i;
      }
    }
  }
  /// How many groups (from the top) train in the current epoch.
  int unfrozen_groups() const { return unfrozen_; }
  const std::vector<LayerGroup<T>>& groups() const { return groups_; }

 private:
  int n_groups_, every_;
  bool bn_;
  int initial_;
  bool fixed_ = false;
  std::vector<LayerGroup<T>> groups_;
  std::vector<bool> bn_flags_;
  int unfrozen_ = -1;
};

}  // namespace graft
