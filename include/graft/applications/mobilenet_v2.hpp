// graft — MobileNetV2 (keras.applications.mobilenet_v2, Sandler et al. 2018): inverted residual
// blocks with linear bottlenecks.
#pragma once

#include "graft/applications/builder.hpp"
#include "graft/applications/mobilenet.hpp"

namespace graft {
namespace applications {
namespace detail {

/// mobilenet_v2._inverted_res_block: [1x1 expand, BN, ReLU6], [ZeroPadding2D], 3x3 depthwise, BN,
/// ReLU6, 1x1 project, BN, [Add with the input].
template <class T>
KerasTensor<T> mobilenet_v2_inverted_res_block(Graph<T>& g, const KerasTensor<T>& inputs, int expansion, int stride, double alpha,
                                               int filters, int block_id) {
  const int channel_axis = -1;
  const Index in_channels = inputs.shape().back();
  const int pointwise_conv_filters = static_cast<int>(filters * alpha);
  // Ensure the number of filters on the last 1x1 convolution is divisible by 8.
  const int pointwise_filters = mobilenet_make_divisible(pointwise_conv_filters, 8);
  KerasTensor<T> x = inputs;
  std::string prefix = "block_" + std::to_string(block_id) + "_";
  if (block_id) {
    // Expand with a pointwise 1x1 convolution.
    x = g("Conv2D", {{"filters", expansion * in_channels}, {"kernel_size", 1}, {"padding", "same"}, {"use_bias", false},
                     {"activation", "linear"}, {"name", prefix + "expand"}}, x);
    x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", prefix + "expand_BN"}}, x);
    x = g("ReLU", {{"max_value", 6.0}, {"name", prefix + "expand_relu"}}, x);
  } else {
    prefix = "expanded_conv_";
  }
  // Depthwise 3x3 convolution.
  if (stride == 2) x = g("ZeroPadding2D", {{"padding", mobilenet_correct_pad(x.shape(), 3)}, {"name", prefix + "pad"}}, x);
  x = g("DepthwiseConv2D", {{"kernel_size", 3}, {"strides", stride}, {"activation", "linear"}, {"use_bias", false},
                            {"padding", stride == 1 ? "same" : "valid"}, {"name", prefix + "depthwise"}}, x);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", prefix + "depthwise_BN"}}, x);
  x = g("ReLU", {{"max_value", 6.0}, {"name", prefix + "depthwise_relu"}}, x);
  // Project with a pointwise 1x1 convolution.
  x = g("Conv2D", {{"filters", pointwise_filters}, {"kernel_size", 1}, {"padding", "same"}, {"use_bias", false}, {"activation", "linear"},
                   {"name", prefix + "project"}}, x);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", prefix + "project_BN"}}, x);
  if (in_channels == pointwise_filters && stride == 1) return g("Add", {{"name", prefix + "add"}}, std::vector<KerasTensor<T>>{inputs, x});
  return x;
}

/// keras mobilenet_v2.MobileNetV2.
template <class T>
std::shared_ptr<Model<T>> mobilenet_v2(const Options& o) {
  const std::string family = "MobileNetV2";
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/";
  auto known_size = [](Index r) { return r == 96 || r == 128 || r == 160 || r == 192 || r == 224; };
  // Determine proper input shape and default size.
  Index default_size = 224;
  if (o.input_shape.size() == 3) {
    const Index r = o.input_shape[0], c = o.input_shape[1];
    if (r == c && known_size(r)) default_size = r;
  }
  WeightsFiles files;
  if (o.weights == "imagenet") {  // Keras' checks of its arguments before it downloads
    mobilenet_imagenet_checks(o, family, default_size);
    if (!mobilenet_alpha_in(o.alpha, {0.35, 0.50, 0.75, 1.0, 1.3, 1.4}))
      throw value_error(graft::detail::cat(family, ": if imagenet weights are being loaded, alpha must be one of 0.35, 0.50, 0.75, 1.0, 1.3 or 1.4 only; received alpha=",
                                           mobilenet_py_float(o.alpha)));
    Index rows = o.input_shape.empty() ? (o.include_top ? 224 : -1) : o.input_shape[0];
    Index cols = o.input_shape.empty() ? rows : o.input_shape[1];
    if (rows != cols || !known_size(rows)) rows = 224;
    const std::string stem = base + "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_" + mobilenet_py_float(o.alpha) + "_" + std::to_string(rows);
    files.top = stem + ".h5";
    files.notop = stem + "_no_top.h5";
  }
  validate_options(o, family, files);
  const double alpha = o.alpha;
  if (!(alpha > 0)) throw value_error(graft::detail::cat(family, ": alpha must be positive, got ", mobilenet_py_float(alpha)));
  const Shape input_shape = mobilenet_input_shape(o, default_size, family);
  const Index rows = input_shape[0];

  Graph<T> g;
  auto img_input = g.input(input_shape);
  const int channel_axis = -1;
  const int first_block_filters = mobilenet_make_divisible(32 * alpha, 8);
  auto x = g("Conv2D", {{"filters", first_block_filters}, {"kernel_size", 3}, {"strides", {2, 2}}, {"padding", "same"}, {"use_bias", false},
                        {"name", "Conv1"}}, img_input);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", "bn_Conv1"}}, x);
  x = g("ReLU", {{"max_value", 6.0}, {"name", "Conv1_relu"}}, x);

  // (filters, stride, expansion) of blocks 0..16
  const int blocks[17][3] = {{16, 1, 1},  {24, 2, 6},  {24, 1, 6},  {32, 2, 6},  {32, 1, 6},  {32, 1, 6},
                             {64, 2, 6},  {64, 1, 6},  {64, 1, 6},  {64, 1, 6},  {96, 1, 6},  {96, 1, 6},
                             {96, 1, 6},  {160, 2, 6}, {160, 1, 6}, {160, 1, 6}, {320, 1, 6}};
  for (int b = 0; b < 17; ++b) x = mobilenet_v2_inverted_res_block(g, x, blocks[b][2], blocks[b][1], alpha, blocks[b][0], b);

  // no alpha applied to last conv as stated in the paper: if the width multiplier is greater than
  // 1 we increase the number of output channels.
  const int last_block_filters = alpha > 1.0 ? mobilenet_make_divisible(1280 * alpha, 8) : 1280;
  x = g("Conv2D", {{"filters", last_block_filters}, {"kernel_size", 1}, {"use_bias", false}, {"name", "Conv_1"}}, x);
  x = g("BatchNormalization", {{"axis", channel_axis}, {"epsilon", 1e-3}, {"momentum", 0.999}, {"name", "Conv_1_bn"}}, x);
  x = g("ReLU", {{"max_value", 6.0}, {"name", "out_relu"}}, x);

  if (o.include_top) {
    x = g("GlobalAveragePooling2D", json::object(), x);
    x = g("Dense", {{"units", o.classes}, {"activation", classifier_activation(o)}, {"name", "predictions"}}, x);
  } else {
    x = pooling(g, x, o);
  }
  return finish(img_input, x, o, "mobilenetv2_" + mobilenet_fixed2(alpha) + "_" + mobilenet_rows_str(rows));
}

}  // namespace detail

/// keras.applications.MobileNetV2: alpha (width multiplier; Keras' files exist for 0.35, 0.5, 0.75,
/// 1.0, 1.3, 1.4 at 96, 128, 160, 192 and 224 pixels). Input: RGB images preprocessed with
/// preprocess_input("MobileNetV2", x) ("tf", to [-1, 1]).
template <class T = float>
std::shared_ptr<Model<T>> MobileNetV2(const Options& o = {}) {
  return detail::mobilenet_v2<T>(o);
}

}  // namespace applications
}  // namespace graft
