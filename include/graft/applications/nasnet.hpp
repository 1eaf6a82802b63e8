// graft — NASNetMobile and NASNetLarge (keras.applications.nasnet, NASNet-A of Zoph et al. 2018,
// "Learning Transferable Architectures for Scalable Image Recognition").
#pragma once

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// imagenet_utils.correct_pad(inputs, kernel_size) for channels_last: the ((top, bottom), (left,
/// right)) zero padding before a stride-2 "valid" convolution that makes it act like "same".
template <class T>
json nasnet_correct_pad(const KerasTensor<T>& inputs, Index kernel_size) {
  const Shape& s = inputs.shape();  // (batch, height, width, channels)
  const Index adjust0 = s[1] < 0 ? 1 : 1 - s[1] % 2, adjust1 = s[2] < 0 ? 1 : 1 - s[2] % 2;
  const Index correct = kernel_size / 2;
  return json::array({json::array({correct - adjust0, correct}), json::array({correct - adjust1, correct})});
}

/// The BatchNormalization every NASNet cell uses (channel_dim -1, momentum 0.9997, epsilon 1e-3).
inline json nasnet_bn(const std::string& name) {
  return {{"axis", -1}, {"momentum", 0.9997}, {"epsilon", 1e-3}, {"name", name}};
}

/// nasnet._separable_conv_block: 2 x [ReLU - SeparableConv2D - BN]; with strides 2 the input is
/// first zero-padded by correct_pad and the first convolution is "valid".
template <class T>
KerasTensor<T> nasnet_separable_conv_block(Graph<T>& g, const KerasTensor<T>& ip, Index filters, Index kernel_size, Index strides,
                                           const std::string& block_id) {
  auto x = g("Activation", {{"activation", "relu"}}, ip);
  std::string conv_pad;
  if (strides == 2) {
    x = g("ZeroPadding2D", {{"padding", nasnet_correct_pad(x, kernel_size)}, {"name", "separable_conv_1_pad_" + block_id}}, x);
    conv_pad = "valid";
  } else {
    conv_pad = "same";
  }
  x = g("SeparableConv2D", {{"filters", filters}, {"kernel_size", {kernel_size, kernel_size}}, {"strides", {strides, strides}},
                            {"name", "separable_conv_1_" + block_id}, {"padding", conv_pad}, {"use_bias", false}}, x);
  x = g("BatchNormalization", nasnet_bn("separable_conv_1_bn_" + block_id), x);
  x = g("Activation", {{"activation", "relu"}}, x);
  x = g("SeparableConv2D", {{"filters", filters}, {"kernel_size", {kernel_size, kernel_size}}, {"name", "separable_conv_2_" + block_id},
                            {"padding", "same"}, {"use_bias", false}}, x);
  return g("BatchNormalization", nasnet_bn("separable_conv_2_bn_" + block_id), x);
}

