// graft — DenseNet121, DenseNet169 and DenseNet201 (keras.applications.densenet, Huang et al. 2017,
// "Densely Connected Convolutional Networks").
#pragma once

#include <string>
#include <vector>

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// densenet.conv_block: BN-ReLU-1x1 conv (4 * growth_rate) - BN-ReLU-3x3 conv (growth_rate), the
/// result concatenated to the block's input.
template <class T>
KerasTensor<T> densenet_conv_block(Graph<T>& g, const KerasTensor<T>& x, int growth_rate, const std::string& name) {
  const int bn_axis = 3;
  auto x1 = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_0_bn"}}, x);
  x1 = g("Activation", {{"activation", "relu"}, {"name", name + "_0_relu"}}, x1);
  x1 = g("Conv2D", {{"filters", 4 * growth_rate}, {"kernel_size", {1, 1}}, {"use_bias", false}, {"name", name + "_1_conv"}}, x1);
  x1 = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_1_bn"}}, x1);
  x1 = g("Activation", {{"activation", "relu"}, {"name", name + "_1_relu"}}, x1);
  x1 = g("Conv2D", {{"filters", growth_rate}, {"kernel_size", {3, 3}}, {"padding", "same"}, {"use_bias", false}, {"name", name + "_2_conv"}},
         x1);
  return g("Concatenate", {{"axis", bn_axis}, {"name", name + "_concat"}}, std::vector<KerasTensor<T>>{x, x1});
}

/// densenet.dense_block: `blocks` conv blocks of growth rate 32, named NAME_block1, NAME_block2, ...
template <class T>
KerasTensor<T> densenet_dense_block(Graph<T>& g, KerasTensor<T> x, int blocks, const std::string& name) {
  for (int i = 0; i < blocks; ++i) x = densenet_conv_block(g, x, 32, name + "_block" + std::to_string(i + 1));
  return x;
}

/// densenet.transition_block: BN-ReLU-1x1 conv to int(channels * reduction) filters, 2x2 average pooling.
template <class T>
KerasTensor<T> densenet_transition_block(Graph<T>& g, KerasTensor<T> x, double reduction, const std::string& name) {
  const int bn_axis = 3;
  x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_bn"}}, x);
  x = g("Activation", {{"activation", "relu"}, {"name", name + "_relu"}}, x);
  const auto filters = static_cast<Index>(static_cast<double>(x.shape()[bn_axis]) * reduction);  // int(x.shape[3] * reduction)
  x = g("Conv2D", {{"filters", filters}, {"kernel_size", {1, 1}}, {"use_bias", false}, {"name", name + "_conv"}}, x);
  return g("AveragePooling2D", {{"pool_size", {2, 2}}, {"strides", {2, 2}}, {"name", name + "_pool"}}, x);
}

/// keras densenet.DenseNet(blocks, ...): the 7x7/2 stem and 3x3/2 max pooling, four dense blocks of
/// blocks[0..3] conv blocks with a transition (compression 0.5) between them, BN-ReLU, then the head.
template <class T>
std::shared_ptr<Model<T>> DenseNet(const std::vector<int>& blocks, const Options& o, const std::string& family,
                                   const std::string& default_name, const WeightsFiles& files) {
  if (blocks.size() != 4) throw value_error(graft::detail::cat(family, ": blocks must list 4 dense block sizes, got ", blocks.size()));
  validate_options(o, family, files);
  Graph<T> g;
  auto img_input = g.input(obtain_input_shape(o.input_shape, 224, 32, family));
  const int bn_axis = 3;

  auto x = g("ZeroPadding2D", {{"padding", {{3, 3}, {3, 3}}}}, img_input);
  x = g("Conv2D", {{"filters", 64}, {"kernel_size", {7, 7}}, {"strides", {2, 2}}, {"use_bias", false}, {"name", "conv1_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", "conv1_bn"}}, x);
  x = g("Activation", {{"activation", "relu"}, {"name", "conv1_relu"}}, x);
  x = g("ZeroPadding2D", {{"padding", {{1, 1}, {1, 1}}}}, x);
  x = g("MaxPooling2D", {{"pool_size", {3, 3}}, {"strides", {2, 2}}, {"name", "pool1"}}, x);

  x = densenet_dense_block(g, x, blocks[0], "conv2");
  x = densenet_transition_block(g, x, 0.5, "pool2");
  x = densenet_dense_block(g, x, blocks[1], "conv3");
  x = densenet_transition_block(g, x, 0.5, "pool3");
  x = densenet_dense_block(g, x, blocks[2], "conv4");
  x = densenet_transition_block(g, x, 0.5, "pool4");
  x = densenet_dense_block(g, x, blocks[3], "conv5");

  x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", "bn"}}, x);
  x = g("Activation", {{"activation", "relu"}, {"name", "relu"}}, x);

  if (o.include_top) {
    x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
    x = g("Dense", {{"units", o.classes}, {"activation", classifier_activation(o)}, {"name", "predictions"}}, x);
  } else if (o.pooling == "avg") {
    x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
  } else if (o.pooling == "max") {
    x = g("GlobalMaxPooling2D", {{"name", "max_pool"}}, x);
  }
  return finish(img_input, x, o, default_name);
}

inline WeightsFiles densenet_weights(const std::string& stem) {
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/" + stem;
  return {base + "_weights_tf_dim_ordering_tf_kernels.h5", base + "_weights_tf_dim_ordering_tf_kernels_notop.h5"};
}

}  // namespace detail

/// keras.applications.DenseNet121 (blocks 6, 12, 24, 16). Input: RGB images preprocessed with
/// preprocess_input("DenseNet121", x) ("torch": [0, 1], then ImageNet mean and standard deviation).
template <class T = float>
std::shared_ptr<Model<T>> DenseNet121(const Options& o = {}) {
  return detail::DenseNet<T>({6, 12, 24, 16}, o, "DenseNet121", "densenet121", detail::densenet_weights("densenet121"));
}

/// keras.applications.DenseNet169 (blocks 6, 12, 32, 32; "torch" preprocessing).
template <class T = float>
std::shared_ptr<Model<T>> DenseNet169(const Options& o = {}) {
  return detail::DenseNet<T>({6, 12, 32, 32}, o, "DenseNet169", "densenet169", detail::densenet_weights("densenet169"));
}

/// keras.applications.DenseNet201 (blocks 6, 12, 48, 32; "torch" preprocessing).
template <class T = float>
std::shared_ptr<Model<T>> DenseNet201(const Options& o = {}) {
  return detail::DenseNet<T>({6, 12, 48, 32}, o, "DenseNet201", "densenet201", detail::densenet_weights("densenet201"));
}

}  // namespace applications
}  // namespace graft
