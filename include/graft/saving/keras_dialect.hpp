// graft — which Keras generation a file is written for, and what every dialect's writer shares.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <unordered_map>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/layers/registry.hpp"
#include "graft/model/model.hpp"

namespace graft {

/// The Keras generation a saved file is meant for.
enum class KerasDialect {
  keras3,    ///< what Keras 3.x writes (and TensorFlow >= 2.16 loads)
  tf_keras2  ///< what TF-Keras 2.x writes (TensorFlow <= 2.15, the `tf_keras` package)
};

inline const char* dialect_name(KerasDialect d) { return d == KerasDialect::keras3 ? "Keras 3" : "TF-Keras 2"; }

/// "3" / "3.x" -> keras3, "2" / "2.x" -> tf_keras2; anything else is a value_error naming it.
inline KerasDialect parse_keras_version(const std::string& v) {
  if (v == "3" || v.rfind("3.", 0) == 0) return KerasDialect::keras3;
  if (v == "2" || v.rfind("2.", 0) == 0) return KerasDialect::tf_keras2;
  throw value_error(detail::cat("keras_version '", v, "': graft writes Keras 3 (\"3\") or TF-Keras 2 (\"2\") files"));
}

/// The dialect a model is saved in when none is asked for: the generation of the file it was
/// loaded from (Keras 1 and 2 files go to TF-Keras 2, the closest that still loads them), Keras 3
/// for models built in graft.
template <class T>
KerasDialect default_dialect(const Model<T>& m) {
  const std::string& v = m.source_keras_version();
  if (v.empty() || v.rfind("3", 0) == 0) return KerasDialect::keras3;
  return KerasDialect::tf_keras2;
}

/// One optimizer variable as a dialect names it in `optimizer_weights`.
template <class T>
struct OptimizerVariable {
  enum Kind { iteration, learning_rate, slot } kind;
  std::string name;
  const Tensor<T>* value = nullptr;  ///< slots only
};

namespace detail {

/// Path of each weight of a model for names in files: "<layer>/<param>" for plain layers,
/// "<model>/<layer>/.../<param>" inside nested models.
template <class T>
void weight_paths(Model<T>& m, const std::string& prefix, std::unordered_map<Param<T>*, std::string>& out) {
  for (const auto& l : m.layers()) {
    std::string base = prefix.empty() ? l->name() : prefix + "/" + l->name();
    if (l->is_model()) {
      weight_paths(static_cast<Model<T>&>(*l), base, out);
      continue;
    }
    for (Param<T>* p : l->weights())
      if (!out.count(p)) out[p] = base + "/" + p->name;
  }
}

/// Every layer inside `m` (nested models too) must be one graft can read back: a built-in
/// layer, or a custom one registered with graft::register_layer. Checked before anything is
/// written, so a file graft writes is always a file graft reads.
template <class T>
void check_serializable(const Model<T>& m, KerasDialect d) {
  auto& reg = LayerRegistry<T>::instance();
  for (Layer<T>* l : m.unique_layers())
    if (!l->is_operation() && !reg.contains(l->class_name()))
      throw unsupported_error(cat("layer '", l->name(), "' (", l->class_name(), ") cannot be saved in the ", dialect_name(d),
                                  " dialect: its class is not registered (graft::register_layer), so no file could "
                                  "describe it in a way graft or Keras reads back"));
}

/// Metric identifiers as Keras 3 writes them in training_config: the names passed to compile().
/// TF-Keras 2's {"class_name": "MeanMetricWrapper", "config": {"name": ..., "fn": ...}} becomes
/// its name when that is a Keras identifier, else its function.
inline json keras3_metric(const json& id) {
  if (!id.is_object() || !id.contains("class_name")) return id;
  const json cfg = id.contains("config") && id["config"].is_object() ? id["config"] : json::object();
  std::string name = cfg.contains("name") && cfg["name"].is_string() ? cfg["name"].get<std::string>() : "";
  std::string fn = cfg.contains("fn") && cfg["fn"].is_string() ? cfg["fn"].get<std::string>() : "";
  if (id["class_name"] == "MeanMetricWrapper" || !fn.empty()) {
    if (name == "accuracy" || name == "acc") return "accuracy";
    return fn.empty() ? json(name) : json(fn);
  }
  return id;
}

/// The compile arguments every dialect stores: loss, loss_weights, metrics, weighted_metrics.
template <class T>
json training_config_common(const Model<T>& model, bool keras3) {
  const auto& cs = model.compile_state();
  json tc = json::object();
  json loss = json::array();
  for (auto& l : cs.losses) loss.push_back(l ? l->to_json() : json(nullptr));
  tc["loss"] = loss.size() == 1 ? loss[0] : loss;
  bool unit = true;
  for (double w : cs.loss_weights) unit = unit && w == 1.0;
  tc["loss_weights"] = unit ? json(nullptr) : json(cs.loss_weights);
  json metrics = json::array();
  bool any = false;
  for (auto& per_output : cs.metrics) {
    json list = json::array();
    for (auto& m : per_output) list.push_back(keras3 ? keras3_metric(m) : m);
    any = any || !list.empty();
    metrics.push_back(list);
  }
  tc["metrics"] = !any ? json(nullptr) : metrics.size() == 1 ? metrics[0] : metrics;
  tc["weighted_metrics"] = nullptr;
  return tc;
}

}  // namespace detail
}  // namespace graft
