// graft — the training loop: a small driver of epochs and batches around the model's train_step,
// with Keras' callback protocol (train, epoch and batch hooks; model.stop_training), validation
// after each epoch, the progress line, and the History. Model::fit calls it; the model stays the
// graph (forward, backward, weights) and knows nothing of epochs.
#pragma once

#include <algorithm>
#include <functional>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "graft/core/random.hpp"
#include "graft/train/fit.hpp"

#include <nlohmann/json.hpp>

namespace graft {

/// What the loop is doing, for callbacks that must save or change it (BackupAndRestore resumes
/// from it; schedules by training progress read the step). Valid between on_train_begin and
/// on_train_end.
struct LoopState {
  int initial_epoch = 0;   ///< may be raised in on_train_begin (a resumed run)
  Index initial_step = 0;  ///< with initial_epoch: resume inside that epoch at this batch
  int epoch = 0;           ///< the current epoch
  int epochs = 0;          ///< FitOptions::epochs
  Index steps_per_epoch = 0;
  Index step = 0;          ///< batch index within the epoch (the one running, or the last one run)
  /// True while a resumed run re-enters the epoch it was interrupted in (its on_epoch_begin ran
  /// before the interruption: callbacks that change state there, like LearningRateScheduler, skip).
  bool epoch_resumed = false;
  Rng* shuffle_rng = nullptr;
  std::vector<Index>* order = nullptr;  ///< the sample order (shuffled in place each epoch)
  std::uint64_t data_fingerprint = 0;   ///< a hash of the training data's shapes and a sample of its values
  // the epoch's running sums (restored by a resumed run)
  double loss_sum = 0;
  Index seen = 0;
  std::vector<double> out_loss_sum;
  std::vector<std::pair<double, double>> metric_sums;
  /// The states of every callback of the run (Callback::state), in the callbacks' order.
  std::function<nlohmann::json()> callbacks_state;
  /// Set by a restoring callback in on_train_begin: given back to the callbacks (set_state)
  /// after every on_train_begin has run.
  nlohmann::json restored_callbacks;
  /// Global step: batches run since the first epoch.
  Index global_step() const { return static_cast<Index>(epoch) * steps_per_epoch + step; }
};

/// Callbacks that need the loop's state (BackupAndRestore, schedules by training progress)
/// derive from this as well as from Callback; fit() sets loop_ for the length of the run.
class LoopAware {
 public:
  virtual ~LoopAware() = default;
  void set_loop_state(LoopState* s) { loop_ = s; }

 protected:
  LoopState* loop_ = nullptr;
};

namespace detail {

/// FNV-1a over the arrays' shapes and up to 4096 evenly spaced values of each (cheap, and
/// different for another dataset of the same shape).
template <class T>
std::uint64_t data_fingerprint(const std::vector<const Tensor<T>*>& xs) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    const unsigned char* c = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
  };
  for (const Tensor<T>* t : xs) {
    for (Index d : t->shape()) mix(&d, sizeof d);
    const Index n = t->size(), stride = std::max<Index>(1, n / 4096);
    for (Index i = 0; i < n; i += stride) {
      float v = static_cast<float>((*t)[i]);
      mix(&v, sizeof v);
    }
  }
  return h;
}

