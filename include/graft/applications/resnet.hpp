// graft — ResNet50, ResNet101 and ResNet152 (keras.applications.resnet, He et al. 2015), and the
// ResNet builder and residual stacks keras.applications.resnet_v2 shares (resnet_v2.hpp).
#pragma once

#include <array>

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// keras resnet.residual_block_v1: a bottleneck block (1x1, 3x3, 1x1 convolutions with batch
/// normalization), a convolution or identity shortcut, Add and ReLU.
template <class T>
KerasTensor<T> resnet_residual_block_v1(Graph<T>& g, KerasTensor<T> x, int filters, int kernel_size, int stride, bool conv_shortcut,
                                        const std::string& name) {
  const int bn_axis = 3;
  KerasTensor<T> shortcut;
  if (conv_shortcut) {
    shortcut = g("Conv2D", {{"filters", 4 * filters}, {"kernel_size", 1}, {"strides", stride}, {"name", name + "_0_conv"}}, x);
    shortcut = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_0_bn"}}, shortcut);
  } else {
    shortcut = x;
  }
  x = g("Conv2D", {{"filters", filters}, {"kernel_size", 1}, {"strides", stride}, {"name", name + "_1_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_1_bn"}}, x);
  x = g("Activation", {{"activation", "relu"}, {"name", name + "_1_relu"}}, x);

  x = g("Conv2D", {{"filters", filters}, {"kernel_size", kernel_size}, {"padding", "same"}, {"name", name + "_2_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_2_bn"}}, x);
  x = g("Activation", {{"activation", "relu"}, {"name", name + "_2_relu"}}, x);

  x = g("Conv2D", {{"filters", 4 * filters}, {"kernel_size", 1}, {"name", name + "_3_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_3_bn"}}, x);

  x = g("Add", {{"name", name + "_add"}}, std::vector<KerasTensor<T>>{shortcut, x});
  x = g("Activation", {{"activation", "relu"}, {"name", name + "_out"}}, x);
  return x;
}

/// keras resnet.stack_residual_blocks_v1: a first block with a convolution shortcut and stride
/// `stride1`, then blocks - 1 identity blocks.
template <class T>
KerasTensor<T> resnet_stack_v1(Graph<T>& g, KerasTensor<T> x, int filters, int blocks, int stride1, const std::string& name) {
  x = resnet_residual_block_v1(g, x, filters, 3, stride1, true, name + "_block1");
  for (int i = 2; i <= blocks; ++i) x = resnet_residual_block_v1(g, x, filters, 3, 1, false, name + "_block" + std::to_string(i));
  return x;
}

/// keras resnet.residual_block_v2: pre-activation (BatchNormalization + ReLU) bottleneck block;
/// the shortcut is a 1x1 convolution of the pre-activation, a 1x1 max pooling with the stride, or
/// the input.
template <class T>
KerasTensor<T> resnet_residual_block_v2(Graph<T>& g, KerasTensor<T> x, int filters, int kernel_size, int stride, bool conv_shortcut,
                                        const std::string& name) {
  const int bn_axis = 3;
  auto preact = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_preact_bn"}}, x);
  preact = g("Activation", {{"activation", "relu"}, {"name", name + "_preact_relu"}}, preact);

  KerasTensor<T> shortcut;
  if (conv_shortcut)
    shortcut = g("Conv2D", {{"filters", 4 * filters}, {"kernel_size", 1}, {"strides", stride}, {"name", name + "_0_conv"}}, preact);
  else
    shortcut = stride > 1 ? g("MaxPooling2D", {{"pool_size", 1}, {"strides", stride}}, x) : x;

  x = g("Conv2D", {{"filters", filters}, {"kernel_size", 1}, {"strides", 1}, {"use_bias", false}, {"name", name + "_1_conv"}}, preact);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_1_bn"}}, x);
  x = g("Activation", {{"activation", "relu"}, {"name", name + "_1_relu"}}, x);

  x = g("ZeroPadding2D", {{"padding", {{1, 1}, {1, 1}}}, {"name", name + "_2_pad"}}, x);
  x = g("Conv2D", {{"filters", filters}, {"kernel_size", kernel_size}, {"strides", stride}, {"use_bias", false}, {"name", name + "_2_conv"}}, x);
  x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", name + "_2_bn"}}, x);
  x = g("Activation", {{"activation", "relu"}, {"name", name + "_2_relu"}}, x);

  x = g("Conv2D", {{"filters", 4 * filters}, {"kernel_size", 1}, {"name", name + "_3_conv"}}, x);
  x = g("Add", {{"name", name + "_out"}}, std::vector<KerasTensor<T>>{shortcut, x});
  return x;
}

