// graft — EfficientNetB0 ... B7 (keras.applications.efficientnet; Tan & Le, "EfficientNet:
// Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019). The preprocessing is
// inside the model (Rescaling(1/255) + Normalization): inputs are RGB pixels in [0, 255].
#pragma once

#include <algorithm>
#include <cmath>

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// efficientnet.CONV_KERNEL_INITIALIZER (also efficientnet_v2's).
inline json efficientnet_conv_kernel_initializer() {
  return {{"class_name", "VarianceScaling"}, {"config", {{"scale", 2.0}, {"mode", "fan_out"}, {"distribution", "truncated_normal"}}}};
}
/// efficientnet.DENSE_KERNEL_INITIALIZER (also efficientnet_v2's).
inline json efficientnet_dense_kernel_initializer() {
  return {{"class_name", "VarianceScaling"}, {"config", {{"scale", 1.0 / 3.0}, {"mode", "fan_out"}, {"distribution", "uniform"}}}};
}

/// imagenet_utils.correct_pad (channels_last): the ZeroPadding2D padding before a strided
/// "valid" convolution of `kernel_size` on x, as ((top, bottom), (left, right)).
template <class T>
json efficientnet_correct_pad(const KerasTensor<T>& x, int kernel_size) {
  const Shape& s = x.shape();  // (batch, H, W, C)
  int adjust[2] = {1, 1};
  if (s[1] >= 0) {  // Keras: input_size[0] is None -> (1, 1)
    adjust[0] = static_cast<int>(1 - s[1] % 2);
    adjust[1] = static_cast<int>(1 - s[2] % 2);
  }
  const int correct = kernel_size / 2;
  return json::array({json::array({correct - adjust[0], correct}), json::array({correct - adjust[1], correct})});
}

/// One entry of efficientnet.DEFAULT_BLOCKS_ARGS.
struct EfficientNetBlockArgs {
  int kernel_size, repeats, filters_in, filters_out, expand_ratio;
  bool id_skip;
  int strides;
  double se_ratio;
};

inline const std::vector<EfficientNetBlockArgs>& efficientnet_default_blocks_args() {
  static const std::vector<EfficientNetBlockArgs> b = {
      {3, 1, 32, 16, 1, true, 1, 0.25},  {3, 2, 16, 24, 6, true, 2, 0.25},   {5, 2, 24, 40, 6, true, 2, 0.25},
      {3, 3, 40, 80, 6, true, 2, 0.25},  {5, 3, 80, 112, 6, true, 1, 0.25},  {5, 4, 112, 192, 6, true, 2, 0.25},
      {3, 1, 192, 320, 6, true, 1, 0.25},
  };
  return b;
}

/// efficientnet.block: an inverted residual block (expansion, depthwise convolution,
/// squeeze-and-excitation, projection, and the dropped-connection residual).
/// The squeeze-and-excitation phase of EfficientNet's block and of EfficientNetV2's MBConvBlock and
/// FusedMBConvBlock.
template <class T>
KerasTensor<T> efficientnet_se(Graph<T>& g, KerasTensor<T> x, int input_filters, int filters, double se_ratio,
                                  const std::string& activation, const std::string& name) {
  const json conv_init = efficientnet_conv_kernel_initializer();
  const int filters_se = std::max(1, static_cast<int>(input_filters * se_ratio));
  auto se = g("GlobalAveragePooling2D", {{"name", name + "se_squeeze"}}, x);
  se = g("Reshape", {{"target_shape", {1, 1, filters}}, {"name", name + "se_reshape"}}, se);
  se = g("Conv2D", {{"filters", filters_se}, {"kernel_size", 1}, {"padding", "same"}, {"activation", activation},
                    {"kernel_initializer", conv_init}, {"name", name + "se_reduce"}}, se);
  se = g("Conv2D", {{"filters", filters}, {"kernel_size", 1}, {"padding", "same"}, {"activation", "sigmoid"},
                    {"kernel_initializer", conv_init}, {"name", name + "se_expand"}}, se);
  return g("Multiply", {{"name", name + "se_excite"}}, std::vector<KerasTensor<T>>{x, se});
}

