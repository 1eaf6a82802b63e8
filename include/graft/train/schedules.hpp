// graft — Keras learning-rate schedules (evaluated on the optimizer's iteration count).
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graft/core/errors.hpp"

namespace graft {

class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  virtual double operator()(std::int64_t step) const = 0;
  virtual nlohmann::json to_json() const = 0;

  static std::shared_ptr<LearningRateSchedule> from_json(const nlohmann::json& j);

 protected:
  /// A schedule as keras.optimizers.schedules.serialize writes it: Keras 3's Optimizer.from_config
  /// cannot find the class without "module" (TF-Keras 2 reads class_name and config only).
  static nlohmann::json keras_object(const char* class_name, nlohmann::json config) {
    return {{"module", "keras.optimizers.schedules"}, {"class_name", class_name}, {"config", std::move(config)},
            {"registered_name", nullptr}};
  }
};

class ExponentialDecay : public LearningRateSchedule {
 public:
  ExponentialDecay(double initial, double decay_steps, double decay_rate, bool staircase = false)
      : init_(initial), steps_(decay_steps), rate_(decay_rate), staircase_(staircase) {
    if (decay_steps <= 0) throw value_error("ExponentialDecay: decay_steps must be positive");
  }
  double operator()(std::int64_t step) const override {
    double p = static_cast<double>(step) / steps_;
    if (staircase_) p = std::floor(p);
    return init_ * std::pow(rate_, p);
  }
  nlohmann::json to_json() const override {
    return keras_object("ExponentialDecay", {{"initial_learning_rate", init_}, {"decay_steps", steps_},
                        {"decay_rate", rate_}, {"staircase", staircase_}, {"name", "ExponentialDecay"}});
  }
 private:
  double init_, steps_, rate_;
  bool staircase_;
};

class InverseTimeDecay : public LearningRateSchedule {
 public:
  InverseTimeDecay(double initial, double decay_steps, double decay_rate, bool staircase = false)
      : init_(initial), steps_(decay_steps), rate_(decay_rate), staircase_(staircase) {
    if (decay_steps <= 0) throw value_error("InverseTimeDecay: decay_steps must be positive");
  }
  double operator()(std::int64_t step) const override {
    double p = static_cast<double>(step) / steps_;
    if (staircase_) p = std::floor(p);
    return init_ / (1.0 + rate_ * p);
  }
  nlohmann::json to_json() const override {
    return keras_object("InverseTimeDecay", {{"initial_learning_rate", init_}, {"decay_steps", steps_},
                        {"decay_rate", rate_}, {"staircase", staircase_}, {"name", "InverseTimeDecay"}});
  }
 private:
  double init_, steps_, rate_;
  bool staircase_;
};

class PiecewiseConstantDecay : public LearningRateSchedule {
 public:
  PiecewiseConstantDecay(std::vector<double> boundaries, std::vector<double> values)
      : b_(std::move(boundaries)), v_(std::move(values)) {
    if (v_.size() != b_.size() + 1)
      throw value_error("PiecewiseConstantDecay: values must have one more entry than boundaries");
  }
  double operator()(std::int64_t step) const override {
    double s = static_cast<double>(step);
    for (size_t i = 0; i < b_.size(); ++i)
      if (s <= b_[i]) return v_[i];
    return v_.back();
  }
  nlohmann::json to_json() const override {
    return keras_object("PiecewiseConstantDecay", {{"boundaries", b_}, {"values", v_}, {"name", "PiecewiseConstant"}});
  }
 private:
  std::vector<double> b_, v_;
};

class PolynomialDecay : public LearningRateSchedule {
 public:
  PolynomialDecay(double initial, double decay_steps, double end = 1e-4, double power = 1.0, bool cycle = false)
      : init_(initial), steps_(decay_steps), end_(end), power_(power), cycle_(cycle) {
    if (decay_steps <= 0) throw value_error("PolynomialDecay: decay_steps must be positive");
  }
  double operator()(std::int64_t step) const override {
    double s = static_cast<double>(step), ds = steps_;
    if (cycle_) {
      double m = s == 0 ? 1.0 : std::ceil(s / ds);
      ds *= m;
    } else {
      s = std::min(s, ds);
    }
    return (init_ - end_) * std::pow(1.0 - s / ds, power_) + end_;
  }
  nlohmann::json to_json() const override {
    return keras_object("PolynomialDecay", {{"initial_learning_rate", init_}, {"decay_steps", steps_}, {"end_learning_rate", end_},
                        {"power", power_}, {"cycle", cycle_}, {"name", "PolynomialDecay"}});
  }
 private:
  double init_, steps_, end_, power_;
  bool cycle_;
};

