// graft — learning-rate schedules from a command-line spec (`graft fit --lr-schedule SPEC`):
//
//   NAME[:key=value,...]
//
//   one-cycle        max_lr (the base lr), div (25), div_final (1e5), pct_start (0.25),
//                    moms (0.95/0.85/0.95, or "none")                    -> OneCycle
//   cosine           decay_steps (required), alpha (0), warmup_steps (0), warmup_start (0)
//                                                   -> Keras CosineDecay (warmup: Keras' own)
//   cosine-restarts  first_decay_steps (required), t_mul (2), m_mul (1), alpha (0)
//                                                   -> Keras CosineDecayRestarts
//   cyclic           base_lr (the base lr), max_lr (required), step_size (2000),
//                    mode (triangular | triangular2 | exp_range), gamma (1),
//                    scale_mode (cycle | iterations; default: the mode's)  -> CyclicLR
//   exponential      decay_steps (required), decay_rate (required), staircase (false)
//                                                   -> Keras ExponentialDecay
//
// Every schedule but cosine also takes warmup_steps and warmup_start (0): a LinearWarmup around
// it. Keras schedules start from the base learning rate and are evaluated on the optimizer's
// iterations (saved with the model as Keras config); the others are callbacks that set a
// constant rate before each batch (saved as a float). Steps are training batches.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/train/param_scheduler.hpp"
#include "graft/train/schedules.hpp"

