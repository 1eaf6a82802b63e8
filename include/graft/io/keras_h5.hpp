// graft — Keras HDF5 files: load_model (Keras 1, Keras 2, TF-Keras 2.x, Keras 3 legacy .h5),
// load_weights (legacy layout and Keras 3 .weights.h5), save_model / save_weights (legacy .h5 that
// Keras 3 and TF-Keras 2.x load), written atomically.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "graft/io/atomic_file.hpp"
#include "graft/io/hdf5.hpp"
#include "graft/io/keras_archive_writer.hpp"
#include "graft/io/keras_config.hpp"
#include "graft/io/keras_zip.hpp"
#include "graft/model/model.hpp"
#include "graft/saving/keras3_serializer.hpp"
#include "graft/saving/tf_keras2_serializer.hpp"

namespace graft {

struct LoadOptions {
  /// Restore the compile state (loss, metrics, optimizer and its slots) from training_config.
  bool compile = true;
  /// Called with non-fatal problems (e.g. optimizer state that does not match); default: stderr.
  std::function<void(const std::string&)> warn;
};

struct LoadWeightsOptions {
  /// Match file layers to model layers by name instead of by position (legacy .h5 only).
  bool by_name = false;
  /// With by_name: skip layers whose weight count or shapes differ instead of failing.
  bool skip_mismatch = false;
};

struct SaveOptions {
  bool include_optimizer = true;
  /// The Keras generation the file is for: "3" (Keras 3.x, TensorFlow >= 2.16) or "2" (TF-Keras
  /// 2.x, TensorFlow <= 2.15); empty: the generation of the file the model was loaded from, Keras 3
  /// for models built in graft (see default_dialect).
  std::string keras_version;
};

/// What a Keras file is, without building a model.
struct KerasFileInfo {
  std::string path;
  std::string keras_version;  ///< "" when the file does not say
  std::string backend;
  std::string writer;         ///< "graft x.y.z" for files graft wrote
  bool has_model_config = false;
  bool has_training_config = false;
  bool has_optimizer_weights = false;
  /// "legacy_h5" (model.save .h5), "legacy_weights" (save_weights .h5), "keras3_weights" (.weights.h5)
  std::string layout;
};

namespace detail {

inline void default_warn(const std::string& m) { std::cerr << "graft: warning: " << m << std::endl; }

inline std::string strip_colon_suffix(const std::string& s) {
  size_t c = s.rfind(':');
  if (c != std::string::npos && c + 1 < s.size() &&
      s.find_first_not_of("0123456789", c + 1) == std::string::npos)
    return s.substr(0, c);
  return s;
}

/// Parse a JSON attribute, naming file and attribute on failure.
inline json parse_json_attr(h5::Group& g, const std::string& name) {
  std::string text = g.string_attr(name);
  check_json_text_depth(text.begin(), text.end(), detail::cat(g.where(), ": attribute '", name, "'"));
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw format_error(detail::cat(g.where(), ": attribute '", name, "' is not valid JSON: ", e.what()));
  }
}

template <class T>
bool is_weightless(Layer<T>& l) {
  return l.weights().empty();
}

/// Canonical param name for matching names found in files ("W" -> "kernel", ...).
inline std::string canonical_param(std::string p) {
  if (p == "W" || p == "depthwise_kernel") return "kernel";
  if (p == "b") return "bias";
  if (p == "running_mean") return "moving_mean";
  if (p == "running_std") return "moving_variance";
  return p;
}

/// Target weights of a nested model for the names a file lists: by "<layer>/<param>" names when
/// they resolve completely and uniquely, otherwise in Keras' legacy order (all trainable weights
/// first, then the non-trainable ones).
template <class T>
std::vector<Param<T>*> nested_targets(Model<T>& m, const std::vector<std::string>& names) {
  std::vector<Param<T>*> positional = m.trainable_weights();
  for (Param<T>* p : m.non_trainable_weights()) positional.push_back(p);
  if (names.size() != positional.size()) return positional;
  std::multimap<std::string, Layer<T>*> by_name;
  for (Layer<T>* l : m.unique_layers()) by_name.emplace(l->name(), l);
  std::vector<Param<T>*> r;
  std::set<Param<T>*> used;
  for (const auto& full : names) {
    std::string n = strip_colon_suffix(full);
    std::string layer, param;
    size_t slash = n.rfind('/');
    if (slash != std::string::npos) {
      param = n.substr(slash + 1);
      std::string rest = n.substr(0, slash);
      size_t s2 = rest.rfind('/');
      layer = s2 == std::string::npos ? rest : rest.substr(s2 + 1);
    } else {
      size_t u = n.rfind('_');  // Keras 1: dense_1_W
      if (u == std::string::npos) return positional;
      layer = n.substr(0, u);
      param = n.substr(u + 1);
    }
    if (by_name.count(layer) != 1) return positional;
    Layer<T>* l = by_name.find(layer)->second;
    Param<T>* found = nullptr;
    for (Param<T>* p : l->weights())
      if (canonical_param(p->name) == canonical_param(param)) found = p;
    if (!found || !used.insert(found).second) return positional;
    r.push_back(found);
  }
  return r;
}

/// Where the weights listed in a file group go, for one model layer.
template <class T>
std::vector<Param<T>*> weight_targets(Layer<T>& l, const std::vector<std::string>& names) {
  if (l.is_model()) return nested_targets(static_cast<Model<T>&>(l), names);
  return l.weights();
}

/// Read dataset `rel` of `g` for weight `p` (its shape already checked). A weight made by the
/// model load_model is building (initialisation pending) is read in place: nothing is lost if the
/// load fails. Any other weight is read into `tmp`, so that a failure leaves a live model's
/// weights unchanged; commit_weight then moves it in. Returns whether it was read in place.
template <class T>
bool read_weight(h5::Group& g, const std::string& rel, Param<T>& p, Tensor<T>& tmp) {
  if (!p.pending_init) {
    tmp = h5::read_dataset<T>(g, rel, &p.value.shape());
    return false;
  }
  h5::read_dataset_into(g, rel, p.value);
  p.pending_init = nullptr;
  return true;
}
template <class T>
void commit_weight(Param<T>& p, Tensor<T>& tmp, bool in_place) {
  if (!in_place) p.set_loaded(std::move(tmp));
}

/// Read the weights of one file layer group for model layer `l` (a live model's all before
/// assigning any).
template <class T>
bool load_layer_group(Layer<T>& l, h5::Group& lg, bool skip_mismatch, const std::function<void(const std::string&)>& warn) {
  std::vector<std::string> names = lg.strings_attr("weight_names");
  std::vector<Param<T>*> targets = weight_targets(l, names);
  if (names.size() != targets.size()) {
    std::string m = detail::cat(lg.where(), ": layer '", l.name(), "' (", l.class_name(), ") has ", targets.size(),
                                " weights in the model but ", names.size(), " in the file");
    if (skip_mismatch) {
      warn(m + "; skipped");
      return false;
    }
    throw format_error(m);
  }
  std::vector<Tensor<T>> values(names.size());
  std::vector<char> in_place(names.size(), 0);
  for (size_t i = 0; i < names.size(); ++i) {
    const Shape& want = targets[i]->value.shape();
    Shape got = h5::dataset_shape(lg, names[i]);
    if (got != want) {
      std::string m = detail::cat(lg.where(names[i]), ": weight '", targets[i]->name, "' of layer '", l.name(), "' (",
                                  l.class_name(), ") has shape ", shape_str(got), " in the file but ", shape_str(want),
                                  " in the model");
      if (skip_mismatch) {
        warn(m + "; layer skipped");
        return false;
      }
      throw shape_error(m);
    }
    in_place[i] = read_weight(lg, names[i], *targets[i], values[i]);
  }
  // graft's discriminative learning rates (an attribute Keras ignores; absent means 1)
  std::vector<double> mults(names.size(), 1.0);
  if (lg.has_strings_attr("graft_lr_multipliers")) {
    std::vector<std::string> ms = lg.strings_attr("graft_lr_multipliers");
    if (ms.size() != names.size())
      throw format_error(detail::cat(lg.where(), ": graft_lr_multipliers has ", ms.size(), " entries for ", names.size(), " weights"));
    for (size_t i = 0; i < ms.size(); ++i) {
      char* end = nullptr;
      mults[i] = std::strtod(ms[i].c_str(), &end);
      if (ms[i].empty() || !end || *end || !(mults[i] >= 0) || !std::isfinite(mults[i]))
        throw format_error(detail::cat(lg.where(), ": graft_lr_multipliers entry '", ms[i].substr(0, 40), "' is not a finite number >= 0"));
    }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    targets[i]->lr_multiplier = mults[i];
    bool finite = true;
    for (T v : in_place[i] ? targets[i]->value : values[i]) finite = finite && std::isfinite(v);
    if (!finite)
      warn(detail::cat(lg.where(names[i]), ": weight '", targets[i]->name, "' of layer '", l.name(),
                       "' holds NaN or infinite values (the saved model had diverged); outputs will not be finite"));
    commit_weight(*targets[i], values[i], in_place[i]);
  }
  return true;
}

/// Initialise every weight of `model` the file did not supply (load_model's DeferredWeightInit).
template <class T>
void materialize_weights(Model<T>& model) {
  for (Param<T>* p : model.weights()) p->materialize();
}

/// keras legacy load_weights_from_hdf5_group (topological) / _by_name, on group `g` (the root of a
/// save_weights file, or model_weights of a full-model file). `strict_names`: full-model files,
/// where the architecture comes from the same file, pair layers by name and must cover all.
template <class T>
void load_legacy_weights(Model<T>& model, h5::Group& g, const LoadWeightsOptions& o, bool strict_names,
                         const std::function<void(const std::string&)>& warn) {
  if (!g.has_strings_attr("layer_names"))
    throw format_error(detail::cat(g.where(), ": no 'layer_names' attribute (not a Keras weights group)"));
  std::vector<std::string> file_layers = g.strings_attr("layer_names");
  std::vector<std::string> with_weights;
  for (const auto& n : file_layers) {
    h5::Group lg = g.group(n);
    if (!lg.strings_attr("weight_names").empty()) with_weights.push_back(n);
  }
  const auto& layers = model.layers();
  if (o.by_name || strict_names) {
    std::set<std::string> done;
    for (const auto& n : with_weights) {
      std::shared_ptr<Layer<T>> target;
      for (const auto& l : layers)
        if (l->name() == n) target = l;
      if (!target) {
        if (strict_names)
          throw format_error(detail::cat(g.where(n), ": the file has weights for layer '", n, "', which the model does not have"));
        continue;
      }
      h5::Group lg = g.group(n);
      load_layer_group(*target, lg, o.skip_mismatch, warn);
      done.insert(n);
    }
    if (strict_names)
      for (const auto& l : layers)
        if (!is_weightless(*l) && !done.count(l->name()))
          throw format_error(detail::cat(g.where(), ": the file has no weights for layer '", l->name(), "' (", l->class_name(), ")"));
    return;
  }
  std::vector<std::shared_ptr<Layer<T>>> model_layers;
  for (const auto& l : layers)
    if (!is_weightless(*l)) model_layers.push_back(l);
  if (model_layers.size() != with_weights.size())
    throw format_error(detail::cat(g.where(), ": layer count mismatch: the model has ", model_layers.size(),
                                   " layers with weights, the file has ", with_weights.size()));
  for (size_t i = 0; i < model_layers.size(); ++i) {
    h5::Group lg = g.group(with_weights[i]);
    load_layer_group(*model_layers[i], lg, false, warn);
  }
}

/// Keras 3 .weights.h5: layers/<snake_case class key>/vars/<i>, nested models recurse.
template <class T>
void load_keras3_weights(Model<T>& model, h5::Group& g, const std::function<void(const std::string&)>& warn) {
  std::string container;
  for (const char* c : {"layers", "_layer_checkpoint_dependencies"})
    if (g.has_child(c)) container = c;
  std::map<std::string, int> used;
  for (const auto& l : model.layers()) {
    if (l->is_operation()) continue;  // operations are not among a Keras model's layers
    std::string key = detail::to_snake_case(l->class_name() == "Functional" ? "Functional" : l->class_name());
    int k = used.count(key) ? ++used[key] : (used[key] = 0);
    if (k > 0) key += "_" + std::to_string(k);
    std::string path = container + "/" + key;
    h5::Group::Kind kind = container.empty() ? h5::Group::Kind::none : g.kind(path);
    if (kind == h5::Group::Kind::none) {
      // TF-Keras 2.15 on Windows wrote literal backslashes: "layers\\dense"
      std::string alt = "layers\\" + key;
      if (g.has_child(alt)) {
        path = alt;
        kind = h5::Group::Kind::group;
      }
    }
    if (l->is_model()) {
      if (kind != h5::Group::Kind::group) throw format_error(detail::cat(g.where(path), ": no weights for nested model '", l->name(), "'"));
      h5::Group sub = g.group(path);
      load_keras3_weights(static_cast<Model<T>&>(*l), sub, warn);
      continue;
    }
    std::vector<Param<T>*> ps = l->weights();
    if (ps.empty()) continue;
    if (kind != h5::Group::Kind::group)
      throw format_error(detail::cat(g.where(path), ": no weights for layer '", l->name(), "' (", l->class_name(), ")"));
    h5::Group lg = g.group(path);
    if (!lg.has_child("vars")) throw format_error(detail::cat(lg.where(), ": no 'vars' group"));
    h5::Group vg = lg.group("vars");
    auto kids = vg.children();
    if (kids.size() != ps.size())
      throw format_error(detail::cat(vg.where(), ": layer '", l->name(), "' (", l->class_name(), ") has ", ps.size(),
                                     " weights in the model but ", kids.size(), " in the file"));
    std::vector<Tensor<T>> vals(ps.size());
    std::vector<char> in_place(ps.size(), 0);
    for (size_t i = 0; i < ps.size(); ++i) {
      const Shape& want = ps[i]->value.shape();
      Shape got = h5::dataset_shape(vg, std::to_string(i));
      if (got != want)
        throw shape_error(detail::cat(vg.where(std::to_string(i)), ": weight '", ps[i]->name, "' of layer '", l->name(), "' has shape ",
                                      shape_str(got), " in the file but ", shape_str(want), " in the model"));
      in_place[i] = read_weight(vg, std::to_string(i), *ps[i], vals[i]);
    }
    for (size_t i = 0; i < ps.size(); ++i) commit_weight(*ps[i], vals[i], in_place[i]);
  }
  (void)warn;
}

/// Losses per output from a training_config "loss" entry.
template <class T>
std::vector<std::shared_ptr<Loss<T>>> losses_from_config(const json& j, const Model<T>& m, const std::string& where) {
  size_t no = m.num_outputs();
  std::vector<std::shared_ptr<Loss<T>>> r;
  auto one = [&](const json& v) -> std::shared_ptr<Loss<T>> {
    if (v.is_null()) return nullptr;
    return make_loss<T>(v, where);
  };
  if (j.is_array()) {
    for (const auto& v : j) r.push_back(one(v));
  } else if (j.is_object() && !j.contains("class_name")) {
    auto names = m.output_names();
    for (const auto& n : names) r.push_back(j.contains(n) ? one(j[n]) : nullptr);
  } else {
    r.push_back(one(j));
  }
  if (r.size() == 1 && no > 1) r.assign(no, r[0]);
  if (r.size() != no)
    throw format_error(detail::cat(where, ": ", r.size(), " losses for a model with ", no, " outputs"));
  return r;
}

inline std::vector<std::vector<json>> metrics_from_config(const json& j, size_t no, const std::vector<std::string>& names) {
  std::vector<std::vector<json>> r(no);
  if (j.is_null()) return r;
  auto add_list = [](const json& v, std::vector<json>& dst) {
    if (v.is_array()) {
      for (const auto& e : v)
        if (!e.is_null()) dst.push_back(e);
    } else if (!v.is_null()) {
      dst.push_back(v);
    }
  };
  if (j.is_object() && !j.contains("class_name")) {
    for (size_t k = 0; k < no; ++k)
      if (j.contains(names[k])) add_list(j[names[k]], r[k]);
    return r;
  }
  if (j.is_array()) {
    bool nested = !j.empty();
    for (const auto& e : j) nested = nested && (e.is_array() || e.is_null());
    if (nested && (j.size() == no || no == 1)) {
      for (size_t k = 0; k < j.size() && k < no; ++k) add_list(j[k], r[k]);
      if (no == 1 && j.size() > 1)
        for (size_t k = 1; k < j.size(); ++k) add_list(j[k], r[0]);
      return r;
    }
  }
  for (size_t k = 0; k < no; ++k) add_list(j, r[k]);
  return r;
}

/// One saved optimizer variable.
struct OptArray {
  std::string name;
  Tensor<double> value;
};

/// Restore optimizer variables when they match: iteration, [learning_rate], then the slots, either
/// interleaved per variable as Keras 3 / TF-Keras >= 2.11 store them, or grouped per slot kind as
/// the TF-Keras 2.x and Keras 2 optimizers did (Keras 2 Adam's (1,)-shaped dummy "vhat" slots are
/// ignored). Otherwise warn and keep a fresh optimizer state, as Keras does.
template <class T>
void restore_optimizer(Model<T>& model, std::vector<OptArray> saved, const std::string& where,
                       const std::function<void(const std::string&)>& warn) {
  auto opt = model.optimizer();
  if (saved.empty()) return;
  opt->build(model.trainable_weights());
  long long iteration = -1;
  double lr = -1;
  std::vector<OptArray> slots;
  bool named = false;
  for (auto& a : saved) {
    std::string s = strip_colon_suffix(a.name);
    std::string leaf = s.substr(s.rfind('/') == std::string::npos ? 0 : s.rfind('/') + 1);
    if ((leaf == "iteration" || leaf == "iter" || leaf == "iterations") && a.value.size() == 1) {
      iteration = static_cast<long long>(a.value[0]);
      named = true;
    } else if ((leaf == "learning_rate" || leaf == "lr") && a.value.size() == 1) {
      lr = a.value[0];
      named = true;
    } else {
      slots.push_back(std::move(a));
    }
  }
  if (!named) {  // Keras 3 .weights.h5: optimizer/vars/0 (iteration), 1 (learning_rate), ...
    size_t k = 0;
    if (k < slots.size() && slots[k].value.rank() == 0) iteration = static_cast<long long>(slots[k++].value[0]);
    if (k < slots.size() && slots[k].value.rank() == 0 && !opt->schedule()) lr = slots[k++].value[0];
    slots.erase(slots.begin(), slots.begin() + static_cast<std::ptrdiff_t>(k));
  }
  auto vars = opt->slot_variables();
  auto apply_counters = [&]() {
    if (iteration >= 0) opt->set_iterations(iteration);
    if (lr >= 0 && !opt->schedule() && opt->legacy_decay() == 0) opt->set_learning_rate(lr);
  };
  if (slots.empty()) {  // an optimizer that never stepped, or one without slots (plain SGD)
    if (iteration > 0 && !vars.empty())
      warn(detail::cat(where, ": the saved optimizer has no slot variables; its slots start from zero"));
    apply_counters();
    return;
  }
  auto try_assign = [&](const std::vector<size_t>& order, size_t n) {
    if (order.size() != n || n > slots.size()) return false;
    for (size_t i = 0; i < n; ++i)
      if (slots[i].value.shape() != vars[order[i]].value->shape()) return false;
    for (size_t i = 0; i < n; ++i) *vars[order[i]].value = slots[i].value.template cast<T>();
    return true;
  };
  std::vector<size_t> interleaved(vars.size()), grouped;
  for (size_t i = 0; i < vars.size(); ++i) interleaved[i] = i;
  std::vector<std::string> kinds;
  for (auto& v : vars)
    if (std::find(kinds.begin(), kinds.end(), v.slot) == kinds.end()) kinds.push_back(v.slot);
  for (auto& k : kinds)
    for (size_t i = 0; i < vars.size(); ++i)
      if (vars[i].slot == k) grouped.push_back(i);
  bool ok = slots.size() == vars.size() && (try_assign(interleaved, vars.size()) || try_assign(grouped, vars.size()));
  if (!ok && slots.size() > vars.size()) {
    bool dummies = true;
    for (size_t i = vars.size(); i < slots.size(); ++i) dummies = dummies && slots[i].value.shape() == Shape{1};
    ok = dummies && try_assign(grouped, vars.size());
  }
  if (!ok) {
    warn(detail::cat(where, ": the saved optimizer state (", slots.size(), " slot variables) does not match ",
                     opt->class_name(), " on this model (", vars.size(), "); training continues with a fresh optimizer state"));
    opt->reset();
    return;
  }
  apply_counters();
}

/// Compile from a Keras training_config (legacy .h5: optimizer_config) or compile_config
/// (.keras: optimizer) JSON object.
template <class T>
void compile_from_json(Model<T>& model, const json& tc, const std::string& where);

/// compile_from_json, with a value of the wrong JSON type anywhere in the config reported as a
/// format_error naming `where` (not a nlohmann exception).
template <class T>
void compile_from_json_checked(Model<T>& model, const json& tc, const std::string& where) {
  try {
    compile_from_json(model, tc, where);
  } catch (const json::exception& e) {
    throw format_error(detail::cat(where, ": unreadable training configuration: ", e.what()));
  }
}

template <class T>
void compile_from_json(Model<T>& model, const json& tc, const std::string& where) {
  if (!tc.is_object()) throw format_error(where + ": not a JSON object");
  const char* ok = tc.contains("optimizer_config") ? "optimizer_config" : "optimizer";
  if (!tc.contains(ok) || tc[ok].is_null()) throw format_error(where + ": no optimizer");
  auto opt = make_optimizer<T>(tc[ok], where);
  if (!tc.contains("loss") || tc["loss"].is_null()) throw format_error(where + ": no loss");
  auto losses = losses_from_config<T>(tc["loss"], model, where);
  auto metrics = metrics_from_config(tc.contains("metrics") ? tc["metrics"] : json(nullptr), model.num_outputs(), model.output_names());
  std::vector<double> lw;
  if (tc.contains("loss_weights") && !tc["loss_weights"].is_null()) {
    const json& w = tc["loss_weights"];
    if (w.is_number()) lw.assign(model.num_outputs(), w.get<double>());
    else if (w.is_array())
      for (auto& v : w) lw.push_back(static_cast<double>(v));
    else if (w.is_object())
      for (auto& n : model.output_names()) lw.push_back(w.contains(n) ? static_cast<double>(w[n]) : 1.0);
  }
  model.compile(opt, losses, metrics, lw);
}

template <class T>
void compile_from_training_config(Model<T>& model, h5::Group& root, const LoadOptions& o) {
  json tc = parse_json_attr(root, "training_config");
  compile_from_json_checked(model, tc, root.where() + " training_config");
  if (!root.has_child("optimizer_weights")) return;
  h5::Group og = root.group("optimizer_weights");
  std::vector<OptArray> saved;
  for (const auto& n : og.strings_attr("weight_names")) saved.push_back({n, h5::read_dataset<double>(og, n)});
  restore_optimizer(model, std::move(saved), og.where(), o.warn ? o.warn : default_warn);
}

/// Legacy weight order of a layer (Keras _legacy_weights: trainable then non-trainable).
template <class T>
std::vector<Param<T>*> legacy_weights(Layer<T>& l) {
  std::vector<Param<T>*> r = l.trainable_weights();
  for (Param<T>* p : l.non_trainable_weights()) r.push_back(p);
  return r;
}

/// The weight names a dialect gives each weight of `model`'s own layers (nested models' weights
/// under the nested model's layer), unique within each layer group.
template <class T>
std::unordered_map<Param<T>*, std::string> dialect_weight_names(Model<T>& model, KerasDialect d) {
  std::unordered_map<Param<T>*, std::string> paths, names;
  weight_paths(model, d == KerasDialect::keras3 ? model.name() : std::string(), paths);
  for (const auto& l : model.layers()) {
    std::set<std::string> used;
    for (Param<T>* p : legacy_weights(*l)) {
      if (names.count(p)) continue;
      const std::string& path = paths.at(p);
      std::string n = d == KerasDialect::keras3 ? keras3::weight_name<T>(path) : tf_keras2::weight_name(path, true);
      if (!used.insert(n).second) {
        n = d == KerasDialect::keras3 ? path + "_" + std::to_string(used.size()) : tf_keras2::weight_name(path, false);
        used.insert(n);
      }
      names[p] = n;
    }
  }
  return names;
}

/// Write the model_weights layout (root of a weights file, or the model_weights group).
template <class T>
void write_weights_group(Model<T>& model, h5::Group& g, KerasDialect d) {
  auto names = dialect_weight_names(model, d);
  // Keras 3 operations are not among model.layers; TF-Keras 2's TFOpLambda layers are
  auto listed = [&](const Layer<T>& l) { return !(l.is_operation() && d == KerasDialect::keras3); };
  std::vector<std::string> layer_names;
  for (const auto& l : model.layers())
    if (listed(*l)) layer_names.push_back(l->name());
  g.write_strings_attr("layer_names", layer_names);
  g.write_string_attr("backend", "tensorflow");
  g.write_string_attr("keras_version", d == KerasDialect::keras3 ? keras3::kVersion : tf_keras2::kVersion);
  for (const auto& l : model.layers()) {
    if (!listed(*l)) continue;
    h5::Group lg = g.create_group(l->name());
    std::vector<std::string> wn;
    std::vector<Param<T>*> ws = legacy_weights(*l);
    for (Param<T>* p : ws) wn.push_back(names.at(p));
    lg.write_strings_attr("weight_names", wn);
    for (size_t i = 0; i < ws.size(); ++i) h5::write_dataset(lg, wn[i], ws[i]->value);
    bool any = false;  // discriminative learning rates: an attribute Keras ignores, only when used
    for (Param<T>* p : ws) any = any || p->lr_multiplier != 1.0;
    if (any) {
      std::vector<std::string> ms;
      for (Param<T>* p : ws) ms.push_back(detail::cat(std::setprecision(17), p->lr_multiplier));
      lg.write_strings_attr("graft_lr_multipliers", ms);
    }
  }
}

/// The dialect to write `model` in, after checking that every layer can be written in it.
template <class T>
KerasDialect resolve_dialect(const Model<T>& model, const std::string& keras_version) {
  KerasDialect d = keras_version.empty() ? default_dialect(model) : parse_keras_version(keras_version);
  check_serializable(model, d);
  return d;
}

/// The model.weights.h5 member of a .keras archive, opened from memory.
inline h5::File archive_weights(const zip::Archive& z) {
  if (!z.has("model.weights.h5")) {
    if (z.has("model.weights.npz") || z.has("model.weights.json"))
      throw unsupported_error(detail::cat(z.path(), ": the archive stores its weights as .npz or sharded files; "
                                                    "only model.weights.h5 is supported"));
    throw format_error(detail::cat(z.path(), ": the .keras archive has no model.weights.h5"));
  }
  std::vector<char> bytes = z.read("model.weights.h5");
  h5::check_image(z.path() + ":model.weights.h5", bytes);  // before libhdf5 reads the superblock and root group
  return h5::open_image(z.path() + ":model.weights.h5", bytes);
}

/// keras.models.load_model for a Keras 3 .keras archive.
template <class T>
std::shared_ptr<Model<T>> load_keras_archive(const std::string& path, const LoadOptions& o) {
  zip::Archive z(path);
  if (!z.has("config.json")) throw format_error(detail::cat(path, ": a zip archive, but not a .keras model (no config.json)"));
  std::vector<char> text = z.read("config.json");
  json cfg = parse_json_text(text.begin(), text.end(), path + ": config.json");
  // the weights member is read first: the model built from the config cannot declare more
  // weights than it holds (checked before each weight is allocated)
  h5::File wf = archive_weights(z);
  std::shared_ptr<Model<T>> model;
  {
    DeferredWeightInit defer;  // the file supplies the weights: initialised after reading, if not
    BuildBudgetScope budget(wf.size_bytes(), path + ":model.weights.h5");
    model = model_from_config<T>(cfg, path);
  }
  std::string version = "3";
  if (z.has("metadata.json")) {
    auto m = z.read("metadata.json");
    json meta;
    try {
      meta = parse_json_text(m.begin(), m.end(), path + ": metadata.json");
    } catch (const format_error&) {  // metadata is informative only
    }
    if (meta.is_object() && meta.contains("keras_version") && meta["keras_version"].is_string()) version = meta["keras_version"];
  }
  model->set_source_keras_version(version);
  h5::Group root = h5::Group::root(wf);
  auto warn = o.warn ? o.warn : default_warn;
  load_keras3_weights(*model, root, warn);
  materialize_weights(*model);
  const json cc = cfg.contains("compile_config") && cfg["compile_config"].is_object() ? cfg["compile_config"] : json::object();
  if (o.compile && !cc.empty() && !(cc.contains("optimizer") && !cc["optimizer"].is_null()))
    warn(detail::cat(path, ": compile_config names no optimizer, so the model is loaded uncompiled"));
  if (o.compile && cc.contains("optimizer") && !cc["optimizer"].is_null()) {
    compile_from_json_checked(*model, cc, path + " compile_config");
    if (root.has_child("optimizer")) {
      h5::Group og = root.group("optimizer");
      if (og.has_child("vars")) {
        h5::Group vg = og.group("vars");
        std::vector<OptArray> saved;
        for (size_t i = 0; vg.has_child(std::to_string(i)); ++i)
          saved.push_back({std::to_string(i), h5::read_dataset<double>(vg, std::to_string(i))});
        restore_optimizer(*model, std::move(saved), vg.where(), warn);
      }
    }
  }
  return model;
}

}  // namespace detail