/// keras resnet.stack_residual_blocks_v2: a first block with a convolution shortcut, blocks - 2
/// identity blocks, and a last block with stride `stride1`.
template <class T>
KerasTensor<T> resnet_stack_v2(Graph<T>& g, KerasTensor<T> x, int filters, int blocks, int stride1, const std::string& name) {
  x = resnet_residual_block_v2(g, x, filters, 3, 1, true, name + "_block1");
  for (int i = 2; i < blocks; ++i) x = resnet_residual_block_v2(g, x, filters, 3, 1, false, name + "_block" + std::to_string(i));
  x = resnet_residual_block_v2(g, x, filters, 3, stride1, false, name + "_block" + std::to_string(blocks));
  return x;
}

/// keras resnet.ResNet: the stem (7x7/2 convolution, 3x3/2 max pooling), four stacks of
/// residual blocks with {64, 128, 256, 512} bottleneck filters and `blocks` blocks each, and the
/// head. `preact` (ResNetV2): pre-activation blocks, no batch normalization in the stem, a final
/// BatchNormalization + ReLU. The base's pooling layers are named "avg_pool" / "max_pool".
template <class T>
std::shared_ptr<Model<T>> resnet(const Options& o, const std::array<int, 4>& blocks, bool preact, bool use_bias, const std::string& family,
                                 const std::string& default_name) {
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/";
  validate_options(o, family,
                   {base + default_name + "_weights_tf_dim_ordering_tf_kernels.h5", base + default_name + "_weights_tf_dim_ordering_tf_kernels_notop.h5"});
  Graph<T> g;
  auto img_input = g.input(obtain_input_shape(o.input_shape, 224, 32, family));
  const int bn_axis = 3;

  auto x = g("ZeroPadding2D", {{"padding", {{3, 3}, {3, 3}}}, {"name", "conv1_pad"}}, img_input);
  x = g("Conv2D", {{"filters", 64}, {"kernel_size", 7}, {"strides", 2}, {"use_bias", use_bias}, {"name", "conv1_conv"}}, x);

  if (!preact) {
    x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", "conv1_bn"}}, x);
    x = g("Activation", {{"activation", "relu"}, {"name", "conv1_relu"}}, x);
  }

  x = g("ZeroPadding2D", {{"padding", {{1, 1}, {1, 1}}}, {"name", "pool1_pad"}}, x);
  x = g("MaxPooling2D", {{"pool_size", 3}, {"strides", 2}, {"name", "pool1_pool"}}, x);

  // stack_fn
  if (!preact) {
    x = resnet_stack_v1(g, x, 64, blocks[0], 1, "conv2");
    x = resnet_stack_v1(g, x, 128, blocks[1], 2, "conv3");
    x = resnet_stack_v1(g, x, 256, blocks[2], 2, "conv4");
    x = resnet_stack_v1(g, x, 512, blocks[3], 2, "conv5");
  } else {
    x = resnet_stack_v2(g, x, 64, blocks[0], 2, "conv2");
    x = resnet_stack_v2(g, x, 128, blocks[1], 2, "conv3");
    x = resnet_stack_v2(g, x, 256, blocks[2], 2, "conv4");
    x = resnet_stack_v2(g, x, 512, blocks[3], 1, "conv5");
  }

  if (preact) {
    x = g("BatchNormalization", {{"axis", bn_axis}, {"epsilon", 1.001e-5}, {"name", "post_bn"}}, x);
    x = g("Activation", {{"activation", "relu"}, {"name", "post_relu"}}, x);
  }

  if (o.include_top) {
    x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
    x = g("Dense", {{"units", o.classes}, {"activation", classifier_activation(o)}, {"name", "predictions"}}, x);
  } else {
    if (o.pooling == "avg")
      x = g("GlobalAveragePooling2D", {{"name", "avg_pool"}}, x);
    else if (o.pooling == "max")
      x = g("GlobalMaxPooling2D", {{"name", "max_pool"}}, x);
  }
  return finish(img_input, x, o, default_name);
}

}  // namespace detail

/// keras.applications.ResNet50. Input: RGB images preprocessed with preprocess_input("ResNet50", x) ("caffe").
template <class T = float>
std::shared_ptr<Model<T>> ResNet50(const Options& o = {}) {
  return detail::resnet<T>(o, {3, 4, 6, 3}, false, true, "ResNet50", "resnet50");
}

/// keras.applications.ResNet101 ("caffe" preprocessing).
template <class T = float>
std::shared_ptr<Model<T>> ResNet101(const Options& o = {}) {
  return detail::resnet<T>(o, {3, 4, 23, 3}, false, true, "ResNet101", "resnet101");
}

/// keras.applications.ResNet152 ("caffe" preprocessing).
template <class T = float>
std::shared_ptr<Model<T>> ResNet152(const Options& o = {}) {
  return detail::resnet<T>(o, {3, 8, 36, 3}, false, true, "ResNet152", "resnet152");
}

}  // namespace applications
}  // namespace graft