/// nasnet._adjust_block: makes the previous path `p` match `ip` — none yet: ip itself; another
/// width: the factorized reduction (two offset 1x1/2 average poolings and 1x1 convolutions,
/// concatenated); another channel count: a ReLU - 1x1 projection - BN.
template <class T>
KerasTensor<T> nasnet_adjust_block(Graph<T>& g, const KerasTensor<T>* p_in, const KerasTensor<T>& ip, Index filters,
                                   const std::string& block_id) {
  if (!p_in) return ip;
  KerasTensor<T> p = *p_in;
  const Shape &ps = p.shape(), &is = ip.shape();
  if (ps[ps.size() - 2] != is[is.size() - 2]) {  // p.shape[-2] != ip.shape[-2]
    p = g("Activation", {{"activation", "relu"}, {"name", "adjust_relu_1_" + block_id}}, p);
    auto p1 = g("AveragePooling2D", {{"pool_size", {1, 1}}, {"strides", {2, 2}}, {"padding", "valid"}, {"name", "adjust_avg_pool_1_" + block_id}},
                p);
    p1 = g("Conv2D", {{"filters", filters / 2}, {"kernel_size", {1, 1}}, {"padding", "same"}, {"use_bias", false},
                      {"name", "adjust_conv_1_" + block_id}, {"kernel_initializer", "he_normal"}}, p1);

    auto p2 = g("ZeroPadding2D", {{"padding", {{0, 1}, {0, 1}}}}, p);
    p2 = g("Cropping2D", {{"cropping", {{1, 0}, {1, 0}}}}, p2);
    p2 = g("AveragePooling2D", {{"pool_size", {1, 1}}, {"strides", {2, 2}}, {"padding", "valid"}, {"name", "adjust_avg_pool_2_" + block_id}},
           p2);
    p2 = g("Conv2D", {{"filters", filters / 2}, {"kernel_size", {1, 1}}, {"padding", "same"}, {"use_bias", false},
                      {"name", "adjust_conv_2_" + block_id}, {"kernel_initializer", "he_normal"}}, p2);

    p = g("Concatenate", {{"axis", -1}}, std::vector<KerasTensor<T>>{p1, p2});
    p = g("BatchNormalization", nasnet_bn("adjust_bn_" + block_id), p);
  } else if (ps.back() != filters) {  // p.shape[-1] != filters
    p = g("Activation", {{"activation", "relu"}}, p);
    p = g("Conv2D", {{"filters", filters}, {"kernel_size", {1, 1}}, {"strides", {1, 1}}, {"padding", "same"},
                     {"name", "adjust_conv_projection_" + block_id}, {"use_bias", false}, {"kernel_initializer", "he_normal"}}, p);
    p = g("BatchNormalization", nasnet_bn("adjust_bn_" + block_id), p);
  }
  return p;
}

/// nasnet._normal_a_cell (Fig. 4 of the paper): returns (x, ip).
template <class T>
std::pair<KerasTensor<T>, KerasTensor<T>> nasnet_normal_a_cell(Graph<T>& g, const KerasTensor<T>& ip, const KerasTensor<T>* p_in, Index filters,
                                                               const std::string& block_id) {
  using KT = KerasTensor<T>;
  auto p = nasnet_adjust_block(g, p_in, ip, filters, block_id);

  auto h = g("Activation", {{"activation", "relu"}}, ip);
  h = g("Conv2D", {{"filters", filters}, {"kernel_size", {1, 1}}, {"strides", {1, 1}}, {"padding", "same"}, {"name", "normal_conv_1_" + block_id},
                   {"use_bias", false}, {"kernel_initializer", "he_normal"}}, h);
  h = g("BatchNormalization", nasnet_bn("normal_bn_1_" + block_id), h);

  auto x1_1 = nasnet_separable_conv_block(g, h, filters, 5, 1, "normal_left1_" + block_id);
  auto x1_2 = nasnet_separable_conv_block(g, p, filters, 3, 1, "normal_right1_" + block_id);
  auto x1 = g("Add", {{"name", "normal_add_1_" + block_id}}, std::vector<KT>{x1_1, x1_2});

  auto x2_1 = nasnet_separable_conv_block(g, p, filters, 5, 1, "normal_left2_" + block_id);
  auto x2_2 = nasnet_separable_conv_block(g, p, filters, 3, 1, "normal_right2_" + block_id);
  auto x2 = g("Add", {{"name", "normal_add_2_" + block_id}}, std::vector<KT>{x2_1, x2_2});

  auto x3 = g("AveragePooling2D", {{"pool_size", {3, 3}}, {"strides", {1, 1}}, {"padding", "same"}, {"name", "normal_left3_" + block_id}}, h);
  x3 = g("Add", {{"name", "normal_add_3_" + block_id}}, std::vector<KT>{x3, p});

  auto x4_1 = g("AveragePooling2D", {{"pool_size", {3, 3}}, {"strides", {1, 1}}, {"padding", "same"}, {"name", "normal_left4_" + block_id}}, p);
  auto x4_2 = g("AveragePooling2D", {{"pool_size", {3, 3}}, {"strides", {1, 1}}, {"padding", "same"}, {"name", "normal_right4_" + block_id}}, p);
  auto x4 = g("Add", {{"name", "normal_add_4_" + block_id}}, std::vector<KT>{x4_1, x4_2});

  auto x5 = nasnet_separable_conv_block(g, h, filters, 3, 1, "normal_left5_" + block_id);
  x5 = g("Add", {{"name", "normal_add_5_" + block_id}}, std::vector<KT>{x5, h});

  auto x = g("Concatenate", {{"axis", -1}, {"name", "normal_concat_" + block_id}}, std::vector<KT>{p, x1, x2, x3, x4, x5});
  return {x, ip};
}