/// Describe a Keras file without building a model.
inline KerasFileInfo inspect_keras_file(const std::string& path) {
  if (h5::sniff(path) == h5::FileKind::zip) {
    zip::Archive z(path);
    KerasFileInfo info;
    info.path = path;
    info.layout = "keras_zip";
    if (!z.has("config.json")) throw format_error(detail::cat(path, ": a zip archive, but not a .keras model (no config.json)"));
    info.has_model_config = true;
    if (z.has("metadata.json")) {
      auto m = z.read("metadata.json");
      try {
        json j = detail::parse_json_text(m.begin(), m.end(), path + ": metadata.json");
        if (j.is_object() && j.contains("keras_version") && j["keras_version"].is_string()) info.keras_version = j["keras_version"];
      } catch (const format_error&) {
      }
    }
    auto c = z.read("config.json");
    json j = detail::parse_json_text(c.begin(), c.end(), path + ": config.json");
    info.has_training_config = j.is_object() && j.contains("compile_config") && j["compile_config"].is_object();
    return info;
  }
  h5::File f = h5::File::open(path);
  h5::Group root = h5::Group::root(f);
  KerasFileInfo info;
  info.path = path;
  info.has_model_config = root.has_attr("model_config");
  info.has_training_config = root.has_attr("training_config");
  info.has_optimizer_weights = root.has_child("optimizer_weights");
  auto str = [&](h5::Group& g, const char* a) { return g.has_attr(a) ? g.string_attr(a) : std::string(); };
  info.keras_version = str(root, "keras_version");
  info.backend = str(root, "backend");
  if (root.has_attr("graft_version")) info.writer = "graft " + root.string_attr("graft_version");
  if (info.has_model_config) {
    info.layout = "legacy_h5";
    if (info.keras_version.empty() && root.has_child("model_weights")) {
      h5::Group mw = root.group("model_weights");
      info.keras_version = str(mw, "keras_version");
    }
  } else if (root.has_strings_attr("layer_names")) {
    info.layout = "legacy_weights";
  } else if (root.has_child("layers") || root.has_child("_layer_checkpoint_dependencies") || root.has_child("vars")) {
    info.layout = "keras3_weights";
  } else if (root.has_child("model_weights")) {
    info.layout = "legacy_weights";
  } else {
    throw format_error(detail::cat(path, ": an HDF5 file, but not a Keras model or weights file (no model_config, layer_names or layers/)"));
  }
  return info;
}