class CosineDecay : public LearningRateSchedule {
 public:
  CosineDecay(double initial, double decay_steps, double alpha = 0.0, double warmup_target = -1.0,
              double warmup_steps = 0.0)
      : init_(initial), steps_(decay_steps), alpha_(alpha), target_(warmup_target), warm_(warmup_steps) {
    if (decay_steps <= 0) throw value_error("CosineDecay: decay_steps must be positive");
  }
  double operator()(std::int64_t step) const override {
    double s = static_cast<double>(step);
    double peak = target_ >= 0 ? target_ : init_;
    if (target_ >= 0 && s < warm_) return init_ + (target_ - init_) * (s / warm_);
    double p = std::min(s - (target_ >= 0 ? warm_ : 0.0), steps_) / steps_;
    double cosine = 0.5 * (1.0 + std::cos(3.14159265358979323846 * p));
    return peak * ((1 - alpha_) * cosine + alpha_);
  }
  nlohmann::json to_json() const override {
    nlohmann::json c = {{"initial_learning_rate", init_}, {"decay_steps", steps_}, {"alpha", alpha_},
                        {"name", "CosineDecay"}, {"warmup_steps", warm_}};
    c["warmup_target"] = target_ >= 0 ? nlohmann::json(target_) : nlohmann::json(nullptr);
    return keras_object("CosineDecay", c);
  }
 private:
  double init_, steps_, alpha_, target_, warm_;
};

/// keras.optimizers.schedules.CosineDecayRestarts (SGDR, Loshchilov & Hutter 2016): the
/// multiplier decays from 1 to alpha over first_decay_steps, then restarts; period i lasts
/// first_decay_steps * t_mul^i steps and starts from m_mul^i. Keras' formula (i_restart from the
/// geometric series when t_mul != 1), evaluated in double; i_restart is corrected by one when the
/// logarithm rounds across a restart boundary, where the exact value is discontinuous. As in
/// Keras, t_mul < 1 has a finite total length (first_decay_steps / (1 - t_mul)) past which the
/// value is NaN.
class CosineDecayRestarts : public LearningRateSchedule {
 public:
  CosineDecayRestarts(double initial_learning_rate, double first_decay_steps, double t_mul = 2.0, double m_mul = 1.0,
                      double alpha = 0.0, std::string name = "SGDRDecay")
      : init_(initial_learning_rate), steps_(first_decay_steps), t_mul_(t_mul), m_mul_(m_mul), alpha_(alpha),
        name_(std::move(name)) {
    if (!(first_decay_steps > 0) || !std::isfinite(first_decay_steps))
      throw value_error(detail::cat("CosineDecayRestarts: argument `first_decay_steps` must be > 0. Received: first_decay_steps=", first_decay_steps));
    if (!std::isfinite(initial_learning_rate) || initial_learning_rate < 0)
      throw value_error(detail::cat("CosineDecayRestarts: initial_learning_rate must be finite and >= 0, got ", initial_learning_rate));
    if (!(t_mul > 0) || !std::isfinite(t_mul))
      throw value_error(detail::cat("CosineDecayRestarts: t_mul must be finite and > 0, got ", t_mul));
    if (!(m_mul >= 0) || !std::isfinite(m_mul))
      throw value_error(detail::cat("CosineDecayRestarts: m_mul must be finite and >= 0, got ", m_mul));
    if (!std::isfinite(alpha)) throw value_error(detail::cat("CosineDecayRestarts: alpha must be finite, got ", alpha));
  }
  double operator()(std::int64_t step) const override {
    const double frac = static_cast<double>(step) / steps_;
    double i_restart, f;
    if (t_mul_ == 1.0) {
      i_restart = std::floor(frac);
      f = frac - i_restart;
    } else {
      // period k starts at (1 - t_mul^k) / (1 - t_mul) (in units of first_decay_steps)
      auto start = [&](double k) { return (1.0 - std::pow(t_mul_, k)) / (1.0 - t_mul_); };
      i_restart = std::floor(std::log(1.0 - frac * (1.0 - t_mul_)) / std::log(t_mul_));
      if (std::isfinite(i_restart)) {
        if (frac >= start(i_restart + 1)) i_restart += 1;
        else if (frac < start(i_restart)) i_restart -= 1;
      }
      f = (frac - start(i_restart)) / std::pow(t_mul_, i_restart);
    }
    const double m_fac = std::pow(m_mul_, i_restart);
    const double cosine = 0.5 * m_fac * (1.0 + std::cos(3.14159265358979323846 * f));
    return init_ * ((1.0 - alpha_) * cosine + alpha_);
  }
  nlohmann::json to_json() const override {
    return keras_object("CosineDecayRestarts", {{"initial_learning_rate", init_}, {"first_decay_steps", steps_}, {"t_mul", t_mul_},
                        {"m_mul", m_mul_}, {"alpha", alpha_}, {"name", name_}});
  }
  double initial_learning_rate() const { return init_; }
  double first_decay_steps() const { return steps_; }
  double t_mul() const { return t_mul_; }
  double m_mul() const { return m_mul_; }
  double alpha() const { return alpha_; }
  const std::string& name() const { return name_; }

