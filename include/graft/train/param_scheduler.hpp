// graft — hyperparameter schedules by training progress, as callbacks (fastai's ParamScheduler
// shape): annealing functions (sched_lin, sched_cos, sched_exp, sched_no, sched_poly,
// combine_scheds), ParamScheduler (learning rate, momentum and weight decay from functions of
// the fraction of training done), OneCycle (fastai's fit_one_cycle), CyclicLR (Smith 2017, with
// keras-contrib's CyclicLR semantics), LinearWarmup (a linear warmup around any of these, or
// around the optimizer's own Keras schedule) and KerasSchedule (puts a Keras schedule on the
// optimizer when training begins).
//
// Why CyclicLR is a callback and not a LearningRateSchedule: it is one in keras-contrib (the
// reference implementation: its own iteration count, kept across fit() calls, lr = base_lr at
// the first batch, updated after every batch), and a callback only ever sets a constant learning
// rate on the optimizer — so a model saved during or after training holds a float learning
// rate, which every Keras reads, and never a schedule class Keras does not know
// (Optimizer::get_config writes a schedule's to_json as it is; LearningRateSchedule::from_json,
// like Keras, rejects unknown class names). The same holds for ParamScheduler, OneCycle and
// LinearWarmup. Only KerasSchedule leaves a schedule on the optimizer, and only Keras' own.
//
// Callbacks here set the optimizer's learning rate with set_learning_rate, which drops a Keras
// schedule the optimizer had (LinearWarmup puts it back after the warmup).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/model/model.hpp"
#include "graft/train/fit.hpp"
#include "graft/train/loop.hpp"
#include "graft/train/optimizers.hpp"
#include "graft/train/schedules.hpp"

