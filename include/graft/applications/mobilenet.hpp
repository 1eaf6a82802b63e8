// graft — MobileNet (keras.applications.mobilenet, Howard et al. 2017), and the helpers the MobileNet
// family shares (mobilenet_v2.hpp, mobilenet_v3.hpp): Keras' input shapes with None sizes, Python's
// number formatting in model and file names, imagenet_utils.correct_pad and _make_divisible.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// imagenet_utils.obtain_input_shape as the MobileNets call it with weights None or a file:
/// no input_shape gives (default_size, default_size, 3) with the top, (None, None, 3) without
/// (-1 sizes: the model takes any image size, as Keras' does).
/// The checks MobileNet and MobileNetV2 make of their arguments with weights="imagenet".
inline void mobilenet_imagenet_checks(const Options& o, const std::string& family, Index default_size) {
  if (o.include_top && o.classes != 1000)
    throw value_error(graft::detail::cat(family, ": if using weights='imagenet' with include_top=True, classes should be 1000; received classes=",
                                         o.classes));
  if (o.include_top && !o.input_shape.empty() && o.input_shape != Shape{default_size, default_size, 3})
    throw value_error(graft::detail::cat(family, ": with include_top=True and imagenet weights, input_shape should be ",
                                         shape_str(Shape{default_size, default_size, 3}), "; received input_shape=", shape_str(o.input_shape)));
  if (!o.input_shape.empty() && o.input_shape.size() == 3 && o.input_shape[2] != 3)
    throw value_error(graft::detail::cat(family, ": the input must have 3 channels; received input_shape=", shape_str(o.input_shape)));
}

inline Shape mobilenet_input_shape(const Options& o, Index default_size, const std::string& family) {
  if (o.input_shape.empty()) return o.include_top ? Shape{default_size, default_size, 3} : Shape{-1, -1, 3};
  return obtain_input_shape(o.input_shape, default_size, 32, family);
}

/// Python's str(rows) for a size that may be None (-1).
inline std::string mobilenet_rows_str(Index rows) { return rows < 0 ? std::string("None") : std::to_string(rows); }

/// Python's f"{v:0.2f}".
inline std::string mobilenet_fixed2(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

/// Python's str(float(v)) / repr: the shortest digits that read back as v, with ".0" for integers.
inline std::string mobilenet_py_float(double v) {
  char b[64];
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(b, sizeof b, "%.*g", p, v);
    if (std::strtod(b, nullptr) == v) break;
  }
  std::string s = b;
  if (s.find_first_of(".eninf") == std::string::npos) s += ".0";
  return s;
}

/// v is one of `allowed` (Python's `alpha in [0.25, 0.50, ...]`).
inline bool mobilenet_alpha_in(double v, std::initializer_list<double> allowed) {
  for (double a : allowed)
    if (v == a) return true;
  return false;
}

/// imagenet_utils.correct_pad (channels_last): the ZeroPadding2D padding before a strided
/// "valid" convolution, ((top, bottom), (left, right)); an unknown height pads as an even one.
inline json mobilenet_correct_pad(const Shape& shape, int kernel_size) {
  const Index h = shape[1], w = shape[2];
  int adjust0 = 1, adjust1 = 1;
  if (h >= 0) {
    adjust0 = static_cast<int>(1 - h % 2);
    adjust1 = static_cast<int>(1 - w % 2);
  }
  const int correct = kernel_size / 2;
  return json::array({json::array({correct - adjust0, correct}), json::array({correct - adjust1, correct})});
}

/// mobilenet_v2._make_divisible / mobilenet_v3._depth: v rounded to a multiple of divisor (at least
/// divisor), never more than 10% below v.
inline int mobilenet_make_divisible(double v, int divisor = 8) {
  const int min_value = divisor;
  int new_v = std::max(min_value, static_cast<int>(v + divisor / 2.0) / divisor * divisor);
  if (new_v < 0.9 * v) new_v += divisor;
  return new_v;
}