 private:
  double init_, steps_, t_mul_, m_mul_, alpha_;
  std::string name_;
};

inline std::shared_ptr<LearningRateSchedule> LearningRateSchedule::from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("class_name"))
    throw format_error(detail::cat("learning_rate: cannot read schedule ", j.dump()));
  const std::string cls = j["class_name"].get<std::string>();
  const nlohmann::json c = j.contains("config") ? j["config"] : nlohmann::json::object();
  auto num = [&](const char* k, double d) { return c.contains(k) && c[k].is_number() ? c[k].get<double>() : d; };
  auto flag = [&](const char* k) { return c.contains(k) && c[k].is_boolean() && c[k].get<bool>(); };
  if (cls == "ExponentialDecay")
    return std::make_shared<ExponentialDecay>(num("initial_learning_rate", 0), num("decay_steps", 1),
                                              num("decay_rate", 1), flag("staircase"));
  if (cls == "InverseTimeDecay")
    return std::make_shared<InverseTimeDecay>(num("initial_learning_rate", 0), num("decay_steps", 1),
                                              num("decay_rate", 0), flag("staircase"));
  if (cls == "PiecewiseConstantDecay")
    return std::make_shared<PiecewiseConstantDecay>(c.at("boundaries").get<std::vector<double>>(),
                                                    c.at("values").get<std::vector<double>>());
  if (cls == "PolynomialDecay")
    return std::make_shared<PolynomialDecay>(num("initial_learning_rate", 0), num("decay_steps", 1),
                                             num("end_learning_rate", 1e-4), num("power", 1.0), flag("cycle"));
  if (cls == "CosineDecay")
    return std::make_shared<CosineDecay>(num("initial_learning_rate", 0), num("decay_steps", 1), num("alpha", 0),
                                         c.contains("warmup_target") && c["warmup_target"].is_number()
                                             ? c["warmup_target"].get<double>() : -1.0,
                                         num("warmup_steps", 0));
  if (cls == "CosineDecayRestarts")
    return std::make_shared<CosineDecayRestarts>(num("initial_learning_rate", 0), num("first_decay_steps", 1),
                                                 num("t_mul", 2.0), num("m_mul", 1.0), num("alpha", 0.0),
                                                 c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>()
                                                                                             : std::string("SGDRDecay"));
  throw unsupported_error(detail::cat("learning-rate schedule '", cls,
                                      "' is not supported (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, "
                                      "PolynomialDecay, CosineDecay, CosineDecayRestarts are)"));
}

}  // namespace graft