namespace graft {

/// A hyperparameter as a function of pct, the fraction of training done, in [0, 1].
using ScheduleFn = std::function<double(double pct)>;

namespace detail {

inline void check_finite(const char* where, const char* arg, double v) {
  if (!std::isfinite(v)) throw value_error(detail::cat(where, ": ", arg, " must be a finite number, got ", v));
}
inline void check_non_negative(const char* where, const char* arg, double v) {
  if (!(v >= 0) || !std::isfinite(v)) throw value_error(detail::cat(where, ": ", arg, " must be finite and >= 0, got ", v));
}
inline void check_positive(const char* where, const char* arg, double v) {
  if (!(v > 0) || !std::isfinite(v)) throw value_error(detail::cat(where, ": ", arg, " must be finite and > 0, got ", v));
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Annealing functions (fastai.callback.schedule)
// ---------------------------------------------------------------------------------------------

/// Linear from start (pct 0) to end (pct 1): start + pct * (end - start).
inline ScheduleFn sched_lin(double start, double end) {
  detail::check_finite("sched_lin", "start", start);
  detail::check_finite("sched_lin", "end", end);
  return [=](double pct) { return start + pct * (end - start); };
}
/// Cosine from start to end (fastai's SchedCos): start + (1 + cos(pi * (1 - pct))) * (end - start) / 2.
inline ScheduleFn sched_cos(double start, double end) {
  detail::check_finite("sched_cos", "start", start);
  detail::check_finite("sched_cos", "end", end);
  return [=](double pct) { return start + (1.0 + std::cos(3.14159265358979323846 * (1.0 - pct))) * (end - start) / 2.0; };
}
/// Constant start (fastai's SchedNo; end is ignored).
inline ScheduleFn sched_no(double start, double /*end*/ = 0.0) {
  detail::check_finite("sched_no", "start", start);
  return [=](double) { return start; };
}
/// Exponential from start to end: start * (end / start)^pct (start > 0, end >= 0).
inline ScheduleFn sched_exp(double start, double end) {
  detail::check_positive("sched_exp", "start", start);
  detail::check_non_negative("sched_exp", "end", end);
  return [=](double pct) { return start * std::pow(end / start, pct); };
}
/// Polynomial from start to end (fastai's SchedPoly): start + (end - start) * pct^power.
inline ScheduleFn sched_poly(double start, double end, double power) {
  detail::check_finite("sched_poly", "start", start);
  detail::check_finite("sched_poly", "end", end);
  detail::check_positive("sched_poly", "power", power);
  return [=](double pct) { return start + (end - start) * std::pow(pct, power); };
}

/// fastai's combine_scheds: phase i covers a fraction pcts[i] of training (the fractions sum to
/// 1) and runs scheds[i] from its pct 0 to 1 over it. A phase of width 0 is skipped.
inline ScheduleFn combine_scheds(std::vector<double> pcts, std::vector<ScheduleFn> scheds) {
  if (pcts.empty() || pcts.size() != scheds.size())
    throw value_error(detail::cat("combine_scheds: pcts and scheds must have the same, non-zero length (got ", pcts.size(), " and ",
                                  scheds.size(), ")"));
  double sum = 0;
  for (size_t i = 0; i < pcts.size(); ++i) {
    if (!(pcts[i] >= 0) || !std::isfinite(pcts[i]))
      throw value_error(detail::cat("combine_scheds: pcts[", i, "] must be finite and >= 0, got ", pcts[i]));
    if (!scheds[i]) throw value_error(detail::cat("combine_scheds: scheds[", i, "] is empty"));
    sum += pcts[i];
  }
  if (std::abs(sum - 1.0) > 1e-9) throw value_error(detail::cat("combine_scheds: pcts must sum to 1, got ", sum));
  std::vector<double> edges{0.0};  // cumulative: phase i is [edges[i], edges[i+1])
  for (double p : pcts) edges.push_back(edges.back() + p);
  return [edges, scheds](double pos) {
    const size_t lim = edges.size() - 2;  // the last phase
    size_t idx = 0;
    for (size_t i = 0; i < edges.size(); ++i)
      if (pos >= edges[i]) idx = i;
    idx = std::min(idx, lim);
    while (idx > 0 && edges[idx + 1] - edges[idx] <= 0) --idx;  // pos == 1 in a zero-width last phase
    const double width = edges[idx + 1] - edges[idx];
    const double actual = width > 0 ? (pos - edges[idx]) / width : 1.0;
    return scheds[idx](actual);
  };
}

/// Cosine annealing start -> middle over the first `pct` of training, middle -> end after.
inline ScheduleFn combined_cos(double pct, double start, double middle, double end) {
  return combine_scheds({pct, 1.0 - pct}, {sched_cos(start, middle), sched_cos(middle, end)});
}

// ---------------------------------------------------------------------------------------------
// ParamScheduler
// ---------------------------------------------------------------------------------------------

/// fastai's ParamScheduler as a graft callback: before every training batch, sets the
/// optimizer's learning rate, momentum (SGD / RMSprop momentum when built with one, Adam's
/// beta_1; skipped for an optimizer without one) and weight_decay from functions of
/// pct = (epoch * steps_per_epoch + step) / (epochs * steps_per_epoch) (fastai's pct_train);
/// each function optional (empty: that hyperparameter is left alone). The values set are kept,
/// one per batch, in lrs, moms and wds (cleared when training begins), with pcts the progress
/// they were computed at. The last values set stay on the optimizer after training.
template <class T = float>
class ParamScheduler : public Callback<T>, public LoopAware {
 public:
  explicit ParamScheduler(ScheduleFn lr, ScheduleFn mom = {}, ScheduleFn wd = {})
      : lr_(std::move(lr)), mom_(std::move(mom)), wd_(std::move(wd)) {
    if (!lr_ && !mom_ && !wd_) throw value_error("ParamScheduler: give at least one of the lr, mom and wd schedules");
  }

  std::vector<double> lrs, moms, wds, pcts;

  /// The fraction of training done before the current batch (fastai's pct_train).
  double pct_train() const {
    if (!loop_) return 0.0;
    const double total = static_cast<double>(loop_->epochs) * static_cast<double>(loop_->steps_per_epoch);
    if (total <= 0) return 0.0;
    return (static_cast<double>(loop_->epoch) * static_cast<double>(loop_->steps_per_epoch) + static_cast<double>(loop_->step)) / total;
  }

  void on_train_begin(const Logs&) override {
    if (!loop_) throw value_error(detail::cat(kind(), ": needs the training loop's progress (pass it in FitOptions::callbacks to Model::fit)"));
    if (!this->model() || !this->model()->optimizer()) throw value_error(detail::cat(kind(), ": the model must be compiled"));
    lrs.clear();
    moms.clear();
    wds.clear();
    pcts.clear();
  }
  void on_train_batch_begin(Index, const Logs&) override {
    auto& opt = *this->model()->optimizer();
    const double pct = pct_train();
    pcts.push_back(pct);
    if (lr_) {
      const double v = lr_(pct);
      if (!std::isfinite(v) || v < 0)
        throw value_error(detail::cat(kind(), ": the lr schedule gave ", v, " at pct ", pct, " (a learning rate must be finite and >= 0)"));
      opt.set_learning_rate(v);
      lrs.push_back(v);
    }
    if (mom_ && opt.has_momentum()) {
      const double v = mom_(pct);
      if (!std::isfinite(v)) throw value_error(detail::cat(kind(), ": the mom schedule gave ", v, " at pct ", pct));
      opt.set_momentum(v);
      moms.push_back(v);
    }
    if (wd_) {
      const double v = wd_(pct);
      if (!std::isfinite(v) || v < 0)
        throw value_error(detail::cat(kind(), ": the wd schedule gave ", v, " at pct ", pct, " (weight_decay must be finite and >= 0)"));
      opt.weight_decay = v;
      wds.push_back(v);
    }
  }

 protected:
  virtual const char* kind() const { return "ParamScheduler"; }

 private:
  ScheduleFn lr_, mom_, wd_;
};

/// fastai's fit_one_cycle as a callback: the learning rate anneals (cosine) from lr_max / div up
/// to lr_max over the first pct_start of training, then down to lr_max / div_final; momentum
/// (Adam: beta_1) inversely, moms[0] -> moms[1] -> moms[2] (empty moms: momentum is not cycled).
/// fastai's defaults: div 25, div_final 1e5, pct_start 0.25, moms (0.95, 0.85, 0.95).
template <class T = float>
class OneCycle : public ParamScheduler<T> {
 public:
  explicit OneCycle(double lr_max, double div = 25.0, double div_final = 1e5, double pct_start = 0.25,
                    std::vector<double> moms = {0.95, 0.85, 0.95})
      : ParamScheduler<T>(lr_sched(lr_max, div, div_final, pct_start), mom_sched(pct_start, moms)),
        lr_max_(lr_max), div_(div), div_final_(div_final), pct_start_(pct_start), moms_(std::move(moms)) {}

  double lr_max() const { return lr_max_; }
  double div() const { return div_; }
  double div_final() const { return div_final_; }
  double pct_start() const { return pct_start_; }
  const std::vector<double>& moms_setting() const { return moms_; }

 protected:
  const char* kind() const override { return "OneCycle"; }

 private:
  static ScheduleFn lr_sched(double lr_max, double div, double div_final, double pct_start) {
    detail::check_positive("OneCycle", "lr_max", lr_max);
    detail::check_positive("OneCycle", "div", div);
    detail::check_positive("OneCycle", "div_final", div_final);
    check_pct_start(pct_start);
    return combined_cos(pct_start, lr_max / div, lr_max, lr_max / div_final);
  }
  static void check_pct_start(double pct_start) {
    if (!(pct_start > 0 && pct_start < 1))
      throw value_error(detail::cat("OneCycle: pct_start must be in (0, 1), got ", pct_start));
  }
  static ScheduleFn mom_sched(double pct_start, const std::vector<double>& moms) {
    check_pct_start(pct_start);  // (the base's arguments may be evaluated in any order)
    if (moms.empty()) return {};
    if (moms.size() != 3)
      throw value_error(detail::cat("OneCycle: moms must hold 3 values (start, middle, end), got ", moms.size()));
    for (double m : moms)
      if (!(m >= 0 && m <= 1)) throw value_error(detail::cat("OneCycle: moms must be in [0, 1], got ", m));
    return combined_cos(pct_start, moms[0], moms[1], moms[2]);
  }
  double lr_max_, div_, div_final_, pct_start_;
  std::vector<double> moms_;
};

// ---------------------------------------------------------------------------------------------
// CyclicLR
// ---------------------------------------------------------------------------------------------

/// Cyclical learning rates (Smith 2017, "Cyclical Learning Rates for Training Neural Networks"),
/// keras-contrib's CyclicLR callback: with cycle = floor(1 + it / (2 step_size)) and
/// x = |it / step_size - 2 cycle + 1|,
///   lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale(cycle or it)
/// mode "triangular": scale 1; "triangular2": 1 / 2^(cycle - 1); "exp_range": gamma^it.
/// scale_mode "cycle" or "iterations" says what the scale function is given; "" takes the
/// mode's (cycle for the triangular modes, iterations for exp_range, as keras-contrib fixes
/// them). A custom scale_fn replaces the mode's. `it` counts training batches from the first
/// fit and carries on across fit() calls (reset() starts again); step_size is in batches
/// (Smith: 2 to 10 epochs' worth). The learning rate is set when training begins and after every
/// batch; lrs records, per batch, the learning rate that batch used.
template <class T = float>
class CyclicLR : public Callback<T> {
 public:
  using ScaleFn = std::function<double(double)>;
  explicit CyclicLR(double base_lr = 0.001, double max_lr = 0.006, double step_size = 2000.0, std::string mode = "triangular",
                    double gamma = 1.0, std::string scale_mode = "", ScaleFn scale_fn = {})
      : base_lr_(base_lr), max_lr_(max_lr), step_size_(step_size), mode_(std::move(mode)), gamma_(gamma),
        scale_fn_(std::move(scale_fn)) {
    detail::check_non_negative("CyclicLR", "base_lr", base_lr);
    detail::check_non_negative("CyclicLR", "max_lr", max_lr);
    detail::check_positive("CyclicLR", "step_size", step_size);
    detail::check_positive("CyclicLR", "gamma", gamma);
    if (mode_ != "triangular" && mode_ != "triangular2" && mode_ != "exp_range")
      throw value_error(detail::cat("CyclicLR: unknown mode \"", mode_, "\" (valid: triangular, triangular2, exp_range)"));
    if (scale_mode.empty()) scale_mode = mode_ == "exp_range" ? "iterations" : "cycle";
    if (scale_mode != "cycle" && scale_mode != "iterations")
      throw value_error(detail::cat("CyclicLR: unknown scale_mode \"", scale_mode, "\" (valid: cycle, iterations)"));
    by_cycle_ = scale_mode == "cycle";
  }

  std::vector<double> lrs;
  /// Batch numbers (from 1, counted since construction or reset, as keras-contrib's history).
  std::vector<double> iterations_history;

  /// The learning rate after `it` batches.
  double value_at(double it) const {
    const double cycle = std::floor(1.0 + it / (2.0 * step_size_));
    const double x = std::abs(it / step_size_ - 2.0 * cycle + 1.0);
    return base_lr_ + (max_lr_ - base_lr_) * std::max(0.0, 1.0 - x) * scale(by_cycle_ ? cycle : it);
  }
  /// The learning rate at the current iteration count (keras-contrib's clr()).
  double clr() const { return value_at(clr_iterations_); }
  double clr_iterations() const { return clr_iterations_; }
  /// keras-contrib's _reset: new bounds or step size (those given), iteration count back to 0.
  void reset(double new_base_lr = -1, double new_max_lr = -1, double new_step_size = -1) {
    if (new_base_lr >= 0) base_lr_ = new_base_lr;
    if (new_max_lr >= 0) max_lr_ = new_max_lr;
    if (new_step_size > 0) step_size_ = new_step_size;
    clr_iterations_ = 0;
  }
  const std::string& mode() const { return mode_; }
  std::string scale_mode() const { return by_cycle_ ? "cycle" : "iterations"; }

  void on_train_begin(const Logs&) override {
    if (!this->model() || !this->model()->optimizer()) throw value_error("CyclicLR: the model must be compiled");
    this->model()->optimizer()->set_learning_rate(clr_iterations_ == 0 ? base_lr_ : clr());
  }
  void on_train_batch_begin(Index, const Logs&) override { lrs.push_back(this->model()->optimizer()->learning_rate()); }
  void on_train_batch_end(Index, const Logs&) override {
    trn_iterations_ += 1;
    clr_iterations_ += 1;
    this->model()->optimizer()->set_learning_rate(clr());
    iterations_history.push_back(trn_iterations_);
  }

 private:
  double scale(double x) const {
    if (scale_fn_) return scale_fn_(x);
    if (mode_ == "triangular") return 1.0;
    if (mode_ == "triangular2") return 1.0 / std::pow(2.0, x - 1.0);
    return std::pow(gamma_, x);
  }
  double base_lr_, max_lr_, step_size_;
  std::string mode_;
  double gamma_;
  ScaleFn scale_fn_;
  bool by_cycle_ = true;
  double clr_iterations_ = 0, trn_iterations_ = 0;
};

// ---------------------------------------------------------------------------------------------
// KerasSchedule, LinearWarmup
// ---------------------------------------------------------------------------------------------

/// Puts a Keras LearningRateSchedule on the optimizer when training begins (evaluated on the
/// optimizer's iterations, saved with the model as Keras' config). lrs records each batch's
/// learning rate.
template <class T = float>
class KerasSchedule : public Callback<T> {
 public:
  explicit KerasSchedule(std::shared_ptr<LearningRateSchedule> schedule) : schedule_(std::move(schedule)) {
    if (!schedule_) throw value_error("KerasSchedule: the schedule is null");
  }
  std::vector<double> lrs;
  const std::shared_ptr<LearningRateSchedule>& schedule() const { return schedule_; }
  void on_train_begin(const Logs&) override {
    if (!this->model() || !this->model()->optimizer()) throw value_error("KerasSchedule: the model must be compiled");
    this->model()->optimizer()->set_schedule(schedule_);
    lrs.clear();
  }
  void on_train_batch_begin(Index, const Logs&) override { lrs.push_back(this->model()->optimizer()->learning_rate()); }

 private:
  std::shared_ptr<LearningRateSchedule> schedule_;
};

/// A linear learning-rate warmup around any schedule: over the first warmup_steps batches of a
/// fit (batch k = epoch * steps_per_epoch + step, so a run resumed past the warmup has none), the
/// learning rate goes linearly from start_lr to the rate the schedule gives at that batch,
///   lr_k = start_lr + (target_k - start_lr) * k / warmup_steps,
/// and is the schedule's own from then on. The schedule is `inner` (ParamScheduler, OneCycle,
/// CyclicLR, KerasSchedule, any callback that sets the learning rate; its hooks are forwarded),
/// or, without one, the optimizer's own: its Keras schedule (kept on the optimizer; put back
/// after every warmup batch) or its constant learning rate.
/// (Keras' CosineDecay has its own warmup, warmup_target / warmup_steps, which shifts the decay
/// to start after the warmup and is saved in the Keras config; this wrapper overlays the warmup
/// on whatever schedule runs, as PyTorch's LinearLR chained with another scheduler does.)
/// lrs records every batch's learning rate.
template <class T = float>
class LinearWarmup : public Callback<T>, public LoopAware {
 public:
  explicit LinearWarmup(Index warmup_steps, double start_lr = 0.0, std::shared_ptr<Callback<T>> inner = nullptr)
      : steps_(warmup_steps), start_(start_lr), inner_(std::move(inner)) {
    if (warmup_steps <= 0) throw value_error(detail::cat("LinearWarmup: warmup_steps must be > 0, got ", warmup_steps));
    detail::check_non_negative("LinearWarmup", "start_lr", start_lr);
  }
  std::vector<double> lrs;
  const std::shared_ptr<Callback<T>>& inner() const { return inner_; }
  Index warmup_steps() const { return steps_; }

  void set_model(Model<T>* m) override {
    Callback<T>::set_model(m);
    if (inner_) inner_->set_model(m);
  }
  void on_train_begin(const Logs& l) override {
    if (!loop_) throw value_error("LinearWarmup: needs the training loop's progress (pass it in FitOptions::callbacks to Model::fit)");
    if (!this->model() || !this->model()->optimizer()) throw value_error("LinearWarmup: the model must be compiled");
    if (auto* la = dynamic_cast<LoopAware*>(inner_.get())) la->set_loop_state(loop_);
    lrs.clear();
    overridden_ = false;
    if (inner_) inner_->on_train_begin(l);
  }
  void on_train_end(const Logs& l) override {
    restore();
    if (inner_) inner_->on_train_end(l);
    if (auto* la = dynamic_cast<LoopAware*>(inner_.get())) la->set_loop_state(nullptr);
  }
  void on_epoch_begin(int e, const Logs& l) override {
    if (inner_) inner_->on_epoch_begin(e, l);
  }
  void on_epoch_end(int e, Logs& l) override {
    if (inner_) inner_->on_epoch_end(e, l);
  }
  void on_train_batch_begin(Index b, const Logs& l) override {
    if (inner_) inner_->on_train_batch_begin(b, l);
    auto& opt = *this->model()->optimizer();
    const Index k = static_cast<Index>(loop_->epoch) * loop_->steps_per_epoch + loop_->step;
    const double target = opt.learning_rate();
    if (k < steps_) {
      const double lr = start_ + (target - start_) * static_cast<double>(k) / static_cast<double>(steps_);
      saved_schedule_ = opt.schedule();
      saved_lr_ = opt.base_learning_rate();
      opt.set_learning_rate(lr);
      overridden_ = true;
      lrs.push_back(lr);
    } else {
      lrs.push_back(target);
    }
  }
  void on_train_batch_end(Index b, const Logs& l) override {
    restore();  // before the inner callback, which may set the next batch's rate
    if (inner_) inner_->on_train_batch_end(b, l);
  }

 private:
  void restore() {
    if (!overridden_) return;
    auto& opt = *this->model()->optimizer();
    opt.set_learning_rate(saved_lr_);
    if (saved_schedule_) opt.set_schedule(saved_schedule_);
    saved_schedule_.reset();
    overridden_ = false;
  }
  Index steps_;
  double start_;
  std::shared_ptr<Callback<T>> inner_;
  bool overridden_ = false;
  double saved_lr_ = 0;
  std::shared_ptr<LearningRateSchedule> saved_schedule_;
};

}  // namespace graft
