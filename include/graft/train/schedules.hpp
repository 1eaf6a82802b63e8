// graft — Keras learning-rate schedules (evaluated on the optimizer's iteration count).
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"

namespace graft {

class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  virtual double operator()(std::int64_t step) const = 0;
  virtual nlohmann::json to_json() const = 0;

  static std::shared_ptr<LearningRateSchedule> from_json(const nlohmann::json& j);
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
    return {{"class_name", "ExponentialDecay"},
            {"config", {{"initial_learning_rate", init_}, {"decay_steps", steps_},
                        {"decay_rate", rate_}, {"staircase", staircase_}, {"name", "ExponentialDecay"}}}};
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
    return {{"class_name", "InverseTimeDecay"},
            {"config", {{"initial_learning_rate", init_}, {"decay_steps", steps_},
                        {"decay_rate", rate_}, {"staircase", staircase_}, {"name", "InverseTimeDecay"}}}};
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
    return {{"class_name", "PiecewiseConstantDecay"},
            {"config", {{"boundaries", b_}, {"values", v_}, {"name", "PiecewiseConstant"}}}};
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
    return {{"class_name", "PolynomialDecay"},
            {"config", {{"initial_learning_rate", init_}, {"decay_steps", steps_}, {"end_learning_rate", end_},
                        {"power", power_}, {"cycle", cycle_}, {"name", "PolynomialDecay"}}}};
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
    return {{"class_name", "CosineDecay"}, {"config", c}};
  }
 private:
  double init_, steps_, alpha_, target_, warm_;
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
  throw unsupported_error(detail::cat("learning-rate schedule '", cls, "' is not supported"));
}

}  // namespace graft
