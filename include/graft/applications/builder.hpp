// graft — what every graft::applications family shares (keras.applications in C++):
//   * Options: Keras' arguments (include_top, weights, input_shape, pooling, classes,
//     classifier_activation, name, and the family knobs alpha, depth_multiplier, dropout,
//     minimalistic, include_preprocessing) with Keras' defaults;
//   * Graph: builds layers from Keras class names and keyword arguments through the same registry
//     that loads Keras configs, names unnamed layers and operations as Keras 3 does
//     (snake_case class name, then _1, _2, ... per build), and records operation nodes
//     (`x + 3.0`, `x * (1/6)`);
//   * obtain_input_shape (imagenet_utils), the classifier/pooling head, and loading a Keras weights
//     file by layer name — all or nothing.
#pragma once

#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "graft/graft.hpp"

namespace graft {
namespace applications {

/// keras.applications arguments. `weights`: empty for random initialization (Keras weights=None)
/// or the path of a Keras weights file (legacy .h5 such as Keras' official
/// `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`, a Keras 3 `.weights.h5`, or a whole-model
/// `.h5`/`.keras` of the same architecture); graft never downloads, so "imagenet" is refused with
/// the file name and URL to fetch.
struct Options {
  bool include_top = true;
  std::string weights;
  /// (height, width, channels) without the batch axis; empty: the family's default size with 3 channels.
  Shape input_shape;
  /// With include_top false: "" (the 4-D feature map), "avg" or "max".
  std::string pooling;
  int classes = 1000;
  /// Activation of the "predictions" layer; "linear" (or "") returns logits (Keras None).
  std::string classifier_activation = "softmax";
  /// Model name; empty: Keras' default for the family and arguments.
  std::string name;
  /// MobileNet, MobileNetV2, MobileNetV3: width multiplier.
  double alpha = 1.0;
  /// MobileNet: depth multiplier of the depthwise convolutions.
  int depth_multiplier = 1;
  /// MobileNet `dropout` (Keras default 1e-3), MobileNetV3 `dropout_rate` (0.2); empty: Keras' default.
  std::optional<double> dropout;
  /// MobileNetV3: no squeeze-excite, hard-swish or 5x5 convolutions.
  bool minimalistic = false;
  /// MobileNetV3, EfficientNetV2, ConvNeXt: the Rescaling/Normalization input layers.
  bool include_preprocessing = true;
};

namespace detail {

/// keras.src.utils.naming.to_snake_case.
inline std::string to_snake_case(const std::string& in) {
  std::string s;
  for (char c : in)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') s += c;
  auto upper = [](char c) { return c >= 'A' && c <= 'Z'; };
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  // re.sub("(.)([A-Z][a-z]+)", r"\1_\2"): an underscore before each capitalised word that follows something
  std::string a;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && upper(s[i]) && i + 1 < s.size() && lower(s[i + 1])) a += '_';
    a += s[i];
  }
  // re.sub("([a-z])([A-Z])", r"\1_\2")
  std::string b;
  for (size_t i = 0; i < a.size(); ++i) {
    if (i > 0 && upper(a[i]) && lower(a[i - 1])) b += '_';
    b += a[i];
  }
  for (auto& c : b) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return b;
}

}  // namespace detail

/// Builds one functional graph the way keras.applications code does, line for line:
///   x = g("Conv2D", {{"filters", 32}, {"kernel_size", 3}, {"name", "conv1"}}, x);
/// Layers are created from their Keras class name and keyword arguments by graft's layer registry
/// (so defaults, validation and configs are those of a loaded Keras file).
template <class T = float>
class Graph {
 public:
  using KT = KerasTensor<T>;

  /// keras.layers.Input(shape) (auto-named "input_layer" like Keras 3).
  KT input(const Shape& shape, const std::string& name = {}) { return Input<T>(shape, name.empty() ? auto_name("input_layer") : name); }

  /// keras.layers.<cls>(**kwargs), named like Keras when kwargs has no "name".
  std::shared_ptr<Layer<T>> layer(const std::string& cls, json kwargs) {
    if (!kwargs.is_object()) kwargs = json::object();
    if (!kwargs.contains("name") || kwargs["name"].is_null()) kwargs["name"] = auto_name(detail::to_snake_case(cls));
    return LayerRegistry<T>::instance().create(cls, kwargs);
  }
  /// keras.layers.<cls>(**kwargs)(x)
  KT operator()(const std::string& cls, json kwargs, const KT& x) { return (*layer(cls, std::move(kwargs)))(x); }
  /// keras.layers.<cls>(**kwargs)([x, y, ...]) (merge layers)
  KT operator()(const std::string& cls, json kwargs, const std::vector<KT>& xs) { return (*layer(cls, std::move(kwargs)))(xs); }

