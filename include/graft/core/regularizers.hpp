// graft — weight regularizers (L1/L2) and constraints (MaxNorm, NonNeg, UnitNorm, MinMaxNorm).
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"

namespace graft {

/// Keras L1 / L2 / L1L2 regularizer: penalty l1*sum|w| + l2*sum w^2, added to the training loss.
struct Regularizer {
  double l1 = 0.0, l2 = 0.0;
  /// The Keras class it was given as ("L1", "L2" or "L1L2"), written back the same way.
  std::string keras_class = "L1L2";
  bool active() const { return l1 != 0.0 || l2 != 0.0; }

  static Regularizer from_json(const nlohmann::json& j, const std::string& where) {
    Regularizer r;
    if (j.is_null()) return r;
    std::string cls;
    nlohmann::json cfg = nlohmann::json::object();
    if (j.is_string()) {
      cls = j.get<std::string>();
    } else if (j.is_object()) {
      if (j.contains("class_name")) cls = j["class_name"].get<std::string>();
      else if (j.contains("name")) cls = j["name"].get<std::string>();  // Keras 1
      cfg = j.contains("config") ? j["config"] : j;
    }
    auto num = [&](const char* k, double d) {
      return cfg.contains(k) && cfg[k].is_number() ? cfg[k].get<double>() : d;
    };
    if (cls == "L1" || cls == "l1") {
      r.l1 = num("l1", 0.01);
      r.keras_class = "L1";
    } else if (cls == "L2" || cls == "l2") {
      r.l2 = num("l2", 0.01);
      r.keras_class = "L2";
    } else if (cls == "L1L2" || cls == "l1_l2" || cls == "L1L2Regularizer" ||
               cls == "WeightRegularizer") {  // Keras 1.0/1.1 name
      r.l1 = num("l1", 0.0);
      r.l2 = num("l2", 0.0);
    } else {
      throw unsupported_error(detail::cat(where, ": regularizer '", cls, "' is not supported"));
    }
    return r;
  }
  nlohmann::json to_json() const {
    if (!active()) return nullptr;
    if (keras_class == "L1" && l2 == 0.0) return {{"class_name", "L1"}, {"config", {{"l1", l1}}}};
    if (keras_class == "L2" && l1 == 0.0) return {{"class_name", "L2"}, {"config", {{"l2", l2}}}};
    return {{"class_name", "L1L2"}, {"config", {{"l1", l1}, {"l2", l2}}}};
  }
  template <class T>
  double penalty(const Tensor<T>& w) const {
    double s = 0;
    if (l1 != 0.0) s += l1 * static_cast<double>(w.array().abs().sum());
    if (l2 != 0.0) s += l2 * static_cast<double>(w.array().square().sum());
    return s;
  }
  /// grad += d penalty / dw
  template <class T>
  void add_gradient(const Tensor<T>& w, Tensor<T>& g) const {
    if (l1 != 0.0) g.array() += static_cast<T>(l1) * w.array().sign();
    if (l2 != 0.0) g.array() += static_cast<T>(2 * l2) * w.array();
  }
};

/// Keras weight constraint, applied after each optimizer step.
struct Constraint {
  enum Kind { none, max_norm, non_neg, unit_norm, min_max_norm } kind = none;
  double min_value = 0.0, max_value = 0.0, rate = 1.0;
  std::vector<int> axes{0};

  bool active() const { return kind != none; }

  static Constraint from_json(const nlohmann::json& j, const std::string& where) {
    Constraint c;
    if (j.is_null()) return c;
    std::string cls = j.is_string() ? j.get<std::string>() : j.value("class_name", std::string());
    nlohmann::json cfg = j.is_object() && j.contains("config") ? j["config"] : nlohmann::json::object();
    auto num = [&](const char* k, double d) {
      return cfg.contains(k) && cfg[k].is_number() ? cfg[k].get<double>() : d;
    };
    if (cfg.contains("axis")) {
      c.axes.clear();
      if (cfg["axis"].is_array())
        for (auto& a : cfg["axis"]) c.axes.push_back(a.get<int>());
      else
        c.axes.push_back(cfg["axis"].get<int>());
    }
    if (cls == "MaxNorm" || cls == "max_norm") {
      c.kind = max_norm;
      c.max_value = num("max_value", 2.0);
    } else if (cls == "NonNeg" || cls == "non_neg") {
      c.kind = non_neg;
    } else if (cls == "UnitNorm" || cls == "unit_norm") {
      c.kind = unit_norm;
    } else if (cls == "MinMaxNorm" || cls == "min_max_norm") {
      c.kind = min_max_norm;
      c.min_value = num("min_value", 0.0);
      c.max_value = num("max_value", 1.0);
      c.rate = num("rate", 1.0);
    } else {
      throw unsupported_error(detail::cat(where, ": constraint '", cls, "' is not supported"));
    }
    return c;
  }
  nlohmann::json to_json() const {
    auto ax = axes.size() == 1 ? nlohmann::json(axes[0]) : nlohmann::json(axes);
    switch (kind) {
      case none: return nullptr;
      case max_norm: return {{"class_name", "MaxNorm"}, {"config", {{"max_value", max_value}, {"axis", ax}}}};
      case non_neg: return {{"class_name", "NonNeg"}, {"config", nlohmann::json::object()}};
      case unit_norm: return {{"class_name", "UnitNorm"}, {"config", {{"axis", ax}}}};
      case min_max_norm:
        return {{"class_name", "MinMaxNorm"},
                {"config", {{"min_value", min_value}, {"max_value", max_value}, {"rate", rate}, {"axis", ax}}}};
    }
    return nullptr;
  }

  /// Apply in place. Norms are taken over `axes` (Keras: sqrt(sum(w^2, axis, keepdims))).
  template <class T>
  void apply(Tensor<T>& w) const {
    if (kind == none) return;
    if (kind == non_neg) {
      w.array() = w.array().max(T(0));
      return;
    }
    const Shape& s = w.shape();
    const int r = static_cast<int>(s.size());
    std::vector<bool> reduce(static_cast<size_t>(r), false);
    for (int a : axes) reduce[static_cast<size_t>(normalize_axis(a, s.size(), "constraint"))] = true;
    // Map every element to the index of its norm group (the non-reduced coordinates).
    Index groups = 1;
    for (int i = 0; i < r; ++i)
      if (!reduce[static_cast<size_t>(i)]) groups *= s[static_cast<size_t>(i)];
    std::vector<double> sq(static_cast<size_t>(groups), 0.0);
    auto group_of = [&](Index flat) {
      Index g = 0, mul = 1;
      for (int i = r - 1; i >= 0; --i) {
        Index d = s[static_cast<size_t>(i)];
        Index c = flat % d;
        flat /= d;
        if (!reduce[static_cast<size_t>(i)]) {
          g += c * mul;
          mul *= d;
        }
      }
      return g;
    };
    for (Index i = 0; i < w.size(); ++i) sq[static_cast<size_t>(group_of(i))] += double(w[i]) * double(w[i]);
    for (Index i = 0; i < w.size(); ++i) {
      double n = std::sqrt(sq[static_cast<size_t>(group_of(i))]);
      double eps = 1e-7, f = 1.0;
      if (kind == max_norm) f = std::min(n, max_value) / (eps + n);
      else if (kind == unit_norm) f = 1.0 / (eps + n);
      else f = (rate * std::min(std::max(n, min_value), max_value) + (1 - rate) * n) / (eps + n);
      w[i] = static_cast<T>(w[i] * f);
    }
  }
};

}  // namespace graft