/// keras.models.load_model: legacy HDF5 files of any Keras generation and Keras 3 .keras archives,
/// recognised by their content, not their extension.
template <class T = float>
std::shared_ptr<Model<T>> load_model(const std::string& path, const LoadOptions& o = {}) {
  if (h5::sniff(path) == h5::FileKind::zip) return detail::load_keras_archive<T>(path, o);
  h5::File f = h5::File::open(path);
  h5::Group root = h5::Group::root(f);
  if (!root.has_attr("model_config")) {
    if (root.has_strings_attr("layer_names") || root.has_child("layers") || root.has_child("vars"))
      throw format_error(detail::cat(path, ": no model_config: this is a weights-only file; build the architecture "
                                           "(e.g. model_from_json) and call load_weights"));
    throw format_error(detail::cat(path, ": no model_config attribute: not a Keras model file"));
  }
  json cfg = detail::parse_json_attr(root, "model_config");
  std::shared_ptr<Model<T>> model;
  {
    DeferredWeightInit defer;  // the file supplies the weights: initialised after reading, if not
    // the config cannot declare more weights than the file holds (checked before each allocation)
    BuildBudgetScope budget(f.size_bytes(), path);
    model = model_from_config<T>(cfg, path);
  }
  if (!root.has_child("model_weights")) throw format_error(detail::cat(path, ": no model_weights group"));
  h5::Group mw = root.group("model_weights");
  auto warn = o.warn ? o.warn : detail::default_warn;
  detail::load_legacy_weights(*model, mw, LoadWeightsOptions{}, true, warn);
  detail::materialize_weights(*model);
  if (o.compile && root.has_attr("training_config")) detail::compile_from_training_config(*model, root, o);
  std::string version = root.has_attr("keras_version") ? root.string_attr("keras_version")
                        : mw.has_attr("keras_version")  ? mw.string_attr("keras_version")
                                                        : std::string();
  model->set_source_keras_version(version.empty() ? "(not recorded)" : version);
  return model;
}