template <class T>
KerasTensor<T> efficientnet_block(Graph<T>& g, const KerasTensor<T>& inputs, const std::string& activation, double drop_rate,
                                  const std::string& name, int filters_in, int filters_out, int kernel_size, int strides,
                                  int expand_ratio, double se_ratio, bool id_skip) {
  const int bn_axis = 3;
  const json conv_init = efficientnet_conv_kernel_initializer();
  // Expansion phase
  const int filters = filters_in * expand_ratio;
  KerasTensor<T> x;
  if (expand_ratio != 1) {
    x = g("Conv2D", {{"filters", filters}, {"kernel_size", 1}, {"padding", "same"}, {"use_bias", false}, {"kernel_initializer", conv_init},
                     {"name", name + "expand_conv"}}, inputs);
    x = g("BatchNormalization", {{"axis", bn_axis}, {"name", name + "expand_bn"}}, x);
    x = g("Activation", {{"activation", activation}, {"name", name + "expand_activation"}}, x);
  } else {
    x = inputs;
  }
  // Depthwise Convolution
  std::string conv_pad;
  if (strides == 2) {
    x = g("ZeroPadding2D", {{"padding", efficientnet_correct_pad(x, kernel_size)}, {"name", name + "dwconv_pad"}}, x);
    conv_pad = "valid";
  } else {
    conv_pad = "same";
  }
  x = g("DepthwiseConv2D", {{"kernel_size", kernel_size}, {"strides", strides}, {"padding", conv_pad}, {"use_bias", false},
                            {"depthwise_initializer", conv_init}, {"name", name + "dwconv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"name", name + "bn"}}, x);
  x = g("Activation", {{"activation", activation}, {"name", name + "activation"}}, x);
  // Squeeze and Excitation phase
  if (0 < se_ratio && se_ratio <= 1) x = efficientnet_se(g, x, filters_in, filters, se_ratio, activation, name);
  // Output phase
  x = g("Conv2D", {{"filters", filters_out}, {"kernel_size", 1}, {"padding", "same"}, {"use_bias", false}, {"kernel_initializer", conv_init},
                   {"name", name + "project_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"name", name + "project_bn"}}, x);
  if (id_skip && strides == 1 && filters_in == filters_out) {
    if (drop_rate > 0)
      x = g("Dropout", {{"rate", drop_rate}, {"noise_shape", json::array({nullptr, 1, 1, 1})}, {"name", name + "drop"}}, x);
    x = g("Add", {{"name", name + "add"}}, std::vector<KerasTensor<T>>{x, inputs});
  }
  return x;
}

/// efficientnet.EfficientNet(width_coefficient, depth_coefficient, default_size, dropout_rate,
/// drop_connect_rate, depth_divisor, activation, blocks_args, name, ...). `weights` is never
/// "imagenet" here, so the extra Rescaling by 1/sqrt(stddev) Keras adds for its own weights is not
/// in the model (as in Keras for weights=None or a path).
template <class T>
std::shared_ptr<Model<T>> efficientnet(const Options& o, double width_coefficient, double depth_coefficient, int default_size,
                                       double dropout_rate, double drop_connect_rate, int depth_divisor, const std::string& activation,
                                       const std::vector<EfficientNetBlockArgs>& blocks_args, const std::string& default_name,
                                       const std::string& family) {
  const std::string base = "https://storage.googleapis.com/keras-applications/";
  validate_options(o, family, {base + default_name + ".h5", base + default_name + "_notop.h5"});
  if (o.dropout)
    throw value_error(graft::detail::cat(family, ": takes no dropout argument (Keras' dropout_rate is ", dropout_rate, " for this model)"));
  if (!o.include_preprocessing)
    throw value_error(graft::detail::cat(family, ": takes no include_preprocessing argument (the Rescaling and Normalization input layers are always there)"));

  Graph<T> g;
  auto img_input = g.input(obtain_input_shape(o.input_shape, default_size, 32, family));
  const int bn_axis = 3;
  const json conv_init = efficientnet_conv_kernel_initializer();

  auto round_filters = [&](int filters_in) {
    const int divisor = depth_divisor;
    const double filters = filters_in * width_coefficient;
    int new_filters = std::max(divisor, static_cast<int>(filters + divisor / 2.0) / divisor * divisor);
    // Make sure that round down does not go down by more than 10%.
    if (new_filters < 0.9 * filters) new_filters += divisor;
    return new_filters;
  };
  auto round_repeats = [&](int repeats) { return static_cast<int>(std::ceil(depth_coefficient * repeats)); };

  // Build stem
  auto x = img_input;
  x = g("Rescaling", {{"scale", 1.0 / 255.0}}, x);
  x = g("Normalization", {{"axis", bn_axis}}, x);
  x = g("ZeroPadding2D", {{"padding", efficientnet_correct_pad(x, 3)}, {"name", "stem_conv_pad"}}, x);
  x = g("Conv2D", {{"filters", round_filters(32)}, {"kernel_size", 3}, {"strides", 2}, {"padding", "valid"}, {"use_bias", false},
                   {"kernel_initializer", conv_init}, {"name", "stem_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"name", "stem_bn"}}, x);
  x = g("Activation", {{"activation", activation}, {"name", "stem_activation"}}, x);

  // Build blocks
  int b = 0;
  double blocks = 0;
  for (const auto& args : blocks_args) blocks += round_repeats(args.repeats);
  for (size_t i = 0; i < blocks_args.size(); ++i) {
    EfficientNetBlockArgs args = blocks_args[i];
    if (args.repeats <= 0)
      throw value_error(graft::detail::cat(family, ": the number of repeats in `EfficientNet` must be > 0. Received: repeats=", args.repeats));
    // Update block input and output filters based on depth multiplier.
    args.filters_in = round_filters(args.filters_in);
    args.filters_out = round_filters(args.filters_out);
    const int repeats = round_repeats(args.repeats);
    for (int j = 0; j < repeats; ++j) {
      // The first block needs to take care of stride and filter size increase.
      if (j > 0) {
        args.strides = 1;
        args.filters_in = args.filters_out;
      }
      const std::string name = "block" + std::to_string(i + 1) + std::string(1, static_cast<char>('a' + j)) + "_";
      x = efficientnet_block(g, x, activation, drop_connect_rate * b / blocks, name, args.filters_in, args.filters_out, args.kernel_size,
                             args.strides, args.expand_ratio, args.se_ratio, args.id_skip);
      ++b;
    }
  }

  // Build top
  x = g("Conv2D", {{"filters", round_filters(1280)}, {"kernel_size", 1}, {"padding", "same"}, {"use_bias", false},
                   {"kernel_initializer", conv_init}, {"name", "top_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"name", "top_bn"}}, x);
  x = g("Activation", {{"activation", activation}, {"name", "top_activation"}}, x);
  if (o.include_top) {
    x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
    if (dropout_rate > 0) x = g("Dropout", {{"rate", dropout_rate}, {"name", "top_dropout"}}, x);
    x = g("Dense", {{"units", o.classes}, {"activation", classifier_activation(o)},
                    {"kernel_initializer", efficientnet_dense_kernel_initializer()}, {"name", "predictions"}}, x);
  } else {
    if (o.pooling == "avg") x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
    else if (o.pooling == "max") x = g("GlobalMaxPooling2D", {{"name", "max_pool"}}, x);
  }
  return finish(img_input, x, o, default_name);
}

/// EfficientNetB0..B7: efficientnet.EfficientNet(width, depth, default_size, dropout_rate) with
/// Keras' other defaults (drop_connect_rate 0.2, depth_divisor 8, swish, DEFAULT_BLOCKS_ARGS).
template <class T>
std::shared_ptr<Model<T>> efficientnet_b(const Options& o, int b, double width, double depth, int default_size, double dropout_rate) {
  const std::string n = std::to_string(b);
  return efficientnet<T>(o, width, depth, default_size, dropout_rate, 0.2, 8, "swish", efficientnet_default_blocks_args(),
                         "efficientnetb" + n, "EfficientNetB" + n);
}

}  // namespace detail

/// keras.applications.EfficientNetB0 (224x224; inputs are pixels in [0, 255], preprocess_input is
/// the identity). Weights: https://storage.googleapis.com/keras-applications/efficientnetb0.h5
/// (efficientnetb0_notop.h5 without the top), and likewise for B1..B7.
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB0(const Options& o = {}) {
  return detail::efficientnet_b<T>(o, 0, 1.0, 1.0, 224, 0.2);
}

/// keras.applications.EfficientNetB1 (240x240).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB1(const Options& o = {}) {
  return detail::efficientnet_b<T>(o, 1, 1.0, 1.1, 240, 0.2);
}

/// keras.applications.EfficientNetB2 (260x260).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB2(const Options& o = {}) {
  return detail::efficientnet_b<T>(o, 2, 1.1, 1.2, 260, 0.3);
}

/// keras.applications.EfficientNetB3 (300x300).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB3(const Options& o = {}) {
  return detail::efficientnet_b<T>(o, 3, 1.2, 1.4, 300, 0.3);
}

/// keras.applications.EfficientNetB4 (380x380).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB4(const Options& o = {}) {
  return detail::efficientnet_b<T>(o, 4, 1.4, 1.8, 380, 0.4);
}

/// keras.applications.EfficientNetB5 (456x456).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB5(const Options& o = {}) {
  return detail::efficientnet_b<T>(o, 5, 1.6, 2.2, 456, 0.4);
}

/// keras.applications.EfficientNetB6 (528x528).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB6(const Options& o = {}) {
  return detail::efficientnet_b<T>(o, 6, 1.8, 2.6, 528, 0.5);
}

/// keras.applications.EfficientNetB7 (600x600).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB7(const Options& o = {}) {
  return detail::efficientnet_b<T>(o, 7, 2.0, 3.1, 600, 0.5);
}

}  // namespace applications
}  // namespace graft
