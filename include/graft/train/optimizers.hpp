// graft — Keras 3 optimizers: SGD (momentum, nesterov), RMSprop (momentum, centered), Adam
// (amsgrad), AdamW, Adagrad; with clipnorm / clipvalue / global_clipnorm / weight_decay,
// learning-rate schedules and the Keras 2 `decay` argument.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/exact_math.hpp"
#include "graft/core/parallel.hpp"
#include "graft/core/param.hpp"
#include "graft/train/schedules.hpp"

namespace graft {

template <class T>
class Optimizer {
 public:
  using json = nlohmann::json;

  Optimizer(std::string name, double learning_rate) : name_(std::move(name)), lr_(learning_rate) {
    if (!(learning_rate >= 0)) throw value_error(detail::cat(name_, ": learning_rate must be >= 0"));
  }
  virtual ~Optimizer() = default;

  /// Keras class name ("SGD", "RMSprop", "Adam", ...).
  virtual std::string class_name() const = 0;
  const std::string& name() const { return name_; }

  /// Learning rate in effect for the next step (schedule and Keras 2 `decay` applied).
  double learning_rate() const {
    double lr = schedule_ ? (*schedule_)(iterations_) : lr_;
    if (decay_ > 0) lr /= (1.0 + decay_ * static_cast<double>(iterations_));
    return lr;
  }
  /// The constant learning rate (ignored while a schedule is set).
  double base_learning_rate() const { return lr_; }
  void set_learning_rate(double lr) {
    if (!(lr >= 0)) throw value_error(detail::cat(name_, ": learning_rate must be >= 0"));
    lr_ = lr;
    schedule_.reset();
  }
  void set_schedule(std::shared_ptr<LearningRateSchedule> s) { schedule_ = std::move(s); }
  const std::shared_ptr<LearningRateSchedule>& schedule() const { return schedule_; }
  std::int64_t iterations() const { return iterations_; }
  void set_iterations(std::int64_t i) { iterations_ = i; }

  double clipnorm = 0, clipvalue = 0, global_clipnorm = 0;  ///< 0 = off
  double weight_decay = 0;                                  ///< 0 = off (AdamW default 0.004)

  /// Keras 2's time-based decay: lr / (1 + decay * iterations).
  void set_legacy_decay(double d) { decay_ = d; }
  double legacy_decay() const { return decay_; }

  /// Create slot variables (zeros) for params not seen before; keeps existing state.
  void build(const std::vector<Param<T>*>& params) {
    for (Param<T>* p : params) {
      if (slots_.count(p)) continue;
      std::vector<Tensor<T>> s;
      for (size_t i = 0; i < slot_count(); ++i) s.emplace_back(p->value.shape(), initial_slot_value(i));
      slots_.emplace(p, std::move(s));
      built_.push_back(p);
    }
  }
  /// Forget all slot state (a fresh optimizer).
  void reset() {
    slots_.clear();
    built_.clear();
    iterations_ = 0;
  }
  const std::vector<Param<T>*>& built_params() const { return built_; }

  /// One optimisation step over `params` (those without a gradient this step are skipped).
  void apply(const std::vector<Param<T>*>& params) {
    active_.clear();
    for (Param<T>* p : params)
      if (!p->grad_fresh && p->lr_multiplier != 0) active_.push_back(p);
    build(active_);
    clip(active_);
    const T lr = static_cast<T>(learning_rate());
    if (weight_decay > 0) {
      for (Param<T>* p : active_) {
        const T f = static_cast<T>(weight_decay) * param_lr(lr, *p);
        p->value.array() -= p->value.array() * f;
      }
    }
    if (elementwise()) {
      update_in_slices(lr);
    } else {
      for (Param<T>* p : active_) update_step(*p, p->grad, slots_.at(p), param_lr(lr, *p));
    }
    for (Param<T>* p : active_)
      if (p->constraint.active()) p->constraint.apply(p->value);
    ++iterations_;
  }