/// nasnet._reduction_a_cell (Fig. 4 of the paper): halves the spatial size; returns (x, ip).
template <class T>
std::pair<KerasTensor<T>, KerasTensor<T>> nasnet_reduction_a_cell(Graph<T>& g, const KerasTensor<T>& ip, const KerasTensor<T>* p_in,
                                                                  Index filters, const std::string& block_id) {
  using KT = KerasTensor<T>;
  auto p = nasnet_adjust_block(g, p_in, ip, filters, block_id);

  auto h = g("Activation", {{"activation", "relu"}}, ip);
  h = g("Conv2D", {{"filters", filters}, {"kernel_size", {1, 1}}, {"strides", {1, 1}}, {"padding", "same"},
                   {"name", "reduction_conv_1_" + block_id}, {"use_bias", false}, {"kernel_initializer", "he_normal"}}, h);
  h = g("BatchNormalization", nasnet_bn("reduction_bn_1_" + block_id), h);
  auto h3 = g("ZeroPadding2D", {{"padding", nasnet_correct_pad(h, 3)}, {"name", "reduction_pad_1_" + block_id}}, h);

  auto x1_1 = nasnet_separable_conv_block(g, h, filters, 5, 2, "reduction_left1_" + block_id);
  auto x1_2 = nasnet_separable_conv_block(g, p, filters, 7, 2, "reduction_right1_" + block_id);
  auto x1 = g("Add", {{"name", "reduction_add_1_" + block_id}}, std::vector<KT>{x1_1, x1_2});

  auto x2_1 = g("MaxPooling2D", {{"pool_size", {3, 3}}, {"strides", {2, 2}}, {"padding", "valid"}, {"name", "reduction_left2_" + block_id}}, h3);
  auto x2_2 = nasnet_separable_conv_block(g, p, filters, 7, 2, "reduction_right2_" + block_id);
  auto x2 = g("Add", {{"name", "reduction_add_2_" + block_id}}, std::vector<KT>{x2_1, x2_2});

  auto x3_1 = g("AveragePooling2D", {{"pool_size", {3, 3}}, {"strides", {2, 2}}, {"padding", "valid"}, {"name", "reduction_left3_" + block_id}},
                h3);
  auto x3_2 = nasnet_separable_conv_block(g, p, filters, 5, 2, "reduction_right3_" + block_id);
  auto x3 = g("Add", {{"name", "reduction_add3_" + block_id}}, std::vector<KT>{x3_1, x3_2});

  auto x4 = g("AveragePooling2D", {{"pool_size", {3, 3}}, {"strides", {1, 1}}, {"padding", "same"}, {"name", "reduction_left4_" + block_id}}, x1);
  x4 = g("Add", json::object(), std::vector<KT>{x2, x4});

  auto x5_1 = nasnet_separable_conv_block(g, x1, filters, 3, 1, "reduction_left4_" + block_id);
  auto x5_2 = g("MaxPooling2D", {{"pool_size", {3, 3}}, {"strides", {2, 2}}, {"padding", "valid"}, {"name", "reduction_right5_" + block_id}}, h3);
  auto x5 = g("Add", {{"name", "reduction_add4_" + block_id}}, std::vector<KT>{x5_1, x5_2});

  auto x = g("Concatenate", {{"axis", -1}, {"name", "reduction_concat_" + block_id}}, std::vector<KT>{x2, x3, x4, x5});
  return {x, ip};
}

