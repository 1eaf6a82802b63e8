// graft — the Keras 3 dialect: a model as Keras 3.x itself writes it in a legacy .h5 (and, the
// same objects, in a .keras archive's config.json): DTypePolicy objects, module-qualified
// initializers, InputLayer `batch_shape`, inbound nodes as {"args", "kwargs"} with
// __keras_tensor__ references, a single input or output spelled as one ["name", 0, 0]. Checked key
// by key against Keras' own files (tests/keras3/check_keras3.py). Left out on purpose, at their
// defaults, because Keras 3 releases before they existed reject them: InputLayer `optional` and
// `ragged`, Dense `quantization_config`, BatchNormalization `synchronized` and `renorm*`.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "graft/saving/keras_dialect.hpp"

namespace graft {
namespace keras3 {

/// The Keras version graft's Keras 3 files are written as (the layout checked against it).
constexpr const char* kVersion = "3.15.1";

inline json dtype_policy(const std::string& name) {
  return json{{"module", "keras"}, {"class_name", "DTypePolicy"}, {"config", {{"name", name}}}, {"registered_name", nullptr}};
}

/// {"class_name", "config"} of an initializer / regularizer / constraint, with Keras 3's module.
inline json keras_object(const json& o, const char* module) {
  if (!o.is_object() || !o.contains("class_name")) return o;
  json r = {{"module", module}, {"class_name", o["class_name"]}, {"config", o.value("config", json::object())},
            {"registered_name", o.contains("registered_name") ? o["registered_name"] : json(nullptr)}};
  return r;
}

inline bool ends_with(const std::string& s, const char* suffix) {
  std::string x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

/// A (non-model) layer's config in Keras 3 spelling, from graft's neutral config.
template <class T>
json layer_config(const Layer<T>& l) {
  json c = l.get_config();
  if (!c.is_object()) return c;
  if (l.class_name() == "InputLayer") {
    if (c.contains("batch_input_shape")) {
      c["batch_shape"] = c["batch_input_shape"];
      c.erase("batch_input_shape");
    }
    return c;
  }
  c.erase("batch_input_shape");
  c.erase("input_shape");
  const std::string cls = l.class_name();
  if (cls.rfind("SpatialDropout", 0) == 0) {
    // Keras 3's spatial dropouts take no `trainable` and keep a plain dtype string
    c.erase("trainable");
    if (cls != "SpatialDropout1D") c["data_format"] = "channels_last";
    return c;
  }
  if (cls == "LeakyReLU" && c.contains("alpha")) {  // Keras 3 renamed it
    c["negative_slope"] = c["alpha"];
    c.erase("alpha");
  }
  if (cls == "Dense" && c.contains("activity_regularizer") && c["activity_regularizer"].is_null())
    c.erase("activity_regularizer");  // Keras 3's Dense config has no such key
  for (auto it = c.begin(); it != c.end(); ++it) {
    const std::string& k = it.key();
    if (k == "dtype" && it->is_string()) *it = dtype_policy(it->get<std::string>());
    else if (ends_with(k, "_initializer")) *it = keras_object(*it, "keras.initializers");
    else if (ends_with(k, "_regularizer")) *it = keras_object(*it, "keras.regularizers");
    else if (ends_with(k, "_constraint")) *it = keras_object(*it, "keras.constraints");
  }
  return c;
}

template <class T>
json model_config(const Model<T>& m);

namespace detail {

template <class T>
json functional_config(const Model<T>& m, bool archive);
template <class T>
json sequential_config(const Sequential<T>& s, bool archive);

/// Keras' build_config input_shape: the shape (or list of shapes) the layer was built for.
template <class T>
json build_input_shape(const Layer<T>& l) {
  const auto& shapes = l.build_input_shapes();
  if (shapes.empty()) return nullptr;
  if (shapes.size() == 1) return graft::detail::shape_json(shapes[0]);
  json a = json::array();
  for (const auto& s : shapes) a.push_back(graft::detail::shape_json(s));
  return a;
}

/// A layer as it appears inside a model config: {"class_name", "config"} in a legacy .h5; in a
/// .keras archive (`archive`) also "module", "registered_name" and "build_config", as
/// keras.saving.serialize_keras_object writes them.
template <class T>
json layer_entry(const Layer<T>& l, bool archive) {
  json e;
  if (l.is_model()) {
    auto s = dynamic_cast<const Sequential<T>*>(&l);
    const auto& m = static_cast<const Model<T>&>(l);
    e = {{"class_name", s ? "Sequential" : "Functional"}, {"config", s ? sequential_config(*s, archive) : functional_config(m, archive)}};
    if (archive) {
      e["module"] = s ? "keras" : "keras.src.models.functional";
      e["registered_name"] = s ? json(nullptr) : json("Functional");
      json shape = nullptr;
      if (s && s->input_layer()) shape = graft::detail::shape_json(s->input_layer()->batch_shape());
      e["build_config"] = {{"input_shape", shape}};
    }
    return e;
  }
  if (l.is_operation()) {  // keras.src.ops.numpy: a name is its whole config
    e = {{"class_name", l.class_name()}, {"config", {{"name", l.name()}}}};
    // The module in a legacy .h5 too: Keras 3 writes it there without one and then cannot load its
    // own file (it reads {"class_name": "Add"} as the Add merge layer and refuses `x + 3.0`'s
    // number); with the module, Keras loads the operation.
    e["module"] = "keras.src.ops.numpy";
    e["registered_name"] = l.class_name();
    return e;
  }
  e = {{"class_name", l.class_name()}, {"config", layer_config(l)}};
  if (archive) {
    // layers keras.applications defines for itself live in their application's module
    static const std::map<std::string, std::string> own = {{"LayerScale", "keras.src.applications.convnext"},
                                                           {"CustomScaleLayer", "keras.src.applications.inception_resnet_v2"}};
    auto it = own.find(l.class_name());
    bool builtin = LayerRegistry<T>::instance().is_builtin(l.class_name());
    e["module"] = it != own.end() ? json(it->second) : builtin ? json("keras.layers") : json(nullptr);
    e["registered_name"] = builtin && it == own.end() ? json(nullptr) : json(l.class_name());
    if (l.class_name() != "InputLayer") e["build_config"] = {{"input_shape", build_input_shape(l)}};
  }
  return e;
}

/// Keras 3 numbers a nested Functional model's calls from 1 in input_layers / output_layers
/// (its built-in node comes first) and from 0 in inbound nodes; Sequential models from 0.
template <class T>
json ref(const typename Model<T>::GraphRef& r, bool io) {
  int idx = r.node + (io && r.layer->is_model() && r.layer->class_name() == "Functional" ? 1 : 0);
  return json::array({r.layer->name(), idx, r.tensor});
}

template <class T>
json keras_tensor(const typename Model<T>::GraphRef& r) {
  return json{{"class_name", "__keras_tensor__"},
              {"config", {{"shape", graft::detail::shape_json(r.shape)}, {"dtype", "float32"}, {"keras_history", ref<T>(r, false)}}}};
}

template <class T>
json io_refs(const std::vector<typename Model<T>::GraphRef>& rs, bool listed) {
  if (rs.size() == 1 && !listed) return ref<T>(rs[0], true);
  json a = json::array();
  for (const auto& r : rs) a.push_back(ref<T>(r, true));
  return a;
}

template <class T>
json functional_config(const Model<T>& m, bool archive) {
  auto g = m.graph_record();
  json layers = json::array();
  for (const auto& gl : g.layers) {
    json nodes = json::array();
    for (const auto& call : gl.calls) {
      if (gl.layer->is_operation()) {  // tensors and numbers, as positional arguments
        json args = gl.layer->call_arguments();
        size_t k = 0;
        for (auto& a : args)
          if (a.is_null()) a = keras_tensor<T>(call.inputs.at(k++));
        nodes.push_back({{"args", args}, {"kwargs", json::object()}});
        continue;
      }
      json arg;
      if (call.list_call || call.inputs.size() > 1) {
        arg = json::array();
        for (const auto& in : call.inputs) arg.push_back(keras_tensor<T>(in));
      } else {
        arg = keras_tensor<T>(call.inputs.at(0));
      }
      // Keras 3 records the `mask` argument of layers whose call takes one
      json kwargs = json::object();
      const std::string cls = gl.layer->class_name();
      if (gl.layer->is_model() || cls == "BatchNormalization" || cls == "Softmax") kwargs["mask"] = nullptr;
      nodes.push_back({{"args", json::array({arg})}, {"kwargs", kwargs}});
    }
    json e = layer_entry(*gl.layer, archive);
    e["name"] = gl.layer->name();
    e["inbound_nodes"] = nodes;
    layers.push_back(e);
  }
  return json{{"name", m.name()}, {"trainable", m.trainable()}, {"layers", layers},
              {"input_layers", io_refs<T>(g.inputs, m.inputs_listed())}, {"output_layers", io_refs<T>(g.outputs, m.outputs_listed())}};
}

template <class T>
json sequential_config(const Sequential<T>& s, bool archive) {
  json layers = json::array();
  if (auto in = s.input_layer()) layers.push_back(layer_entry(*in, archive));
  for (const auto& l : s.layers()) layers.push_back(layer_entry(*l, archive));
  json c = {{"name", s.name()}, {"trainable", s.trainable()}, {"dtype", dtype_policy("float32")}, {"layers", layers}};
  if (auto in = s.input_layer()) c["build_input_shape"] = graft::detail::shape_json(in->batch_shape());
  return c;
}

}  // namespace detail

/// {"class_name": "Sequential"|"Functional", "config": ...} as Keras 3 writes model_config.
template <class T>
json model_config(const Model<T>& m) {
  return detail::layer_entry(m, false);
}

/// training_config as Keras 3 writes it (compile arguments + optimizer_config).
template <class T>
json training_config(const Model<T>& m) {
  const auto& cs = m.compile_state();
  json tc = graft::detail::training_config_common(m, true);
  tc["run_eagerly"] = false;
  tc["steps_per_execution"] = 1;
  tc["jit_compile"] = false;
  json oc = cs.optimizer->get_config();
  oc["loss_scale_factor"] = nullptr;
  oc["gradient_accumulation_steps"] = nullptr;
  tc["optimizer_config"] = {{"class_name", cs.optimizer->class_name()}, {"config", oc}};
  return tc;
}

/// config.json of a .keras archive: the model as keras.saving.serialize_keras_object writes it,
/// with compile_config when the model is compiled.
template <class T>
json archive_config(const Model<T>& m) {
  json c = detail::layer_entry(m, true);
  if (m.compiled()) {
    json tc = training_config(m);
    json cc = {{"optimizer", {{"module", "keras.optimizers"}, {"class_name", tc["optimizer_config"]["class_name"]},
                              {"config", tc["optimizer_config"]["config"]}, {"registered_name", nullptr}}}};
    for (const char* k : {"loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly", "steps_per_execution", "jit_compile"})
      cc[k] = tc[k];
    c["compile_config"] = cc;
  }
  return c;
}

/// Weight names ("<model>/<layer>/<param>", nested models inside their path) as Keras 3 writes
/// variable paths; datasets are found by these names and assigned by position.
template <class T>
std::string weight_name(const std::string& path) {
  return path;
}

/// optimizer.variables in Keras 3 order and names: iteration, learning_rate (unless a schedule
/// drives it), then the slots, "<optimizer>/<variable path with _>_<slot>".
template <class T>
std::vector<OptimizerVariable<T>> optimizer_variables(Model<T>& m, const std::unordered_map<Param<T>*, std::string>& paths) {
  auto& opt = *m.compile_state().optimizer;
  const std::string on = opt.name();
  std::vector<OptimizerVariable<T>> r;
  r.push_back({OptimizerVariable<T>::iteration, on + "/iteration", nullptr});
  if (!opt.schedule() && opt.legacy_decay() == 0) r.push_back({OptimizerVariable<T>::learning_rate, on + "/learning_rate", nullptr});
  for (auto& v : opt.slot_variables()) {
    auto it = paths.find(v.param);
    std::string p = it == paths.end() ? v.param->name : it->second;
    for (auto& c : p)
      if (c == '/') c = '_';
    r.push_back({OptimizerVariable<T>::slot, on + "/" + p + "_" + v.slot, v.value});
  }
  return r;
}

}  // namespace keras3
}  // namespace graft