template <class T>
struct FitLoop {
  /// Model::fit: epochs over in-memory arrays (rows gathered batch by batch, never copied whole).
  static History run(Model<T>& m, const In<T>& x, const In<T>& y, const FitOptions<T>& o) {
    if (!m.compiled_) throw value_error(detail::cat("fit: model '", m.name(), "' must be compiled first"));
    m.ensure_built(x);
    if (o.epochs < 0 || o.batch_size <= 0) throw value_error("fit: epochs must be >= 0 and batch_size > 0");
    if (!(o.validation_split >= 0 && o.validation_split < 1)) throw value_error("fit: validation_split must be in [0, 1)");
    m.check_targets(y);
    const Index n_all = m.check_samples(x, "fit");
    for (size_t j = 0; j < y.size(); ++j)
      if (y[j]->rank() == 0 || y[j]->dim(0) != n_all)
        throw shape_error(detail::cat("fit: ", n_all, " input samples but target ", j, " has shape ", shape_str(y[j]->shape())));
    Index n_train = n_all;
    In<T> vx = Model<T>::pointers_to(o.validation_x), vy = Model<T>::pointers_to(o.validation_y);
    std::vector<Tensor<T>> split_x, split_y;  // the validation_split tail, copied (as Keras does)
    if (o.validation_split > 0 && o.validation_x.empty()) {  // Keras: validation data overrides the split
      n_train = static_cast<Index>(std::floor(static_cast<double>(n_all) * (1.0 - o.validation_split)));
      for (auto* t : x) split_x.push_back(t->slice_rows(n_train, n_all - n_train));
      for (auto* t : y) split_y.push_back(t->slice_rows(n_train, n_all - n_train));
      vx = Model<T>::pointers_to(split_x);
      vy = Model<T>::pointers_to(split_y);
    }
    const std::vector<Shape> shapes = m.adapted_shapes(x);
    if (n_train <= 0) throw value_error("fit: no training samples");
    const bool has_val = !vx.empty();

    Rng shuffle_rng(o.seed ? *o.seed : next_seed());
    std::vector<Index> idx(static_cast<size_t>(n_train));
    std::iota(idx.begin(), idx.end(), Index(0));
    const Index steps = (n_train + o.batch_size - 1) / o.batch_size;
    auto metrics = m.build_metrics(y);
    std::vector<Tensor<T>> bx(x.size()), by(y.size());
    In<T> px(x.size());
    History hist;
    detail::Progress progress(o.out, o.verbose, o.epochs);
    const size_t n_out = m.out_refs_.size();

    LoopState state;
    state.initial_epoch = o.initial_epoch;
    state.epochs = o.epochs;
    state.steps_per_epoch = steps;
    state.shuffle_rng = &shuffle_rng;
    state.order = &idx;
    std::vector<const Tensor<T>*> all(x.begin(), x.end());
    all.insert(all.end(), y.begin(), y.end());
    state.data_fingerprint = data_fingerprint(all);
    state.out_loss_sum.assign(n_out, 0.0);
    state.callbacks_state = [&o]() {
      nlohmann::json j = nlohmann::json::array();
      for (auto& cb : o.callbacks) j.push_back(cb->state());
      return j;
    };

    m.stop_training = false;
    Logs logs;
    for (auto& cb : o.callbacks) {
      if (!cb) throw value_error("fit: a callback is null");
      cb->set_model(&m);
      if (auto* la = dynamic_cast<LoopAware*>(cb.get())) la->set_loop_state(&state);
    }
    for (auto& cb : o.callbacks)
      if (cb->restores_run()) cb->on_train_begin(logs);
    for (auto& cb : o.callbacks)
      if (!cb->restores_run()) cb->on_train_begin(logs);
    if (!state.restored_callbacks.is_null()) {
      const auto& j = state.restored_callbacks;
      if (!j.is_array() || j.size() != o.callbacks.size())
        throw value_error(detail::cat("fit: the restored run had ", j.is_array() ? j.size() : 0, " callbacks, this one has ", o.callbacks.size()));
      for (size_t i = 0; i < j.size(); ++i) o.callbacks[i]->set_state(j[i]);
    }
    const bool batch_hooks = !o.callbacks.empty();
    Logs batch_logs;
    for (int epoch = state.initial_epoch; epoch < o.epochs && !m.stop_training; ++epoch) {
      state.epoch = epoch;
      const bool resumed = epoch == state.initial_epoch && state.initial_step > 0;
      state.epoch_resumed = resumed;
      logs.clear();
      for (auto& cb : o.callbacks) cb->on_epoch_begin(epoch, logs);
      m.begin_training();  // trainable flags changed by a callback take effect from this epoch
      progress.epoch_begin(epoch);
      if (resumed) {  // the order, sums and metric states of the interrupted epoch were restored
        if (state.metric_sums.size() != metrics.size())
          throw value_error("fit: the saved run had other metrics than this one");
        for (size_t k = 0; k < metrics.size(); ++k) metrics[k].second->set_state(state.metric_sums[k]);
      } else {
        if (o.shuffle)
          for (Index i = n_train - 1; i > 0; --i)
            std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(shuffle_rng.below(static_cast<std::uint64_t>(i + 1)))]);
        for (auto& mt : metrics) mt.second->reset();
        state.loss_sum = 0;
        state.seen = 0;
        state.out_loss_sum.assign(n_out, 0.0);
      }
      state.metric_sums.resize(metrics.size());
      for (Index step = resumed ? state.initial_step : 0; step < steps && !m.stop_training; ++step) {
        state.step = step;
        if (batch_hooks) {
          for (auto& cb : o.callbacks) cb->on_train_batch_begin(step, batch_logs);
          m.begin_training();  // a batch hook may have changed trainable flags
        }
        const Index b0 = step * o.batch_size, cnt = std::min(o.batch_size, n_train - b0);
        for (size_t i = 0; i < x.size(); ++i) {
          Model<T>::gather_rows(*x[i], idx.data() + b0, cnt, bx[i], shapes[i]);
          px[i] = &bx[i];
        }
        for (size_t j = 0; j < y.size(); ++j) Model<T>::gather_rows(*y[j], idx.data() + b0, cnt, by[j], y[j]->shape());
        double loss = m.train_step(px, by);
        state.loss_sum += loss * static_cast<double>(cnt);
        for (size_t j = 0; j < n_out; ++j) state.out_loss_sum[j] += m.last_output_loss_[j] * static_cast<double>(cnt);
        state.seen += cnt;
        for (size_t k = 0; k < metrics.size(); ++k) {
          metrics[k].second->update(by[metrics[k].first], *m.output_ptr(m.train_run_, metrics[k].first));
          state.metric_sums[k] = metrics[k].second->state();
        }
        if (batch_hooks) {
          batch_logs["loss"] = state.loss_sum / static_cast<double>(state.seen);
          for (auto& mt : metrics) batch_logs[m.metric_log_name(mt)] = mt.second->result();
          for (auto& cb : o.callbacks)  // checkpoints last: they save the other callbacks' state
            if (!cb->restores_run()) cb->on_train_batch_end(step, batch_logs);
          for (auto& cb : o.callbacks)
            if (cb->restores_run()) cb->on_train_batch_end(step, batch_logs);
        }
        if (o.verbose == 1) {
          logs["loss"] = state.loss_sum / static_cast<double>(state.seen);
          progress.step(step + 1, steps, logs);
        }
      }
      if (state.seen == 0) break;  // stopped before the epoch's first batch
      logs.clear();
      logs["loss"] = state.loss_sum / static_cast<double>(state.seen);
      if (n_out > 1)
        for (size_t j = 0; j < n_out; ++j) logs[m.output_names()[j] + "_loss"] = state.out_loss_sum[j] / static_cast<double>(state.seen);
      for (auto& mt : metrics) logs[m.metric_log_name(mt)] = mt.second->result();
      if (has_val) {
        Logs v = m.evaluate_impl(vx, vy, o.batch_size);
        for (auto& kv : v) logs["val_" + kv.first] = kv.second;
      }
      progress.epoch_end(steps, logs);
      logs["lr"] = m.compiled_->optimizer->learning_rate();
      state.step = steps;  // the epoch is complete (a checkpoint taken now resumes at the next one)
      for (auto& cb : o.callbacks)
        if (!cb->restores_run()) cb->on_epoch_end(epoch, logs);
      for (auto& cb : o.callbacks)
        if (cb->restores_run()) cb->on_epoch_end(epoch, logs);
      hist.epoch.push_back(epoch);
      for (auto& kv : logs) hist.history[kv.first].push_back(kv.second);
    }
    for (auto& cb : o.callbacks) cb->on_train_end(logs);
    for (auto& cb : o.callbacks)
      if (auto* la = dynamic_cast<LoopAware*>(cb.get())) la->set_loop_state(nullptr);
    return hist;
  }
};

}  // namespace detail
}  // namespace graft