  /// The optimizer's whole state: the variables it has slots for, in creation order, with their
  /// slots (for checkpoints and the learning-rate finder, which restore it bit-identically).
  struct State {
    std::vector<Param<T>*> params;
    std::vector<std::vector<Tensor<T>>> slots;
    std::int64_t iterations = 0;
    double learning_rate = 0;
    std::shared_ptr<LearningRateSchedule> schedule;
    double momentum = 0;
    double weight_decay = 0;
  };
  State state() const {
    State s;
    s.params = built_;
    for (Param<T>* p : built_) s.slots.push_back(slots_.at(p));
    s.iterations = iterations_;
    s.learning_rate = lr_;
    s.schedule = schedule_;
    s.momentum = has_momentum() ? momentum() : 0.0;
    s.weight_decay = weight_decay;
    return s;
  }
  void set_state(const State& s) {
    if (s.params.size() != s.slots.size()) throw value_error(detail::cat(name_, ": inconsistent optimizer state"));
    for (size_t i = 0; i < s.slots.size(); ++i)
      if (s.slots[i].size() != slot_count())
        throw value_error(detail::cat(name_, ": the saved state has ", s.slots[i].size(), " slots per variable, this optimizer ", slot_count()));
    slots_.clear();
    built_ = s.params;
    for (size_t i = 0; i < s.params.size(); ++i) slots_.emplace(s.params[i], s.slots[i]);
    iterations_ = s.iterations;
    lr_ = s.learning_rate;
    schedule_ = s.schedule;
    if (has_momentum()) set_momentum(s.momentum);
    weight_decay = s.weight_decay;
  }

  /// The optimizer's momentum-like hyperparameter, which 1-cycle training cycles (fastai's
  /// `mom`): SGD and RMSprop `momentum` (when built with one), Adam `beta_1`.
  virtual bool has_momentum() const { return false; }
  virtual double momentum() const { return 0; }
  virtual void set_momentum(double) { throw value_error(detail::cat(name_, ": this optimizer has no momentum to set")); }

  /// Slot variables in Keras order (as optimizer.variables after iteration and learning_rate).
  struct SlotVar {
    std::string slot;  ///< "momentum", "velocity", ...
    Param<T>* param;
    Tensor<T>* value;
  };
  std::vector<SlotVar> slot_variables() {
    std::vector<SlotVar> r;
    size_t base = 0;
    for (const auto& group : slot_groups()) {
      for (Param<T>* p : built_)
        for (size_t k = 0; k < group.size(); ++k)
          r.push_back({group[k], p, &slots_.at(p)[base + k]});
      base += group.size();
    }
    return r;
  }

  /// Keras 3 config (what training_config.optimizer_config.config holds).
  json get_config() const {
    json c = {{"name", name_}, {"weight_decay", weight_decay > 0 ? json(weight_decay) : json(nullptr)},
              {"clipnorm", clipnorm > 0 ? json(clipnorm) : json(nullptr)},
              {"global_clipnorm", global_clipnorm > 0 ? json(global_clipnorm) : json(nullptr)},
              {"clipvalue", clipvalue > 0 ? json(clipvalue) : json(nullptr)},
              {"use_ema", false}, {"ema_momentum", 0.99}, {"ema_overwrite_frequency", nullptr}};
    // Only keys both TF-Keras 2.11+ and Keras 3 accept (no loss_scale_factor, jit_compile, ...).
    if (schedule_) {
      c["learning_rate"] = schedule_->to_json();
    } else if (decay_ > 0) {  // Keras 3 has no `decay`: the same rule as a schedule
      c["learning_rate"] = InverseTimeDecay(lr_, 1.0, decay_).to_json();
    } else {
      c["learning_rate"] = static_cast<double>(static_cast<float>(lr_));
    }
    add_config(c);
    return c;
  }

 protected:
  /// Per-variable slot names, grouped as Keras creates them (a group is interleaved per variable).
  virtual std::vector<std::vector<std::string>> slot_groups() const = 0;
  virtual T initial_slot_value(size_t) const { return T(0); }
  /// The update of one variable `p` from its gradient `g`, slot variables `s` and this step's
  /// learning rate. A custom optimizer overrides this one.
  virtual void update_step(Param<T>& p, const Tensor<T>& g, std::vector<Tensor<T>>& s, T lr) {
    update_slice(p.value, g, s, 0, p.value.size(), lr);
  }
  /// True when each element's update depends on that element alone (and on the step's scalars),
  /// as in every built-in optimizer: apply() then calls update_slice on fixed slices of the
  /// variables, on graft's threads when there is enough of them (same bits on any thread count).
  virtual bool elementwise() const { return false; }
  /// Elements [lo, lo + n) of update_step's update, for elementwise() optimizers.
  virtual void update_slice(Tensor<T>&, const Tensor<T>&, std::vector<Tensor<T>>&, Index, Index, T) {
    throw value_error(detail::cat(name_, ": an optimizer must override update_step, or elementwise() and update_slice"));
  }
  /// Elements [lo, lo + n) of a variable, a gradient or a slot, as an Eigen array.
  static Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> seg(Tensor<T>& t, Index lo, Index n) {
    return Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(t.data() + lo, n);
  }
  static Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> seg(const Tensor<T>& t, Index lo, Index n) {
    return Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(t.data() + lo, n);
  }
  virtual void add_config(json& c) const = 0;