/// mobilenet._conv_block: Conv2D (no bias), BatchNormalization, ReLU(6).
template <class T>
KerasTensor<T> mobilenet_conv_block(Graph<T>& g, const KerasTensor<T>& inputs, int filters, double alpha, int strides) {
  const int channel_axis = -1;
  filters = static_cast<int>(filters * alpha);
  auto x = g("Conv2D", {{"filters", filters}, {"kernel_size", {3, 3}}, {"padding", "same"}, {"use_bias", false},
                        {"strides", {strides, strides}}, {"name", "conv1"}}, inputs);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"name", "conv1_bn"}}, x);
  return g("ReLU", {{"max_value", 6.0}, {"name", "conv1_relu"}}, x);
}

/// mobilenet._depthwise_conv_block: [ZeroPadding2D], DepthwiseConv2D 3x3, BatchNormalization,
/// ReLU(6), pointwise Conv2D 1x1, BatchNormalization, ReLU(6).
template <class T>
KerasTensor<T> mobilenet_depthwise_conv_block(Graph<T>& g, const KerasTensor<T>& inputs, int pointwise_conv_filters, double alpha,
                                              int depth_multiplier, int strides, int block_id) {
  const int channel_axis = -1;
  const std::string id = std::to_string(block_id);
  pointwise_conv_filters = static_cast<int>(pointwise_conv_filters * alpha);
  KerasTensor<T> x;
  if (strides == 1) x = inputs;
  else x = g("ZeroPadding2D", {{"padding", json::array({json::array({0, 1}), json::array({0, 1})})}, {"name", "conv_pad_" + id}}, inputs);
  x = g("DepthwiseConv2D", {{"kernel_size", {3, 3}}, {"padding", strides == 1 ? "same" : "valid"}, {"depth_multiplier", depth_multiplier},
                            {"strides", {strides, strides}}, {"use_bias", false}, {"name", "conv_dw_" + id}}, x);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"name", "conv_dw_" + id + "_bn"}}, x);
  x = g("ReLU", {{"max_value", 6.0}, {"name", "conv_dw_" + id + "_relu"}}, x);
  x = g("Conv2D", {{"filters", pointwise_conv_filters}, {"kernel_size", {1, 1}}, {"padding", "same"}, {"use_bias", false},
                   {"strides", {1, 1}}, {"name", "conv_pw_" + id}}, x);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"name", "conv_pw_" + id + "_bn"}}, x);
  return g("ReLU", {{"max_value", 6.0}, {"name", "conv_pw_" + id + "_relu"}}, x);
}

