// graft — EfficientNetV2B0 ... B3, S, M, L (keras.applications.efficientnet_v2; Tan & Le,
// "EfficientNetV2: Smaller Models and Faster Training", ICML 2021). With include_preprocessing
// (the default) the model takes RGB pixels in [0, 255]: Rescaling(1/255) + Normalization by the
// ImageNet mean and variance for the B variants, Rescaling(1/128, offset -1) for S, M and L.
#pragma once

#include <algorithm>
#include <cmath>

#include "graft/applications/builder.hpp"
#include "graft/applications/efficientnet.hpp"

namespace graft {
namespace applications {
namespace detail {

/// One entry of efficientnet_v2.DEFAULT_BLOCKS_ARGS (conv_type 0: MBConvBlock, 1: FusedMBConvBlock).
struct EfficientNetV2BlockArgs {
  int kernel_size, num_repeat, input_filters, output_filters, expand_ratio;
  double se_ratio;
  int strides, conv_type;
};

/// efficientnet_v2.DEFAULT_BLOCKS_ARGS[name]; value_error when `name` is not one of its keys
/// (Keras looks the block arguments up by the model name and fails with a KeyError).
inline const std::vector<EfficientNetV2BlockArgs>& efficientnet_v2_default_blocks_args(const std::string& name, const std::string& family) {
  static const std::vector<EfficientNetV2BlockArgs> b = {
      {3, 1, 32, 16, 1, 0, 1, 1},      {3, 2, 16, 32, 4, 0, 2, 1},       {3, 2, 32, 48, 4, 0, 2, 1},
      {3, 3, 48, 96, 4, 0.25, 2, 0},   {3, 5, 96, 112, 6, 0.25, 1, 0},   {3, 8, 112, 192, 6, 0.25, 2, 0},
  };
  static const std::map<std::string, std::vector<EfficientNetV2BlockArgs>> table = {
      {"efficientnetv2-s",
       {{3, 2, 24, 24, 1, 0.0, 1, 1},
        {3, 4, 24, 48, 4, 0.0, 2, 1},
        {3, 4, 48, 64, 4, 0, 2, 1},
        {3, 6, 64, 128, 4, 0.25, 2, 0},
        {3, 9, 128, 160, 6, 0.25, 1, 0},
        {3, 15, 160, 256, 6, 0.25, 2, 0}}},
      {"efficientnetv2-m",
       {{3, 3, 24, 24, 1, 0, 1, 1},
        {3, 5, 24, 48, 4, 0, 2, 1},
        {3, 5, 48, 80, 4, 0, 2, 1},
        {3, 7, 80, 160, 4, 0.25, 2, 0},
        {3, 14, 160, 176, 6, 0.25, 1, 0},
        {3, 18, 176, 304, 6, 0.25, 2, 0},
        {3, 5, 304, 512, 6, 0.25, 1, 0}}},
      {"efficientnetv2-l",
       {{3, 4, 32, 32, 1, 0, 1, 1},
        {3, 7, 32, 64, 4, 0, 2, 1},
        {3, 7, 64, 96, 4, 0, 2, 1},
        {3, 10, 96, 192, 4, 0.25, 2, 0},
        {3, 19, 192, 224, 6, 0.25, 1, 0},
        {3, 25, 224, 384, 6, 0.25, 2, 0},
        {3, 7, 384, 640, 6, 0.25, 1, 0}}},
      // B0..B3 share their block arguments (widths and depths differ by the coefficients)
      {"efficientnetv2-b0", b},
      {"efficientnetv2-b1", b},
      {"efficientnetv2-b2", b},
      {"efficientnetv2-b3", b},
  };
  auto it = table.find(name);
  if (it == table.end())
    throw value_error(graft::detail::cat(family, ": Keras 3.15.1 takes the block arguments from the model name (DEFAULT_BLOCKS_ARGS[name]), so "
                                         "name must be one of efficientnetv2-b0, -b1, -b2, -b3, -s, -m, -l; got '", name, "'"));
  return it->second;
}

/// efficientnet_v2.round_filters.
inline int efficientnet_v2_round_filters(int filters_in, double width_coefficient, int min_depth, int depth_divisor) {
  const double filters = filters_in * width_coefficient;
  const int minimum_depth = min_depth ? min_depth : depth_divisor;
  return std::max(minimum_depth, static_cast<int>(filters + depth_divisor / 2.0) / depth_divisor * depth_divisor);
}

/// efficientnet_v2.round_repeats.
inline int efficientnet_v2_round_repeats(int repeats, double depth_coefficient) {
  return static_cast<int>(std::ceil(depth_coefficient * repeats));
}


/// efficientnet_v2.MBConvBlock: Mobile Inverted Residual Bottleneck.
template <class T>
KerasTensor<T> efficientnet_v2_mbconv(Graph<T>& g, const KerasTensor<T>& inputs, int input_filters, int output_filters, int expand_ratio,
                                      int kernel_size, int strides, double se_ratio, double bn_momentum, const std::string& activation,
                                      double survival_probability, const std::string& name) {
  const int bn_axis = 3;
  const json conv_init = efficientnet_conv_kernel_initializer();
  // Expansion phase
  const int filters = input_filters * expand_ratio;
  KerasTensor<T> x;
  if (expand_ratio != 1) {
    x = g("Conv2D", {{"filters", filters}, {"kernel_size", 1}, {"strides", 1}, {"kernel_initializer", conv_init}, {"padding", "same"},
                     {"data_format", "channels_last"}, {"use_bias", false}, {"name", name + "expand_conv"}}, inputs);
    x = g("BatchNormalization", {{"axis", bn_axis}, {"momentum", bn_momentum}, {"name", name + "expand_bn"}}, x);
    x = g("Activation", {{"activation", activation}, {"name", name + "expand_activation"}}, x);
  } else {
    x = inputs;
  }
  // Depthwise conv
  x = g("DepthwiseConv2D", {{"kernel_size", kernel_size}, {"strides", strides}, {"depthwise_initializer", conv_init}, {"padding", "same"},
                            {"data_format", "channels_last"}, {"use_bias", false}, {"name", name + "dwconv2"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"momentum", bn_momentum}, {"name", name + "bn"}}, x);
  x = g("Activation", {{"activation", activation}, {"name", name + "activation"}}, x);
  // Squeeze and excite
  if (0 < se_ratio && se_ratio <= 1) x = efficientnet_se(g, x, input_filters, filters, se_ratio, activation, name);
  // Output phase
  x = g("Conv2D", {{"filters", output_filters}, {"kernel_size", 1}, {"strides", 1}, {"kernel_initializer", conv_init}, {"padding", "same"},
                   {"data_format", "channels_last"}, {"use_bias", false}, {"name", name + "project_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"momentum", bn_momentum}, {"name", name + "project_bn"}}, x);
  if (strides == 1 && input_filters == output_filters) {
    if (survival_probability != 0)
      x = g("Dropout", {{"rate", survival_probability}, {"noise_shape", json::array({nullptr, 1, 1, 1})}, {"name", name + "drop"}}, x);
    x = g("Add", {{"name", name + "add"}}, std::vector<KerasTensor<T>>{x, inputs});
  }
  return x;
}

/// efficientnet_v2.FusedMBConvBlock: the expansion 1x1 and the depthwise convolution fused into
/// one Conv2D.
template <class T>
KerasTensor<T> efficientnet_v2_fused_mbconv(Graph<T>& g, const KerasTensor<T>& inputs, int input_filters, int output_filters,
                                            int expand_ratio, int kernel_size, int strides, double se_ratio, double bn_momentum,
                                            const std::string& activation, double survival_probability, const std::string& name) {
  const int bn_axis = 3;
  const json conv_init = efficientnet_conv_kernel_initializer();
  const int filters = input_filters * expand_ratio;
  KerasTensor<T> x;
  if (expand_ratio != 1) {
    x = g("Conv2D", {{"filters", filters}, {"kernel_size", kernel_size}, {"strides", strides}, {"kernel_initializer", conv_init},
                     {"data_format", "channels_last"}, {"padding", "same"}, {"use_bias", false}, {"name", name + "expand_conv"}}, inputs);
    x = g("BatchNormalization", {{"axis", bn_axis}, {"momentum", bn_momentum}, {"name", name + "expand_bn"}}, x);
    x = g("Activation", {{"activation", activation}, {"name", name + "expand_activation"}}, x);
  } else {
    x = inputs;
  }
  // Squeeze and excite
  if (0 < se_ratio && se_ratio <= 1) x = efficientnet_se(g, x, input_filters, filters, se_ratio, activation, name);
  // Output phase
  x = g("Conv2D", {{"filters", output_filters}, {"kernel_size", expand_ratio != 1 ? 1 : kernel_size}, {"strides", expand_ratio != 1 ? 1 : strides},
                   {"kernel_initializer", conv_init}, {"padding", "same"}, {"use_bias", false}, {"name", name + "project_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"momentum", bn_momentum}, {"name", name + "project_bn"}}, x);
  if (expand_ratio == 1) x = g("Activation", {{"activation", activation}, {"name", name + "project_activation"}}, x);
  // Residual
  if (strides == 1 && input_filters == output_filters) {
    if (survival_probability != 0)
      x = g("Dropout", {{"rate", survival_probability}, {"noise_shape", json::array({nullptr, 1, 1, 1})}, {"name", name + "drop"}}, x);
    x = g("Add", {{"name", name + "add"}}, std::vector<KerasTensor<T>>{x, inputs});
  }
  return x;
}

/// efficientnet_v2.EfficientNetV2(width_coefficient, depth_coefficient, default_size, dropout_rate,
/// drop_connect_rate, depth_divisor, min_depth, bn_momentum, activation, blocks_args="default", name, ...).
template <class T>
std::shared_ptr<Model<T>> efficientnet_v2(const Options& o, double width_coefficient, double depth_coefficient, int default_size,
                                          double dropout_rate, double drop_connect_rate, int depth_divisor, int min_depth,
                                          double bn_momentum, const std::string& activation, const std::string& default_name,
                                          const std::string& family) {
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/";
  validate_options(o, family, {base + default_name + ".h5", base + default_name + "_notop.h5"});
  if (o.dropout)
    throw value_error(graft::detail::cat(family, ": takes no dropout argument (Keras' dropout_rate is ", dropout_rate, " for this model)"));
  const std::string name = o.name.empty() ? default_name : o.name;
  const auto& blocks_args = efficientnet_v2_default_blocks_args(name, family);

  Graph<T> g;
  const Shape input_shape = obtain_input_shape(o.input_shape, default_size, 32, family);
  auto img_input = g.input(input_shape);
  const int bn_axis = 3;
  const json conv_init = efficientnet_conv_kernel_initializer();
  auto round_filters = [&](int filters) { return efficientnet_v2_round_filters(filters, width_coefficient, min_depth, depth_divisor); };

  auto x = img_input;
  if (o.include_preprocessing) {
    // Apply original V1 preprocessing for Bx variants if number of channels allows it
    const Index num_channels = input_shape[bn_axis - 1];
    const std::string last = name.substr(name.rfind('-') == std::string::npos ? 0 : name.rfind('-') + 1);
    if (!last.empty() && last[0] == 'b' && num_channels == 3) {
      x = g("Rescaling", {{"scale", 1.0 / 255}}, x);
      x = g("Normalization", {{"mean", {0.485, 0.456, 0.406}}, {"variance", {0.229 * 0.229, 0.224 * 0.224, 0.225 * 0.225}}, {"axis", bn_axis}}, x);
    } else {
      x = g("Rescaling", {{"scale", 1.0 / 128.0}, {"offset", -1}}, x);
    }
  }

  // Build stem
  const int stem_filters = round_filters(blocks_args[0].input_filters);
  x = g("Conv2D", {{"filters", stem_filters}, {"kernel_size", 3}, {"strides", 2}, {"kernel_initializer", conv_init}, {"padding", "same"},
                   {"use_bias", false}, {"name", "stem_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"momentum", bn_momentum}, {"name", "stem_bn"}}, x);
  x = g("Activation", {{"activation", activation}, {"name", "stem_activation"}}, x);

  // Build blocks
  int b = 0;
  double blocks = 0;
  for (const auto& args : blocks_args) blocks += args.num_repeat;
  for (size_t i = 0; i < blocks_args.size(); ++i) {
    EfficientNetV2BlockArgs args = blocks_args[i];
    if (args.num_repeat <= 0)
      throw value_error(graft::detail::cat(family, ": the number of repeats in `EfficientNetV2` must be > 0. Received: num_repeat=", args.num_repeat));
    // Update block input and output filters based on depth multiplier.
    args.input_filters = round_filters(args.input_filters);
    args.output_filters = round_filters(args.output_filters);
    const int repeats = efficientnet_v2_round_repeats(args.num_repeat, depth_coefficient);
    for (int j = 0; j < repeats; ++j) {
      // The first block needs to take care of stride and filter size increase.
      if (j > 0) {
        args.strides = 1;
        args.input_filters = args.output_filters;
      }
      const std::string bname = "block" + std::to_string(i + 1) + std::string(1, static_cast<char>('a' + j)) + "_";
      const double survival_probability = drop_connect_rate * b / blocks;
      x = args.conv_type == 0
              ? efficientnet_v2_mbconv(g, x, args.input_filters, args.output_filters, args.expand_ratio, args.kernel_size, args.strides,
                                       args.se_ratio, bn_momentum, activation, survival_probability, bname)
              : efficientnet_v2_fused_mbconv(g, x, args.input_filters, args.output_filters, args.expand_ratio, args.kernel_size,
                                             args.strides, args.se_ratio, bn_momentum, activation, survival_probability, bname);
      ++b;
    }
  }

  // Build top
  const int top_filters = round_filters(1280);
  x = g("Conv2D", {{"filters", top_filters}, {"kernel_size", 1}, {"strides", 1}, {"kernel_initializer", conv_init}, {"padding", "same"},
                   {"data_format", "channels_last"}, {"use_bias", false}, {"name", "top_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"momentum", bn_momentum}, {"name", "top_bn"}}, x);
  x = g("Activation", {{"activation", activation}, {"name", "top_activation"}}, x);
  if (o.include_top) {
    x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
    if (dropout_rate > 0) x = g("Dropout", {{"rate", dropout_rate}, {"name", "top_dropout"}}, x);
    x = g("Dense", {{"units", o.classes}, {"activation", classifier_activation(o)}, {"kernel_initializer", efficientnet_dense_kernel_initializer()},
                    {"bias_initializer", {{"class_name", "Constant"}, {"config", {{"value", 0.0}}}}}, {"name", "predictions"}}, x);
  } else {
    if (o.pooling == "avg") x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
    else if (o.pooling == "max") x = g("GlobalMaxPooling2D", {{"name", "max_pool"}}, x);
  }
  return finish(img_input, x, o, default_name);
}

/// The public variants: EfficientNetV2(width, depth, default_size) with Keras' other defaults
/// (dropout_rate 0.2, drop_connect_rate 0.2, depth_divisor 8, min_depth 8, bn_momentum 0.9, swish).
template <class T>
std::shared_ptr<Model<T>> efficientnet_v2_variant(const Options& o, const std::string& variant, double width, double depth, int default_size) {
  std::string lower = variant;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return efficientnet_v2<T>(o, width, depth, default_size, 0.2, 0.2, 8, 8, 0.9, "swish", "efficientnetv2-" + lower, "EfficientNetV2" + variant);
}

}  // namespace detail

/// keras.applications.EfficientNetV2B0 (224x224; with include_preprocessing inputs are pixels in
/// [0, 255], preprocess_input is the identity). Weights:
/// https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-b0.h5
/// (efficientnetv2-b0_notop.h5 without the top), and likewise for the others.
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2B0(const Options& o = {}) {
  return detail::efficientnet_v2_variant<T>(o, "B0", 1.0, 1.0, 224);
}

/// keras.applications.EfficientNetV2B1 (240x240).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2B1(const Options& o = {}) {
  return detail::efficientnet_v2_variant<T>(o, "B1", 1.0, 1.1, 240);
}

/// keras.applications.EfficientNetV2B2 (260x260).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2B2(const Options& o = {}) {
  return detail::efficientnet_v2_variant<T>(o, "B2", 1.1, 1.2, 260);
}

/// keras.applications.EfficientNetV2B3 (300x300).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2B3(const Options& o = {}) {
  return detail::efficientnet_v2_variant<T>(o, "B3", 1.2, 1.4, 300);
}

/// keras.applications.EfficientNetV2S (384x384).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2S(const Options& o = {}) {
  return detail::efficientnet_v2_variant<T>(o, "S", 1.0, 1.0, 384);
}

/// keras.applications.EfficientNetV2M (480x480).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2M(const Options& o = {}) {
  return detail::efficientnet_v2_variant<T>(o, "M", 1.0, 1.0, 480);
}

/// keras.applications.EfficientNetV2L (480x480).
template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2L(const Options& o = {}) {
  return detail::efficientnet_v2_variant<T>(o, "L", 1.0, 1.0, 480);
}

}  // namespace applications
}  // namespace graft