  /// An element-wise operation node of a Keras 3 functional graph (`op_class`: Add, Subtract,
  /// Multiply, TrueDivide, Maximum, Minimum) with a tensor and a Python number: x + 3.0 is
  /// op("Add", x, 3.0), 1.0 - x is op("Subtract", 1.0, x).
  KT op(const std::string& op_class, const KT& x, double c) { return make_op(op_class, json::array({nullptr, c}), {x}); }
  KT op(const std::string& op_class, double c, const KT& x) { return make_op(op_class, json::array({c, nullptr}), {x}); }
  /// ... or two tensors (x * y).
  KT op(const std::string& op_class, const KT& a, const KT& b) { return make_op(op_class, json::array({nullptr, nullptr}), {a, b}); }

  /// Keras' automatic name: `prefix` the first time, then prefix_1, prefix_2, ... (one counter per
  /// prefix for the whole build, shared by layers and operations, as keras.backend uniquify does
  /// after clear_session()).
  std::string auto_name(const std::string& prefix) {
    int& n = uids_[prefix];
    std::string r = n == 0 ? prefix : prefix + "_" + std::to_string(n);
    ++n;
    return r;
  }

 private:
  KT make_op(const std::string& op_class, const json& args, const std::vector<KT>& xs) {
    auto o = std::make_shared<Operation<T>>(op_class, auto_name(detail::to_snake_case(op_class)));
    o->set_arguments(args);
    return xs.size() == 1 ? (*o)(xs[0]) : (*o)(xs);
  }
  std::map<std::string, int> uids_;
};

/// The official weights files of a family (file names and the URL they are under), for the error
/// a request for "imagenet" gets.
struct WeightsFiles {
  std::string top, notop;
};

/// imagenet_utils.obtain_input_shape for channels_last (H, W, C), weights never "imagenet" here.
inline Shape obtain_input_shape(const Shape& input_shape, Index default_size, Index min_size, const std::string& family) {
  if (input_shape.empty()) return Shape{default_size, default_size, 3};
  if (input_shape.size() != 3)
    throw value_error(graft::detail::cat(family, ": input_shape must be (height, width, channels), got ", shape_str(input_shape)));
  for (int i = 0; i < 3; ++i)
    if (input_shape[i] <= 0) throw value_error(graft::detail::cat(family, ": input_shape ", shape_str(input_shape), " has a non-positive size"));
  if (input_shape[0] < min_size || input_shape[1] < min_size)
    throw value_error(graft::detail::cat(family, ": input size must be at least ", min_size, "x", min_size, "; received input_shape=",
                                         shape_str(input_shape)));
  return input_shape;
}

/// The checks every keras.applications function makes on its arguments, plus graft's: no downloads.
inline void validate_options(const Options& o, const std::string& family, const WeightsFiles& files) {
  if (o.weights == "imagenet")
    throw value_error(graft::detail::cat(
        family, ": graft does not download weights; fetch Keras' file (", o.include_top ? files.top : files.notop,
        ") once and pass its path as weights"));
  if (o.pooling != "" && o.pooling != "avg" && o.pooling != "max")
    throw value_error(graft::detail::cat(family, ": pooling must be \"\" (none), \"avg\" or \"max\", got \"", o.pooling, "\""));
  if (o.include_top && o.classes <= 0)
    throw value_error(graft::detail::cat(family, ": classes must be positive, got ", o.classes));
  // imagenet_utils.validate_activation: pretrained tops come with softmax or logits only
  const std::string a = o.classifier_activation;
  if (o.include_top && !o.weights.empty() && a != "softmax" && a != "linear" && !a.empty())
    throw value_error(graft::detail::cat(family, ": with pretrained weights, classifier_activation must be \"softmax\" or \"linear\" (None), got \"",
                                         a, "\""));
}

/// Keras' Dense(activation=None) is "linear".
inline std::string classifier_activation(const Options& o) { return o.classifier_activation.empty() ? "linear" : o.classifier_activation; }

/// The head most families share: include_top -> GlobalAveragePooling2D(name="avg_pool") +
/// Dense(classes, name="predictions"); otherwise the pooling option (auto-named layers).
template <class T>
KerasTensor<T> pooled_head(Graph<T>& g, KerasTensor<T> x, const Options& o) {
  if (o.include_top) {
    x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
    return g("Dense", {{"units", o.classes}, {"activation", classifier_activation(o)}, {"name", "predictions"}}, x);
  }
  return pooling(g, x, o);
}