/// keras nasnet.NASNet(input_shape, penultimate_filters, num_blocks, stem_block_filters,
/// skip_reduction, filter_multiplier, ..., default_size, ...): a 3x3/2 stem, two stem reduction
/// cells, then num_blocks normal cells, a reduction cell, num_blocks normal cells, a reduction cell
/// and num_blocks normal cells (filters = penultimate_filters / 24, times filter_multiplier at each
/// reduction), ReLU and the head.
template <class T>
std::shared_ptr<Model<T>> NASNet(const Options& o, Index penultimate_filters, int num_blocks, Index stem_block_filters, bool skip_reduction,
                                 Index filter_multiplier, Index default_size, const std::string& family, const std::string& default_name,
                                 const WeightsFiles& files) {
  using KT = KerasTensor<T>;
  validate_options(o, family, files);
  Graph<T> g;
  auto img_input = g.input(obtain_input_shape(o.input_shape, default_size, 32, family));

  if (filter_multiplier <= 0 || penultimate_filters % (24 * filter_multiplier * filter_multiplier) != 0)
    throw value_error(graft::detail::cat(family, ": for NASNet-A models, penultimate_filters must be a multiple of 24 * filter_multiplier ** 2; "
                                                 "current value: ", penultimate_filters));
  const Index filters = penultimate_filters / 24;

  auto x = g("Conv2D", {{"filters", stem_block_filters}, {"kernel_size", {3, 3}}, {"strides", {2, 2}}, {"padding", "valid"}, {"use_bias", false},
                        {"name", "stem_conv1"}, {"kernel_initializer", "he_normal"}}, img_input);
  x = g("BatchNormalization", nasnet_bn("stem_bn1"), x);

  KT p, p0;
  std::tie(x, p) = nasnet_reduction_a_cell(g, x, static_cast<const KT*>(nullptr), filters / (filter_multiplier * filter_multiplier), "stem_1");
  std::tie(x, p) = nasnet_reduction_a_cell(g, x, &p, filters / filter_multiplier, "stem_2");

  for (int i = 0; i < num_blocks; ++i) std::tie(x, p) = nasnet_normal_a_cell(g, x, &p, filters, std::to_string(i));

  std::tie(x, p0) = nasnet_reduction_a_cell(g, x, &p, filters * filter_multiplier, "reduce_" + std::to_string(num_blocks));
  if (!skip_reduction) p = p0;

  for (int i = 0; i < num_blocks; ++i)
    std::tie(x, p) = nasnet_normal_a_cell(g, x, &p, filters * filter_multiplier, std::to_string(num_blocks + i + 1));

  std::tie(x, p0) = nasnet_reduction_a_cell(g, x, &p, filters * filter_multiplier * filter_multiplier, "reduce_" + std::to_string(2 * num_blocks));
  if (!skip_reduction) p = p0;

  for (int i = 0; i < num_blocks; ++i)
    std::tie(x, p) = nasnet_normal_a_cell(g, x, &p, filters * filter_multiplier * filter_multiplier, std::to_string(2 * num_blocks + i + 1));

  x = g("Activation", {{"activation", "relu"}}, x);

  if (o.include_top) {
    x = g("GlobalAveragePooling2D", json::object(), x);
    x = g("Dense", {{"units", o.classes}, {"activation", classifier_activation(o)}, {"name", "predictions"}}, x);
  } else {
    x = pooling(g, x, o);
  }
  return finish(img_input, x, o, default_name);
}

inline WeightsFiles nasnet_weights(const std::string& stem) {
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/nasnet/" + stem;
  return {base + ".h5", base + "-no-top.h5"};
}

}  // namespace detail

/// keras.applications.NASNetMobile: NASNet-A (4 @ 1056), 224x224 by default. Input: RGB images
/// preprocessed with preprocess_input("NASNetMobile", x) ("tf": [-1, 1]). (Keras refuses to build it
/// with its torch backend, by a check in NASNetMobile itself; graft builds the same graph as Keras'
/// other backends.)
template <class T = float>
std::shared_ptr<Model<T>> NASNetMobile(const Options& o = {}) {
  return detail::NASNet<T>(o, 1056, 4, 32, false, 2, 224, "NASNetMobile", "nasnet_mobile", detail::nasnet_weights("NASNet-mobile"));
}

/// keras.applications.NASNetLarge: NASNet-A (6 @ 4032), 331x331 by default ("tf" preprocessing).
template <class T = float>
std::shared_ptr<Model<T>> NASNetLarge(const Options& o = {}) {
  return detail::NASNet<T>(o, 4032, 6, 96, true, 2, 331, "NASNetLarge", "nasnet_large", detail::nasnet_weights("NASNet-large"));
}

}  // namespace applications
}  // namespace graft
