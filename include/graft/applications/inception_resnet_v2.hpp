// graft — InceptionResNetV2 (Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of
// Residual Connections on Learning"), keras.applications.inception_resnet_v2. Its residual sums are
// Keras' CustomScaleLayer (inputs[0] + inputs[1] * scale, graft/layers/scale.hpp), auto-named
// custom_scale_layer, custom_scale_layer_1, ...
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// keras inception_resnet_v2.conv2d_bn: Conv2D + (without bias) BatchNormalization(scale=False) +
/// (with an activation) Activation; with a name: name, name_bn, name_ac, otherwise automatic names.
/// `kernel_size`: an int or [rows, cols], as Keras is given it.
template <class T>
KerasTensor<T> inception_resnet_v2_conv2d_bn(Graph<T>& g, KerasTensor<T> x, int filters, const json& kernel_size, int strides = 1,
                                             const std::string& padding = "same", const json& activation = "relu",
                                             bool use_bias = false, const std::string& name = {}) {
  x = g("Conv2D", {{"filters", filters}, {"kernel_size", kernel_size}, {"strides", strides}, {"padding", padding}, {"use_bias", use_bias},
                   {"name", name.empty() ? json(nullptr) : json(name)}}, x);
  if (!use_bias) x = g("BatchNormalization", {{"axis", 3}, {"scale", false}, {"name", name.empty() ? json(nullptr) : json(name + "_bn")}}, x);
  if (!activation.is_null()) x = g("Activation", {{"activation", activation}, {"name", name.empty() ? json(nullptr) : json(name + "_ac")}}, x);
  return x;
}

/// keras inception_resnet_v2.inception_resnet_block: x + scale * (1x1 conv of the concatenated branches).
template <class T>
KerasTensor<T> inception_resnet_block(Graph<T>& g, const KerasTensor<T>& x, double scale, const std::string& block_type, int block_idx,
                                      const json& activation = "relu") {
  auto cbn = [&](const KerasTensor<T>& in, int f, const json& k) { return inception_resnet_v2_conv2d_bn(g, in, f, k); };
  std::vector<KerasTensor<T>> branches;
  if (block_type == "block35") {
    auto branch_0 = cbn(x, 32, 1);
    auto branch_1 = cbn(x, 32, 1);
    branch_1 = cbn(branch_1, 32, 3);
    auto branch_2 = cbn(x, 32, 1);
    branch_2 = cbn(branch_2, 48, 3);
    branch_2 = cbn(branch_2, 64, 3);
    branches = {branch_0, branch_1, branch_2};
  } else if (block_type == "block17") {
    auto branch_0 = cbn(x, 192, 1);
    auto branch_1 = cbn(x, 128, 1);
    branch_1 = cbn(branch_1, 160, {1, 7});
    branch_1 = cbn(branch_1, 192, {7, 1});
    branches = {branch_0, branch_1};
  } else if (block_type == "block8") {
    auto branch_0 = cbn(x, 192, 1);
    auto branch_1 = cbn(x, 192, 1);
    branch_1 = cbn(branch_1, 224, {1, 3});
    branch_1 = cbn(branch_1, 256, {3, 1});
    branches = {branch_0, branch_1};
  } else {
    throw value_error(graft::detail::cat("InceptionResNetV2: unknown Inception-ResNet block type. Expects \"block35\", \"block17\" or \"block8\", "
                                         "but got: ", block_type));
  }
  const std::string block_name = block_type + "_" + std::to_string(block_idx);
  const int channel_axis = 3;
  auto mixed = g("Concatenate", {{"axis", channel_axis}, {"name", block_name + "_mixed"}}, branches);
  auto up = inception_resnet_v2_conv2d_bn(g, mixed, static_cast<int>(x.shape().back()), 1, 1, "same", nullptr, true, block_name + "_conv");
  auto y = g("CustomScaleLayer", {{"scale", scale}}, std::vector<KerasTensor<T>>{x, up});
  if (!activation.is_null()) y = g("Activation", {{"activation", activation}, {"name", block_name + "_ac"}}, y);
  return y;
}