/// include_top false: GlobalAveragePooling2D / GlobalMaxPooling2D per `pooling`, auto-named.
template <class T>
KerasTensor<T> pooling(Graph<T>& g, KerasTensor<T> x, const Options& o) {
  if (o.pooling == "avg") return g("GlobalAveragePooling2D", json::object(), x);
  if (o.pooling == "max") return g("GlobalMaxPooling2D", json::object(), x);
  return x;
}

/// Loads a Keras weights file into a freshly built application, or throws and leaves the model as it
/// was. Legacy files (Keras' official ones, save_weights .h5, whole-model .h5) pair layers by name:
/// every layer of the model that has weights must be in the file with the same weight shapes (the
/// error names the first that is missing or differs); layers the file has beyond the model (a top
/// the model was built without) are ignored. Keras 3 .weights.h5 and .keras weights pair by position.
template <class T>
void load_weights_by_name(Model<T>& model, const std::string& path) {
  std::vector<Tensor<T>> saved;
  std::vector<Param<T>*> params;
  for (auto* p : model.weights()) {
    params.push_back(p);
    saved.push_back(p->value);
  }
  try {
    bool legacy = false;
    if (h5::sniff(path) != h5::FileKind::zip) {
      h5::File f = h5::File::open(path);
      h5::Group root = h5::Group::root(f);
      std::optional<h5::Group> g;
      if (root.has_strings_attr("layer_names")) g.emplace(root);
      else if (root.has_child("model_weights") && root.group("model_weights").has_strings_attr("layer_names")) g.emplace(root.group("model_weights"));
      if (g) {
        legacy = true;
        std::set<std::string> in_file;
        for (const auto& n : g->strings_attr("layer_names")) {
          h5::Group lg = g->group(n);
          if (!lg.strings_attr("weight_names").empty()) in_file.insert(n);
        }
        for (const auto& l : model.layers())
          if (!l->weights().empty() && !in_file.count(l->name()))
            throw format_error(graft::detail::cat(path, ": no weights for layer '", l->name(), "' (", l->class_name(), ") of model '",
                                                  model.name(), "': the file is for another architecture or other arguments"));
      }
    }
    LoadWeightsOptions lo;
    lo.by_name = legacy;
    load_weights(model, path, lo);
  } catch (...) {
    for (size_t i = 0; i < params.size(); ++i) params[i]->value = std::move(saved[i]);
    throw;
  }
}

/// Finish a build: the Functional model, then the weights when a file was given.
template <class T>
std::shared_ptr<Model<T>> finish(const KerasTensor<T>& input, const KerasTensor<T>& output, const Options& o, const std::string& default_name) {
  auto m = std::make_shared<Model<T>>(input, output, o.name.empty() ? default_name : o.name);
  if (!o.weights.empty()) load_weights_by_name(*m, o.weights);
  return m;
}

/// imagenet_utils.preprocess_input modes on channels-last images with values in [0, 255]:
/// "caffe" (RGB -> BGR, minus the ImageNet BGR means), "tf" (to [-1, 1]), "torch" (to [0, 1], then
/// the ImageNet mean and standard deviation per RGB channel), "none" (unchanged).
template <class T>
Tensor<T> imagenet_preprocess(Tensor<T> x, const std::string& mode) {
  if (mode == "none") return x;
  if (mode == "tf") {
    for (auto& v : x) v = v / T(127.5) - T(1);
    return x;
  }
  if (x.shape().empty() || x.shape().back() != 3)
    throw shape_error(graft::detail::cat("preprocess_input (", mode, "): expects 3 channels last, got shape ", shape_str(x.shape())));
  const Index n = x.size() / 3;
  if (mode == "caffe") {
    const T mean[3] = {T(103.939), T(116.779), T(123.68)};
    for (Index i = 0; i < n; ++i) {
      T* p = x.data() + 3 * i;
      std::swap(p[0], p[2]);
      for (int c = 0; c < 3; ++c) p[c] -= mean[c];
    }
    return x;
  }
  if (mode == "torch") {
    const T mean[3] = {T(0.485), T(0.456), T(0.406)}, stdv[3] = {T(0.229), T(0.224), T(0.225)};
    for (Index i = 0; i < n; ++i) {
      T* p = x.data() + 3 * i;
      for (int c = 0; c < 3; ++c) p[c] = (p[c] / T(255) - mean[c]) / stdv[c];
    }
    return x;
  }
  throw value_error(graft::detail::cat("preprocess_input: unknown mode '", mode, "' (caffe, tf, torch, none)"));
}

}  // namespace applications
}  // namespace graft