  static T param_lr(T lr, const Param<T>& p) { return p.lr_multiplier == 1.0 ? lr : lr * static_cast<T>(p.lr_multiplier); }

  size_t slot_count() const {
    size_t n = 0;
    for (const auto& g : slot_groups()) n += g.size();
    return n;
  }

 private:
  void clip(const std::vector<Param<T>*>& ps) {
    if (clipnorm > 0) {
      for (Param<T>* p : ps) {
        double n2 = static_cast<double>(p->grad.array().square().sum());
        if (n2 > 0) {
          double n = std::sqrt(n2);
          p->grad.array() *= static_cast<T>(clipnorm / std::max(n, clipnorm));
        }
      }
    } else if (global_clipnorm > 0) {
      double n2 = 0;
      for (Param<T>* p : ps) n2 += static_cast<double>(p->grad.array().square().sum());
      double n = std::sqrt(n2);
      if (n > 0 && std::isfinite(n)) {
        double scale = global_clipnorm * std::min(1.0 / n, 1.0 / global_clipnorm);
        for (Param<T>* p : ps) p->grad.array() *= static_cast<T>(scale);
      }
    } else if (clipvalue > 0) {
      const T v = static_cast<T>(clipvalue);
      for (Param<T>* p : ps) p->grad.array() = p->grad.array().max(-v).min(v);
    }
  }

  /// Element-wise updates of every active variable, cut into slices of kSlice elements whatever
  /// the thread count; run on graft's threads when there are at least kMinParallel elements in
  /// all (the MLP's 266 k: 1.12x on 2 threads, each core updating what is in its own cache).
  void update_in_slices(T lr) {
    constexpr Index kSlice = 16384, kMinParallel = 65536;
    slices_.clear();  // keeps its capacity: no allocation after the first step
    Index total = 0;
    for (size_t i = 0; i < active_.size(); ++i) {
      const Index n = active_[i]->value.size();
      for (Index lo = 0; lo < n; lo += kSlice) slices_.push_back({i, lo, std::min(kSlice, n - lo)});
      total += n;
    }
    std::exception_ptr failed;  // a custom update_slice that throws: rethrown here, not on a worker
    std::atomic<bool> any_failed{false};
    detail::parallel_for(0, static_cast<Index>(slices_.size()), total >= kMinParallel, [&](Index k) {
      const Slice& sl = slices_[static_cast<size_t>(k)];
      Param<T>* p = active_[sl.var];
      try {
        update_slice(p->value, p->grad, slots_.at(p), sl.lo, sl.n, param_lr(lr, *p));
      } catch (...) {
        if (!any_failed.exchange(true)) failed = std::current_exception();
      }
    });
    if (failed) std::rethrow_exception(failed);
  }
  struct Slice {
    size_t var;
    Index lo, n;
  };
  std::vector<Slice> slices_;

  std::string name_;
  double lr_;
  double decay_ = 0;
  std::shared_ptr<LearningRateSchedule> schedule_;
  std::int64_t iterations_ = 0;
  std::vector<Param<T>*> built_, active_;
  std::unordered_map<Param<T>*, std::vector<Tensor<T>>> slots_;
};

/// SGD: v = momentum*v - lr*g; p += v (nesterov: p += momentum*v - lr*g). Keras defaults.
template <class T>
class SGD : public Optimizer<T> {
 public:
  explicit SGD(double learning_rate = 0.01, double momentum = 0.0, bool nesterov = false,
               std::string name = "SGD")
      : Optimizer<T>(std::move(name), learning_rate), momentum_(momentum), nesterov_(nesterov) {
    if (momentum < 0 || momentum > 1) throw value_error("SGD: momentum must be in [0, 1]");
  }
  std::string class_name() const override { return "SGD"; }
  double momentum() const override { return momentum_; }
  bool has_momentum() const override { return momentum_ != 0; }
  void set_momentum(double m) override {
    if (momentum_ == 0 || !(m > 0 && m <= 1)) throw value_error(detail::cat(this->name(), ": momentum can be changed to a value in (0, 1] only when built with one, got ", m));
    momentum_ = m;
  }
  bool nesterov() const { return nesterov_; }

