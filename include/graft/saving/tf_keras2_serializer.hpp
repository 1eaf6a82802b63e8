// graft — the TF-Keras 2 dialect: a model as TF-Keras 2.x (TensorFlow <= 2.15, `tf_keras`) writes
// it in a .h5, in the spelling every TF-Keras 2.x reads (../shared/KERAS_H5_FORMAT.md section 6:
// string dtypes, initializers as {class_name, config}): InputLayer `batch_input_shape`, list
// inbound nodes [[name, node, tensor, {}]],
// lists of references in input_layers / output_layers, nested models' calls numbered after their
// built-in node, "<layer>/<param>:0" weight names, "iteration:0" + "<Opt>/m/..." optimizer slots.
#pragma once

#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "graft/layers/operation.hpp"
#include "graft/saving/keras_dialect.hpp"

namespace graft {
namespace tf_keras2 {

/// The Keras version graft's TF-Keras 2 files are written as.
constexpr const char* kVersion = "2.15.0";

/// Activations TF-Keras 2.15 knows by these names with the math graft computes. Keras 3 added
/// the others; `hard_sigmoid` changed meaning (TF-Keras 2: clip(0.2 x + 0.5), Keras 3: relu6(x + 3) / 6).
inline bool has_activation(const std::string& a) {
  static const std::set<std::string> known = {"linear", "relu",     "selu",     "elu",  "sigmoid", "tanh", "softmax",
                                              "softplus", "softsign", "swish", "gelu", "exponential", "mish"};
  return known.count(a) != 0;
}

/// A (non-model) layer's config in TF-Keras 2 spelling; unsupported_error when TF-Keras 2 has no
/// way to say what the layer computes.
template <class T>
json layer_config(const Layer<T>& l) {
  json c = l.get_config();
  if (!c.is_object()) return c;
  if (l.class_name() == "InputLayer") {  // `ragged` left out: Keras 3 before 3.9 rejects it
    if (c.contains("batch_shape")) {
      c["batch_input_shape"] = c["batch_shape"];
      c.erase("batch_shape");
    }
    return c;
  }
  if (c.contains("keepdims") && c["keepdims"] == false) c.erase("keepdims");  // TF-Keras before 2.6 rejects it
  static const std::set<std::string> preprocessing = {"RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
                                                      "RandomContrast", "RandomBrightness", "RandomCrop", "Resizing", "CenterCrop"};
  if (preprocessing.count(l.class_name())) {  // keys Keras 3 added; TF-Keras 2.15 rejects unknown ones
    auto refuse = [&](const char* key) {
      throw unsupported_error(graft::detail::cat("layer '", l.name(), "' (", l.class_name(), "): ", key, " = ", c[key].dump(),
                                                 " cannot be written for TF-Keras 2, which has no such option; save it for Keras 3 (keras_version \"3\")"));
    };
    auto drop_if = [&](const char* key, const json& dflt) {
      if (!c.contains(key)) return;
      if (c[key] != dflt) refuse(key);
      c.erase(key);
    };
    drop_if("data_format", "channels_last");
    if (l.class_name() == "RandomContrast") drop_if("value_range", json::array({0, 255}));
    if (l.class_name() == "Resizing") {
      drop_if("pad_to_aspect_ratio", false);
      drop_if("antialias", false);
      c.erase("fill_mode");  // used only with pad_to_aspect_ratio
      c.erase("fill_value");
    }
  }
  if (c.contains("activation") && c["activation"].is_string()) {
    std::string a = c["activation"].get<std::string>();
    if (a == "silu") c["activation"] = a = "swish";
    if (!has_activation(a))
      throw unsupported_error(graft::detail::cat("layer '", l.name(), "' (", l.class_name(), "): activation '", a,
                                                 "' cannot be written for TF-Keras 2, which ",
                                                 a == "hard_sigmoid" ? "computes a different hard_sigmoid" : "has no such activation",
                                                 "; save it for Keras 3 (keras_version \"3\")"));
  }
  return c;
}

template <class T>
json model_config(const Model<T>& m);

namespace detail {

template <class T>
json layer_entry_config(const Layer<T>& l) {
  if (l.is_model()) return model_config(static_cast<const Model<T>&>(l))["config"];
  if (auto op = dynamic_cast<const Operation<T>*>(&l))
    return json{{"name", l.name()}, {"trainable", true}, {"dtype", "float32"}, {"function", op->tf_function()}};
  return layer_config(l);
}

template <class T>
std::string entry_class(const Layer<T>& l) {
  return l.is_operation() ? std::string("TFOpLambda") : l.class_name();
}

/// TF-Keras 2 skips a nested model's built-in node everywhere: a Functional model, or a
/// Sequential one that starts with an InputLayer (tf_keras functional._should_skip_first_node).
template <class T>
bool skips_first_node(const Layer<T>& l) {
  if (!l.is_model()) return false;
  if (auto s = dynamic_cast<const Sequential<T>*>(&l)) return static_cast<bool>(s->input_layer());
  return true;
}

template <class T>
json ref(const typename Model<T>::GraphRef& r) {
  return json::array({r.layer->name(), r.node + (skips_first_node(*r.layer) ? 1 : 0), r.tensor});
}

template <class T>
json functional_config(const Model<T>& m) {
  auto g = m.graph_record();
  json layers = json::array();
  for (const auto& gl : g.layers) {
    json nodes = json::array();
    for (const auto& call : gl.calls) {
      if (gl.layer->is_operation()) {  // TFOpLambda: the first operand, then y as a keyword
        json args = gl.layer->call_arguments();
        if (!args[0].is_null())
          throw unsupported_error(graft::detail::cat("operation '", gl.layer->name(), "' (", gl.layer->class_name(),
                                                     ") with a number as its first operand cannot be written for TF-Keras 2; "
                                                     "save it for Keras 3 (keras_version \"3\")"));
        json e = ref<T>(call.inputs.at(0));
        e.push_back({{"y", args[1].is_null() ? ref<T>(call.inputs.at(1)) : args[1]}, {"name", nullptr}});
        nodes.push_back(json::array({e}));
        continue;
      }
      json node = json::array();
      for (const auto& in : call.inputs) {
        json e = ref<T>(in);
        e.push_back(json::object());
        node.push_back(e);
      }
      nodes.push_back(node);
    }
    layers.push_back({{"class_name", entry_class(*gl.layer)}, {"config", layer_entry_config(*gl.layer)},
                      {"name", gl.layer->name()}, {"inbound_nodes", nodes}});
  }
  json ins = json::array(), outs = json::array();
  for (const auto& r : g.inputs) ins.push_back(ref<T>(r));
  for (const auto& r : g.outputs) outs.push_back(ref<T>(r));
  // TF-Keras 2 stores no `trainable` for a model: its layers' own flags carry a frozen model
  return json{{"name", m.name()}, {"layers", layers}, {"input_layers", ins}, {"output_layers", outs}};
}

template <class T>
json sequential_config(const Sequential<T>& s) {
  json layers = json::array();
  auto in = s.input_layer();
  if (in) layers.push_back({{"class_name", "InputLayer"}, {"config", layer_config(*in)}});
  for (const auto& l : s.layers()) {
    json c = layer_entry_config(*l);
    // TF-Keras repeats the input shape on the first layer
    if (in && layers.size() == 1 && !l->is_model() && c.is_object()) c["batch_input_shape"] = graft::detail::shape_json(in->batch_shape());
    layers.push_back({{"class_name", l->class_name()}, {"config", c}});
  }
  return json{{"name", s.name()}, {"layers", layers}};
}

/// TF-Keras 2's names for optimizer slots ("m", "v", "vhat"; RMSprop and Adagrad keep theirs).
inline std::string slot_name(const std::string& s) {
  if (s == "momentum") return "m";
  if (s == "velocity") return "v";
  if (s == "velocity_hat") return "vhat";
  return s;
}

}  // namespace detail

template <class T>
json model_config(const Model<T>& m) {
  if (auto s = dynamic_cast<const Sequential<T>*>(&m)) return {{"class_name", "Sequential"}, {"config", detail::sequential_config(*s)}};
  return {{"class_name", "Functional"}, {"config", detail::functional_config(m)}};
}

template <class T>
json training_config(const Model<T>& m) {
  const auto& cs = m.compile_state();
  json tc = graft::detail::training_config_common(m, false);
  json oc = cs.optimizer->get_config();
  tc["sample_weight_mode"] = nullptr;  // Keras 2.x indexes it directly
  tc["optimizer_config"] = {{"class_name", cs.optimizer->class_name()}, {"config", oc}};
  return tc;
}

/// "<layer>/<param>:0", TF-Keras' variable names (paths keep their nested-model prefix only where
/// two weights of one group would otherwise share a name).
inline std::string weight_name(const std::string& path, bool short_form) {
  if (!short_form) return path + ":0";
  size_t s = path.rfind('/');
  size_t s2 = s == std::string::npos || s == 0 ? std::string::npos : path.rfind('/', s - 1);
  return (s2 == std::string::npos ? path : path.substr(s2 + 1)) + ":0";
}

/// optimizer.variables() as TF-Keras >= 2.11 lists them: "iteration:0", then the slots,
/// "<optimizer>/<slot>/<layer>/<param>:0" (the learning rate is not among them).
template <class T>
std::vector<OptimizerVariable<T>> optimizer_variables(Model<T>& m, const std::unordered_map<Param<T>*, std::string>& paths) {
  auto& opt = *m.compile_state().optimizer;
  std::vector<OptimizerVariable<T>> r;
  r.push_back({OptimizerVariable<T>::iteration, "iteration:0", nullptr});
  for (auto& v : opt.slot_variables()) {
    auto it = paths.find(v.param);
    std::string p = it == paths.end() ? v.param->name : weight_name(it->second, true);
    r.push_back({OptimizerVariable<T>::slot, opt.name() + "/" + detail::slot_name(v.slot) + "/" + p, v.value});
  }
  return r;
}

}  // namespace tf_keras2
}  // namespace graft