/// model.load_weights: legacy save_weights files (root layer_names, Keras 1 included), the
/// model_weights group of full-model files, and Keras 3 .weights.h5 (layers/<key>/vars/N).
template <class T>
void load_weights(Model<T>& model, const std::string& path, const LoadWeightsOptions& o = {}) {
  auto warn = detail::default_warn;
  if (h5::sniff(path) == h5::FileKind::zip) {  // the weights of a .keras archive
    if (o.by_name) throw value_error(detail::cat(path, ": by_name loading is only possible for legacy .h5 weights"));
    zip::Archive z(path);
    h5::File wf = detail::archive_weights(z);
    h5::Group wr = h5::Group::root(wf);
    detail::load_keras3_weights(model, wr, warn);
    return;
  }
  h5::File f = h5::File::open(path);
  h5::Group root = h5::Group::root(f);
  if (root.has_strings_attr("layer_names")) {
    detail::load_legacy_weights(model, root, o, false, warn);
  } else if (root.has_child("model_weights") && root.group("model_weights").has_strings_attr("layer_names")) {
    h5::Group mw = root.group("model_weights");
    detail::load_legacy_weights(model, mw, o, false, warn);
  } else if (root.has_child("layers") || root.has_child("_layer_checkpoint_dependencies") || root.has_child("vars")) {
    if (o.by_name)
      throw value_error(detail::cat(path, ": by_name loading is only possible for legacy .h5 weights (Keras 3 .weights.h5 is keyed by position)"));
    detail::load_keras3_weights(model, root, warn);
  } else {
    throw format_error(detail::cat(path, ": not a Keras weights file (no layer_names attribute and no layers/ group)"));
  }
}