 protected:
  std::vector<std::vector<std::string>> slot_groups() const override {
    if (momentum_ != 0) return {{"momentum"}};
    return {};
  }
  bool elementwise() const override { return true; }
  void update_slice(Tensor<T>& w, const Tensor<T>& g, std::vector<Tensor<T>>& s, Index lo, Index n, T lr) override {
    auto P = this->seg(w, lo, n);
    auto G = this->seg(g, lo, n);
    if (momentum_ != 0) {
      auto M = this->seg(s[0], lo, n);
      const T mom = static_cast<T>(momentum_);
      M = -G * lr + M * mom;
      if (nesterov_) P += -G * lr + M * mom;
      else P += M;
    } else {
      P -= G * lr;
    }
  }
  void add_config(nlohmann::json& c) const override {
    c["momentum"] = momentum_;
    c["nesterov"] = nesterov_;
  }

 private:
  double momentum_;
  bool nesterov_;
};

/// RMSprop, Keras 3: epsilon inside the square root.
template <class T>
class RMSprop : public Optimizer<T> {
 public:
  explicit RMSprop(double learning_rate = 0.001, double rho = 0.9, double momentum = 0.0,
                   double epsilon = 1e-7, bool centered = false, std::string name = "rmsprop")
      : Optimizer<T>(std::move(name), learning_rate), rho_(rho), momentum_(momentum), eps_(epsilon),
        centered_(centered) {}
  std::string class_name() const override { return "RMSprop"; }
  bool has_momentum() const override { return momentum_ > 0; }
  double momentum() const override { return momentum_; }
  void set_momentum(double m) override {
    if (momentum_ <= 0 || !(m > 0 && m <= 1)) throw value_error(detail::cat(this->name(), ": momentum can be changed to a value in (0, 1] only when built with one, got ", m));
    momentum_ = m;
  }

 protected:
  std::vector<std::vector<std::string>> slot_groups() const override {
    std::vector<std::vector<std::string>> g{{"velocity"}};
    if (momentum_ > 0) g.push_back({"momentum"});
    if (centered_) g.push_back({"average_gradient"});
    return g;
  }
  bool elementwise() const override { return true; }
  void update_slice(Tensor<T>& w, const Tensor<T>& g, std::vector<Tensor<T>>& s, Index lo, Index n, T lr) override {
    auto P = this->seg(w, lo, n);
    auto G = this->seg(g, lo, n);
    const T rho = static_cast<T>(rho_), eps = static_cast<T>(eps_);
    auto V = this->seg(s[0], lo, n);
    V = rho * V + (T(1) - rho) * G.square();
    size_t k = 1;
    Tensor<T>* mom = momentum_ > 0 ? &s[k++] : nullptr;
    if (centered_) {
      auto A = this->seg(s[k], lo, n);
      A = rho * A + (T(1) - rho) * G;
      if (mom) this->seg(*mom, lo, n) = static_cast<T>(momentum_) * this->seg(*mom, lo, n) + (lr * G) / detail::sqrt_exact(V - A.square() + eps);
      else P -= (lr * G) / detail::sqrt_exact(V - A.square() + eps);
    } else {
      if (mom) this->seg(*mom, lo, n) = static_cast<T>(momentum_) * this->seg(*mom, lo, n) + (lr * G) / detail::sqrt_exact(V + eps);
      else P -= (lr * G) / detail::sqrt_exact(V + eps);
    }
    if (mom) P -= this->seg(*mom, lo, n);
  }
  void add_config(nlohmann::json& c) const override {
    c["rho"] = rho_;
    c["momentum"] = momentum_;
    c["epsilon"] = eps_;
    c["centered"] = centered_;
  }

