// graft — Keras model configs (JSON) to models and back, for the Keras 1, Keras 2, TF-Keras and
// Keras 3 dialects; model_from_json; clone_model.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "graft/core/limits.hpp"
#include "graft/layers/operation.hpp"
#include "graft/layers/registry.hpp"
#include "graft/model/model.hpp"
#include "graft/saving/keras3_serializer.hpp"
#include "graft/saving/tf_keras2_serializer.hpp"

namespace graft {

namespace detail {

/// Keras 1 / alias class names -> the names graft registers.
inline std::string canonical_class_name(const std::string& c) {
  static const std::map<std::string, std::string> aliases = {
      {"Model", "Functional"},
      {"Convolution1D", "Conv1D"},
      {"Convolution2D", "Conv2D"},
      {"Conv2DTranspose", "Conv2DTranspose"},
      {"Deconvolution2D", "Conv2DTranspose"},
      {"SeparableConvolution2D", "SeparableConv2D"},
      {"MaxPool1D", "MaxPooling1D"},
      {"MaxPool2D", "MaxPooling2D"},
      {"AvgPool1D", "AveragePooling1D"},
      {"AvgPool2D", "AveragePooling2D"},
      {"GlobalAvgPool1D", "GlobalAveragePooling1D"},
      {"GlobalAvgPool2D", "GlobalAveragePooling2D"},
      {"GlobalMaxPool1D", "GlobalMaxPooling1D"},
      {"GlobalMaxPool2D", "GlobalMaxPooling2D"},
  };
  auto it = aliases.find(c);
  return it == aliases.end() ? c : it->second;
}

/// Nesting depth of JSON text (arrays and objects), scanned without parsing: nlohmann's parser
/// does not recurse, but copying, comparing and dumping a document do, so a 100 000-deep config
/// would overflow the stack long after parsing succeeded. Throws format_error naming `where` and
/// limits().max_config_depth as soon as the depth passes it.
template <class It>
void check_json_text_depth(It begin, It end, const std::string& where) {
  const int max = limits().max_config_depth;
  int depth = 0;
  bool in_string = false, escaped = false;
  for (It it = begin; it != end; ++it) {
    const char c = *it;
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max)
        throw format_error(cat(where, ": the JSON nests more than ", max, " levels deep, ", limit_hint("max_config_depth", max)));
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

/// Nesting depth of a parsed document, without recursion (a document built in code can be
/// arbitrarily deep too).
inline void check_json_depth(const json& root, const std::string& where) {
  const int max = limits().max_config_depth;
  std::vector<std::pair<const json*, int>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [v, d] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    if (d > max) throw format_error(cat(where, ": the JSON nests more than ", max, " levels deep, ", limit_hint("max_config_depth", max)));
    for (const auto& e : *v) stack.push_back({&e, d + 1});
  }
}

/// json::parse with the depth checked first; format_error naming `where` when it does not parse.
template <class It>
json parse_json_text(It begin, It end, const std::string& where) {
  check_json_text_depth(begin, end, where);
  try {
    return json::parse(begin, end);
  } catch (const json::exception& e) {
    throw format_error(cat(where, " is not valid JSON: ", e.what()));
  }
}
inline json parse_json_text(const std::string& text, const std::string& where) {
  return parse_json_text(text.begin(), text.end(), where);
}

/// A resolved reference [layer_name, node_index, tensor_index] in a Functional config.
struct TensorRef {
  std::string layer;
  int node = 0;
  int tensor = 0;
};

inline bool is_ref_triple(const json& v) {
  return v.is_array() && (v.size() == 3 || v.size() == 4) && v[0].is_string() && v[1].is_number_integer() &&
         v[2].is_number_integer();
}

/// Flatten input_layers / output_layers (a bare triple, a list of triples, or nested lists/dicts).
inline void collect_refs(const json& v, std::vector<TensorRef>& out, const std::string& where) {
  if (is_ref_triple(v)) {
    out.push_back({v[0].get<std::string>(), v[1].get<int>(), v[2].get<int>()});
  } else if (v.is_array()) {
    for (const auto& e : v) collect_refs(e, out, where);
  } else if (v.is_object()) {
    for (const auto& kv : v.items()) collect_refs(kv.value(), out, where);
  } else {
    throw format_error(cat(where, ": cannot read tensor reference ", v.dump()));
  }
}

/// Inputs of one inbound node: legacy list [[name, node, tensor, kwargs], ...] or Keras 3
/// {"args": [...], "kwargs": {...}} with __keras_tensor__ objects.
/// For an operation node (`op_args` non-null) the positional arguments may be several, tensors or
/// numbers: *op_args receives them with null for each tensor, in order (TF-Keras' TFOpLambda keeps
/// its second operand in the `y` keyword).
inline void node_refs(const json& node, std::vector<TensorRef>& refs, bool& list_call, bool& legacy,
                      const std::string& where, json* op_args = nullptr) {
  refs.clear();
  list_call = false;
  if (node.is_array()) {
    legacy = true;
    for (const auto& e : node) {
      if (!is_ref_triple(e)) throw format_error(cat(where, ": cannot read inbound node entry ", e.dump()));
      refs.push_back({e[0].get<std::string>(), e[1].get<int>(), e[2].get<int>()});
    }
    list_call = refs.size() > 1;
    if (op_args) {
      if (node.size() != 1) throw unsupported_error(cat(where, ": an operation called on ", node.size(), " tensors"));
      const json kw = node[0].size() == 4 && node[0][3].is_object() ? node[0][3] : json::object();
      *op_args = json::array({nullptr});
      for (const auto& kv : kw.items()) {
        if (kv.key() == "name") continue;
        if (kv.key() != "y")
          throw unsupported_error(cat(where, ": operation keyword argument '", kv.key(), "' is not supported"));
        if (kv.value().is_number()) {
          op_args->push_back(kv.value());
        } else if (is_ref_triple(kv.value())) {
          op_args->push_back(nullptr);
          refs.push_back({kv.value()[0].get<std::string>(), kv.value()[1].get<int>(), kv.value()[2].get<int>()});
        } else {
          throw unsupported_error(cat(where, ": operation argument y = ", kv.value().dump().substr(0, 80), " is not supported"));
        }
      }
      list_call = false;
    }
    return;
  }
  if (!node.is_object() || !node.contains("args"))
    throw format_error(cat(where, ": cannot read inbound node ", node.dump().substr(0, 200)));
  legacy = false;
  std::function<void(const json&)> walk = [&](const json& v) {
    if (v.is_object() && v.value("class_name", "") == "__keras_tensor__") {
      const json& h = v.at("config").at("keras_history");
      if (!is_ref_triple(h)) throw format_error(cat(where, ": bad keras_history ", h.dump()));
      refs.push_back({h[0].get<std::string>(), h[1].get<int>(), h[2].get<int>()});
    } else if (v.is_array()) {
      for (const auto& e : v) walk(e);
    } else if (v.is_object() && v.contains("config") && v.value("class_name", "") == "__tuple__") {
      walk(v["config"].contains("value") ? v["config"]["value"] : v["config"]);
    }
  };
  const json& args = node["args"];
  if (!args.is_array() || args.empty()) throw format_error(cat(where, ": inbound node without arguments"));
  if (op_args) {
    *op_args = json::array();
    for (const auto& a : args) {
      if (a.is_number()) {
        op_args->push_back(a);
        continue;
      }
      size_t before = refs.size();
      walk(a);
      if (refs.size() != before + 1)
        throw unsupported_error(cat(where, ": operation argument ", a.dump().substr(0, 120), " is neither a tensor nor a number"));
      op_args->push_back(nullptr);
    }
  } else {
    if (args.size() > 1)
      throw unsupported_error(cat(where, ": layer calls with several positional arguments are not supported"));
    list_call = args[0].is_array();
    walk(args[0]);
  }
  if (node.contains("kwargs") && node["kwargs"].is_object())
    for (const auto& kv : node["kwargs"].items()) {
      std::vector<TensorRef> before = refs;
      walk(kv.value());
      if (refs.size() != before.size())
        throw unsupported_error(cat(where, ": tensors passed as keyword argument '", kv.key(), "' are not supported"));
    }
}

}  // namespace detail

template <class T>
std::shared_ptr<Model<T>> model_from_config(const json& j, const std::string& context = {});

namespace detail {

template <class T>
std::shared_ptr<Model<T>> sequential_from_config(const json& cfg, const std::string& name_hint, const std::string& ctx);
template <class T>
std::shared_ptr<Model<T>> functional_from_config(const json& cfg, const std::string& ctx);

inline std::string ctx_prefix(const std::string& ctx) { return ctx.empty() ? std::string() : ctx + ": "; }

/// Counts models nested in models while a config is read (the recursion of layer_from_entry):
/// deeper than limits().max_config_depth is a format_error, not a stack overflow.
class NestedModelDepth {
 public:
  NestedModelDepth(const std::string& ctx, const std::string& name) {
    thread_local int depth_storage = 0;
    depth_ = &depth_storage;
    if (++*depth_ > limits().max_config_depth) {
      --*depth_;
      throw format_error(cat(ctx_prefix(ctx), "model '", name, "': models are nested more than ", limits().max_config_depth,
                             " deep, ", limit_hint("max_config_depth", limits().max_config_depth)));
    }
  }
  ~NestedModelDepth() { --*depth_; }
  NestedModelDepth(const NestedModelDepth&) = delete;
  NestedModelDepth& operator=(const NestedModelDepth&) = delete;