/// keras model.save(path): a legacy HDF5 file in the Keras 3 or TF-Keras 2 dialect (SaveOptions::
/// keras_version), or, for a path ending in ".keras", a Keras 3 .keras archive; that Keras loads it
/// with keras.models.load_model, including the compile state and optimizer slots. Everything is serialized before the file is touched, and the file
/// is replaced atomically: on any error an existing file at `path` stays as it was.
template <class T>
void save_model(Model<T>& model, const std::string& path, const SaveOptions& so = {}) {
  // keras.saving.save_model chooses the format by extension: ".keras" is a Keras 3 archive
  const bool archive = path.size() > 6 && path.compare(path.size() - 6, 6, ".keras") == 0;
  const KerasDialect d = detail::resolve_dialect(model, archive && so.keras_version.empty() ? std::string("3") : so.keras_version);
  if (archive) {
    if (d != KerasDialect::keras3)
      throw unsupported_error(detail::cat(path, ": a .keras archive is a Keras 3 format; write TF-Keras 2 files as .h5"));
    detail::save_keras_archive(model, path, so.include_optimizer);
    return;
  }
  const bool k3 = d == KerasDialect::keras3;
  json cfg = k3 ? keras3::model_config(model) : tf_keras2::model_config(model);
  json tc;
  std::vector<OptimizerVariable<T>> opt_vars;
  if (model.compiled()) {
    tc = k3 ? keras3::training_config(model) : tf_keras2::training_config(model);
    const auto& cs = model.compile_state();
    if (so.include_optimizer && (cs.optimizer->iterations() > 0 || !cs.optimizer->slot_variables().empty())) {
      std::unordered_map<Param<T>*, std::string> paths;
      detail::weight_paths(model, k3 ? model.name() : std::string(), paths);
      opt_vars = k3 ? keras3::optimizer_variables(model, paths) : tf_keras2::optimizer_variables(model, paths);
    }
  }
  detail::atomic_write(path, [&](h5::File& f) {
    h5::Group root = h5::Group::root(f);
    root.write_string_attr("keras_version", k3 ? keras3::kVersion : tf_keras2::kVersion, true);
    root.write_string_attr("backend", "tensorflow", true);
    root.write_string_attr("graft_version", kGraftVersion, true);
    root.write_string_attr("model_config", cfg.dump());
    h5::Group mw = root.create_group("model_weights");
    detail::write_weights_group(model, mw, d);
    h5::Group top = mw.create_group("top_level_model_weights");
    top.write_strings_attr("weight_names", {});
    if (!model.compiled()) return;
    root.write_string_attr("training_config", tc.dump());
    if (opt_vars.empty()) return;
    const auto& opt = *model.compile_state().optimizer;
    std::vector<std::string> names;
    for (auto& v : opt_vars) names.push_back(v.name);
    h5::Group og = root.create_group("optimizer_weights");
    og.write_strings_attr("weight_names", names);
    for (auto& v : opt_vars) {
      if (v.kind == OptimizerVariable<T>::iteration) {
        h5::write_scalar_int(og, v.name, opt.iterations());
      } else if (v.kind == OptimizerVariable<T>::learning_rate) {
        Tensor<float> lr(Shape{}, static_cast<float>(opt.base_learning_rate()));
        h5::write_dataset(og, v.name, lr);
      } else {
        h5::write_dataset(og, v.name, *v.value);
      }
    }
  });
}

/// Legacy save_weights (.h5): the model_weights layout at the root (readable by Keras 2/3's
/// load_weights and by graft::load_weights). Atomic.
template <class T>
void save_weights(Model<T>& model, const std::string& path, const SaveOptions& so = {}) {
  const KerasDialect d = detail::resolve_dialect(model, so.keras_version);
  detail::atomic_write(path, [&](h5::File& f) {
    h5::Group root = h5::Group::root(f);
    detail::write_weights_group(model, root, d);
    root.write_string_attr("graft_version", kGraftVersion, true);
  });
}

}  // namespace graft