 private:
  double rho_, momentum_, eps_;
  bool centered_;
};

/// Adam (and AdamW through weight_decay), Keras 3 update with bias correction folded into alpha.
template <class T>
class Adam : public Optimizer<T> {
 public:
  explicit Adam(double learning_rate = 0.001, double beta_1 = 0.9, double beta_2 = 0.999,
                double epsilon = 1e-7, bool amsgrad = false, std::string name = "adam")
      : Optimizer<T>(std::move(name), learning_rate), b1_(beta_1), b2_(beta_2), eps_(epsilon), amsgrad_(amsgrad) {}
  std::string class_name() const override { return adamw_ ? "AdamW" : "Adam"; }
  /// AdamW: Adam with decoupled weight decay (Keras default 0.004).
  static std::shared_ptr<Adam> adamw(double learning_rate = 0.001, double weight_decay = 0.004) {
    auto a = std::make_shared<Adam>(learning_rate, 0.9, 0.999, 1e-7, false, "adamw");
    a->weight_decay = weight_decay;
    a->adamw_ = true;
    return a;
  }
  void set_adamw(bool v) { adamw_ = v; }
  /// beta_1 is Adam's momentum (what 1-cycle training cycles).
  bool has_momentum() const override { return true; }
  double momentum() const override { return b1_; }
  void set_momentum(double m) override {
    if (!(m >= 0 && m < 1)) throw value_error(detail::cat(this->name(), ": beta_1 must be in [0, 1), got ", m));
    b1_ = m;
  }

 protected:
  std::vector<std::vector<std::string>> slot_groups() const override {
    std::vector<std::vector<std::string>> g{{"momentum", "velocity"}};
    if (amsgrad_) g.push_back({"velocity_hat"});
    return g;
  }
  bool elementwise() const override { return true; }
  void update_slice(Tensor<T>& w, const Tensor<T>& g, std::vector<Tensor<T>>& s, Index lo, Index n, T lr) override {
    const T t = static_cast<T>(this->iterations() + 1);
    const T b1 = static_cast<T>(b1_), b2 = static_cast<T>(b2_), eps = static_cast<T>(eps_);
    const T b1p = std::pow(b1, t), b2p = std::pow(b2, t);
    const T alpha = lr * std::sqrt(T(1) - b2p) / (T(1) - b1p);
    auto G = this->seg(g, lo, n);
    auto M = this->seg(s[0], lo, n);
    auto V = this->seg(s[1], lo, n);
    M += (G - M) * (T(1) - b1);
    V += (G.square() - V) * (T(1) - b2);
    if (amsgrad_) {
      auto VH = this->seg(s[2], lo, n);
      VH = VH.max(V);
      this->seg(w, lo, n) -= (M * alpha) / (detail::sqrt_exact(VH) + eps);
    } else {
      this->seg(w, lo, n) -= (M * alpha) / (detail::sqrt_exact(V) + eps);
    }
  }
  void add_config(nlohmann::json& c) const override {
    c["beta_1"] = b1_;
    c["beta_2"] = b2_;
    c["epsilon"] = eps_;
    c["amsgrad"] = amsgrad_;
  }

 private:
  double b1_, b2_, eps_;
  bool amsgrad_;
  bool adamw_ = false;
};

/// Adagrad, Keras 3: accumulator starts at initial_accumulator_value.
template <class T>
class Adagrad : public Optimizer<T> {
 public:
  explicit Adagrad(double learning_rate = 0.001, double initial_accumulator_value = 0.1,
                   double epsilon = 1e-7, std::string name = "adagrad")
      : Optimizer<T>(std::move(name), learning_rate), init_(initial_accumulator_value), eps_(epsilon) {}
  std::string class_name() const override { return "Adagrad"; }

 protected:
  std::vector<std::vector<std::string>> slot_groups() const override { return {{"accumulator"}}; }
  T initial_slot_value(size_t) const override { return static_cast<T>(init_); }
  bool elementwise() const override { return true; }
  void update_slice(Tensor<T>& w, const Tensor<T>& g, std::vector<Tensor<T>>& s, Index lo, Index n, T lr) override {
    auto A = this->seg(s[0], lo, n);
    auto G = this->seg(g, lo, n);
    A += G.square();
    this->seg(w, lo, n) -= (lr * G) / detail::sqrt_exact(A + static_cast<T>(eps_));
  }
  void add_config(nlohmann::json& c) const override {
    c["initial_accumulator_value"] = init_;
    c["epsilon"] = eps_;
  }