 private:
  int* depth_;
};

/// Refuse a model config listing more than limits().max_layers layers.
inline void check_layer_count(const json& layers, const std::string& where) {
  if (layers.is_array() && static_cast<std::int64_t>(layers.size()) > limits().max_layers)
    throw format_error(cat(where, ": ", layers.size(), " layers, ", limit_hint("max_layers", limits().max_layers)));
}

/// An operation node of a functional config: Keras 3 writes it with module keras.src.ops.* in a
/// .keras archive, and in a legacy .h5 as a bare {"class_name": "Add", "config": {"name": ...}}
/// (a layer's config always has more than a name); TF-Keras 2 as a TFOpLambda layer. nullptr for
/// a layer entry.
template <class T>
std::shared_ptr<Layer<T>> operation_from_entry(const json& e, const std::string& cls, const json& cfg, const std::string& lname,
                                               const std::string& ctx) {
  std::string module = e.contains("module") && e["module"].is_string() ? e["module"].get<std::string>() : "";
  bool op = module.rfind("keras.src.ops", 0) == 0 || module.rfind("keras.ops", 0) == 0;
  if (!op && module.empty() && e.contains("inbound_nodes") && cfg.is_object() && cfg.size() == 1 && cfg.contains("name"))
    op = true;
  std::string op_class = cls;
  if (cls == "TFOpLambda" || cls == "SlicingOpLambda") {
    std::string fn = cfg.is_object() && cfg.contains("function") && cfg["function"].is_string() ? cfg["function"].get<std::string>() : "";
    op_class = cls == "TFOpLambda" ? Operation<T>::op_class_of_tf_function(fn) : "";
    if (op_class.empty())
      throw unsupported_error(cat(ctx_prefix(ctx), "layer '", lname, "' (", cls, "): operation '", fn.empty() ? cls : fn,
                                  "' is not supported (graft implements tf.math.add, subtract, multiply, truediv, divide, maximum, "
                                  "minimum and tf.__operators__.add)"));
    op = true;
  }
  if (!op) return nullptr;
  try {
    return std::make_shared<Operation<T>>(op_class, lname);
  } catch (const error& err) {
    rethrow_with_prefix(err, ctx.empty() ? std::string("model") : ctx);
  }
}

/// One layer entry {class_name, config, ...} -> layer (models recurse).
template <class T>
std::shared_ptr<Layer<T>> layer_from_entry(const json& e, const std::string& ctx) {
  if (!e.is_object() || !e.contains("class_name") || !e["class_name"].is_string())
    throw format_error(cat(ctx_prefix(ctx), "layer entry without class_name: ", e.dump().substr(0, 200)));
  std::string cls = canonical_class_name(e["class_name"].get<std::string>());
  const json cfg = e.contains("config") ? e["config"] : json::object();
  std::string lname = cfg.is_object() && cfg.contains("name") && cfg["name"].is_string() ? cfg["name"].get<std::string>()
                      : e.contains("name") && e["name"].is_string()                    ? e["name"].get<std::string>()
                                                                                        : "?";
  if (cls == "Lambda")
    throw unsupported_error(cat(ctx_prefix(ctx), "layer '", lname,
                                "' (Lambda): it holds Python code, and Python code in a model file is never executed"));
  if (cls == "Sequential" || cls == "Functional") {
    NestedModelDepth depth(ctx, lname);
    if (cls == "Sequential") return sequential_from_config<T>(cfg, lname, ctx);
    return functional_from_config<T>(cfg, ctx);
  }
  if (auto op = operation_from_entry<T>(e, cls, cfg, lname, ctx)) return op;
  auto& reg = LayerRegistry<T>::instance();
  json c = cfg;
  if (c.is_object() && !c.contains("name") && lname != "?") c["name"] = lname;
  try {
    if (e.contains("registered_name") && e["registered_name"].is_string()) {
      std::string rn = e["registered_name"].get<std::string>();
      if (reg.contains(rn)) return reg.create(rn, c);
    }
    return reg.create(cls, c);
  } catch (const error& err) {
    if (ctx.empty()) throw;
    rethrow_with_prefix(err, ctx);
  } catch (const json::exception& err) {  // a value of the wrong JSON type deep in a layer config
    throw format_error(cat(ctx_prefix(ctx), "layer '", lname, "' (", cls, "): unreadable config: ", err.what()));
  }
}

/// The dimensions of a shape list in a Sequential config (null: -1). A dimension must be a JSON
/// integer or an integral float within 64-bit range: converting 3e126 to an integer is undefined
/// behaviour (found by fuzz_config_json), so anything else is refused.
inline Shape config_dims(const json& v, const std::string& what) {
  Shape s;
  for (const auto& d : v) {
    if (d.is_null()) {
      s.push_back(-1);
    } else if (d.is_number_integer()) {
      s.push_back(d.get<Index>());
    } else if (d.is_number_float() && std::isfinite(d.get<double>()) && std::floor(d.get<double>()) == d.get<double>() &&
               std::fabs(d.get<double>()) <= 4.0e18) {
      s.push_back(static_cast<Index>(d.get<double>()));
    } else {
      throw format_error(cat(what, " holds ", d.dump().substr(0, 40), ", not a dimension"));
    }
  }
  return s;
}

template <class T>
std::shared_ptr<Model<T>> sequential_from_config(const json& cfg, const std::string& name_hint, const std::string& ctx) {
  const json* layers = nullptr;
  std::string name = name_hint == "?" ? std::string() : name_hint;
  if (cfg.is_object() && cfg.contains("name") && cfg["name"].is_string()) name = cfg["name"].get<std::string>();
  bool trainable = true;
  Shape build_shape;
  if (cfg.is_array()) {  // Keras 1, Keras 2.0-2.1
    layers = &cfg;
  } else if (cfg.is_object() && cfg.contains("layers") && cfg["layers"].is_array()) {
    layers = &cfg["layers"];
    if (cfg.contains("name") && cfg["name"].is_string()) name = cfg["name"].get<std::string>();
    if (cfg.contains("trainable") && cfg["trainable"].is_boolean()) trainable = cfg["trainable"].get<bool>();
    if (cfg.contains("build_input_shape") && cfg["build_input_shape"].is_array()) {
      build_shape = config_dims(cfg["build_input_shape"], cat(ctx_prefix(ctx), "Sequential '", name, "': build_input_shape"));
    }
  } else {
    throw format_error(cat(ctx_prefix(ctx), "Sequential '", name, "': config has no 'layers' list"));
  }
  check_layer_count(*layers, cat(ctx_prefix(ctx), "Sequential '", name, "'"));
  // the layers are collected, then connected once: Sequential::add reconnects every layer
  // before it at each call, which made loading a long model quadratic
  std::vector<std::shared_ptr<Layer<T>>> stack;
  bool first = true;
  for (const auto& e : *layers) {
    if (first && e.is_object() && e.value("class_name", "") != "InputLayer" && e.contains("config") && e["config"].is_object()) {
      // Keras 1/2 put the input shape on the first layer
      const json& c = e["config"];
      Shape bs;
      auto read = [&](const json& v) {
        return config_dims(v, cat(ctx_prefix(ctx), "Sequential '", name, "': the first layer's input shape"));
      };
      if (c.contains("batch_input_shape") && c["batch_input_shape"].is_array()) bs = read(c["batch_input_shape"]);
      else if (c.contains("batch_shape") && c["batch_shape"].is_array()) bs = read(c["batch_shape"]);
      else if (c.contains("input_shape") && c["input_shape"].is_array()) {
        bs = read(c["input_shape"]);
        bs.insert(bs.begin(), -1);
      } else if (c.contains("input_dim") && c["input_dim"].is_number_integer()) {
        bs = {-1, c["input_dim"].get<Index>()};
      }
      if (!bs.empty()) stack.push_back(InputLayer<T>::with_batch_shape(bs, name.empty() ? "input" : name + "_input"));
    }
    first = false;
    stack.push_back(layer_from_entry<T>(e, ctx));
  }
  std::shared_ptr<Sequential<T>> model;
  try {  // connecting builds the layers: their errors name the file too
    model = std::make_shared<Sequential<T>>(stack, name);
    if (!model->has_input_shape() && build_shape.size() > 1) model->build_input(Shape(build_shape.begin() + 1, build_shape.end()));
  } catch (const error& err) {
    if (ctx.empty()) throw;
    rethrow_with_prefix(err, ctx);
  }
  if (!trainable) model->set_trainable(false);
  return model;
}

template <class T>
std::shared_ptr<Model<T>> functional_from_config(const json& cfg, const std::string& ctx) {
  if (!cfg.is_object() || !cfg.contains("layers") || !cfg["layers"].is_array())
    throw format_error(cat(ctx_prefix(ctx), "Functional model config has no 'layers' list"));
  std::string name = cfg.contains("name") && cfg["name"].is_string() ? cfg["name"].get<std::string>() : "";
  const std::string where = cat(ctx_prefix(ctx), "model '", name, "'");
  check_layer_count(cfg["layers"], where);
  struct Entry {
    std::string name;
    std::shared_ptr<Layer<T>> layer;
    std::deque<json> pending;
    std::vector<std::vector<KerasTensor<T>>> outputs;  // per created node
    bool model = false, functional = false;
  };
  std::vector<Entry> entries;
  std::map<std::string, size_t> by_name;
  for (const auto& e : cfg["layers"]) {
    Entry en;
    en.layer = layer_from_entry<T>(e, ctx);
    en.name = e.contains("name") && e["name"].is_string() ? e["name"].get<std::string>() : en.layer->name();
    if (by_name.count(en.name)) throw format_error(cat(where, ": two layers are named '", en.name, "'"));
    en.model = en.layer->is_model();
    en.functional = en.model && en.layer->class_name() == "Functional";
    if (e.contains("inbound_nodes") && e["inbound_nodes"].is_array())
      for (const auto& n : e["inbound_nodes"]) en.pending.push_back(n);
    if (auto il = std::dynamic_pointer_cast<InputLayer<T>>(en.layer)) en.outputs.push_back({il->output_tensor()});
    by_name[en.name] = entries.size();
    entries.push_back(std::move(en));
  }
  // Legacy (list) configs count a nested model's built-in node: find which models are referenced
  // that way (every reference >= 1).
  std::map<std::string, int> min_ref;
  bool any_legacy = false;
  std::vector<detail::TensorRef> refs;
  bool list_call = false, legacy = false;
  json op_args;
  for (auto& en : entries)
    for (const auto& n : en.pending) {
      node_refs(n, refs, list_call, legacy, cat(where, ", layer '", en.name, "'"), en.layer->is_operation() ? &op_args : nullptr);
      any_legacy = any_legacy || legacy;
      for (auto& r : refs) {
        auto it = min_ref.find(r.layer);
        min_ref[r.layer] = it == min_ref.end() ? r.node : std::min(it->second, r.node);
      }
    }
  auto node_index = [&](const Entry& en, int idx, bool io) {
    if (!en.model) return idx;
    if (any_legacy) {
      auto it = min_ref.find(en.name);
      bool shifted = it == min_ref.end() ? (io && idx >= 1) : it->second >= 1;
      // Keras 3 (and graft's writer) count a nested Functional's built-in node in input_layers /
      // output_layers only; TF-Keras counts it everywhere (then every inbound reference is >= 1).
      if (io && en.functional && idx >= 1) shifted = true;
      if (io && it != min_ref.end() && !shifted && idx >= 1 && idx >= static_cast<int>(en.outputs.size())) shifted = true;
      return shifted ? idx - 1 : idx;
    }
    return (io && en.functional && idx >= 1) ? idx - 1 : idx;
  };
  auto lookup = [&](const detail::TensorRef& r, bool io, const KerasTensor<T>** out) -> bool {
    auto it = by_name.find(r.layer);
    if (it == by_name.end()) throw format_error(cat(where, ": reference to unknown layer '", r.layer, "'"));
    const Entry& en = entries[it->second];
    int idx = node_index(en, r.node, io);
    if (idx < 0) idx = 0;
    if (idx >= static_cast<int>(en.outputs.size())) return false;
    const auto& outs = en.outputs[static_cast<size_t>(idx)];
    if (r.tensor < 0 || r.tensor >= static_cast<int>(outs.size()))
      throw format_error(cat(where, ": layer '", r.layer, "' has no output ", r.tensor));
    *out = &outs[static_cast<size_t>(r.tensor)];
    return true;
  };
  // Process nodes until none is left, deferring those whose inputs do not exist yet (Keras order:
  // in layer order, each layer's nodes in their order). A deferred layer waits on the layer it
  // needs and is resumed when that one makes progress, so a config listed in reverse order costs
  // linear, not quadratic, time.
  std::deque<size_t> queue;
  for (size_t i = 0; i < entries.size(); ++i) queue.push_back(i);
  std::vector<std::vector<size_t>> waiters(entries.size());
  while (!queue.empty()) {
    const size_t i = queue.front();
    queue.pop_front();
    Entry& en = entries[i];
    bool progress = false;
    while (!en.pending.empty()) {
      node_refs(en.pending.front(), refs, list_call, legacy, cat(where, ", layer '", en.name, "'"),
                en.layer->is_operation() ? &op_args : nullptr);
      std::vector<KerasTensor<T>> args;
      size_t blocked_on = entries.size();
      for (auto& r : refs) {
        const KerasTensor<T>* t = nullptr;
        if (!lookup(r, false, &t)) {
          blocked_on = by_name.at(r.layer);
          break;
        }
        args.push_back(*t);
      }
      if (blocked_on < entries.size()) {
        waiters[blocked_on].push_back(i);
        break;
      }
      if (args.empty()) {
        en.pending.pop_front();
        continue;
      }
      try {
        if (auto* opl = dynamic_cast<Operation<T>*>(en.layer.get())) opl->set_arguments(op_args);
        en.outputs.push_back(en.layer->call(args, list_call));
      } catch (const error& err) {
        rethrow_with_prefix(err, where);
      }
      en.pending.pop_front();
      progress = true;
    }
    if (progress) {
      for (size_t w : waiters[i]) queue.push_back(w);
      waiters[i].clear();
    }
  }
  for (auto& en : entries)
    if (!en.pending.empty())
      throw format_error(cat(where, ": the inbound nodes of layer '", en.name,
                             "' cannot be resolved (the graph has loops or refers to missing nodes)"));
  std::vector<detail::TensorRef> in_refs, out_refs;
  if (!cfg.contains("input_layers") || !cfg.contains("output_layers"))
    throw format_error(cat(where, ": config has no input_layers / output_layers"));
  collect_refs(cfg["input_layers"], in_refs, where);
  collect_refs(cfg["output_layers"], out_refs, where);
  std::vector<KerasTensor<T>> ins, outs;
  for (auto& r : in_refs) {
    const KerasTensor<T>* t = nullptr;
    if (!lookup(r, true, &t)) throw format_error(cat(where, ": input '", r.layer, "' node ", r.node, " does not exist"));
    ins.push_back(*t);
  }
  for (auto& r : out_refs) {
    const KerasTensor<T>* t = nullptr;
    if (!lookup(r, true, &t)) throw format_error(cat(where, ": output '", r.layer, "' node ", r.node, " does not exist"));
    outs.push_back(*t);
  }
  std::shared_ptr<Model<T>> model;
  try {
    model = std::make_shared<Model<T>>(ins, outs, name);
  } catch (const error& err) {
    rethrow_with_prefix(err, where);
  }
  bool trainable = !(cfg.contains("trainable") && cfg["trainable"].is_boolean() && !cfg["trainable"].get<bool>());
  if (!trainable) model->set_trainable(false);
  if (!any_legacy) {  // Keras 3 config: remember a single input / output given as a list of one
    auto listed = [](const json& v) { return v.is_array() && v.size() == 1 && v[0].is_array(); };
    model->set_io_listed(listed(cfg["input_layers"]), listed(cfg["output_layers"]));
  }
  return model;
}

}  // namespace detail

/// Build a model from a Keras model config {"class_name": "Sequential"|"Functional"|"Model",
/// "config": ...} (the `model_config` root attribute of a .h5 file, or model.to_json()).
/// `context` (e.g. the file name) prefixes error messages.
template <class T>
std::shared_ptr<Model<T>> model_from_config(const json& j, const std::string& context) {
  if (!j.is_object() || !j.contains("class_name") || !j["class_name"].is_string())
    throw format_error(detail::cat(detail::ctx_prefix(context), "model config has no class_name"));
  std::string cls = detail::canonical_class_name(j["class_name"].get<std::string>());
  if (!j.contains("config")) throw format_error(detail::cat(detail::ctx_prefix(context), "model config has no 'config'"));
  // a document built in code may be deeper than any parsed text is allowed to be
  detail::check_json_depth(j, context.empty() ? std::string("model config") : context);
  // weights created while building count towards limits().max_model_parameters (and, inside
  // load_model's scope, the size of the file)
  BuildBudgetScope budget;
  try {
    detail::NestedModelDepth depth(context, "?");
    if (cls == "Sequential") return detail::sequential_from_config<T>(j["config"], "?", context);
    if (cls == "Functional") return detail::functional_from_config<T>(j["config"], context);
  } catch (const json::exception& e) {  // a value of the wrong JSON type in the model's own config
    throw format_error(detail::cat(detail::ctx_prefix(context), "unreadable model config: ", e.what()));
  }
  throw unsupported_error(detail::cat(detail::ctx_prefix(context), "model class '", cls,
                                      "' is not supported (subclassed models have no config to rebuild from)"));
}

/// keras.models.model_from_json
template <class T = float>
std::shared_ptr<Model<T>> model_from_json(const std::string& text, const std::string& context = {}) {
  detail::check_json_text_depth(text.begin(), text.end(), detail::ctx_prefix(context) + "model JSON");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw format_error(detail::cat(detail::ctx_prefix(context), "model JSON does not parse: ", e.what()));
  }
  return model_from_config<T>(j, context);
}