/// keras inception_resnet_v2.InceptionResNetV2.
template <class T>
std::shared_ptr<Model<T>> inception_resnet_v2(const Options& o) {
  const std::string family = "InceptionResNetV2";
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/inception_resnet_v2/";
  validate_options(o, family,
                   {base + "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
                    base + "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"});
  Graph<T> g;
  auto img_input = g.input(obtain_input_shape(o.input_shape, 299, 75, family));
  auto cbn = [&](const KerasTensor<T>& in, int f, const json& k, int strides = 1, const std::string& padding = "same") {
    return inception_resnet_v2_conv2d_bn(g, in, f, k, strides, padding);
  };

  // Stem block: 35 x 35 x 192
  auto x = cbn(img_input, 32, 3, 2, "valid");
  x = cbn(x, 32, 3, 1, "valid");
  x = cbn(x, 64, 3);
  x = g("MaxPooling2D", {{"pool_size", 3}, {"strides", 2}}, x);
  x = cbn(x, 80, 1, 1, "valid");
  x = cbn(x, 192, 3, 1, "valid");
  x = g("MaxPooling2D", {{"pool_size", 3}, {"strides", 2}}, x);

  // Mixed 5b (Inception-A block): 35 x 35 x 320
  auto branch_0 = cbn(x, 96, 1);
  auto branch_1 = cbn(x, 48, 1);
  branch_1 = cbn(branch_1, 64, 5);
  auto branch_2 = cbn(x, 64, 1);
  branch_2 = cbn(branch_2, 96, 3);
  branch_2 = cbn(branch_2, 96, 3);
  auto branch_pool = g("AveragePooling2D", {{"pool_size", 3}, {"strides", 1}, {"padding", "same"}}, x);
  branch_pool = cbn(branch_pool, 64, 1);
  const int channel_axis = 3;
  x = g("Concatenate", {{"axis", channel_axis}, {"name", "mixed_5b"}}, {branch_0, branch_1, branch_2, branch_pool});

  // 10x block35 (Inception-ResNet-A block): 35 x 35 x 320
  for (int block_idx = 1; block_idx < 11; ++block_idx) x = inception_resnet_block(g, x, 0.17, "block35", block_idx);

  // Mixed 6a (Reduction-A block): 17 x 17 x 1088
  branch_0 = cbn(x, 384, 3, 2, "valid");
  branch_1 = cbn(x, 256, 1);
  branch_1 = cbn(branch_1, 256, 3);
  branch_1 = cbn(branch_1, 384, 3, 2, "valid");
  branch_pool = g("MaxPooling2D", {{"pool_size", 3}, {"strides", 2}, {"padding", "valid"}}, x);
  x = g("Concatenate", {{"axis", channel_axis}, {"name", "mixed_6a"}}, {branch_0, branch_1, branch_pool});

  // 20x block17 (Inception-ResNet-B block): 17 x 17 x 1088
  for (int block_idx = 1; block_idx < 21; ++block_idx) x = inception_resnet_block(g, x, 0.1, "block17", block_idx);

  // Mixed 7a (Reduction-B block): 8 x 8 x 2080
  branch_0 = cbn(x, 256, 1);
  branch_0 = cbn(branch_0, 384, 3, 2, "valid");
  branch_1 = cbn(x, 256, 1);
  branch_1 = cbn(branch_1, 288, 3, 2, "valid");
  branch_2 = cbn(x, 256, 1);
  branch_2 = cbn(branch_2, 288, 3);
  branch_2 = cbn(branch_2, 320, 3, 2, "valid");
  branch_pool = g("MaxPooling2D", {{"pool_size", 3}, {"strides", 2}, {"padding", "valid"}}, x);
  x = g("Concatenate", {{"axis", channel_axis}, {"name", "mixed_7a"}}, {branch_0, branch_1, branch_2, branch_pool});

  // 10x block8 (Inception-ResNet-C block): 8 x 8 x 2080
  for (int block_idx = 1; block_idx < 10; ++block_idx) x = inception_resnet_block(g, x, 0.2, "block8", block_idx);
  x = inception_resnet_block(g, x, 1.0, "block8", 10, nullptr);

  // Final convolution block: 8 x 8 x 1536
  x = inception_resnet_v2_conv2d_bn(g, x, 1536, 1, 1, "same", "relu", false, "conv_7b");

  x = pooled_head(g, x, o);
  return finish(img_input, x, o, "inception_resnet_v2");
}

}  // namespace detail

/// keras.applications.InceptionResNetV2 (default input 299x299x3, at least 75x75). Input: RGB
/// images preprocessed with preprocess_input ("tf": scaled to [-1, 1]).
template <class T = float>
std::shared_ptr<Model<T>> InceptionResNetV2(const Options& o = {}) {
  return detail::inception_resnet_v2<T>(o);
}

}  // namespace applications
}  // namespace graft