/// keras mobilenet.MobileNet.
template <class T>
std::shared_ptr<Model<T>> mobilenet(const Options& o) {
  const std::string family = "MobileNet";
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/";
  // Determine proper input shape and default size.
  Index default_size = 224;
  if (o.input_shape.size() == 3) {
    const Index r = o.input_shape[0], c = o.input_shape[1];
    if (r == c && (r == 128 || r == 160 || r == 192 || r == 224)) default_size = r;
  }
  WeightsFiles files;
  if (o.weights == "imagenet") {  // Keras' checks of its arguments before it downloads
    mobilenet_imagenet_checks(o, family, default_size);
    if (o.depth_multiplier != 1)
      throw value_error(graft::detail::cat(family, ": if imagenet weights are being loaded, depth multiplier must be 1; received depth_multiplier=",
                                           o.depth_multiplier));
    if (!mobilenet_alpha_in(o.alpha, {0.25, 0.50, 0.75, 1.0}))
      throw value_error(graft::detail::cat(family, ": if imagenet weights are being loaded, alpha can be one of 0.25, 0.50, 0.75 or 1.0 only; received alpha=",
                                           mobilenet_py_float(o.alpha)));
    Index rows = o.input_shape.empty() ? (o.include_top ? 224 : -1) : o.input_shape[0];
    Index cols = o.input_shape.empty() ? rows : o.input_shape[1];
    if (rows != cols || !(rows == 128 || rows == 160 || rows == 192 || rows == 224)) rows = 224;
    const std::string alpha_text = o.alpha == 1.0 ? "1_0" : o.alpha == 0.75 ? "7_5" : o.alpha == 0.50 ? "5_0" : "2_5";
    files.top = base + "mobilenet_" + alpha_text + "_" + std::to_string(rows) + "_tf.h5";
    files.notop = base + "mobilenet_" + alpha_text + "_" + std::to_string(rows) + "_tf_no_top.h5";
  }
  validate_options(o, family, files);
  const double alpha = o.alpha;
  const int depth_multiplier = o.depth_multiplier;
  if (!(alpha > 0)) throw value_error(graft::detail::cat(family, ": alpha must be positive, got ", mobilenet_py_float(alpha)));
  if (depth_multiplier <= 0) throw value_error(graft::detail::cat(family, ": depth_multiplier must be positive, got ", depth_multiplier));
  const Shape input_shape = mobilenet_input_shape(o, default_size, family);
  const Index rows = input_shape[0];

  Graph<T> g;
  auto img_input = g.input(input_shape);
  auto x = mobilenet_conv_block(g, img_input, 32, alpha, 2);
  x = mobilenet_depthwise_conv_block(g, x, 64, alpha, depth_multiplier, 1, 1);
  x = mobilenet_depthwise_conv_block(g, x, 128, alpha, depth_multiplier, 2, 2);
  x = mobilenet_depthwise_conv_block(g, x, 128, alpha, depth_multiplier, 1, 3);
  x = mobilenet_depthwise_conv_block(g, x, 256, alpha, depth_multiplier, 2, 4);
  x = mobilenet_depthwise_conv_block(g, x, 256, alpha, depth_multiplier, 1, 5);
  x = mobilenet_depthwise_conv_block(g, x, 512, alpha, depth_multiplier, 2, 6);
  x = mobilenet_depthwise_conv_block(g, x, 512, alpha, depth_multiplier, 1, 7);
  x = mobilenet_depthwise_conv_block(g, x, 512, alpha, depth_multiplier, 1, 8);
  x = mobilenet_depthwise_conv_block(g, x, 512, alpha, depth_multiplier, 1, 9);
  x = mobilenet_depthwise_conv_block(g, x, 512, alpha, depth_multiplier, 1, 10);
  x = mobilenet_depthwise_conv_block(g, x, 512, alpha, depth_multiplier, 1, 11);
  x = mobilenet_depthwise_conv_block(g, x, 1024, alpha, depth_multiplier, 2, 12);
  x = mobilenet_depthwise_conv_block(g, x, 1024, alpha, depth_multiplier, 1, 13);

  if (o.include_top) {
    x = g("GlobalAveragePooling2D", {{"keepdims", true}}, x);
    x = g("Dropout", {{"rate", o.dropout.value_or(1e-3)}, {"name", "dropout"}}, x);
    x = g("Conv2D", {{"filters", o.classes}, {"kernel_size", {1, 1}}, {"padding", "same"}, {"name", "conv_preds"}}, x);
    x = g("Reshape", {{"target_shape", json::array({o.classes})}, {"name", "reshape_2"}}, x);
    x = g("Activation", {{"activation", classifier_activation(o)}, {"name", "predictions"}}, x);
  } else {
    x = pooling(g, x, o);
  }
  return finish(img_input, x, o, "mobilenet_" + mobilenet_fixed2(alpha) + "_" + mobilenet_rows_str(rows));
}

}  // namespace detail

/// keras.applications.MobileNet: alpha (width multiplier; Keras' files exist for 0.25, 0.5, 0.75,
/// 1.0 at 128, 160, 192 and 224 pixels), depth_multiplier, dropout (default 1e-3). Input: RGB
/// images preprocessed with preprocess_input("MobileNet", x) ("tf", to [-1, 1]).
template <class T = float>
std::shared_ptr<Model<T>> MobileNet(const Options& o = {}) {
  return detail::mobilenet<T>(o);
}

}  // namespace applications
}  // namespace graft