namespace graft {

namespace detail {

struct LrScheduleKind {
  const char* name;
  std::vector<std::string> keys;
};

inline const std::vector<LrScheduleKind>& lr_schedule_kinds() {
  static const std::vector<LrScheduleKind> k = {
      {"one-cycle", {"max_lr", "div", "div_final", "pct_start", "moms", "warmup_steps", "warmup_start"}},
      {"cosine", {"decay_steps", "alpha", "warmup_steps", "warmup_start"}},
      {"cosine-restarts", {"first_decay_steps", "t_mul", "m_mul", "alpha", "warmup_steps", "warmup_start"}},
      {"cyclic", {"base_lr", "max_lr", "step_size", "mode", "gamma", "scale_mode", "warmup_steps", "warmup_start"}},
      {"exponential", {"decay_steps", "decay_rate", "staircase", "warmup_steps", "warmup_start"}},
  };
  return k;
}

inline std::string join_names(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

inline std::string trim_spaces(const std::string& s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

/// The key=value pairs of one spec, read by type with the schedule's name in every error.
class SpecArgs {
 public:
  SpecArgs(std::string schedule, std::map<std::string, std::string> kv) : schedule_(std::move(schedule)), kv_(std::move(kv)) {}
  bool has(const std::string& k) const { return kv_.count(k) != 0; }
  double number(const std::string& k, double dflt) const { return has(k) ? parse(k) : dflt; }
  double required(const std::string& k) const {
    if (!has(k)) throw value_error(detail::cat("--lr-schedule ", schedule_, ": ", k, " is required (", schedule_, ":", k, "=...)"));
    return parse(k);
  }
  std::string text(const std::string& k, const std::string& dflt) const { return has(k) ? kv_.at(k) : dflt; }
  bool flag(const std::string& k, bool dflt) const {
    if (!has(k)) return dflt;
    const std::string& v = kv_.at(k);
    if (v == "true" || v == "True" || v == "1" || v == "yes") return true;
    if (v == "false" || v == "False" || v == "0" || v == "no") return false;
    throw value_error(detail::cat("--lr-schedule ", schedule_, ": ", k, " must be true or false, got '", v, "'"));
  }
  /// A steps count: a whole number > 0.
  double steps(const std::string& k, double v) const {
    if (!(v > 0) || v != std::floor(v))
      throw value_error(detail::cat("--lr-schedule ", schedule_, ": ", k, " must be a whole number > 0, got ", v));
    return v;
  }
  std::vector<double> list(const std::string& k) const {
    std::vector<double> r;
    const std::string& v = kv_.at(k);
    size_t p = 0;
    while (true) {
      size_t q = v.find('/', p);
      r.push_back(parse_text(k, v.substr(p, q == std::string::npos ? std::string::npos : q - p)));
      if (q == std::string::npos) break;
      p = q + 1;
    }
    return r;
  }
  const std::string& schedule() const { return schedule_; }

 private:
  double parse(const std::string& k) const { return parse_text(k, kv_.at(k)); }
  double parse_text(const std::string& k, const std::string& v) const {
    const char* b = v.c_str();
    char* e = nullptr;
    errno = 0;
    const double d = std::strtod(b, &e);
    if (v.empty() || e != b + v.size() || errno == ERANGE)
      throw value_error(detail::cat("--lr-schedule ", schedule_, ": ", k, " must be a number, got '", v, "'"));
    if (!std::isfinite(d)) throw value_error(detail::cat("--lr-schedule ", schedule_, ": ", k, " must be finite, got '", v, "'"));
    return d;
  }
  std::string schedule_;
  std::map<std::string, std::string> kv_;
};

}  // namespace detail

/// The schedule names make_lr_schedule_callback understands.
inline std::vector<std::string> lr_schedule_names() {
  std::vector<std::string> r;
  for (const auto& k : detail::lr_schedule_kinds()) r.push_back(k.name);
  return r;
}

/// The callback for a `--lr-schedule` spec (see the top of this file); base_lr is the run's
/// learning rate (--lr): one-cycle's max_lr and cyclic's base_lr by default, the initial rate of
/// the Keras schedules. An unknown name or key, a missing or malformed value: value_error
/// listing the valid ones.
template <class T = float>
std::shared_ptr<Callback<T>> make_lr_schedule_callback(const std::string& spec, double base_lr) {
  if (!std::isfinite(base_lr) || !(base_lr > 0))
    throw value_error(detail::cat("--lr-schedule: the base learning rate must be finite and > 0, got ", base_lr));
  const size_t colon = spec.find(':');
  const std::string name = detail::trim_spaces(spec.substr(0, colon));
  const detail::LrScheduleKind* kind = nullptr;
  for (const auto& k : detail::lr_schedule_kinds())
    if (name == k.name) kind = &k;
  if (!kind)
    throw value_error(detail::cat("--lr-schedule: unknown schedule '", name, "' (valid: ", detail::join_names(lr_schedule_names()), ")"));
  std::map<std::string, std::string> kv;
  const std::string rest = colon == std::string::npos ? std::string() : detail::trim_spaces(spec.substr(colon + 1));
  for (size_t p = 0; !rest.empty() && p <= rest.size();) {
    const size_t q = rest.find(',', p);
    const std::string item = detail::trim_spaces(rest.substr(p, q == std::string::npos ? std::string::npos : q - p));
    p = q == std::string::npos ? rest.size() + 1 : q + 1;
    if (item.empty())
      throw value_error(detail::cat("--lr-schedule ", name, ": empty item in '", spec, "' (items are key=value, separated by commas)"));
    const size_t eq = item.find('=');
    if (eq == std::string::npos)
      throw value_error(detail::cat("--lr-schedule ", name, ": '", item, "' is not key=value (keys: ", detail::join_names(kind->keys), ")"));
    const std::string key = detail::trim_spaces(item.substr(0, eq)), value = detail::trim_spaces(item.substr(eq + 1));
    bool known = false;
    for (const auto& k : kind->keys) known = known || k == key;
    if (!known)
      throw value_error(detail::cat("--lr-schedule ", name, ": unknown key '", key, "' (valid: ", detail::join_names(kind->keys), ")"));
    if (kv.count(key)) throw value_error(detail::cat("--lr-schedule ", name, ": ", key, " is given twice"));
    if (value.empty()) throw value_error(detail::cat("--lr-schedule ", name, ": ", key, " has no value"));
    kv[key] = value;
  }
  const detail::SpecArgs a(name, kv);

  std::shared_ptr<Callback<T>> cb;
  if (name == "one-cycle") {
    std::vector<double> moms = {0.95, 0.85, 0.95};
    if (a.has("moms")) {
      const std::string m = a.text("moms", "");
      if (m == "none" || m == "off") moms.clear();
      else moms = a.list("moms");
      if (moms.size() == 2) moms.push_back(moms[0]);  // "0.95/0.85": back to the start
    }
    cb = std::make_shared<OneCycle<T>>(a.number("max_lr", base_lr), a.number("div", 25.0), a.number("div_final", 1e5),
                                       a.number("pct_start", 0.25), moms);
  } else if (name == "cosine") {
    const double decay_steps = a.steps("decay_steps", a.required("decay_steps"));
    const double alpha = a.number("alpha", 0.0);
    if (a.has("warmup_steps")) {
      const double warm = a.steps("warmup_steps", a.number("warmup_steps", 0));
      const double start = a.number("warmup_start", 0.0);
      detail::check_non_negative("--lr-schedule cosine", "warmup_start", start);
      cb = std::make_shared<KerasSchedule<T>>(std::make_shared<CosineDecay>(start, decay_steps, alpha, base_lr, warm));
    } else {
      if (a.has("warmup_start")) throw value_error("--lr-schedule cosine: warmup_start needs warmup_steps");
      cb = std::make_shared<KerasSchedule<T>>(std::make_shared<CosineDecay>(base_lr, decay_steps, alpha));
    }
    return cb;
  } else if (name == "cosine-restarts") {
    cb = std::make_shared<KerasSchedule<T>>(std::make_shared<CosineDecayRestarts>(
        base_lr, a.steps("first_decay_steps", a.required("first_decay_steps")), a.number("t_mul", 2.0), a.number("m_mul", 1.0),
        a.number("alpha", 0.0)));
  } else if (name == "cyclic") {
    cb = std::make_shared<CyclicLR<T>>(a.number("base_lr", base_lr), a.required("max_lr"), a.number("step_size", 2000.0),
                                       a.text("mode", "triangular"), a.number("gamma", 1.0), a.text("scale_mode", ""));
  } else {  // exponential
    const double rate = a.required("decay_rate");
    detail::check_positive("--lr-schedule exponential", "decay_rate", rate);
    cb = std::make_shared<KerasSchedule<T>>(std::make_shared<ExponentialDecay>(
        base_lr, a.steps("decay_steps", a.required("decay_steps")), rate, a.flag("staircase", false)));
  }
  if (a.has("warmup_steps")) {
    const double warm = a.steps("warmup_steps", a.number("warmup_steps", 0));
    cb = std::make_shared<LinearWarmup<T>>(static_cast<Index>(warm), a.number("warmup_start", 0.0), cb);
  } else if (a.has("warmup_start")) {
    throw value_error(detail::cat("--lr-schedule ", name, ": warmup_start needs warmup_steps"));
  }
  return cb;
}

}  // namespace graft