 private:
  double init_, eps_;
};

/// Build an optimizer from a Keras identifier: a name ("sgd", "adam", ...) or a serialized
/// {class_name, config}, in any dialect (Keras 1/2 `lr`, TF-Keras `Custom>Adam`, Keras 3 schedules).
template <class T>
std::shared_ptr<Optimizer<T>> make_optimizer(const nlohmann::json& j, const std::string& where = "optimizer") {
  std::string cls;
  nlohmann::json c = nlohmann::json::object();
  if (j.is_string()) {
    cls = j.get<std::string>();
  } else if (j.is_object() && j.contains("class_name") && j["class_name"].is_string()) {
    cls = j["class_name"].get<std::string>();
    if (j.contains("config") && j["config"].is_object()) c = j["config"];
  } else {
    throw format_error(detail::cat(where, ": cannot read optimizer ", j.dump()));
  }
  const std::string prefix = "Custom>";
  if (cls.compare(0, prefix.size(), prefix) == 0) cls = cls.substr(prefix.size());
  std::string lc = cls;
  for (auto& ch : lc) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto num = [&](const char* k, double d) {
    return c.contains(k) && c[k].is_number() ? c[k].get<double>() : d;
  };
  auto flag = [&](const char* k) { return c.contains(k) && c[k].is_boolean() && c[k].get<bool>(); };
  std::string name = c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>() : lc;

  double default_lr = lc == "sgd" ? 0.01 : 0.001;
  std::shared_ptr<LearningRateSchedule> schedule;
  double lr = default_lr;
  const char* lr_key = c.contains("learning_rate") ? "learning_rate" : (c.contains("lr") ? "lr" : nullptr);
  if (lr_key) {
    const auto& v = c[lr_key];
    if (v.is_number()) lr = v.get<double>();
    else if (v.is_object()) schedule = LearningRateSchedule::from_json(v);
    else if (!v.is_null()) throw format_error(detail::cat(where, ": cannot read learning rate ", v.dump()));
  }
  if (flag("use_ema"))
    throw unsupported_error(detail::cat(where, ": use_ema (exponential moving average of weights) is not supported"));
  if (c.contains("gradient_accumulation_steps") && c["gradient_accumulation_steps"].is_number() &&
      c["gradient_accumulation_steps"].get<double>() > 1)
    throw unsupported_error(detail::cat(where, ": gradient_accumulation_steps is not supported"));

  std::shared_ptr<Optimizer<T>> opt;
  if (lc == "sgd") {
    opt = std::make_shared<SGD<T>>(lr, num("momentum", 0.0), flag("nesterov"), name);
  } else if (lc == "rmsprop") {
    opt = std::make_shared<RMSprop<T>>(lr, num("rho", 0.9), num("momentum", 0.0),
                                       c.contains("epsilon") && c["epsilon"].is_number() ? c["epsilon"].get<double>() : 1e-7,
                                       flag("centered"), name);
  } else if (lc == "adam" || lc == "adamw") {
    auto a = std::make_shared<Adam<T>>(lr, num("beta_1", 0.9), num("beta_2", 0.999),
                                       c.contains("epsilon") && c["epsilon"].is_number() ? c["epsilon"].get<double>() : 1e-7,
                                       flag("amsgrad"), name);
    if (lc == "adamw") {
      a->set_adamw(true);
      a->weight_decay = num("weight_decay", 0.004);
    }
    opt = a;
  } else if (lc == "adagrad") {
    opt = std::make_shared<Adagrad<T>>(lr, num("initial_accumulator_value", 0.1),
                                       c.contains("epsilon") && c["epsilon"].is_number() ? c["epsilon"].get<double>() : 1e-7,
                                       name);
  } else {
    throw unsupported_error(detail::cat(where, ": optimizer '", cls,
                                        "' is not supported (SGD, RMSprop, Adam, AdamW, Adagrad are)"));
  }
  if (schedule) opt->set_schedule(schedule);
  if (lc != "adamw" && c.contains("weight_decay") && c["weight_decay"].is_number())
    opt->weight_decay = c["weight_decay"].get<double>();
  opt->clipnorm = num("clipnorm", 0.0);
  opt->clipvalue = num("clipvalue", 0.0);
  opt->global_clipnorm = num("global_clipnorm", 0.0);
  if (num("decay", 0.0) > 0) opt->set_legacy_decay(num("decay", 0.0));
  return opt;
}

}  // namespace graft
