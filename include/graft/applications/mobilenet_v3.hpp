// graft — MobileNetV3Small and MobileNetV3Large (keras.applications.mobilenet_v3, Howard et al.
// 2019): inverted residual blocks with squeeze-excite and hard-swish (or, minimalistic, neither),
// with the [-1, 1] rescaling of [0, 255] images inside the model.
#pragma once

#include "graft/applications/builder.hpp"
#include "graft/applications/mobilenet.hpp"

namespace graft {
namespace applications {
namespace detail {

/// The activation a MobileNetV3 block uses: mobilenet_v3.relu (layers.ReLU()) or hard_swish
/// (layers.Activation("hard_swish")), both auto-named.
enum class MobileNetV3Act { relu, hard_swish };

template <class T>
KerasTensor<T> mobilenet_v3_activation(Graph<T>& g, const KerasTensor<T>& x, MobileNetV3Act a) {
  if (a == MobileNetV3Act::relu) return g("ReLU", json::object(), x);
  return g("Activation", {{"activation", "hard_swish"}}, x);
}

/// mobilenet_v3.hard_sigmoid: layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0) — the ReLU layer is made
/// before the `+` operation (Python evaluates the callee first), then the `*` operation.
template <class T>
KerasTensor<T> mobilenet_v3_hard_sigmoid(Graph<T>& g, const KerasTensor<T>& x) {
  auto relu6 = g.layer("ReLU", {{"max_value", 6.0}});
  auto y = g.op("Add", x, 3.0);
  y = (*relu6)(y);
  return g.op("Multiply", y, 1.0 / 6.0);
}

/// mobilenet_v3._se_block: squeeze (global average), excite (two 1x1 convolutions, ReLU and
/// hard sigmoid), rescale the input channels.
template <class T>
KerasTensor<T> mobilenet_v3_se_block(Graph<T>& g, const KerasTensor<T>& inputs, int filters, double se_ratio, const std::string& prefix) {
  auto x = g("GlobalAveragePooling2D", {{"keepdims", true}, {"name", prefix + "squeeze_excite_avg_pool"}}, inputs);
  x = g("Conv2D", {{"filters", mobilenet_make_divisible(filters * se_ratio)}, {"kernel_size", 1}, {"padding", "same"},
                   {"name", prefix + "squeeze_excite_conv"}}, x);
  x = g("ReLU", {{"name", prefix + "squeeze_excite_relu"}}, x);
  x = g("Conv2D", {{"filters", filters}, {"kernel_size", 1}, {"padding", "same"}, {"name", prefix + "squeeze_excite_conv_1"}}, x);
  x = mobilenet_v3_hard_sigmoid(g, x);
  return g("Multiply", {{"name", prefix + "squeeze_excite_mul"}}, std::vector<KerasTensor<T>>{inputs, x});
}

/// mobilenet_v3._inverted_res_block. se_ratio 0: no squeeze-excite.
template <class T>
KerasTensor<T> mobilenet_v3_inverted_res_block(Graph<T>& g, KerasTensor<T> x, double expansion, int filters, int kernel_size, int stride,
                                               double se_ratio, MobileNetV3Act activation, int block_id) {
  const int channel_axis = -1;
  const KerasTensor<T> shortcut = x;
  std::string prefix = "expanded_conv_";
  const Index infilters = x.shape().back();
  if (block_id) {
    // Expand
    prefix = "expanded_conv_" + std::to_string(block_id) + "_";
    x = g("Conv2D", {{"filters", mobilenet_make_divisible(static_cast<double>(infilters) * expansion)}, {"kernel_size", 1},
                     {"padding", "same"}, {"use_bias", false}, {"name", prefix + "expand"}}, x);
    x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", prefix + "expand_bn"}}, x);
    x = mobilenet_v3_activation(g, x, activation);
  }
  if (stride == 2)
    x = g("ZeroPadding2D", {{"padding", mobilenet_correct_pad(x.shape(), kernel_size)}, {"name", prefix + "depthwise_pad"}}, x);
  x = g("DepthwiseConv2D", {{"kernel_size", kernel_size}, {"strides", stride}, {"padding", stride == 1 ? "same" : "valid"},
                            {"use_bias", false}, {"name", prefix + "depthwise"}}, x);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", prefix + "depthwise_bn"}}, x);
  x = mobilenet_v3_activation(g, x, activation);
  if (se_ratio != 0)
    x = mobilenet_v3_se_block(g, x, mobilenet_make_divisible(static_cast<double>(infilters) * expansion), se_ratio, prefix);
  x = g("Conv2D", {{"filters", filters}, {"kernel_size", 1}, {"padding", "same"}, {"use_bias", false}, {"name", prefix + "project"}}, x);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", prefix + "project_bn"}}, x);
  if (stride == 1 && infilters == filters) x = g("Add", {{"name", prefix + "add"}}, std::vector<KerasTensor<T>>{shortcut, x});
  return x;
}

/// One row of a MobileNetV3 stack: expansion, filters (before alpha), kernel size (0: the
/// model's `kernel`, 3 or 5), stride, squeeze-excite (the model's se_ratio), activation (true: the
/// model's, false: relu).
struct MobileNetV3Block {
  double expansion;
  int filters, kernel, stride;
  bool se, model_activation;
};

/// keras mobilenet_v3.MobileNetV3 with the stack of MobileNetV3Small or MobileNetV3Large.
template <class T>
std::shared_ptr<Model<T>> mobilenet_v3(const Options& o, bool large) {
  const std::string family = large ? "MobileNetV3Large" : "MobileNetV3Small";
  const std::string model_type = large ? "large" : "small";
  const int last_point_ch_in = large ? 1280 : 1024;
  const double alpha = o.alpha;
  WeightsFiles files;
  if (o.weights == "imagenet") {  // Keras' checks of its arguments before it downloads
    if (o.include_top && o.classes != 1000)
      throw value_error(graft::detail::cat(family, ": if using weights=\"imagenet\" with include_top as true, classes should be 1000; received classes=",
                                           o.classes));
    if ((!o.minimalistic && alpha != 0.75 && alpha != 1.0) || (o.minimalistic && alpha != 1.0))
      throw value_error(graft::detail::cat(family, ": if imagenet weights are being loaded, alpha can be one of 0.75, 1.0 for non minimalistic "
                                                   "or 1.0 for minimalistic only; received alpha=",
                                           mobilenet_py_float(alpha)));
    const std::string model_name = model_type + (o.minimalistic ? "_minimalistic" : "") + "_224_" + mobilenet_py_float(alpha) + "_float";
    const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/";
    files.top = base + "weights_mobilenet_v3_" + model_name + ".h5";
    files.notop = base + "weights_mobilenet_v3_" + model_name + "_no_top_v2.h5";
  }
  validate_options(o, family, files);
  if (!(alpha > 0)) throw value_error(graft::detail::cat(family, ": alpha must be positive, got ", mobilenet_py_float(alpha)));
  const double dropout_rate = o.dropout.value_or(0.2);
  // If input_shape is None and input_tensor is None: (None, None, 3), any image size.
  Shape input_shape = o.input_shape.empty() ? Shape{-1, -1, 3} : o.input_shape;
  if (input_shape.size() != 3)
    throw value_error(graft::detail::cat(family, ": input_shape must be (height, width, channels), got ", shape_str(input_shape)));
  const Index rows = input_shape[0], cols = input_shape[1];
  if (rows > 0 && cols > 0 && (rows < 32 || cols < 32))
    throw value_error(graft::detail::cat(family, ": input size must be at least 32x32; received input_shape=", shape_str(input_shape)));

  Graph<T> g;
  auto img_input = g.input(input_shape);
  const int channel_axis = -1;
  int kernel;
  MobileNetV3Act activation;
  double se_ratio;
  if (o.minimalistic) {
    kernel = 3;
    activation = MobileNetV3Act::relu;
    se_ratio = 0;
  } else {
    kernel = 5;
    activation = MobileNetV3Act::hard_swish;
    se_ratio = 0.25;
  }
  auto x = img_input;
  if (o.include_preprocessing) x = g("Rescaling", {{"scale", 1.0 / 127.5}, {"offset", -1.0}}, x);
  x = g("Conv2D", {{"filters", 16}, {"kernel_size", 3}, {"strides", {2, 2}}, {"padding", "same"}, {"use_bias", false}, {"name", "conv"}}, x);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", "conv_bn"}}, x);
  x = mobilenet_v3_activation(g, x, activation);

  // stack_fn of MobileNetV3Small / MobileNetV3Large (kernel 0: the model's kernel)
  static const MobileNetV3Block small[] = {
      {1, 16, 3, 2, true, false},        {72.0 / 16, 24, 3, 2, false, false}, {88.0 / 24, 24, 3, 1, false, false},
      {4, 40, 0, 2, true, true},         {6, 40, 0, 1, true, true},           {6, 40, 0, 1, true, true},
      {3, 48, 0, 1, true, true},         {3, 48, 0, 1, true, true},           {6, 96, 0, 2, true, true},
      {6, 96, 0, 1, true, true},         {6, 96, 0, 1, true, true}};
  static const MobileNetV3Block large_stack[] = {
      {1, 16, 3, 1, false, false},   {4, 24, 3, 2, false, false},   {3, 24, 3, 1, false, false},  {3, 40, 0, 2, true, false},
      {3, 40, 0, 1, true, false},    {3, 40, 0, 1, true, false},    {6, 80, 3, 2, false, true},   {2.5, 80, 3, 1, false, true},
      {2.3, 80, 3, 1, false, true},  {2.3, 80, 3, 1, false, true},  {6, 112, 3, 1, true, true},   {6, 112, 3, 1, true, true},
      {6, 160, 0, 2, true, true},    {6, 160, 0, 1, true, true},    {6, 160, 0, 1, true, true}};
  const MobileNetV3Block* stack = large ? large_stack : small;
  const int n = large ? 15 : 11;
  for (int b = 0; b < n; ++b) {
    const auto& s = stack[b];
    x = mobilenet_v3_inverted_res_block(g, x, s.expansion, mobilenet_make_divisible(s.filters * alpha), s.kernel ? s.kernel : kernel,
                                        s.stride, s.se ? se_ratio : 0.0, s.model_activation ? activation : MobileNetV3Act::relu, b);
  }

  const int last_conv_ch = mobilenet_make_divisible(static_cast<double>(x.shape().back() * 6));
  // if the width multiplier is greater than 1 we increase the number of output channels
  int last_point_ch = last_point_ch_in;
  if (alpha > 1.0) last_point_ch = mobilenet_make_divisible(last_point_ch * alpha);
  x = g("Conv2D", {{"filters", last_conv_ch}, {"kernel_size", 1}, {"padding", "same"}, {"use_bias", false}, {"name", "conv_1"}}, x);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", "conv_1_bn"}}, x);
  x = mobilenet_v3_activation(g, x, activation);
  if (o.include_top) {
    x = g("GlobalAveragePooling2D", {{"keepdims", true}}, x);
    x = g("Conv2D", {{"filters", last_point_ch}, {"kernel_size", 1}, {"padding", "same"}, {"use_bias", true}, {"name", "conv_2"}}, x);
    x = mobilenet_v3_activation(g, x, activation);
    if (dropout_rate > 0) x = g("Dropout", {{"rate", dropout_rate}}, x);
    x = g("Conv2D", {{"filters", o.classes}, {"kernel_size", 1}, {"padding", "same"}, {"name", "logits"}}, x);
    x = g("Flatten", json::object(), x);
    x = g("Activation", {{"activation", classifier_activation(o)}, {"name", "predictions"}}, x);
  } else {
    if (o.pooling == "avg") x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
    else if (o.pooling == "max") x = g("GlobalMaxPooling2D", {{"name", "max_pool"}}, x);
  }
  return finish(img_input, x, o, family);
}

}  // namespace detail

/// keras.applications.MobileNetV3Small: alpha (Keras' files: 0.75, 1.0; minimalistic 1.0),
/// minimalistic, dropout (Keras' dropout_rate, default 0.2), include_preprocessing (the model takes
/// [0, 255] images; without it, [-1, 1]).
template <class T = float>
std::shared_ptr<Model<T>> MobileNetV3Small(const Options& o = {}) {
  return detail::mobilenet_v3<T>(o, false);
}

/// keras.applications.MobileNetV3Large (same arguments as MobileNetV3Small).
template <class T = float>
std::shared_ptr<Model<T>> MobileNetV3Large(const Options& o = {}) {
  return detail::mobilenet_v3<T>(o, true);
}

}  // namespace applications
}  // namespace graft