/// The model's config in graft's neutral form {"class_name", "config"} (what clone_model rebuilds
/// from); model_to_json and save_model write a Keras dialect.
template <class T>
json model_to_config(const Model<T>& m) {
  return json{{"class_name", m.class_name()}, {"config", m.get_config()}};
}
/// model.to_json(): the architecture in the Keras 3 dialect (keras_version "3") or the TF-Keras 2
/// one ("2"), as keras.models.model_from_json of that generation reads it.
template <class T>
std::string model_to_json(const Model<T>& m, const std::string& keras_version = "3") {
  KerasDialect d = parse_keras_version(keras_version);
  detail::check_serializable(m, d);
  json j = d == KerasDialect::keras3 ? keras3::model_config(m) : tf_keras2::model_config(m);
  j["keras_version"] = d == KerasDialect::keras3 ? keras3::kVersion : tf_keras2::kVersion;
  j["backend"] = "tensorflow";
  return j.dump();
}

/// keras.models.clone_model: the same architecture with freshly initialised weights (and no
/// compile state). Follow with set_weights(get_weights()) to copy the weights, as in Keras.
template <class T>
std::shared_ptr<Model<T>> clone_model(const Model<T>& m) {
  return model_from_config<T>(model_to_config(m));
}
/// clone_model(model_a) for a std::shared_ptr to a Model, Sequential or other Model subclass.
template <template <class> class M, class T>
std::shared_ptr<Model<T>> clone_model(const std::shared_ptr<M<T>>& m) {
  if (!m) throw value_error("clone_model: null model");
  return clone_model(static_cast<const Model<T>&>(*m));
}

}  // namespace graft
